"""Commands (what volunteers and coordinators ask for), the request bodies and queries they come from, and the
results handlers and queries answer with."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NaiveDatetime,
    WithJsonSchema,
    model_validator,
)

from services.volunteering.domain import HoursStatus, ReviewCode, ShiftStatus, SignupStatus
from shared.access import STAFF, Principal, Role
from shared.openapi import LOCAL_DATE_OR_TIME, LOCAL_DATE_TIME, LOCAL_TIME, at_least_one_of, exactly_one_of
from shared.recurrence import RRULE_DESCRIPTION

SLUG = r"^[a-z][a-z0-9_]{0,39}$"
Slug = Annotated[str, Field(pattern=SLUG)]
Reason = Annotated[str, Field(min_length=1, max_length=500)]
Minutes = Annotated[int, Field(ge=0, le=1440)]
Capacity = Annotated[int, Field(ge=1, le=500)]


def _local_moment(value: Any) -> Any:
    """An exception is a local start time ("2026-12-24T18:00") or a whole local day ("2026-12-25")."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError("expected a date (YYYY-MM-DD) or a local date-time (YYYY-MM-DDTHH:MM)") from exc
    return value


LocalMoment = Annotated[datetime | date, BeforeValidator(_local_moment), WithJsonSchema(LOCAL_DATE_OR_TIME)]


def _without_offset(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a local time, without an offset")
    return value


LocalTime = Annotated[time, AfterValidator(_without_offset), WithJsonSchema(LOCAL_TIME)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RoleBody(Body):
    role_id: Slug
    title: str = Field(min_length=1, max_length=80)
    required_trainings: list[Slug] = Field(default_factory=list, max_length=20)
    supervisor: bool = False


class RoleUpdateBody(Body):
    title: str = Field(min_length=1, max_length=80)
    required_trainings: list[Slug] = Field(default_factory=list, max_length=20)
    supervisor: bool = False


class VolunteerBody(Body):
    roles: list[Slug] = Field(default_factory=list, max_length=20)
    monthly_hours_goal: int | None = Field(default=None, ge=0, le=744)
    stipend_eligible: bool = False
    active: bool = True


class TrainingBody(Body):
    training_id: Slug
    completed_on: date
    expires_on: date | None = None

    @model_validator(mode="after")
    def expires_after_completion(self) -> Self:
        if self.expires_on is not None and self.expires_on < self.completed_on:
            raise ValueError("expires_on is on or after completed_on")
        return self


class ShiftBody(Body):
    role_id: Slug
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    capacity: Capacity
    needs_supervisor: bool = False


class SeriesBody(Body):
    model_config = ConfigDict(
        json_schema_extra=exactly_one_of(duration_minutes={"type": "integer"}, end={"type": "string"})
    )

    role_id: Slug
    first_start: Annotated[NaiveDatetime, WithJsonSchema(LOCAL_DATE_TIME)] = Field(
        description="The first shift's start on the site's wall clock (no offset); later shifts keep this wall-clock "
        "time. As in RFC 5545, a time the clocks skip (spring forward) takes the offset from before the "
        "gap (02:15 on that day is 03:15 new time) and a time they repeat (fall back) is its first instance"
    )
    duration_minutes: int | None = Field(
        default=None,
        ge=1,
        le=1440,
        description="Exact length of each shift: one across a clock change still lasts this long",
    )
    end: LocalTime | None = Field(
        default=None,
        description="Local end time; before the start means the next day. It sets the shifts' length "
        "(the clock difference on an ordinary day), which every shift keeps in exact time",
    )
    rrule: str = Field(min_length=6, max_length=500, examples=["FREQ=WEEKLY;BYDAY=TU"], description=RRULE_DESCRIPTION)
    exceptions: list[LocalMoment] = Field(default_factory=list, max_length=366)
    capacity: Capacity
    needs_supervisor: bool = False

    @model_validator(mode="after")
    def duration_or_end(self) -> Self:
        if (self.duration_minutes is None) == (self.end is None):
            raise ValueError("give exactly one of duration_minutes or end")
        return self


class ShiftPatchBody(Body):
    model_config = ConfigDict(
        json_schema_extra=at_least_one_of(
            starts_at={"type": "string"},
            ends_at={"type": "string"},
            capacity={"type": "integer"},
            needs_supervisor={"type": "boolean"},
        )
    )

    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    capacity: Capacity | None = None
    needs_supervisor: bool | None = None

    @model_validator(mode="after")
    def something_to_change(self) -> Self:
        if not self.model_fields_set or all(getattr(self, f) is None for f in self.model_fields_set):
            raise ValueError("give at least one of starts_at, ends_at, capacity, needs_supervisor")
        return self


class SignUpBody(Body):
    member_id: uuid.UUID | None = Field(
        default=None, description="Whom to sign up (coordinators); a volunteer signs up themself and may leave it out"
    )


class AddHoursBody(Body):
    member_id: uuid.UUID
    shift_id: uuid.UUID
    minutes: Minutes
    reason: Reason


class CorrectHoursBody(Body):
    minutes: Minutes
    reason: Reason


class RejectHoursBody(Body):
    reason: Reason


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShiftsQuery(Query):
    from_: date | datetime | None = Field(default=None, alias="from")
    to: date | datetime | None = None
    open: bool = Field(default=False, description="Only shifts still ahead with a seat left")
    include_full: bool = Field(
        default=False,
        description="Only shifts still ahead, full ones included (so a volunteer can join a waitlist); "
        "wins over open=true",
    )
    role: Slug | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=200)


class MyShiftsQuery(Query):
    past_limit: int = Field(default=20, ge=0, le=200)
    upcoming_limit: int = Field(default=50, ge=0, le=200)


class HoursQuery(Query):
    status: HoursStatus | None = None
    member_id: uuid.UUID | None = None
    from_: date | datetime | None = Field(default=None, alias="from")
    to: date | datetime | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=200)


class MyHoursQuery(Query):
    status: HoursStatus | None = None
    from_: date | datetime | None = Field(default=None, alias="from")
    to: date | datetime | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=200)


# Commands: what handlers act on. Who acts comes from the token, never from the body.


@dataclass(frozen=True, slots=True)
class Actor:
    actor_id: str  # token:<id>, what events record
    role: Role
    site_id: str
    member_id: uuid.UUID | None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(principal.actor_id, principal.role, principal.site_id, principal.member_id)

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    @property
    def scope(self) -> str | None:
        """The sites whose objects this actor may touch: its own, or (an admin) every one."""
        return None if self.role is Role.ADMIN else self.site_id


@dataclass(frozen=True, slots=True)
class CreateRole:
    actor: Actor
    role_id: str
    title: str
    required_trainings: tuple[str, ...]
    supervisor: bool


@dataclass(frozen=True, slots=True)
class UpdateRole:
    actor: Actor
    role_id: str
    title: str
    required_trainings: tuple[str, ...]
    supervisor: bool


@dataclass(frozen=True, slots=True)
class SetVolunteerProfile:
    actor: Actor
    member_id: uuid.UUID
    roles: tuple[str, ...]
    monthly_hours_goal: int | None
    stipend_eligible: bool
    active: bool


@dataclass(frozen=True, slots=True)
class RecordTraining:
    actor: Actor
    member_id: uuid.UUID
    training_id: str
    completed_on: date
    expires_on: date | None


@dataclass(frozen=True, slots=True)
class ScheduleShift:
    actor: Actor
    timezone: str
    role_id: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    needs_supervisor: bool


@dataclass(frozen=True, slots=True)
class ScheduleSeries:
    actor: Actor
    timezone: str
    role_id: str
    first_local_start: datetime
    duration_minutes: int | None
    end: time | None
    rrule: str
    exceptions: tuple[date | datetime, ...]
    capacity: int
    needs_supervisor: bool
    horizon: timedelta


@dataclass(frozen=True, slots=True)
class ExtendSeries:
    horizon: timedelta


@dataclass(frozen=True, slots=True)
class ChangeShift:
    actor: Actor
    shift_id: uuid.UUID
    starts_at: datetime | None
    ends_at: datetime | None
    capacity: int | None
    needs_supervisor: bool | None


@dataclass(frozen=True, slots=True)
class CancelShift:
    actor: Actor
    shift_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class SignUp:
    actor: Actor
    shift_id: uuid.UUID
    member_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class DropSignup:
    actor: Actor
    shift_id: uuid.UUID
    member_id: uuid.UUID
    cutoff: timedelta


@dataclass(frozen=True, slots=True)
class MarkMissedShifts:
    site_id: str
    grace: timedelta
    batch: int = 500


@dataclass(frozen=True, slots=True)
class AddHours:
    actor: Actor
    member_id: uuid.UUID
    shift_id: uuid.UUID
    minutes: int
    reason: str


@dataclass(frozen=True, slots=True)
class CorrectHours:
    actor: Actor
    hours_id: uuid.UUID
    minutes: int
    reason: str


@dataclass(frozen=True, slots=True)
class ApproveHours:
    actor: Actor
    hours_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class RejectHours:
    actor: Actor
    hours_id: uuid.UUID
    reason: str


@dataclass(frozen=True, slots=True)
class RotateCalendarFeed:
    actor: Actor


# Results


class RoleOut(BaseModel):
    role_id: str
    title: str
    required_trainings: list[str]
    supervisor: bool


class RoleList(BaseModel):
    items: list[RoleOut]


class TrainingOut(BaseModel):
    record_id: uuid.UUID
    training_id: str
    completed_on: date
    expires_on: date | None


class MonthMinutes(BaseModel):
    month: str = Field(description="YYYY-MM in the site's time zone")
    approved_minutes: int
    pending_minutes: int


class VolunteerOut(BaseModel):
    member_id: uuid.UUID
    site_id: str
    roles: list[str]
    monthly_hours_goal: int | None
    stipend_eligible: bool
    active: bool
    trainings: list[TrainingOut] = Field(default_factory=list)
    qualified_roles_today: list[str] = Field(default_factory=list)
    this_month: MonthMinutes | None = None


class ShiftResult(BaseModel):
    shift_id: uuid.UUID
    series_id: uuid.UUID | None
    role_id: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    confirmed: int
    needs_supervisor: bool
    status: ShiftStatus


class SeriesResult(BaseModel):
    series_id: uuid.UUID
    materialized_until: datetime
    shifts: list[ShiftResult]


class ShiftChangedResult(ShiftResult):
    changed: list[str]
    promoted: int


class ShiftCancelledResult(BaseModel):
    shift_id: uuid.UUID
    status: ShiftStatus
    affected: int


class SignUpResult(BaseModel):
    signup_id: uuid.UUID
    shift_id: uuid.UUID
    member_id: uuid.UUID
    status: Literal["confirmed", "waitlisted"]
    position: int | None = Field(description="1-based place in the waitlist; null when confirmed")


class DropResult(BaseModel):
    shift_id: uuid.UUID
    member_id: uuid.UUID
    status: Literal["dropped"]
    previous_status: Literal["confirmed", "waitlisted"]
    promoted: int


class MarkedMissed(BaseModel):
    marked: int


class SeriesExtended(BaseModel):
    series: int
    shifts: int


class HoursOut(BaseModel):
    hours_id: uuid.UUID
    member_id: uuid.UUID
    shift_id: uuid.UUID
    role_id: str
    shift_starts_at: datetime
    minutes: int
    source: Literal["check_in", "coordinator"]
    status: HoursStatus
    signed_up: bool
    review_codes: list[ReviewCode]
    reason: str | None = None
    created_at: datetime | None = None
    corrected_at: datetime | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None


class HoursPage(BaseModel):
    items: list[HoursOut]
    next_cursor: str | None
    total_minutes: dict[str, int] = Field(default_factory=dict, description="Minutes on this page by status")


class CalendarFeedOut(BaseModel):
    url: str = Field(description="Private: whoever has it sees your shifts. Rotating it invalidates the old one.")


class MySignupOut(BaseModel):
    status: Literal["confirmed", "waitlisted"]
    position: int | None


class ShiftOut(BaseModel):
    shift_id: uuid.UUID
    series_id: uuid.UUID | None
    role_id: str
    role_title: str
    starts_at: datetime
    ends_at: datetime
    local_start: datetime = Field(description="Start on the site's wall clock")
    timezone: str
    capacity: int
    confirmed: int
    waitlisted: int
    spots_left: int
    needs_supervisor: bool
    supervisor_on_duty: bool | None = Field(
        description="For shifts that need one: whether a confirmed volunteer in a supervisor role is on an "
        "overlapping shift. Null when no supervisor is needed."
    )
    status: ShiftStatus
    my_signup: MySignupOut | None = None


class ShiftPage(BaseModel):
    items: list[ShiftOut]
    next_cursor: str | None


class SignupOut(BaseModel):
    signup_id: uuid.UUID
    member_id: uuid.UUID
    status: SignupStatus
    position: int | None
    signed_up_at: datetime
    signed_up_by: Literal["self", "coordinator"]
    promoted: bool
    missed: bool


class SignupList(BaseModel):
    items: list[SignupOut]


class MyShiftOut(BaseModel):
    signup_id: uuid.UUID
    shift_id: uuid.UUID
    role_id: str
    role_title: str
    starts_at: datetime
    ends_at: datetime
    shift_status: ShiftStatus
    status: SignupStatus
    position: int | None
    missed: bool
    worked_minutes: int | None = Field(description="Minutes recorded for this shift (not rejected)")


class MyShifts(BaseModel):
    upcoming: list[MyShiftOut]
    past: list[MyShiftOut]
