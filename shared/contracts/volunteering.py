"""Events published by the volunteering service (source ``/rcc/volunteering``).

Ids, times, minutes, role ids, statuses and counts only: never names, never the free-text reasons coordinators
type (those stay in the service's database). Anything that names a member is ``sensitive``: a peer leader is a
person in recovery, and which shifts they give says so."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from shared.contracts import EventData, register

ActingAs = Literal["self", "coordinator"]
ShiftField = Literal["starts_at", "ends_at", "capacity", "needs_supervisor"]
HoursEntry = Literal["check_in", "added", "corrected"]
# Why a coordinator should look twice at hours before approving them (codes, never prose).
ReviewCode = Literal["auto_closed", "no_signup", "zero_minutes", "outside_shift"]


@register
class ShiftScheduled(EventData):
    event_type = "volunteering.shift_scheduled"
    classification = "internal"
    summary = "A coordinator scheduled a shift: a single one, or one occurrence of a recurring series."

    shift_id: uuid.UUID
    series_id: uuid.UUID | None
    role_id: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    needs_supervisor: bool


@register
class ShiftChanged(EventData):
    event_type = "volunteering.shift_changed"
    summary = (
        "A coordinator changed a shift's time, capacity or supervision need; lists the member ids signed up "
        "(confirmed or waitlisted) so they can be told."
    )

    shift_id: uuid.UUID
    role_id: str
    changed: list[ShiftField]
    starts_at: datetime
    ends_at: datetime
    capacity: int
    needs_supervisor: bool
    confirmed: int
    waitlisted: int
    affected_member_ids: list[uuid.UUID]


@register
class ShiftCancelled(EventData):
    event_type = "volunteering.shift_cancelled"
    summary = "A coordinator cancelled a shift; lists the member ids that were signed up (confirmed or waitlisted)."

    shift_id: uuid.UUID
    series_id: uuid.UUID | None
    role_id: str
    starts_at: datetime
    ends_at: datetime
    cancelled_at: datetime
    affected_member_ids: list[uuid.UUID]


@register
class SignedUp(EventData):
    event_type = "volunteering.signed_up"
    summary = "A volunteer got a confirmed seat on a shift (signing up themself, or a coordinator for them)."

    signup_id: uuid.UUID
    shift_id: uuid.UUID
    member_id: uuid.UUID
    role_id: str
    starts_at: datetime
    ends_at: datetime
    signed_up_by: ActingAs


@register
class Waitlisted(EventData):
    event_type = "volunteering.waitlisted"
    summary = "A volunteer signed up for a full shift and waits in line; position is 1-based at that moment."

    signup_id: uuid.UUID
    shift_id: uuid.UUID
    member_id: uuid.UUID
    role_id: str
    starts_at: datetime
    ends_at: datetime
    position: int
    signed_up_by: ActingAs


@register
class PromotedFromWaitlist(EventData):
    event_type = "volunteering.promoted_from_waitlist"
    summary = "A seat freed up (a drop, or more capacity) and the next volunteer in line got it."

    signup_id: uuid.UUID
    shift_id: uuid.UUID
    member_id: uuid.UUID
    role_id: str
    starts_at: datetime
    ends_at: datetime
    trigger: Literal["seat_freed", "capacity_increased"]


@register
class Dropped(EventData):
    event_type = "volunteering.dropped"
    summary = "A volunteer left a shift or its waitlist (by themself, or a coordinator for them)."

    signup_id: uuid.UUID
    shift_id: uuid.UUID
    member_id: uuid.UUID
    role_id: str
    starts_at: datetime
    previous_status: Literal["confirmed", "waitlisted"]
    dropped_by: ActingAs
    within_cutoff: bool


@register
class ShiftWorked(EventData):
    event_type = "volunteering.shift_worked"
    summary = (
        "Hours worked on a shift were recorded (from a kiosk check-in/out, added by a coordinator, or corrected), "
        "pending a coordinator's approval. minutes is the record's current total."
    )

    hours_id: uuid.UUID
    shift_id: uuid.UUID
    member_id: uuid.UUID
    role_id: str
    shift_starts_at: datetime
    minutes: int
    entry: HoursEntry
    previous_minutes: int | None
    visit_id: uuid.UUID | None
    signed_up: bool
    review_codes: list[ReviewCode]


@register
class ShiftMissed(EventData):
    event_type = "volunteering.shift_missed"
    summary = (
        "A confirmed volunteer did not check in by the end of the shift. follow_up asks for a friendly check-in "
        "with them; nothing punitive happens."
    )

    signup_id: uuid.UUID
    shift_id: uuid.UUID
    member_id: uuid.UUID
    role_id: str
    starts_at: datetime
    ends_at: datetime
    follow_up: bool


@register
class HoursApproved(EventData):
    event_type = "volunteering.hours_approved"
    summary = "A coordinator (never the volunteer themself) approved hours worked."

    hours_id: uuid.UUID
    shift_id: uuid.UUID
    member_id: uuid.UUID
    role_id: str
    shift_starts_at: datetime
    minutes: int
    approved_at: datetime


@register
class HoursRejected(EventData):
    event_type = "volunteering.hours_rejected"
    summary = "A coordinator rejected hours; the reason stays in the volunteering service."

    hours_id: uuid.UUID
    shift_id: uuid.UUID
    member_id: uuid.UUID
    role_id: str
    shift_starts_at: datetime
    minutes: int
    rejected_at: datetime
