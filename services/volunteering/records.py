"""What volunteering's handlers hand to its repositories (``models``), and what those hand back: frozen records,
so a handler touches no column dicts and a unit test's fake repository takes and gives the same."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from services.volunteering.domain import HoursStatus, Profile, ReviewCode, ShiftStatus, TrainingRecord
from shared.contracts.volunteering import ActingAs
from shared.members import MemberStanding

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
class SignUpFacts:
    """What a run of sign-ups reads with the locks: the shift, and per member named their standing at its site and
    qualification facts (no profile: not a volunteer)."""

    shift: ShiftRecord
    standings: dict[uuid.UUID, MemberStanding]
    profiles: dict[uuid.UUID, Profile]
    trainings: dict[uuid.UUID, list[TrainingRecord]]


@dataclass(frozen=True, slots=True)
class SignedUpAlready:
    """What a run of sign-ups reads after the locks: members signed up here already (their status), members holding
    an overlapping confirmed shift (its id), and how many wait here."""

    existing: dict[uuid.UUID, ActiveStatus]
    clash: dict[uuid.UUID, uuid.UUID]
    waiting: int


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
