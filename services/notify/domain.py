"""Notification rules that need no I/O: addresses, secrets of links, quiet hours, message ids, retry backoff."""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal, get_args

from shared.contracts.notify import Channel, MessagePurpose, Purpose
from shared.errors import Conflict, DomainError, InvalidInput, NotFound
from shared.members import MemberStanding

Kind = Literal["confirmations", "changes", "reminders", "approvals"]
Locale = Literal["en", "es"]
ALL_KINDS: tuple[Kind, ...] = get_args(Kind)
DeliveryStatus = Literal["pending", "sent", "failed", "dropped"]
# Why a message was not sent, and never will be (not a failure of the relay: a rule said no).
DropReason = Literal["quiet_hours", "too_late", "daily_cap", "unsubscribed", "withdrawn"]
# Where a message goes: a contact's channel, or the person's in-app list (no address, always there).
DeliveryChannel = Literal["email", "sms", "push", "inapp"]
# What a reminder is about.
Subject = Literal["shift", "session", "event"]

KIND_OF: dict[MessagePurpose, Purpose] = {
    "verification": "verification",
    "shift_confirmed": "confirmations",
    "shift_waitlisted": "confirmations",
    "shift_promoted": "confirmations",
    "shift_dropped": "changes",
    "shift_changed": "changes",
    "shift_cancelled": "changes",
    # To the site's coordinators: a change in who came, asking for a friendly check-in.
    "shift_missed": "changes",
    "hours_approved": "approvals",
    "hours_rejected": "approvals",
    "stipend_paid": "approvals",
    "gathering_confirmed": "confirmations",
    "gathering_waitlisted": "confirmations",
    "gathering_promoted": "confirmations",
    "gathering_cancelled": "changes",
    "session_cancelled": "changes",
    "event_cancelled": "changes",
    "shift_reminder": "reminders",
    "gathering_reminder": "reminders",
}

DEFAULT_MESSAGE_NAME = "your center"
DEFAULT_REMINDER_OFFSETS: tuple[int, ...] = (1440, 120)
DEFAULT_DAILY_CAP = 10
# Changes to one thing within this long are one message (the latest): a coordinator fixing a shift's time twice.
COALESCE_WINDOW = timedelta(minutes=1)
CAP_WINDOW = timedelta(hours=24)
MAX_REMINDER_OFFSET = 14 * 24 * 60
# Words a message name must not carry: it is what a lock screen shows (English and Spanish stems).
_REVEALING = re.compile(r"recover|recuper|sobri|sober|addict|adicc|alcohol|drog|drug|rehab|narc[oó]t", re.IGNORECASE)

# Deliberately plain: one @, no spaces or control characters, a dot in the domain. The relay is the real judge; this
# keeps out typos and anything that could smuggle a header.
_EMAIL = re.compile(
    r"^[^@\s\x00-\x1f\x7f<>,;\"()\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


class LinkGone(DomainError):
    status, code, title = 410, "link_gone", "This link is no longer valid"


def normalize_address(channel: Channel, typed: str) -> str:
    if channel != "email":
        raise InvalidInput("Only e-mail contacts can be added for now.", code="channel_not_supported")
    address = typed.strip()
    if len(address) > 254 or not _EMAIL.fullmatch(address):
        raise InvalidInput("This is not an e-mail address we can send to.", code="bad_address")
    local, domain = address.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def require_known_here(standing: MemberStanding) -> None:
    """The member a route names in its path is one of the caller's site. The same answer for a made-up id and for
    another site's member (404, as for any object out of reach): which sites a member belongs to is not told. An
    erased member is still known: what is kept of them may be read (nothing, once their addresses are gone)."""
    if standing is None:
        raise NotFound("No member with this id here.", code="member_not_found")


def require_member_here(standing: MemberStanding) -> None:
    """As :func:`require_known_here`, for a change: an erased member gets nothing new."""
    require_known_here(standing)
    if standing == "erased":
        raise InvalidInput("This member was erased at check-in.", code="member_erased")


def check_quiet_hours(start: time | None, end: time | None) -> None:
    if (start is None) != (end is None):
        raise InvalidInput("Quiet hours need both a start and an end.", code="bad_quiet_hours")
    if start is not None and start == end:
        raise InvalidInput("Quiet hours cannot start and end at the same time.", code="bad_quiet_hours")


def new_secret() -> str:
    """A link's secret: 256 bits, shown once in a message, stored only as its hash."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_verification(used_at: datetime | None, expires_at: datetime, now: datetime) -> None:
    if used_at is not None:
        raise LinkGone("This verification link was already used.", code="verification_used")
    if now >= expires_at:
        raise LinkGone(
            "This verification link has expired; add the address again for a new one.", code="verification_expired"
        )


def verification_unknown() -> NotFound:
    return NotFound("No such verification link.", code="verification_unknown")


def contact_not_found() -> NotFound:
    return NotFound("No such contact for this member.", code="contact_not_found")


def contact_exists() -> Conflict:
    return Conflict("This member already has this address.", code="contact_exists")


def message_id(purpose: Purpose, contact_id: uuid.UUID, sender: str) -> str:
    """Deterministic: a message sent again (a restart mid-send) has the same id, so mail clients show it once."""
    return f"<{purpose}.{contact_id}@{_domain(sender)}>"


def event_message_id(purpose: MessagePurpose, cause_id: uuid.UUID, recipient: uuid.UUID, sender: str) -> str:
    """From (the event or reminder that caused it, the contact, the message): the same event delivered again asks
    for the same id, which the delivery table holds once. ``recipient`` is the contact, or the member in-app."""
    return f"<{purpose}.{cause_id}.{recipient}@{_domain(sender)}>"


def _domain(sender: str) -> str:
    return sender.rsplit("@", 1)[-1].strip("<> ") or "localhost"


def header_safe(value: str) -> str:
    """A value placed in a header (or anywhere near one) on one line: CR/LF would start a header of its own."""
    return _CONTROL.sub(" ", value).strip()


def retry_delay(
    attempts: int, base_s: float, rng: random.Random | None = None, *, max_s: float | None = None
) -> timedelta:
    """Exponential backoff with full jitter in its upper half, so retries after an outage do not all land at once;
    never longer than ``max_s`` (a relay back after an hour is tried within that, not hours later)."""
    ceiling = base_s * 2 ** max(0, min(attempts - 1, 30))
    if max_s is not None:
        ceiling = min(ceiling, max_s)
    jitter = (rng or random).uniform(0.5, 1.0)
    return timedelta(seconds=ceiling * jitter)


def check_message_name(name: str | None) -> str | None:
    if name is None:
        return None
    cleaned = header_safe(name)
    if not 1 <= len(cleaned) <= 60 or cleaned != name.strip():
        raise InvalidInput("A message name is 1 to 60 characters on one line.", code="bad_message_name")
    if _REVEALING.search(cleaned):
        raise InvalidInput(
            "A message name is shown on lock screens: it must not say what the center is for.",
            code="message_name_not_neutral",
        )
    return cleaned


def check_reminder_offsets(offsets: Sequence[int]) -> tuple[int, ...]:
    if len(offsets) > 4 or len(set(offsets)) != len(offsets):
        raise InvalidInput("At most 4 reminder times, each once.", code="bad_reminder_offsets")
    if any(not 5 <= minutes <= MAX_REMINDER_OFFSET for minutes in offsets):
        raise InvalidInput(
            "A reminder is 5 minutes to 14 days (20160 minutes) before the start.", code="bad_reminder_offsets"
        )
    return tuple(sorted(offsets, reverse=True))


def check_daily_cap(cap: int) -> int:
    if not 1 <= cap <= 100:
        raise InvalidInput("The daily cap is 1 to 100 messages a person.", code="bad_daily_cap")
    return cap


def quiet_until(now: datetime, zone: zoneinfo.ZoneInfo, start: time | None, end: time | None) -> datetime | None:
    """When the quiet hours ``now`` falls in end (None: not quiet now). Hours are the site's wall clock and may
    run over midnight; the end is found on the wall clock too, so a clock change in the night moves it with the
    clock (07:00 stays 07:00)."""
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    quiet = start <= wall < end if start < end else wall >= start or wall < end
    if not quiet:
        return None
    for day in (local.date(), local.date() + timedelta(days=1)):
        candidate = datetime.combine(day, end, tzinfo=zone).astimezone(UTC)
        if candidate > now.astimezone(UTC):
            return candidate
    raise AssertionError("quiet hours end within a day")


@dataclass(frozen=True, slots=True)
class Send:
    pass


@dataclass(frozen=True, slots=True)
class Defer:
    until: datetime


@dataclass(frozen=True, slots=True)
class Drop:
    reason: DropReason


def plan_send(
    now: datetime,
    zone: zoneinfo.ZoneInfo,
    quiet: tuple[time | None, time | None],
    not_after: datetime | None,
) -> Send | Defer | Drop:
    """Send now, wait for the end of the contact's quiet hours, or drop: a reminder is worth nothing once the thing
    it reminds of has started, so one whose quiet hours last past its start is dropped, not sent late."""
    if not_after is not None and now >= not_after:
        return Drop("too_late")
    until = quiet_until(now, zone, *quiet)
    if until is None:
        return Send()
    if not_after is not None and until >= not_after:
        return Drop("quiet_hours")
    return Defer(until)


def over_daily_cap(sent_in_window: int, cap: int) -> bool:
    """A storm (a coordinator moving ten shifts, a bug upstream) stops at the cap; the rest is dropped, not queued."""
    return sent_in_window >= cap


def reminder_due(offsets: Sequence[int], starts_at: datetime) -> list[tuple[int, datetime]]:
    return [(minutes, starts_at - timedelta(minutes=minutes)) for minutes in offsets]


def reminder_fate(due_at: datetime, starts_at: datetime, siblings_due: Sequence[datetime], now: datetime) -> bool:
    """Whether a due reminder is sent: never once its start has passed, and after downtime only the latest of a
    person's reminders for the same thing that is due (the 2-hour one, not also the stale 24-hour one). Every
    scheduler decides the same for the same row, whichever rows it holds."""
    if starts_at <= now:
        return False
    latest = max((due for due in siblings_due if due <= now), default=due_at)
    return due_at >= latest
