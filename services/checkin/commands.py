"""Commands (what a kiosk or coordinator asks for), the request bodies they come from, and their results."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.checkin.domain import OccupancyStatus
from shared.access import Site
from shared.contracts import SupportType
from shared.contracts.checkin import Purpose
from shared.openapi import exactly_one_of

REF_PATTERN = r"^[A-Za-z0-9._:-]{1,100}$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OccurredAtBody(Body):
    # The kiosk's clock (corrected by the server's Date header) when the person tapped, for one it saved offline;
    # accepted within bounds (domain.occurred_time) and then the visit's time, stored beside the receive time.
    occurred_at: AwareDatetime | None = None


class RegisterMemberBody(Body):
    nickname: str | None = Field(default=None, min_length=1, max_length=40)


class CheckInBody(OccurredAtBody):
    model_config = ConfigDict(
        json_schema_extra=exactly_one_of(
            kiosk_code={"type": "string"}, member_id={"type": "string"}, anonymous={"const": True}
        )
    )

    kiosk_code: str | None = Field(default=None, min_length=1, max_length=20)
    member_id: uuid.UUID | None = None
    anonymous: bool = False
    purpose: Purpose
    # An id (shift, group session, event), never free text: refs travel in events.
    ref: str | None = Field(default=None, pattern=REF_PATTERN)

    @model_validator(mode="after")
    def exactly_one_identity(self) -> Self:
        given = sum([self.kiosk_code is not None, self.member_id is not None, self.anonymous])
        if given != 1:
            raise ValueError("give exactly one of kiosk_code, member_id or anonymous: true")
        return self


class CheckOutBody(OccurredAtBody):
    pass


class CodeCheckBody(Body):
    kiosk_code: str = Field(min_length=1, max_length=20)


class CheckOutByMemberBody(OccurredAtBody):
    model_config = ConfigDict(
        json_schema_extra=exactly_one_of(kiosk_code={"type": "string"}, member_id={"type": "string"})
    )

    kiosk_code: str | None = Field(default=None, min_length=1, max_length=20)
    member_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def exactly_one_identity(self) -> Self:
        if (self.kiosk_code is None) == (self.member_id is None):
            raise ValueError("give exactly one of kiosk_code or member_id")
        return self


class VisitsQuery(Body):
    from_: date | datetime | None = Field(default=None, alias="from")
    to: date | datetime | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=200)


# Commands: what handlers act on. They carry the site and the actor from the token, never from the body.


@dataclass(frozen=True, slots=True)
class RegisterMember:
    site_id: str
    actor_id: str
    registered_by: Literal["kiosk", "coordinator", "admin"]
    nickname: str | None
    code_length: int = 6


@dataclass(frozen=True, slots=True)
class CheckInVisitor:
    site_id: str
    actor_id: str
    purpose: Purpose
    kiosk_code: str | None = None
    member_id: uuid.UUID | None = None
    anonymous: bool = False
    ref: str | None = None
    occurred_at: datetime | None = None
    site: Site | None = None  # its closing time bounds occurred_at; needed only with one


@dataclass(frozen=True, slots=True)
class CheckOutVisitor:
    site_id: str
    actor_id: str
    visit_id: uuid.UUID | None = None
    kiosk_code: str | None = None
    member_id: uuid.UUID | None = None
    occurred_at: datetime | None = None
    site: Site | None = None


@dataclass(frozen=True, slots=True)
class CloseVisitsAtClosingTime:
    site: Site


@dataclass(frozen=True, slots=True)
class EraseMember:
    site_id: str | None  # None: an admin, allowed on any site
    actor_id: str
    member_id: uuid.UUID


# Results


class CodeCheck(BaseModel):
    exists: bool


class MemberRegisteredResult(BaseModel):
    member_id: uuid.UUID
    kiosk_code: str


class CheckedIn(BaseModel):
    visit_id: uuid.UUID
    member_id: uuid.UUID | None
    purpose: Purpose
    support_type: SupportType | None
    checked_in_at: datetime
    checked_out_at: datetime | None = Field(
        default=None,
        description="Set for a check-in saved offline before the site last closed: the visit ended at that closing",
    )


class CheckedOut(BaseModel):
    visit_id: uuid.UUID
    checked_in_at: datetime
    checked_out_at: datetime
    minutes: int


class ClosedVisits(BaseModel):
    closed: int


class MemberErasedResult(BaseModel):
    member_id: uuid.UUID
    erased_at: datetime


class Occupancy(BaseModel):
    site_id: str
    present: int
    capacity: int
    status: OccupancyStatus


class VisitOut(BaseModel):
    visit_id: uuid.UUID
    member_id: uuid.UUID | None
    anonymous: bool
    purpose: Purpose
    support_type: SupportType | None
    ref: str | None
    checked_in_at: datetime
    checked_out_at: datetime | None
    closed_by: str | None
    # When the server received the check-in and check-out; they differ from the visit's times when a kiosk
    # recorded them offline (and are null for visits from before these were kept).
    checked_in_received_at: datetime | None
    checked_out_received_at: datetime | None
    recorded_offline: bool


class VisitPage(BaseModel):
    items: list[VisitOut]
    next_cursor: str | None


class MemberOut(BaseModel):
    member_id: uuid.UUID
    site_id: str
    kiosk_code: str | None
    nickname: str | None
    registered_at: datetime
    erased_at: datetime | None
    visits: int
    last_visit_at: datetime | None
    present: bool


# Display names: the name a volunteer chooses for staff to see (not the kiosk's nickname; README, "Display names").

DISPLAY_NAMES_PER_LOOKUP = 200


class DisplayNameBody(Body):
    # Length and characters are checked by domain.clean_display_name, for one 422 code with a plain reason.
    display_name: str = Field(description="1 to 60 characters after trimming, no control characters")


class DisplayNamesLookupBody(Body):
    member_ids: list[uuid.UUID] = Field(min_length=1, max_length=DISPLAY_NAMES_PER_LOOKUP)


@dataclass(frozen=True, slots=True)
class SetDisplayName:
    site_id: str
    actor_id: str
    member_id: uuid.UUID
    display_name: str


@dataclass(frozen=True, slots=True)
class RemoveDisplayName:
    site_id: str
    actor_id: str
    member_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class DiscloseDisplayNames:
    """A coordinator's or admin's look-up: answered for members of ``site_id`` only, recorded as a disclosure."""

    site_id: str
    actor_id: str
    viewer_role: Literal["coordinator", "admin"]
    member_ids: tuple[uuid.UUID, ...]


class DisplayNameOut(BaseModel):
    member_id: uuid.UUID
    display_name: str | None
    updated_at: datetime | None


class DisplayNames(BaseModel):
    names: dict[uuid.UUID, str | None] = Field(
        description="Each member id asked for: the display name, or null (none given, erased, or not of this site)"
    )
