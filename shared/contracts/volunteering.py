"""Events published by the volunteering service (source ``/rcc/volunteering``).

Ids, times, minutes, role ids, statuses and counts only: never names, never the free-text reasons coordinators
type (those stay in the service's database). Anything that names a member is ``sensitive``: a peer leader is a
person in recovery, and which shifts they give says so."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

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


# Stipends. Amounts are integer cents; free text (payment references, reversal reasons) stays in the service.

StipendKind = Literal["accrual", "adjustment"]
StipendCap = Literal["monthly_cap", "yearly_cap", "org_cap"]
PaymentMethod = Literal["cash", "check", "bank_transfer", "gift_card", "other"]


class StipendRoleRate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role_id: str
    hourly_rate_cents: int
    per_shift_cents: int


@register
class StipendPolicyChanged(EventData):
    event_type = "volunteering.stipend_policy_changed"
    classification = "internal"
    summary = (
        "An admin made a new version of a site's stipend policy, in effect from a local date (rates per approved "
        "hour and per completed shift, per role where set; caps; the yearly tax-paperwork threshold)."
    )

    policy_id: uuid.UUID
    effective_from: date
    hourly_rate_cents: int
    per_shift_cents: int
    role_rates: list[StipendRoleRate]
    monthly_cap_cents: int
    yearly_cap_cents: int | None
    tax_threshold_cents: int
    org_monthly_cap_cents: int | None


@register
class StipendPeriodClosed(EventData):
    event_type = "volunteering.stipend_period_closed"
    classification = "internal"
    summary = (
        "An admin closed a stipend period (a calendar month on the site's clock): its ledger entries are written. "
        "accrued_cents is what the period books to be paid, over_cap_cents what the caps held back."
    )

    period: str
    closed_at: datetime
    volunteers: int
    entries: int
    adjustments: int
    accrued_cents: int
    over_cap_cents: int
    cap_policy_id: uuid.UUID


@register
class StipendAccrued(EventData):
    event_type = "volunteering.stipend_accrued"
    summary = (
        "A ledger entry booked a stipend when its period closed: a volunteer's hours of the period (accrual), or "
        "one late-approved hours record of an earlier period (adjustment, naming the shift). amount_cents is what "
        "is to be paid; over_cap_cents what the caps held back. policy_id is the policy whose caps applied; "
        "rate_policy_ids those whose rates priced the hours."
    )

    entry_id: uuid.UUID
    payout_id: uuid.UUID
    member_id: uuid.UUID
    period: str
    kind: StipendKind
    amount_cents: int
    over_cap_cents: int
    capped_by: list[StipendCap]
    minutes: int
    shifts: int
    policy_id: uuid.UUID
    rate_policy_ids: list[uuid.UUID]
    shift_id: uuid.UUID | None
    original_period: str


@register
class StipendReversed(EventData):
    event_type = "volunteering.stipend_reversed"
    summary = (
        "An admin reversed an accrued ledger entry (a correction, never an edit); amount_cents is the positive "
        "amount taken back. Its hours are free to be booked again when the next period closes."
    )

    entry_id: uuid.UUID
    reverses_entry_id: uuid.UUID
    payout_id: uuid.UUID
    member_id: uuid.UUID
    period: str
    amount_cents: int
    released_hours: int


@register
class StipendPaid(EventData):
    event_type = "volunteering.stipend_paid"
    summary = "An admin recorded that a volunteer's payout for a period was paid (the reference stays in the service)."

    payout_id: uuid.UUID
    entry_id: uuid.UUID
    member_id: uuid.UUID
    period: str
    amount_cents: int
    paid_at: datetime
    method: PaymentMethod
