"""Commands (what a volunteer or coordinator asks for), the request bodies they come from, and their results."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from services.notify.domain import ALL_KINDS, DeliveryStatus, DropReason, Kind, Locale
from shared.contracts.notify import Channel, MessagePurpose, Purpose

SOURCE_PATTERN = r"^[a-z0-9][a-z0-9_./-]{0,59}$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class QuietHours(Body):
    """Local time of the site; may run over midnight (22:00 to 07:00)."""

    start: time
    end: time


class AddContactBody(Body):
    channel: Channel = "email"
    address: str = Field(min_length=3, max_length=254)
    locale: Locale = "en"
    quiet_hours: QuietHours | None = None
    kinds: list[Kind] = Field(default_factory=lambda: list(ALL_KINDS), max_length=len(ALL_KINDS))
    # Which page or form the consent was given through (recorded with the consent).
    source: str = Field(default="api", pattern=SOURCE_PATTERN)


class UpdateContactBody(Body):
    locale: Locale | None = None
    quiet_hours: QuietHours | None = None
    kinds: list[Kind] | None = Field(default=None, max_length=len(ALL_KINDS))


class VerifyBody(Body):
    token: str = Field(min_length=1, max_length=200)


class TokenQuery(Body):
    token: str = Field(min_length=1, max_length=200)


class ContactOut(BaseModel):
    contact_id: uuid.UUID
    member_id: uuid.UUID
    channel: Channel
    # Only to the person themselves: a coordinator sees whether a person is reachable, never where.
    address: str | None
    locale: Locale
    quiet_hours: QuietHours | None
    kinds: list[Kind]
    verified: bool
    verified_at: datetime | None
    consent_at: datetime
    consent_source: str


class ContactList(BaseModel):
    items: list[ContactOut]


class ChannelReachability(BaseModel):
    channel: Channel
    reachable: bool


class Reachability(BaseModel):
    member_id: uuid.UUID
    reachable: bool
    channels: list[ChannelReachability]


class Withdrawn(BaseModel):
    contact_id: uuid.UUID
    withdrawn: bool


class Verified(BaseModel):
    contact_id: uuid.UUID
    verified_at: datetime


class Done(BaseModel):
    done: bool = True


class NotificationsQuery(Body):
    limit: int = Field(default=20, ge=1, le=100)


class NotificationItem(BaseModel):
    delivery_id: uuid.UUID
    purpose: MessagePurpose
    kind: Purpose
    status: DeliveryStatus
    created_at: datetime
    sent_at: datetime | None
    # The neutral one-line text of the message, in the person's language (what a lock screen would show).
    summary: str


class NotificationList(BaseModel):
    items: list[NotificationItem]


class SiteMessagesBody(Body):
    # The name messages give the center in subjects and first lines; null: the neutral default.
    message_name: str | None = None
    # Minutes before the start, at most four, each once (JSON Schema states it; the handler says it in a code).
    reminder_offsets: list[Annotated[int, Field(ge=5, le=20160)]] = Field(
        default_factory=lambda: [1440, 120], max_length=4, json_schema_extra={"uniqueItems": True}
    )
    daily_cap: int = Field(10, ge=1, le=100)


class SiteMessages(BaseModel):
    site_id: str
    message_name: str | None
    # What subjects and first lines call the center (the message name, or the neutral default).
    shown_as: str
    reminder_offsets: list[int]
    daily_cap: int
    updated_at: datetime | None


class Coordinator(BaseModel):
    site_id: str
    member_id: uuid.UUID
    coordinator: bool


class CoordinatorList(BaseModel):
    items: list[uuid.UUID]


# Commands: the member, site and actor come from the token and the path, never from the body.


@dataclass(frozen=True, slots=True)
class AddContact:
    site_id: str
    actor_id: str
    member_id: uuid.UUID
    channel: Channel
    address: str
    locale: Locale
    quiet_start: time | None
    quiet_end: time | None
    kinds: tuple[Kind, ...]
    source: str
    verification_ttl_h: float
    sender: str


@dataclass(frozen=True, slots=True)
class UpdateContact:
    site_id: str
    actor_id: str
    member_id: uuid.UUID
    contact_id: uuid.UUID
    locale: Locale | None
    # None: unchanged; a tuple of two Nones clears them.
    quiet_hours: tuple[time | None, time | None] | None
    kinds: tuple[Kind, ...] | None
    show_address: bool


@dataclass(frozen=True, slots=True)
class WithdrawContact:
    site_id: str
    actor_id: str
    member_id: uuid.UUID
    contact_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class VerifyContact:
    token: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    key: str


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    delivery_id: uuid.UUID
    outcome: DeliveryStatus | None  # None: a temporary failure, tried again later
    error: str | None
    max_attempts: int
    retry_base_s: float
    drop_reason: DropReason | None = None
    # Not tried: quiet hours; due again then.
    defer_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryOutcomes:
    """A sender's round of outcomes, recorded together."""

    outcomes: tuple[DeliveryOutcome, ...]
    max_attempts: int
    retry_base_s: float
    retry_max_s: float | None = None


@dataclass(frozen=True, slots=True)
class SettleInterrupted:
    limit: int
    max_attempts: int
    retry_base_s: float


@dataclass(frozen=True, slots=True)
class SetSiteMessages:
    site_id: str
    actor_id: str
    message_name: str | None
    reminder_offsets: tuple[int, ...]
    daily_cap: int
    default_name: str


@dataclass(frozen=True, slots=True)
class SetCoordinator:
    site_id: str
    actor_id: str
    member_id: uuid.UUID
    coordinator: bool


class OutcomeRecorded(BaseModel):
    delivery_id: uuid.UUID
    purpose: MessagePurpose
    status: DeliveryStatus


class OutcomesRecorded(BaseModel):
    items: list[OutcomeRecorded]
