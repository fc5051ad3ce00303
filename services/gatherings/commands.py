"""Commands (what a coordinator, kiosk or volunteer asks for), the request bodies and queries they come from, and
the results.

Bodies and results are named as the API names them (their names are the OpenAPI schema names), with the center's
word "event" for a sober event (``ScheduleEventBody``, ``EventScheduledResult``); commands are code, where an
"event" is a domain event, so the command is ``ScheduleSoberEvent``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NaiveDatetime,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from services.gatherings.domain import GatheringType
from shared.contracts import SupportType
from shared.contracts.gatherings import EventKind, RegisteredBy
from shared.openapi import LOCAL_DATE_OR_TIME, LOCAL_DATE_TIME, at_least_one_of
from shared.recurrence import RRULE_DESCRIPTION

FocusTag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=40)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=120)]
Room = Annotated[str, StringConstraints(min_length=1, max_length=80)]
SeatCount = Annotated[int, Field(ge=0, le=1000)]


def _local_date_or_time(value: object) -> object:
    """ "2026-12-29" is a whole local day, "2026-12-29T18:00:00" one local start time (never an offset)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text) if "T" in text or " " in text else date.fromisoformat(text)
        except ValueError as exc:
            raise ValueError("give a local date (2026-12-29) or a local start time (2026-12-29T18:00:00)") from exc
    if not isinstance(value, date):
        raise ValueError("give a local date (2026-12-29) or a local start time (2026-12-29T18:00:00)")
    if isinstance(value, datetime) and value.tzinfo is not None:
        raise ValueError("an exception is a local wall-clock time, without an offset")
    return value


LocalDateOrTime = Annotated[datetime | date, BeforeValidator(_local_date_or_time), WithJsonSchema(LOCAL_DATE_OR_TIME)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CreateGroupBody(Body):
    name: Title
    focus_tags: list[FocusTag] = Field(default_factory=list, max_length=10)
    support_type: SupportType = Field(default="emotional", description="SAMHSA support type; groups are emotional")
    facilitator_member_id: uuid.UUID = Field(description="The peer leader (a volunteer's member id)")
    capacity: int = Field(ge=1, le=1000)
    child_care_seats: SeatCount = 0
    room: Room | None = None
    first_start: Annotated[NaiveDatetime, WithJsonSchema(LOCAL_DATE_TIME)] = Field(
        description="Local wall-clock time of the first session, no offset; later sessions keep this wall-clock time. "
        "As in RFC 5545, a time the clocks skip (spring forward) takes the offset from before the gap "
        "(02:15 on that day is 03:15 new time) and a time they repeat (fall back) is its first instance"
    )
    duration_minutes: int = Field(
        ge=5, le=24 * 60, description="Exact length of each session: one across a clock change still lasts this long"
    )
    rrule: str = Field(min_length=6, max_length=500, description=RRULE_DESCRIPTION)
    exceptions: list[LocalDateOrTime] = Field(
        default_factory=list,
        max_length=200,
        description="Local dates (the whole day) or local start times that do not happen",
    )


class ScheduleEventBody(Body):
    title: Title
    kind: EventKind
    support_type: SupportType | None = Field(
        default=None, description="Defaults by kind: education informational, other kinds affiliational"
    )
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    capacity: int = Field(ge=1, le=1000)
    child_care_seats: SeatCount = 0
    family_friendly: bool = False
    room: Room | None = None
    registration_opens_at: AwareDatetime | None = Field(default=None, description="Default: open now")
    registration_closes_at: AwareDatetime | None = Field(default=None, description="Default: when it starts")

    @model_validator(mode="after")
    def times_in_order(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.registration_closes_at is not None and self.registration_closes_at > self.ends_at:
            raise ValueError("registration cannot close after the event ends")
        if self.registration_opens_at is not None and self.registration_opens_at >= (
            self.registration_closes_at or self.starts_at
        ):
            raise ValueError("registration must open before it closes")
        return self


class ChangeCapacityBody(Body):
    model_config = ConfigDict(
        json_schema_extra=at_least_one_of(capacity={"type": "integer"}, child_care_seats={"type": "integer"})
    )

    capacity: int | None = Field(default=None, ge=1, le=1000)
    child_care_seats: SeatCount | None = None

    @model_validator(mode="after")
    def something_to_change(self) -> Self:
        if self.capacity is None and self.child_care_seats is None:
            raise ValueError("give capacity, child_care_seats or both")
        return self


class MoveSessionBody(Body):
    starts_at: AwareDatetime
    ends_at: AwareDatetime

    @model_validator(mode="after")
    def times_in_order(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class RegisterBody(Body):
    member_id: uuid.UUID
    adults: int = Field(default=1, ge=1, le=50, description="The member counts as one")
    children: int = Field(default=0, ge=0, le=50)


class AttendanceBody(Body):
    member_id: uuid.UUID
    present: Literal[True] = Field(default=True, description="Marks presence; absence is the lack of a mark")
    adults: int | None = Field(default=None, ge=1, le=50, description="Default: the registration's party, or 1")
    children: int | None = Field(default=None, ge=0, le=50)


class RangeQuery(Body):
    from_: AwareDatetime | date | None = Field(default=None, alias="from", description="Local date or instant")
    to: AwareDatetime | date | None = Field(default=None, description="Local date (inclusive) or instant")
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=200)


class PageQuery(Body):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=200)


class CalendarQuery(Body):
    site: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")


# Commands: the site and the actor come from the token, never from the body. site_id None: an admin (any site).


@dataclass(frozen=True, slots=True)
class CreateGroup:
    site_id: str
    actor_id: str
    timezone: str
    name: str
    focus_tags: tuple[str, ...]
    support_type: SupportType
    facilitator_member_id: uuid.UUID
    capacity: int
    child_care_seats: int
    room: str | None
    first_start: datetime
    duration_minutes: int
    rrule: str
    exceptions: tuple[datetime | date, ...]
    horizon_weeks: int


@dataclass(frozen=True, slots=True)
class ExtendSchedules:
    horizon_weeks: int


@dataclass(frozen=True, slots=True)
class ScheduleSoberEvent:
    site_id: str
    actor_id: str
    timezone: str
    title: str
    kind: EventKind
    support_type: SupportType | None
    starts_at: datetime
    ends_at: datetime
    capacity: int
    child_care_seats: int
    family_friendly: bool
    room: str | None
    registration_opens_at: datetime | None
    registration_closes_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChangeCapacity:
    site_id: str | None
    actor_id: str
    gathering_type: GatheringType
    gathering_id: uuid.UUID
    capacity: int | None
    child_care_seats: int | None


@dataclass(frozen=True, slots=True)
class MoveSession:
    site_id: str | None
    actor_id: str
    session_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class CancelGathering:
    site_id: str | None
    actor_id: str
    gathering_type: GatheringType
    gathering_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Register:
    site_id: str | None
    actor_id: str
    role: RegisteredBy
    acting_member_id: uuid.UUID | None  # a volunteer registers only themself
    gathering_type: GatheringType
    gathering_id: uuid.UUID
    member_id: uuid.UUID
    adults: int
    children: int


@dataclass(frozen=True, slots=True)
class CancelRegistration:
    site_id: str | None
    actor_id: str
    role: RegisteredBy
    acting_member_id: uuid.UUID | None
    registration_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class MarkAttendance:
    site_id: str | None
    actor_id: str
    gathering_type: GatheringType
    gathering_id: uuid.UUID
    member_id: uuid.UUID
    adults: int | None
    children: int | None


# Results


class GroupCreatedResult(BaseModel):
    group_id: uuid.UUID
    sessions_scheduled: int
    first_session_at: datetime | None
    last_session_at: datetime | None


class SchedulesExtended(BaseModel):
    groups: int
    sessions_scheduled: int


class Seats(BaseModel):
    capacity: int
    child_care_seats: int
    seats_left: int
    child_care_seats_left: int


class GatheringChanged(Seats):
    gathering_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    promoted: list[uuid.UUID] = Field(description="Registrations promoted from the waitlist by this change")


class EventScheduledResult(BaseModel):
    event_id: uuid.UUID
    support_type: SupportType
    starts_at: datetime
    ends_at: datetime
    registration_opens_at: datetime | None
    registration_closes_at: datetime


class Cancelled(BaseModel):
    gathering_id: uuid.UUID
    cancelled_at: datetime
    registrations_cancelled: int


class RegistrationResult(BaseModel):
    registration_id: uuid.UUID
    status: Literal["confirmed", "waitlisted"]
    position: int | None = Field(description="Place in the waitlist (1 is next); null when confirmed")


class RegistrationCancelled(BaseModel):
    registration_id: uuid.UUID
    status: Literal["cancelled"]
    promoted: list[uuid.UUID] = Field(description="Registrations promoted from the waitlist into the freed seats")


class AttendanceResult(BaseModel):
    attendance_id: uuid.UUID | None = Field(description="null when this member was already marked present")
    recorded: bool
    registered: bool


# Read models


class GroupOut(BaseModel):
    group_id: uuid.UUID
    name: str
    focus_tags: list[str]
    support_type: SupportType
    facilitator_member_id: uuid.UUID
    capacity: int
    child_care_seats: int
    room: str | None
    timezone: str
    first_start: datetime
    duration_minutes: int
    rrule: str
    exceptions: list[str]
    scheduled_until: datetime


class GroupPage(BaseModel):
    items: list[GroupOut]
    next_cursor: str | None


class GatheringOut(Seats):
    """A session or an event, times in the site's zone."""

    type: GatheringType
    session_id: uuid.UUID | None
    event_id: uuid.UUID | None
    group_id: uuid.UUID | None
    title: str = Field(description="The group's name or the event's title")
    kind: EventKind | None
    support_type: SupportType
    focus_tags: list[str]
    family_friendly: bool
    room: str | None
    starts_at: datetime
    ends_at: datetime
    waitlisted: int
    registration_opens_at: datetime | None
    registration_closes_at: datetime
    registration_open: bool
    moved: bool
    cancelled: bool


class GatheringPage(BaseModel):
    items: list[GatheringOut]
    next_cursor: str | None


class Upcoming(BaseModel):
    site_id: str
    timezone: str
    since: datetime
    until: datetime
    items: list[GatheringOut]


class RegistrationOut(BaseModel):
    registration_id: uuid.UUID
    member_id: uuid.UUID
    adults: int
    children: int
    registered_at: datetime
    position: int | None


class Roster(BaseModel):
    gathering_id: uuid.UUID
    capacity: int
    child_care_seats: int
    confirmed: list[RegistrationOut]
    waitlist: list[RegistrationOut]


class RegistrationStatus(BaseModel):
    registration_id: uuid.UUID
    member_id: uuid.UUID
    session_id: uuid.UUID | None
    event_id: uuid.UUID | None
    adults: int
    children: int
    status: Literal["confirmed", "waitlisted", "cancelled"]
    position: int | None
    registered_at: datetime
