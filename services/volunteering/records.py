"""What volunteering's handlers hand to its repositories (``models``), and what those hand back: frozen records,
so a handler touches no column dicts and a unit test's fake repository takes and gives the same."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from services.volunteering.domain import HoursStatus, ReviewCode, ShiftStatus
from shared.contracts.volunteering import ActingAs

ActiveStatus = Literal["confirmed", "waitlisted"]
HoursSource = Literal["check_in", "coordinator"]


# What handlers hand in, and what repositories hand back


@dataclass(frozen=True, slots=True)
class RoleRecord:
    site_id: str
    role_id: str
    title: str
    required_trainings: tuple[str, ...]
    supervisor: bool


@dataclass(frozen=True, slots=True)
class VolunteerProfile:
    member_id: uuid.UUID
    site_id: str
    roles: tuple[str, ...]
    monthly_hours_goal: int | None
    stipend_eligible: bool
    active: bool


@dataclass(frozen=True, slots=True)
class NewTraining:
    record_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    training_id: str
    completed_on: date
    expires_on: date | None
    recorded_at: datetime
    recorded_by: str


@dataclass(frozen=True, slots=True)
class SeriesRecord:
    """A recurring shift; ``exceptions`` are ISO local datetimes or dates that do not happen."""

    series_id: uuid.UUID
    site_id: str
    role_id: str
    rrule: str
    first_local_start: datetime
    duration_minutes: int
    exceptions: tuple[str, ...]
    timezone: str
    capacity: int
    needs_supervisor: bool
    materialized_until: datetime


@dataclass(frozen=True, slots=True)
class NewShift:
    shift_id: uuid.UUID
    site_id: str
    role_id: str
    series_id: uuid.UUID | None
    occurrence_start: datetime | None  # the series' wall-clock start of this occurrence
    starts_at: datetime
    ends_at: datetime
    timezone: str
    capacity: int
    needs_supervisor: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ShiftTerms:
    """What a coordinator may change of a scheduled shift."""

    starts_at: datetime
    ends_at: datetime
    capacity: int
    needs_supervisor: bool


@dataclass(frozen=True, slots=True)
class ShiftRecord:
    shift_id: uuid.UUID
    site_id: str
    role_id: str
    series_id: uuid.UUID | None
    starts_at: datetime
    ends_at: datetime
    timezone: str
    capacity: int
    confirmed: int
    needs_supervisor: bool
    status: ShiftStatus
    required_trainings: tuple[str, ...]

    @property
    def terms(self) -> ShiftTerms:
        return ShiftTerms(self.starts_at, self.ends_at, self.capacity, self.needs_supervisor)


def shift_record(values: Sequence[Any]) -> ShiftRecord:
    """From a row of the shift columns in ``ShiftRecord``'s order, the role's required trainings last."""
    v = values
    return ShiftRecord(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], tuple(v[11]))


@dataclass(frozen=True, slots=True)
class NewSignup:
    signup_id: uuid.UUID
    shift_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    signed_up_at: datetime
    signed_up_by: ActingAs
    actor_id: str


@dataclass(frozen=True, slots=True)
class ActiveSignup:
    signup_id: uuid.UUID
    member_id: uuid.UUID
    status: ActiveStatus
    seq: int


@dataclass(frozen=True, slots=True)
class SignUpOutcome:
    existing: ActiveStatus | None  # the member's active sign-up status here: nothing was written
    clash: uuid.UUID | None  # a confirmed shift of theirs that overlaps: nothing was written
    status: ActiveStatus | None  # when signed up
    position: int  # on the waitlist, 1-based, when waitlisted


@dataclass(frozen=True, slots=True)
class MissedSignup:
    signup_id: uuid.UUID
    shift_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    role_id: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class VisitAttendance:
    """A kiosk visit for a shift; check-out's two fields are None until it is closed."""

    visit_id: uuid.UUID
    site_id: str
    shift_id: uuid.UUID
    member_id: uuid.UUID
    checked_in_at: datetime
    signed_up: bool
    recorded_at: datetime
    checked_out_at: datetime | None = None
    closed_by: str | None = None


@dataclass(frozen=True, slots=True)
class NewHours:
    """Hours worked on a shift, pending approval; ``reason`` and ``created_by`` only when a coordinator adds them."""

    hours_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    shift_id: uuid.UUID
    role_id: str
    shift_starts_at: datetime
    minutes: int
    source: HoursSource
    visit_id: uuid.UUID | None
    signed_up: bool
    review_codes: tuple[ReviewCode, ...]
    created_at: datetime
    reason: str | None = None
    created_by: str | None = None


@dataclass(frozen=True, slots=True)
class HoursRow:
    hours_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    shift_id: uuid.UUID
    role_id: str
    shift_starts_at: datetime
    minutes: int
    source: HoursSource
    visit_id: uuid.UUID | None
    signed_up: bool
    review_codes: tuple[ReviewCode, ...]
    status: HoursStatus
