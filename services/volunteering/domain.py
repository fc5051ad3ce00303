"""Volunteering rules that need no I/O.

Qualification
    A volunteer is qualified for a shift when their profile (at the shift's site) is active, lists the shift's role,
    and for every training the role requires holds a record completed on or before the shift's local date and not
    expired on it (``expires_on`` is the last valid day; none means it never expires). Paused → 409
    ``volunteer_paused``; anything else missing → 409 ``not_qualified`` naming the missing trainings.

Overlap
    Shifts are half-open intervals ``[start, end)``: back-to-back shifts do not overlap. Only *confirmed* sign-ups
    hold time. A new sign-up (confirmed or waitlisted) is refused with 409 ``overlap`` when it overlaps one of the
    volunteer's confirmed shifts; a waitlisted spot does not block anything. When a seat frees up, the waitlist is
    promoted first come, first served; someone who meanwhile holds an overlapping confirmed shift is skipped but
    keeps their place in line.

Drop cutoff
    Within ``drop_cutoff_hours`` of the start (and after it), a volunteer can no longer drop a confirmed seat
    (409 ``cutoff_passed``): a coordinator can, always. Leaving a waitlist is always allowed.

Hours worked
    From a kiosk visit with purpose ``volunteer_shift`` and ``ref`` = shift id: the part of the visit inside the
    window [shift start − 30 min, shift end + 30 min] (arriving early to set up and staying to wrap up count; the
    rest of the visit does not), rounded to the nearest quarter hour, half up (7 min 30 s rounds up). Stored as
    integer minutes. A visit the kiosk closed automatically at closing time still counts but is flagged
    ``auto_closed`` for review, as are check-ins without a confirmed sign-up (``no_signup``), zero minutes, and
    visits entirely outside the window (``outside_shift``). Nothing is approved automatically.

Stipends
    The arithmetic and rules of stipends (policies, periods, caps, late approvals, tax paperwork) are in
    ``stipends.domain``.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from shared.errors import Forbidden, InvalidInput
from shared.members import MemberStanding
from shared.recurrence import MAX_OCCURRENCES, Occurrence, Rule, expand, first_start_after

ATTENDANCE_MARGIN = timedelta(minutes=30)
ROUNDING = timedelta(minutes=15)
MAX_SHIFT_LENGTH = timedelta(hours=24)

SignupStatus = Literal["confirmed", "waitlisted", "dropped", "cancelled"]
ACTIVE_SIGNUP: tuple[SignupStatus, ...] = ("confirmed", "waitlisted")
ShiftStatus = Literal["scheduled", "cancelled"]
HoursStatus = Literal["pending", "approved", "rejected"]


# Qualification


@dataclass(frozen=True, slots=True)
class Profile:
    member_id: uuid.UUID
    site_id: str
    roles: tuple[str, ...]
    active: bool


@dataclass(frozen=True, slots=True)
class TrainingRecord:
    training_id: str
    completed_on: date
    expires_on: date | None

    def valid_on(self, day: date) -> bool:
        return self.completed_on <= day and (self.expires_on is None or day <= self.expires_on)


@dataclass(frozen=True, slots=True)
class Qualification:
    code: Literal["not_qualified", "volunteer_paused"] | None = None
    reason: Literal["no_profile", "paused", "role_not_assigned", "training_missing_or_expired"] | None = None
    missing_trainings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.code is None


def qualification(
    profile: Profile | None,
    *,
    site_id: str,
    role_id: str,
    required_trainings: Sequence[str],
    trainings: Iterable[TrainingRecord],
    on: date,
) -> Qualification:
    if profile is None or profile.site_id != site_id:
        return Qualification("not_qualified", "no_profile")
    if not profile.active:
        return Qualification("volunteer_paused", "paused")
    if role_id not in profile.roles:
        return Qualification("not_qualified", "role_not_assigned")
    records = list(trainings)
    missing = tuple(
        required
        for required in required_trainings
        if not any(r.training_id == required and r.valid_on(on) for r in records)
    )
    if missing:
        return Qualification("not_qualified", "training_missing_or_expired", missing)
    return Qualification()


def local_date(at: datetime, zone: zoneinfo.ZoneInfo) -> date:
    return at.astimezone(zone).date()


# Time: overlap, cutoff, ranges


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start < b_end and b_start < a_end


def within_cutoff(now: datetime, starts_at: datetime, cutoff: timedelta) -> bool:
    return now >= starts_at - cutoff


def check_shift_times(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise InvalidInput("A shift ends after it starts.", code="ends_before_start")
    if ends_at - starts_at > MAX_SHIFT_LENGTH:
        raise InvalidInput("A shift lasts at most 24 hours.", code="shift_too_long")


def range_start(value: date | datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return _aware(value)
    return datetime.combine(value, time.min, tzinfo=zone)


def range_end(value: date | datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """``to`` is inclusive for a date (the whole local day), exclusive for an instant."""
    if isinstance(value, datetime):
        return _aware(value)
    return datetime.combine(value + timedelta(days=1), time.min, tzinfo=zone)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise InvalidInput("Times need an offset, e.g. 2026-11-26T18:00:00Z.", code="naive_datetime")
    return value


# Who acts on whom


def require_member(standing: MemberStanding, *, erased_ok: bool = False) -> None:
    """A member named in a request must be one check-in registered at the site concerned (the same answer for a
    made-up id and for another site's member: which sites a member belongs to is not told). An erased member's
    records stay reachable (``erased_ok``), but nothing new is arranged for them, as the kiosk no longer lets them
    in."""
    if standing is None:
        raise InvalidInput("No member with this id is registered at this site.", code="unknown_member")
    if standing == "erased" and not erased_ok:
        raise InvalidInput("This member was erased at check-in.", code="member_erased")


def member_acted_on(*, is_staff: bool, own_member_id: uuid.UUID | None, requested: uuid.UUID | None) -> uuid.UUID:
    """The member a sign-up or drop is for: a volunteer only ever themself, a coordinator anyone they name."""
    if is_staff:
        if requested is None:
            raise InvalidInput("Say whom to sign up: member_id.", code="member_required")
        return requested
    if own_member_id is None or (requested is not None and requested != own_member_id):
        raise Forbidden("A volunteer acts only on their own sign-ups and hours.", code="not_yours")
    return own_member_id


# Hours


def worked_minutes(
    checked_in_at: datetime, checked_out_at: datetime, shift_starts_at: datetime, shift_ends_at: datetime
) -> int:
    start = max(checked_in_at, shift_starts_at - ATTENDANCE_MARGIN)
    end = min(checked_out_at, shift_ends_at + ATTENDANCE_MARGIN)
    if end <= start:
        return 0
    quarters = (end - start + ROUNDING / 2) // ROUNDING
    return int(quarters * (ROUNDING // timedelta(minutes=1)))


ReviewCode = Literal["auto_closed", "no_signup", "zero_minutes", "outside_shift"]


def review_codes(
    *,
    closed_by: str,
    signed_up: bool,
    minutes: int,
    checked_in_at: datetime,
    checked_out_at: datetime,
    shift_starts_at: datetime,
    shift_ends_at: datetime,
) -> list[ReviewCode]:
    codes: list[ReviewCode] = []
    if closed_by == "auto_close":
        codes.append("auto_closed")
    if not signed_up:
        codes.append("no_signup")
    if minutes == 0:
        codes.append("zero_minutes")
    if checked_out_at <= shift_starts_at - ATTENDANCE_MARGIN or checked_in_at >= shift_ends_at + ATTENDANCE_MARGIN:
        codes.append("outside_shift")
    return codes


def may_decide_hours(*, approver_member_id: uuid.UUID | None, hours_member_id: uuid.UUID) -> None:
    if approver_member_id is not None and approver_member_id == hours_member_id:
        raise Forbidden("Nobody approves or rejects their own hours.", code="own_hours")


# Recurring series


def series_duration(first_local_start: datetime, duration_minutes: int | None, end: time | None) -> timedelta:
    """A series' length: given in minutes, or as the local end time (past midnight = next day), read as the clock
    difference on a day without a clock change (22:00 to 06:00 is 8 hours). Every shift of the series then lasts
    that long in exact time (RFC 5545), so the night the clocks change it ends an hour later or earlier by the
    wall clock, and a volunteer's planned hours are the same every week."""
    if (duration_minutes is None) == (end is None):
        raise InvalidInput("Give exactly one of duration_minutes or end.", code="duration_or_end")
    if duration_minutes is not None:
        duration = timedelta(minutes=duration_minutes)
    else:
        assert end is not None
        ends = datetime.combine(first_local_start.date(), end)
        if ends <= first_local_start:
            ends += timedelta(days=1)
        duration = ends - first_local_start
    if not timedelta(0) < duration <= MAX_SHIFT_LENGTH:
        raise InvalidInput("A shift lasts more than 0 minutes and at most 24 hours.", code="shift_too_long")
    return duration


def local_exceptions(values: Iterable[date | datetime], zone: zoneinfo.ZoneInfo) -> list[date | datetime]:
    """EXDATEs as the site's wall clock: naive datetimes and dates as given, aware ones converted."""
    out: list[date | datetime] = []
    for value in values:
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(zone).replace(tzinfo=None)
        out.append(value)
    return out


def occurrences_between(
    rule: str | Rule,
    *,
    first_local_start: datetime,
    duration: timedelta,
    zone: zoneinfo.ZoneInfo,
    exceptions: Iterable[date | datetime],
    after: datetime,
    until: datetime,
    limit: int = 100_000,
) -> list[Occurrence]:
    """Occurrences starting in ``(after, until]``, each lasting ``duration`` of exact time; the rule is still
    counted from its first start, so COUNT and BYSETPOS mean what they say. CPU work bounded by the horizon: run it
    off the event loop."""
    return expand(
        rule,
        first_local_start=first_local_start,
        duration=duration,
        zone=zone,
        exceptions=exceptions,
        after=after,
        until=until,
        limit=limit,
    )


def occurs_after(
    rule: str | Rule,
    *,
    first_local_start: datetime,
    zone: zoneinfo.ZoneInfo,
    exceptions: Iterable[date | datetime],
    after: datetime,
) -> bool:
    """Whether the rule has an occurrence starting after ``after`` (looking at most ten years ahead)."""
    return (
        first_start_after(
            rule,
            first_local_start=first_local_start,
            zone=zone,
            exceptions=exceptions,
            after=after,
            until=after + timedelta(days=3653),
        )
        is not None
    )


def check_new_series(occurrences: Sequence[Occurrence], *, occurs_later: bool) -> None:
    """A new series makes at most MAX_OCCURRENCES shifts now, and at least one (now, or once its first
    occurrence comes within the horizon)."""
    if not occurrences and not occurs_later:
        raise InvalidInput("The rule has no occurrence ahead.", code="no_occurrences")
    if len(occurrences) > MAX_OCCURRENCES:
        raise InvalidInput(
            f"The rule makes more than {MAX_OCCURRENCES} shifts within the horizon.", code="too_many_occurrences"
        )


# The private calendar feed


def new_feed_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def hash_feed_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def utc(at: datetime) -> datetime:
    return at.astimezone(UTC)
