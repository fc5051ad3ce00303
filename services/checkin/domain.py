"""Check-in rules that need no I/O."""

from __future__ import annotations

import secrets
import unicodedata
import zoneinfo
from datetime import UTC, datetime, time, timedelta
from typing import Literal

from shared.contracts import SupportType
from shared.contracts.checkin import SUPPORT_TYPE_OF_PURPOSE, Purpose
from shared.errors import InvalidInput

# How far a kiosk's clock may run ahead of ours (its clock is corrected by our Date header, so this is the error left).
OCCURRED_AHEAD_SKEW = timedelta(minutes=2)
# A kiosk offline for longer than a day has lost more than its queue; its check-ins are no longer worth trusting.
OCCURRED_MAX_AGE = timedelta(hours=24)

# Easy to read aloud and type: no 0/O, no 1/I.
KIOSK_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

OccupancyStatus = Literal["ok", "near", "full"]
# Who ended a visit: the member at the kiosk, or the closing time (VisitorCheckedOut.closed_by).
ClosedBy = Literal["kiosk", "auto_close"]


def support_type_of(purpose: Purpose) -> SupportType | None:
    return SUPPORT_TYPE_OF_PURPOSE[purpose]


def new_kiosk_code(length: int = 6) -> str:
    return "".join(secrets.choice(KIOSK_CODE_ALPHABET) for _ in range(length))


def normalize_kiosk_code(typed: str) -> str:
    """What a person types, as stored: case and separators do not matter."""
    return "".join(ch for ch in typed.upper() if ch not in " -_.")


def is_well_formed_code(code: str) -> bool:
    return 4 <= len(code) <= 12 and all(ch in KIOSK_CODE_ALPHABET for ch in code)


def occupancy_status(present: int, capacity: int, near_ratio: float) -> OccupancyStatus:
    if present >= capacity:
        return "full"
    if present >= capacity * near_ratio:
        return "near"
    return "ok"


def minutes_between(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() // 60))


def closing_instant_after(checked_in_at: datetime, zone: zoneinfo.ZoneInfo, closes_at: time) -> datetime:
    """The first closing time (in the site's time zone) after a check-in: when a visit left open is closed.

    Built from the local date, so it stays at the same wall-clock time across daylight-saving changes."""
    day = checked_in_at.astimezone(zone).date()
    after = checked_in_at.astimezone(UTC)
    while True:
        # On a fall-back night the closing time happens twice (fold 0 and 1, PEP 495); compare instants, because
        # two datetimes in one zone compare by wall clock alone.
        for fold in (0, 1):
            closing = datetime.combine(day, closes_at, tzinfo=zone).replace(fold=fold)
            if closing.astimezone(UTC) > after:
                return closing
        day += timedelta(days=1)


DISPLAY_NAME_MAX = 60
# Bidirectional embeddings, overrides and isolates: they reorder what a roster shows after them ("Trojan Source").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_display_name(typed: str) -> str:
    """A display name as stored: trimmed, 1 to 60 characters, one line with no control characters (C0/C1 controls,
    line and paragraph separators, bidirectional overrides). Other format characters stay: the zero-width joiner
    is part of many names' scripts and of emoji."""
    name = typed.strip()
    if not 1 <= len(name) <= DISPLAY_NAME_MAX:
        raise InvalidInput("A display name is 1 to 60 characters.", code="display_name_length")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS for ch in name):
        raise InvalidInput(
            "A display name is one line of visible characters, no control characters.", code="display_name_characters"
        )
    return name


def last_closing_before(now: datetime, zone: zoneinfo.ZoneInfo, closes_at: time) -> datetime:
    """The site's most recent closing time at or before ``now``: visits left open were closed then."""
    day = now.astimezone(zone).date()
    while True:
        # The later of a fall-back night's two closing times first (fold 1), as that one is the last.
        for fold in (1, 0):
            closing = datetime.combine(day, closes_at, tzinfo=zone).replace(fold=fold)
            if closing.astimezone(UTC) <= now:
                return closing
        day -= timedelta(days=1)


def check_in_time(
    now: datetime, occurred_at: datetime, zone: zoneinfo.ZoneInfo, closes_at: time
) -> tuple[datetime, datetime | None]:
    """When a check-in happened (as ``occurred_time``), and when its visit ended if the site has closed since: a
    check-in the kiosk saved before the last closing belongs to a day whose visits were closed at that closing, so
    it is recorded as one of them, ended then, instead of being refused and missing from that day's figures."""
    at = occurred_time(now, occurred_at)
    closing = closing_instant_after(at, zone, closes_at)
    return at, closing if closing <= now else None


def check_out_time(now: datetime, occurred_at: datetime, zone: zoneinfo.ZoneInfo, closes_at: time) -> datetime:
    """When a check-out happened (as ``occurred_time``). Not before the site's last closing: the visits of that day
    were closed then, and a late check-out must not close a visit begun since (it would end before it began)."""
    at = occurred_time(now, occurred_at)
    last_close = last_closing_before(now, zone, closes_at)
    if at < last_close:
        raise InvalidInput(
            "The time given is before the site last closed; that day's visits are closed.",
            code="occurred_before_closing",
            earliest=last_close.astimezone(UTC).isoformat(),
        )
    return at


def occurred_time(now: datetime, occurred_at: datetime) -> datetime:
    """When a tap the kiosk saved while offline happened: its ``occurred_at``, accepted only when it is plausible,
    and never later than ``now``, when it reached us."""
    if occurred_at > now + OCCURRED_AHEAD_SKEW:
        raise InvalidInput(
            "The time given is in the future; check the kiosk's clock.",
            code="occurred_in_future",
            latest=(now + OCCURRED_AHEAD_SKEW).isoformat(),
        )
    if occurred_at < now - OCCURRED_MAX_AGE:
        raise InvalidInput(
            "The time given is more than 24 hours ago.",
            code="occurred_too_long_ago",
            earliest=(now - OCCURRED_MAX_AGE).isoformat(),
        )
    return min(occurred_at, now)
