"""Events published by the gatherings service (source ``/rcc/gatherings``).

A *gathering* is a recovery-group session or a sober event: something with seats that members register for and
attend. Payloads carry ids, kinds, SAMHSA support types, counts and times, never group names, event titles, rooms
or other free text. Every fact about a seat names the session or the event (one of ``session_id``/``event_id`` is
set) and its ``support_type``, so reports (sessions held, attendance, registrations, promotions by support type)
need nothing but the events.

Class names are prefixed where another service could plausibly use the same word (the AsyncAPI document keys its
schemas by class name)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.contracts import EventData, SupportType, register

EventKind = Literal["sober_social", "payday", "holiday", "sports", "education", "other"]
RegisteredBy = Literal["kiosk", "volunteer", "coordinator", "admin"]
# Why a schedule fact was (re)published: first scheduled, moved to another time, or given other capacity.
ScheduleChange = Literal["scheduled", "moved", "capacity_changed"]
AttendanceSource = Literal["checkin", "roster"]


class _SeatFact(EventData):
    """Fields every registration fact shares: which gathering (session or event) and how it counts."""

    registration_id: uuid.UUID
    member_id: uuid.UUID
    session_id: uuid.UUID | None = Field(description="Set when the gathering is a group session")
    group_id: uuid.UUID | None = Field(description="The session's group")
    event_id: uuid.UUID | None = Field(description="Set when the gathering is a sober event")
    support_type: SupportType
    starts_at: datetime
    adults: int
    children: int


@register
class GroupCreated(EventData):
    event_type = "gatherings.group_created"
    summary = (
        "A coordinator created a recurring recovery group. Names the facilitator (a member id), so it is sensitive; "
        "the group's name stays in the service."
    )

    group_id: uuid.UUID
    support_type: SupportType
    focus_tags: list[str]
    facilitator_member_id: uuid.UUID
    capacity: int
    child_care_seats: int
    rrule: str
    first_start_local: datetime = Field(description="Wall-clock time in the site's zone (no offset)")
    duration_minutes: int
    timezone: str
    sessions_scheduled: int
    created_at: datetime


@register
class SessionScheduled(EventData):
    event_type = "gatherings.session_scheduled"
    classification = "internal"
    summary = (
        "A group session is on the calendar: newly materialized from the group's recurrence, moved to another time "
        "(change=moved) or given other capacity (change=capacity_changed)."
    )

    session_id: uuid.UUID
    group_id: uuid.UUID
    support_type: SupportType
    starts_at: datetime
    ends_at: datetime
    capacity: int
    child_care_seats: int
    change: ScheduleChange
    previous_starts_at: datetime | None = Field(description="Set when the session was moved")


@register
class SessionCancelled(EventData):
    event_type = "gatherings.session_cancelled"
    summary = "One session of a group was cancelled; lists the member ids that had a seat or were waiting."

    session_id: uuid.UUID
    group_id: uuid.UUID
    support_type: SupportType
    starts_at: datetime
    cancelled_at: datetime
    confirmed_member_ids: list[uuid.UUID]
    waitlisted_member_ids: list[uuid.UUID]


@register
class EventScheduled(EventData):
    event_type = "gatherings.event_scheduled"
    classification = "internal"
    summary = (
        "A sober event is on the calendar (change=scheduled), or its capacity or child-care seats changed "
        "(change=capacity_changed)."
    )

    event_id: uuid.UUID
    kind: EventKind
    support_type: SupportType
    starts_at: datetime
    ends_at: datetime
    capacity: int
    child_care_seats: int
    family_friendly: bool
    registration_opens_at: datetime | None
    registration_closes_at: datetime
    change: ScheduleChange


@register
class EventCancelled(EventData):
    event_type = "gatherings.event_cancelled"
    summary = "A sober event was cancelled; lists the member ids that had a seat or were waiting."

    event_id: uuid.UUID
    kind: EventKind
    support_type: SupportType
    starts_at: datetime
    cancelled_at: datetime
    confirmed_member_ids: list[uuid.UUID]
    waitlisted_member_ids: list[uuid.UUID]


@register
class GatheringRegistered(_SeatFact):
    event_type = "gatherings.registered"
    summary = "A member's party got seats at a session or event (adults against capacity, children child care)."

    registered_by: RegisteredBy
    registered_at: datetime


@register
class GatheringWaitlisted(_SeatFact):
    event_type = "gatherings.waitlisted"
    summary = "A member's party did not fit and waits, first come first served; position 1 is next."

    registered_by: RegisteredBy
    registered_at: datetime
    position: int


@register
class GatheringPromotedFromWaitlist(_SeatFact):
    event_type = "gatherings.promoted_from_waitlist"
    summary = "A waiting party got seats because a seat was freed (a cancellation) or capacity grew, in waitlist order."

    waiting_since: datetime
    promoted_at: datetime
    reason: Literal["cancellation", "capacity_increase"]


@register
class GatheringRegistrationCancelled(_SeatFact):
    event_type = "gatherings.registration_cancelled"
    summary = "A registration (with seats, or waiting) was cancelled by the member, a kiosk or a coordinator."

    previous_status: Literal["confirmed", "waitlisted"]
    cancelled_at: datetime
    cancelled_by: RegisteredBy


@register
class GatheringAttended(EventData):
    event_type = "gatherings.attended"
    summary = (
        "Someone attended a session or event: from a kiosk check-in (member or anonymous walk-in) or a "
        "coordinator's roster. registered=false is a walk-in. Recorded once per member (or per anonymous visit)."
    )

    attendance_id: uuid.UUID
    session_id: uuid.UUID | None
    group_id: uuid.UUID | None
    event_id: uuid.UUID | None
    support_type: SupportType
    starts_at: datetime
    member_id: uuid.UUID | None = Field(description="null for an anonymous walk-in")
    anonymous: bool
    visit_id: uuid.UUID | None = Field(description="The check-in's visit; null for a roster mark")
    registered: bool = Field(description="The member had a confirmed registration; false for a walk-in")
    registration_id: uuid.UUID | None
    adults: int
    children: int
    source: AttendanceSource
    attended_at: datetime
