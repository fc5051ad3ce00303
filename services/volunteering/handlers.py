"""Volunteering handlers for roles, profiles, shifts and sign-ups: plain async functions ``(cmd, *, uow, clock)``;
no HTTP, no broker, no commit. Attendance and hours are in ``attendance``.

Sign-ups, drops, cancellations and capacity changes lock the shift row first and decide seats from its counter,
so a shift is never over capacity, the waitlist is served first come, first served, and a freed seat is handed on
in the same transaction that freed it. The rules themselves (qualification, overlap, cutoff, hours rounding) are
in ``domain``."""

from __future__ import annotations

import uuid
import zoneinfo
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Literal

from services.volunteering import domain
from services.volunteering.commands import (
    CalendarFeedOut,
    CancelShift,
    ChangeShift,
    CreateRole,
    DropResult,
    DropSignup,
    ExtendSeries,
    MarkedMissed,
    MarkMissedShifts,
    RecordTraining,
    RoleOut,
    RotateCalendarFeed,
    ScheduleSeries,
    ScheduleShift,
    SeriesExtended,
    SeriesResult,
    SetVolunteerProfile,
    ShiftCancelledResult,
    ShiftChangedResult,
    ShiftResult,
    TrainingOut,
    UpdateRole,
    VolunteerOut,
)
from services.volunteering.models import VolunteeringUnitOfWork
from services.volunteering.records import (
    NewShift,
    NewTraining,
    RoleRecord,
    SeriesRecord,
    ShiftRecord,
    ShiftTerms,
    VolunteerProfile,
)
from shared.clock import Clock
from shared.contracts.checkin import MemberErased, MemberRegistered
from shared.contracts.volunteering import (
    ActingAs,
    Dropped,
    PromotedFromWaitlist,
    ShiftCancelled,
    ShiftChanged,
    ShiftField,
    ShiftMissed,
    ShiftScheduled,
)
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.inbox import Delivered
from shared.recurrence import MAX_OCCURRENCES, off_loop, require_occurrence

SHIFT_FIELDS: tuple[ShiftField, ...] = ("starts_at", "ends_at", "capacity", "needs_supervisor")
PromotionTrigger = Literal["seat_freed", "capacity_increased"]


# Roles, profiles, and the members check-in registered


async def create_role(cmd: CreateRole, *, uow: VolunteeringUnitOfWork, clock: Clock) -> RoleOut:
    now = clock.now()
    required = list(dict.fromkeys(cmd.required_trainings))
    role = RoleRecord(cmd.actor.site_id, cmd.role_id, cmd.title, tuple(required), cmd.supervisor)
    added = await uow.people.add_role(role, now)
    if not added:
        raise Conflict(f"Role {cmd.role_id} exists here; change it with PUT /roles/{cmd.role_id}.", code="role_exists")
    return RoleOut(role_id=cmd.role_id, title=cmd.title, required_trainings=required, supervisor=cmd.supervisor)


async def update_role(cmd: UpdateRole, *, uow: VolunteeringUnitOfWork, clock: Clock) -> RoleOut:
    required = list(dict.fromkeys(cmd.required_trainings))
    role = RoleRecord(cmd.actor.site_id, cmd.role_id, cmd.title, tuple(required), cmd.supervisor)
    changed = await uow.people.update_role(role, clock.now())
    if not changed:
        raise NotFound("No such role here.", code="role_not_found")
    return RoleOut(role_id=cmd.role_id, title=cmd.title, required_trainings=required, supervisor=cmd.supervisor)


async def set_volunteer_profile(cmd: SetVolunteerProfile, *, uow: VolunteeringUnitOfWork, clock: Clock) -> VolunteerOut:
    now = clock.now()
    site_id = cmd.actor.site_id
    existing = await uow.people.get_profile(cmd.member_id)
    if existing is not None and cmd.actor.scope is not None and existing.site_id != cmd.actor.scope:
        raise Forbidden("This volunteer belongs to another site.", code="wrong_site")
    if existing is not None:
        site_id = existing.site_id
    roles = list(dict.fromkeys(cmd.roles))
    unknown = set(roles) - await uow.people.known_role_ids(site_id, roles)
    if unknown:
        raise InvalidInput("Create these roles first.", code="unknown_role", roles=sorted(unknown))
    # A profile kept since before an erasure can still be changed (paused, say); none is made for an erased member.
    domain.require_member(await uow.people.member_standing(cmd.member_id, site_id), erased_ok=existing is not None)
    profile = VolunteerProfile(
        cmd.member_id, site_id, tuple(roles), cmd.monthly_hours_goal, cmd.stipend_eligible, cmd.active
    )
    await uow.people.upsert_profile(profile, now)
    return VolunteerOut(
        member_id=cmd.member_id,
        site_id=site_id,
        roles=roles,
        monthly_hours_goal=cmd.monthly_hours_goal,
        stipend_eligible=cmd.stipend_eligible,
        active=cmd.active,
    )


async def record_training(cmd: RecordTraining, *, uow: VolunteeringUnitOfWork, clock: Clock) -> TrainingOut:
    profile = await uow.people.get_profile(cmd.member_id)
    if profile is None or (cmd.actor.scope is not None and profile.site_id != cmd.actor.scope):
        raise NotFound("No such volunteer here; create the profile first.", code="volunteer_not_found")
    record_id = uuid.uuid4()
    await uow.people.add_training(
        NewTraining(
            record_id,
            profile.site_id,
            cmd.member_id,
            cmd.training_id,
            cmd.completed_on,
            cmd.expires_on,
            clock.now(),
            cmd.actor.actor_id,
        )
    )
    return TrainingOut(
        record_id=record_id, training_id=cmd.training_id, completed_on=cmd.completed_on, expires_on=cmd.expires_on
    )


async def record_member_registered(
    event: Delivered[MemberRegistered], *, uow: VolunteeringUnitOfWork, clock: Clock
) -> None:
    """Check-in registered a member at the event's site: from now on they can be named here."""
    registered = event.data
    await uow.people.know_member(registered.member_id, event.site_id, registered.registered_at)


async def record_member_erased(event: Delivered[MemberErased], *, uow: VolunteeringUnitOfWork, clock: Clock) -> None:
    erased = event.data
    await uow.people.mark_member_erased(erased.member_id, event.site_id, erased.erased_at)


# Shifts and series


async def schedule_shift(cmd: ScheduleShift, *, uow: VolunteeringUnitOfWork, clock: Clock) -> ShiftResult:
    now = clock.now()
    domain.check_shift_times(cmd.starts_at, cmd.ends_at)
    await _require_role(uow, cmd.actor.site_id, cmd.role_id)
    row = _new_shift(
        cmd.actor.site_id,
        cmd.role_id,
        cmd.timezone,
        cmd.starts_at,
        cmd.ends_at,
        cmd.capacity,
        cmd.needs_supervisor,
        now,
    )
    await uow.shifts.add_shifts([row])
    _emit_scheduled(uow, row, cmd.actor.actor_id, now)
    return _shift_result(row)


async def schedule_series(cmd: ScheduleSeries, *, uow: VolunteeringUnitOfWork, clock: Clock) -> SeriesResult:
    now = clock.now()
    site_id = cmd.actor.site_id
    await _require_role(uow, site_id, cmd.role_id)
    zone = zoneinfo.ZoneInfo(cmd.timezone)
    checked = await off_loop(require_occurrence, cmd.rrule, first_local_start=cmd.first_local_start, zone=zone)
    rule = checked.text
    duration = domain.series_duration(cmd.first_local_start, cmd.duration_minutes, cmd.end)
    exceptions = domain.local_exceptions(cmd.exceptions, zone)
    until = now + cmd.horizon
    occurrences = await off_loop(
        domain.occurrences_between,
        checked,
        first_local_start=cmd.first_local_start,
        duration=duration,
        zone=zone,
        exceptions=exceptions,
        after=now,
        until=until,
        limit=MAX_OCCURRENCES + 1,
    )
    domain.check_new_series(
        occurrences,
        occurs_later=bool(occurrences)
        or await off_loop(
            domain.occurs_after,
            checked,
            first_local_start=cmd.first_local_start,
            zone=zone,
            exceptions=exceptions,
            after=until,
        ),
    )
    series_id = uuid.uuid4()
    new_series = SeriesRecord(
        series_id,
        site_id,
        cmd.role_id,
        rule,
        cmd.first_local_start,
        duration // timedelta(minutes=1),
        tuple(e.isoformat() for e in exceptions),
        cmd.timezone,
        cmd.capacity,
        cmd.needs_supervisor,
        materialized_until=until,
    )
    await uow.shifts.add_series(new_series, now, cmd.actor.actor_id)
    rows = [
        _new_shift(
            site_id,
            cmd.role_id,
            cmd.timezone,
            o.starts_at,
            o.ends_at,
            cmd.capacity,
            cmd.needs_supervisor,
            now,
            series_id=series_id,
            occurrence_start=o.local_start,
        )
        for o in occurrences
    ]
    await uow.shifts.add_shifts(rows)
    for row in rows:
        _emit_scheduled(uow, row, cmd.actor.actor_id, now)
    return SeriesResult(series_id=series_id, materialized_until=until, shifts=[_shift_result(r) for r in rows])


async def extend_series(cmd: ExtendSeries, *, uow: VolunteeringUnitOfWork, clock: Clock) -> SeriesExtended:
    """Materialize the occurrences that came within the horizon since a series was last extended."""
    now = clock.now()
    until = now + cmd.horizon
    due = await uow.shifts.series_due(until)
    added_total = 0
    for s in due:
        zone = zoneinfo.ZoneInfo(s.timezone)
        try:
            occurrences = await off_loop(
                domain.occurrences_between,
                s.rrule,
                first_local_start=s.first_local_start,
                duration=timedelta(minutes=s.duration_minutes),
                zone=zone,
                exceptions=[_parse_moment(e) for e in s.exceptions],
                after=max(s.materialized_until, now),
                until=until,
            )
        except InvalidInput:
            occurrences = []  # a rule stored before today's stricter check: nothing sensible to add
        rows = [
            _new_shift(
                s.site_id,
                s.role_id,
                s.timezone,
                o.starts_at,
                o.ends_at,
                s.capacity,
                s.needs_supervisor,
                now,
                series_id=s.series_id,
                occurrence_start=o.local_start,
            )
            for o in occurrences
        ]
        added = await uow.shifts.add_shifts(rows)
        for row in rows:
            if row.shift_id in added:
                _emit_scheduled(uow, row, None, now)
        added_total += len(added)
        await uow.shifts.set_materialized_until(s.series_id, until)
    return SeriesExtended(series=len(due), shifts=added_total)


async def change_shift(cmd: ChangeShift, *, uow: VolunteeringUnitOfWork, clock: Clock) -> ShiftChangedResult:
    now = clock.now()
    shift = await _lock_shift(uow, cmd.shift_id, cmd.actor.scope)
    if shift.status == "cancelled":
        raise Conflict("This shift was cancelled.", code="shift_cancelled")
    if now >= shift.ends_at:
        raise Conflict("This shift is over.", code="shift_over")
    before = shift.terms
    after = ShiftTerms(
        cmd.starts_at if cmd.starts_at is not None else before.starts_at,
        cmd.ends_at if cmd.ends_at is not None else before.ends_at,
        cmd.capacity if cmd.capacity is not None else before.capacity,
        cmd.needs_supervisor if cmd.needs_supervisor is not None else before.needs_supervisor,
    )
    domain.check_shift_times(after.starts_at, after.ends_at)
    if after.capacity < shift.confirmed:
        raise Conflict(
            f"{shift.confirmed} volunteers are confirmed; drop some before lowering the capacity.",
            code="capacity_below_confirmed",
            confirmed=shift.confirmed,
        )
    changed = [name for name in SHIFT_FIELDS if getattr(before, name) != getattr(after, name)]
    promotions: list[PromotedFromWaitlist] = []
    if changed:
        revised = "starts_at" in changed or "ends_at" in changed
        await uow.shifts.change_terms(shift.shift_id, after, now, revised=revised)
        moved = replace(
            shift,
            starts_at=after.starts_at,
            ends_at=after.ends_at,
            capacity=after.capacity,
            needs_supervisor=after.needs_supervisor,
        )
        if after.capacity > shift.capacity:
            promotions = await _promote(uow, moved, after.capacity - shift.confirmed, now, "capacity_increased")
        members, confirmed, waitlisted = await uow.shifts.active_members(shift.shift_id)
        uow.emit(
            ShiftChanged(
                shift_id=shift.shift_id,
                role_id=shift.role_id,
                changed=changed,
                starts_at=after.starts_at,
                ends_at=after.ends_at,
                capacity=after.capacity,
                needs_supervisor=after.needs_supervisor,
                confirmed=confirmed,
                waitlisted=waitlisted,
                affected_member_ids=members,
            ),
            subject=shift.shift_id,
            site_id=shift.site_id,
            actor_id=cmd.actor.actor_id,
            at=now,
        )
        for promotion in promotions:
            uow.emit(promotion, subject=shift.shift_id, site_id=shift.site_id, actor_id=cmd.actor.actor_id, at=now)
    return ShiftChangedResult(
        shift_id=shift.shift_id,
        series_id=shift.series_id,
        role_id=shift.role_id,
        starts_at=after.starts_at,
        ends_at=after.ends_at,
        capacity=after.capacity,
        confirmed=shift.confirmed + len(promotions),
        needs_supervisor=after.needs_supervisor,
        status="scheduled",
        changed=list(changed),
        promoted=len(promotions),
    )


async def cancel_shift(cmd: CancelShift, *, uow: VolunteeringUnitOfWork, clock: Clock) -> ShiftCancelledResult:
    now = clock.now()
    shift = await _lock_shift(uow, cmd.shift_id, cmd.actor.scope)
    if shift.status == "cancelled":
        raise Conflict("This shift was already cancelled.", code="shift_cancelled")
    if now >= shift.ends_at:
        raise Conflict("This shift is over.", code="shift_over")
    members, _, _ = await uow.shifts.active_members(shift.shift_id)
    await uow.shifts.cancel(shift.shift_id, now)
    uow.emit(
        ShiftCancelled(
            shift_id=shift.shift_id,
            series_id=shift.series_id,
            role_id=shift.role_id,
            starts_at=shift.starts_at,
            ends_at=shift.ends_at,
            cancelled_at=now,
            affected_member_ids=members,
        ),
        subject=shift.shift_id,
        site_id=shift.site_id,
        actor_id=cmd.actor.actor_id,
        at=now,
    )
    return ShiftCancelledResult(shift_id=shift.shift_id, status="cancelled", affected=len(members))


# Sign-ups: services.volunteering.signups


async def drop_signup(cmd: DropSignup, *, uow: VolunteeringUnitOfWork, clock: Clock) -> DropResult:
    now = clock.now()
    actor = cmd.actor
    member_id = domain.member_acted_on(is_staff=actor.is_staff, own_member_id=actor.member_id, requested=cmd.member_id)
    shift = await _lock_shift(uow, cmd.shift_id, actor.scope)
    existing = await uow.shifts.active_signup(shift.shift_id, member_id)
    if existing is None:
        raise NotFound("Not signed up for this shift.", code="not_signed_up")
    late = domain.within_cutoff(now, shift.starts_at, cmd.cutoff)
    if existing.status == "confirmed" and late and not actor.is_staff:
        hours = cmd.cutoff / timedelta(hours=1)
        raise Conflict(f"Less than {hours:g} hours to go: ask a coordinator to take you off.", code="cutoff_passed")
    by: ActingAs = "coordinator" if actor.is_staff else "self"
    await uow.shifts.drop(existing.signup_id, now, by)
    uow.emit(
        Dropped(
            signup_id=existing.signup_id,
            shift_id=shift.shift_id,
            member_id=member_id,
            role_id=shift.role_id,
            starts_at=shift.starts_at,
            previous_status=existing.status,
            dropped_by=by,
            within_cutoff=late,
        ),
        subject=shift.shift_id,
        site_id=shift.site_id,
        actor_id=actor.actor_id,
        at=now,
    )
    promotions: list[PromotedFromWaitlist] = []
    if existing.status == "confirmed":
        await uow.shifts.release_seat(shift.shift_id)
        if now < shift.ends_at:
            seats = shift.capacity - (shift.confirmed - 1)
            promotions = await _promote(uow, shift, seats, now, "seat_freed")
    for promotion in promotions:
        uow.emit(promotion, subject=shift.shift_id, site_id=shift.site_id, actor_id=actor.actor_id, at=now)
    return DropResult(
        shift_id=shift.shift_id,
        member_id=member_id,
        status="dropped",
        previous_status=existing.status,
        promoted=len(promotions),
    )


async def _promote(
    uow: VolunteeringUnitOfWork, shift: ShiftRecord, seats: int, now: datetime, trigger: PromotionTrigger
) -> list[PromotedFromWaitlist]:
    """Hand up to ``seats`` free seats to the waitlist, first come, first served. Someone who now holds an
    overlapping confirmed shift, or is no longer qualified (paused, training expired), is skipped and keeps their
    place. The caller holds the shift's lock and emits the promotions (after its own event: that is their order)."""
    promoted: list[PromotedFromWaitlist] = []
    shift_day = domain.local_date(shift.starts_at, zoneinfo.ZoneInfo(shift.timezone))
    after_seq = 0
    while seats > 0:
        waiting = await uow.shifts.waitlist(shift.shift_id, after_seq=after_seq)
        if not waiting:
            break
        for candidate in waiting:
            after_seq = candidate.seq
            profile, records = await uow.people.qualification_facts(candidate.member_id)
            verdict = domain.qualification(
                profile,
                site_id=shift.site_id,
                role_id=shift.role_id,
                required_trainings=shift.required_trainings,
                trainings=records,
                on=shift_day,
            )
            if not verdict.ok:
                continue
            await uow.shifts.lock_member(candidate.member_id)
            if await uow.shifts.overlapping_confirmed(
                candidate.member_id, shift.starts_at, shift.ends_at, besides=shift.shift_id
            ):
                continue
            if not await uow.shifts.promote(shift.shift_id, candidate.signup_id, now):
                return promoted
            promoted.append(
                PromotedFromWaitlist(
                    signup_id=candidate.signup_id,
                    shift_id=shift.shift_id,
                    member_id=candidate.member_id,
                    role_id=shift.role_id,
                    starts_at=shift.starts_at,
                    ends_at=shift.ends_at,
                    trigger=trigger,
                )
            )
            seats -= 1
            if seats == 0:
                break
    return promoted


async def mark_missed_shifts(cmd: MarkMissedShifts, *, uow: VolunteeringUnitOfWork, clock: Clock) -> MarkedMissed:
    """Confirmed volunteers with no check-in (and no hours a coordinator added) by the end of their shift, plus a
    grace period for the check-in event to arrive, are marked missed, once. The event asks for a friendly
    follow-up; nothing else happens, and a check-in or hours that arrive later clear the mark."""
    now = clock.now()
    missed = await uow.shifts.mark_missed(cmd.site_id, now - cmd.grace, now, cmd.batch)
    for m in missed:
        uow.emit(
            ShiftMissed(
                signup_id=m.signup_id,
                shift_id=m.shift_id,
                member_id=m.member_id,
                role_id=m.role_id,
                starts_at=m.starts_at,
                ends_at=m.ends_at,
                follow_up=True,
            ),
            subject=m.shift_id,
            site_id=m.site_id,
            at=now,
        )
    return MarkedMissed(marked=len(missed))


# The private calendar feed


async def rotate_calendar_feed(
    cmd: RotateCalendarFeed, *, uow: VolunteeringUnitOfWork, clock: Clock
) -> CalendarFeedOut:
    if cmd.actor.member_id is None:
        raise Forbidden("Only a volunteer has a shift calendar.", code="not_yours")
    secret = domain.new_feed_secret()
    await uow.people.set_calendar_feed(
        cmd.actor.member_id, cmd.actor.site_id, domain.hash_feed_secret(secret), clock.now()
    )
    return CalendarFeedOut(url=f"/calendar/{secret}.ics")


# Helpers


async def _require_role(uow: VolunteeringUnitOfWork, site_id: str, role_id: str) -> None:
    if await uow.people.get_role(site_id, role_id) is None:
        raise InvalidInput(f"No role {role_id} here; create it with POST /roles.", code="unknown_role")


async def _lock_shift(uow: VolunteeringUnitOfWork, shift_id: uuid.UUID, scope: str | None) -> ShiftRecord:
    shift = await uow.shifts.lock(shift_id, scope)
    if shift is None:
        raise NotFound("No such shift here.", code="shift_not_found")
    return shift


def _new_shift(
    site_id: str,
    role_id: str,
    timezone: str,
    starts_at: datetime,
    ends_at: datetime,
    capacity: int,
    needs_supervisor: bool,
    now: datetime,
    *,
    series_id: uuid.UUID | None = None,
    occurrence_start: datetime | None = None,
) -> NewShift:
    return NewShift(
        shift_id=uuid.uuid4(),
        site_id=site_id,
        role_id=role_id,
        series_id=series_id,
        occurrence_start=occurrence_start,
        starts_at=domain.utc(starts_at),
        ends_at=domain.utc(ends_at),
        timezone=timezone,
        capacity=capacity,
        needs_supervisor=needs_supervisor,
        created_at=now,
    )


def _emit_scheduled(uow: VolunteeringUnitOfWork, shift: NewShift, actor_id: str | None, now: datetime) -> None:
    uow.emit(
        ShiftScheduled(
            shift_id=shift.shift_id,
            series_id=shift.series_id,
            role_id=shift.role_id,
            starts_at=shift.starts_at,
            ends_at=shift.ends_at,
            capacity=shift.capacity,
            needs_supervisor=shift.needs_supervisor,
        ),
        subject=shift.shift_id,
        site_id=shift.site_id,
        actor_id=actor_id,
        at=now,
    )


def _shift_result(shift: NewShift) -> ShiftResult:
    return ShiftResult(
        shift_id=shift.shift_id,
        series_id=shift.series_id,
        role_id=shift.role_id,
        starts_at=shift.starts_at,
        ends_at=shift.ends_at,
        capacity=shift.capacity,
        confirmed=0,
        needs_supervisor=shift.needs_supervisor,
        status="scheduled",
    )


def _parse_moment(text: str) -> date | datetime:
    return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
