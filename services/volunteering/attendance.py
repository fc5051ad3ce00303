"""Attendance and hours: check-ins and check-outs from the check-in service make attendance, a check-out makes
hours (clipped to the shift, flagged for review where something looks off); coordinators add, correct, approve
and reject hours. Plain async functions ``(cmd or event, *, uow, clock)``, like ``handlers``; the rules (minutes
worked, review codes, who may decide) are in ``domain``."""

from __future__ import annotations

import uuid

from services.volunteering import domain
from services.volunteering.commands import (
    Actor,
    AddHours,
    ApproveHours,
    CorrectHours,
    HoursOut,
    RejectHours,
)
from services.volunteering.domain import ReviewCode
from services.volunteering.models import VolunteeringUnitOfWork
from services.volunteering.records import HoursRow, NewHours, ShiftRecord, VisitAttendance
from shared.clock import Clock
from shared.contracts.checkin import VisitorCheckedIn, VisitorCheckedOut
from shared.contracts.volunteering import HoursApproved, HoursRejected, ShiftWorked
from shared.errors import Conflict, NotFound
from shared.inbox import Delivered

# Check-ins and check-outs, from the check-in service's events


async def record_check_in(event: Delivered[VisitorCheckedIn], *, uow: VolunteeringUnitOfWork, clock: Clock) -> None:
    visit = event.data
    shift = await _shift_of_visit(uow, event.site_id, visit.purpose, visit.member_id, visit.ref)
    if shift is None or visit.member_id is None:
        return
    signed_up = await uow.shifts.has_confirmed(shift.shift_id, visit.member_id)
    await uow.hours.start_attendance(
        VisitAttendance(
            visit.visit_id, shift.site_id, shift.shift_id, visit.member_id, visit.checked_in_at, signed_up, clock.now()
        )
    )
    await uow.shifts.clear_missed(shift.shift_id, visit.member_id)


async def record_check_out(event: Delivered[VisitorCheckedOut], *, uow: VolunteeringUnitOfWork, clock: Clock) -> None:
    visit = event.data
    shift = await _shift_of_visit(uow, event.site_id, visit.purpose, visit.member_id, visit.ref)
    if shift is None or visit.member_id is None:
        return
    now = clock.now()
    signed_up = await uow.shifts.has_confirmed(shift.shift_id, visit.member_id)
    first_time = await uow.hours.close_attendance(
        VisitAttendance(
            visit.visit_id,
            shift.site_id,
            shift.shift_id,
            visit.member_id,
            visit.checked_in_at,
            signed_up,
            now,
            checked_out_at=visit.checked_out_at,
            closed_by=visit.closed_by,
        )
    )
    if not first_time:
        return
    minutes = domain.worked_minutes(visit.checked_in_at, visit.checked_out_at, shift.starts_at, shift.ends_at)
    codes = domain.review_codes(
        closed_by=visit.closed_by,
        signed_up=signed_up,
        minutes=minutes,
        checked_in_at=visit.checked_in_at,
        checked_out_at=visit.checked_out_at,
        shift_starts_at=shift.starts_at,
        shift_ends_at=shift.ends_at,
    )
    hours_id = uuid.uuid4()
    await uow.hours.add(
        NewHours(
            hours_id,
            shift.site_id,
            visit.member_id,
            shift.shift_id,
            shift.role_id,
            shift.starts_at,
            minutes,
            "check_in",
            visit.visit_id,
            signed_up,
            tuple(codes),
            now,
        )
    )
    await uow.shifts.clear_missed(shift.shift_id, visit.member_id)
    uow.emit(
        ShiftWorked(
            hours_id=hours_id,
            shift_id=shift.shift_id,
            member_id=visit.member_id,
            role_id=shift.role_id,
            shift_starts_at=shift.starts_at,
            minutes=minutes,
            entry="check_in",
            previous_minutes=None,
            visit_id=visit.visit_id,
            signed_up=signed_up,
            review_codes=codes,
        ),
        subject=hours_id,
        site_id=shift.site_id,
        correlation_id=str(event.id),
        at=now,
    )


async def _shift_of_visit(
    uow: VolunteeringUnitOfWork, site_id: str, purpose: str, member_id: uuid.UUID | None, ref: str | None
) -> ShiftRecord | None:
    """The shift a visit was for, or None when the visit is not a volunteer's shift here (then it is ignored)."""
    if purpose != "volunteer_shift" or member_id is None or ref is None:
        return None
    try:
        shift_id = uuid.UUID(ref)
    except ValueError:
        return None
    return await uow.shifts.get(shift_id, site_id)


# Hours added and decided by coordinators


async def add_hours(cmd: AddHours, *, uow: VolunteeringUnitOfWork, clock: Clock) -> HoursOut:
    now = clock.now()
    domain.may_decide_hours(approver_member_id=cmd.actor.member_id, hours_member_id=cmd.member_id)
    shift = await uow.shifts.get(cmd.shift_id, cmd.actor.scope)
    if shift is None:
        raise NotFound("No such shift here.", code="shift_not_found")
    if shift.status == "cancelled":
        raise Conflict("This shift was cancelled.", code="shift_cancelled")
    # Hours worked before an erasure are still owed (and count for stipends).
    domain.require_member(await uow.people.member_standing(cmd.member_id, shift.site_id), erased_ok=True)
    profile = await uow.people.get_profile(cmd.member_id)
    if profile is None or profile.site_id != shift.site_id:
        raise NotFound("No such volunteer here.", code="volunteer_not_found")
    signed_up = await uow.shifts.has_confirmed(shift.shift_id, cmd.member_id)
    codes: list[ReviewCode] = [] if signed_up else ["no_signup"]
    if cmd.minutes == 0:
        codes.append("zero_minutes")
    hours_id = uuid.uuid4()
    await uow.hours.add(
        NewHours(
            hours_id,
            shift.site_id,
            cmd.member_id,
            shift.shift_id,
            shift.role_id,
            shift.starts_at,
            cmd.minutes,
            "coordinator",
            None,
            signed_up,
            tuple(codes),
            now,
            reason=cmd.reason,
            created_by=cmd.actor.actor_id,
        )
    )
    await uow.shifts.clear_missed(shift.shift_id, cmd.member_id)
    uow.emit(
        ShiftWorked(
            hours_id=hours_id,
            shift_id=shift.shift_id,
            member_id=cmd.member_id,
            role_id=shift.role_id,
            shift_starts_at=shift.starts_at,
            minutes=cmd.minutes,
            entry="added",
            previous_minutes=None,
            visit_id=None,
            signed_up=signed_up,
            review_codes=codes,
        ),
        subject=hours_id,
        site_id=shift.site_id,
        actor_id=cmd.actor.actor_id,
        at=now,
    )
    return HoursOut(
        hours_id=hours_id,
        member_id=cmd.member_id,
        shift_id=shift.shift_id,
        role_id=shift.role_id,
        shift_starts_at=shift.starts_at,
        minutes=cmd.minutes,
        source="coordinator",
        status="pending",
        signed_up=signed_up,
        review_codes=codes,
        reason=cmd.reason,
        created_at=now,
    )


async def correct_hours(cmd: CorrectHours, *, uow: VolunteeringUnitOfWork, clock: Clock) -> HoursOut:
    """A correction replaces the minutes and sends the record back for approval (approved hours included, unless a
    stipend ledger entry holds them)."""
    now = clock.now()
    row = await _lock_hours(uow, cmd.hours_id, cmd.actor)
    booked_by = await uow.stipends.booking_entry(row.hours_id)
    if booked_by is not None:
        # Booked stipends are corrected by reversing entries, never edits: the entry goes first, then the hours.
        raise Conflict(
            "These hours are booked in the stipend ledger: an admin reverses that entry first.",
            code="stipend_booked",
            entry_id=str(booked_by),
        )
    codes: list[ReviewCode] = [c for c in row.review_codes if c != "zero_minutes"]
    if cmd.minutes == 0:
        codes.append("zero_minutes")
    await uow.hours.correct(row.hours_id, cmd.minutes, cmd.reason, codes, now)
    uow.emit(
        ShiftWorked(
            hours_id=row.hours_id,
            shift_id=row.shift_id,
            member_id=row.member_id,
            role_id=row.role_id,
            shift_starts_at=row.shift_starts_at,
            minutes=cmd.minutes,
            entry="corrected",
            previous_minutes=row.minutes,
            visit_id=row.visit_id,
            signed_up=row.signed_up,
            review_codes=codes,
        ),
        subject=row.hours_id,
        site_id=row.site_id,
        actor_id=cmd.actor.actor_id,
        at=now,
    )
    return _hours_out(
        row, minutes=cmd.minutes, status="pending", review_codes=codes, reason=cmd.reason, corrected_at=now
    )


async def approve_hours(cmd: ApproveHours, *, uow: VolunteeringUnitOfWork, clock: Clock) -> HoursOut:
    now = clock.now()
    row = await _lock_hours(uow, cmd.hours_id, cmd.actor, pending=True)
    await uow.hours.approve(row.hours_id, now, cmd.actor.actor_id)
    uow.emit(
        HoursApproved(
            hours_id=row.hours_id,
            shift_id=row.shift_id,
            member_id=row.member_id,
            role_id=row.role_id,
            shift_starts_at=row.shift_starts_at,
            minutes=row.minutes,
            approved_at=now,
        ),
        subject=row.hours_id,
        site_id=row.site_id,
        actor_id=cmd.actor.actor_id,
        at=now,
    )
    return _hours_out(row, status="approved", decided_at=now)


async def reject_hours(cmd: RejectHours, *, uow: VolunteeringUnitOfWork, clock: Clock) -> HoursOut:
    now = clock.now()
    row = await _lock_hours(uow, cmd.hours_id, cmd.actor, pending=True)
    await uow.hours.reject(row.hours_id, now, cmd.actor.actor_id, cmd.reason)
    uow.emit(
        HoursRejected(
            hours_id=row.hours_id,
            shift_id=row.shift_id,
            member_id=row.member_id,
            role_id=row.role_id,
            shift_starts_at=row.shift_starts_at,
            minutes=row.minutes,
            rejected_at=now,
        ),
        subject=row.hours_id,
        site_id=row.site_id,
        actor_id=cmd.actor.actor_id,
        at=now,
    )
    return _hours_out(row, status="rejected", decided_at=now, decision_reason=cmd.reason)


async def _lock_hours(
    uow: VolunteeringUnitOfWork, hours_id: uuid.UUID, actor: Actor, *, pending: bool = False
) -> HoursRow:
    row = await uow.hours.lock(hours_id, actor.scope)
    if row is None:
        raise NotFound("No such hours record here.", code="hours_not_found")
    domain.may_decide_hours(approver_member_id=actor.member_id, hours_member_id=row.member_id)
    if pending and row.status != "pending":
        raise Conflict(f"These hours are already {row.status}.", code="hours_not_pending", hours_status=row.status)
    return row


def _hours_out(row: HoursRow, **changes: object) -> HoursOut:
    values: dict[str, object] = {
        "hours_id": row.hours_id,
        "member_id": row.member_id,
        "shift_id": row.shift_id,
        "role_id": row.role_id,
        "shift_starts_at": row.shift_starts_at,
        "minutes": row.minutes,
        "source": row.source,
        "status": row.status,
        "signed_up": row.signed_up,
        "review_codes": list(row.review_codes),
    }
    values.update(changes)
    return HoursOut.model_validate(values)
