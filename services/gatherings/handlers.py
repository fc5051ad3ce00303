"""Gatherings handlers: plain async functions ``(cmd, *, uow, clock)``; no HTTP, no broker, no commit.

Every change of seats (register, cancel a registration, change capacity) locks the gathering's row first and
decides from what it reads there; waitlist promotion happens in the same transaction as the change that freed the
seats."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import datetime, timedelta

from services.gatherings import domain
from services.gatherings.commands import (
    AttendanceResult,
    CancelGathering,
    Cancelled,
    CancelRegistration,
    ChangeCapacity,
    CreateGroup,
    EventScheduledResult,
    ExtendSchedules,
    GatheringChanged,
    GroupCreatedResult,
    MarkAttendance,
    MoveSession,
    Register,
    RegistrationCancelled,
    RegistrationResult,
    SchedulesExtended,
    ScheduleSoberEvent,
)
from services.gatherings.domain import GatheringType, Party, Room, WaitingParty
from services.gatherings.models import (
    GatheringRow,
    GatheringsUnitOfWork,
    GroupRecord,
    NewAttendance,
    NewRegistration,
    NewSession,
    NewSoberEvent,
    RegistrationRow,
)
from shared.clock import Clock
from shared.contracts import SupportType
from shared.contracts.checkin import MemberErased, MemberRegistered, VisitorCheckedIn
from shared.contracts.gatherings import (
    AttendanceSource,
    EventCancelled,
    EventScheduled,
    GatheringAttended,
    GatheringPromotedFromWaitlist,
    GatheringRegistered,
    GatheringRegistrationCancelled,
    GatheringWaitlisted,
    GroupCreated,
    SessionCancelled,
    SessionScheduled,
)
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.inbox import Delivered
from shared.recurrence import Occurrence, localize, off_loop, require_occurrence

# Groups and sessions


async def create_group(cmd: CreateGroup, *, uow: GatheringsUnitOfWork, clock: Clock) -> GroupCreatedResult:
    now = clock.now()
    zone = zoneinfo.ZoneInfo(cmd.timezone)
    checked = await off_loop(require_occurrence, cmd.rrule, first_local_start=cmd.first_start, zone=zone)
    rule = checked.text
    until = now + timedelta(weeks=cmd.horizon_weeks)
    try:
        planned = await off_loop(
            domain.plan_sessions,
            checked,
            first_local_start=cmd.first_start,
            duration=timedelta(minutes=cmd.duration_minutes),
            zone=zone,
            exceptions=cmd.exceptions,
            after=None,
            until=until,
            now=now,
        )
    except domain.TooManySessions as exc:
        raise InvalidInput(
            f"The rule makes too many sessions ({exc}); at most {domain.MAX_SESSIONS_PER_HORIZON} "
            f"within {cmd.horizon_weeks} weeks.",
            code="too_many_sessions",
        ) from exc
    if not planned and localize(cmd.first_start, zone) <= until:
        raise InvalidInput("The rule and its exceptions leave no session from now on.", code="no_sessions")
    domain.require_member(await uow.gatherings.member_standing(cmd.facilitator_member_id, cmd.site_id), "facilitator")
    group_id = uuid.uuid4()
    await uow.gatherings.add_group(
        GroupRecord(
            group_id=group_id,
            site_id=cmd.site_id,
            name=cmd.name,
            focus_tags=list(cmd.focus_tags),
            support_type=cmd.support_type,
            facilitator_member_id=cmd.facilitator_member_id,
            capacity=cmd.capacity,
            child_care_seats=cmd.child_care_seats,
            room=cmd.room,
            timezone=cmd.timezone,
            first_start_local=cmd.first_start,
            duration_minutes=cmd.duration_minutes,
            rrule=rule,
            exceptions=[e.isoformat() for e in cmd.exceptions],
            scheduled_until=until,
            created_at=now,
        )
    )
    uow.emit(
        GroupCreated(
            group_id=group_id,
            support_type=cmd.support_type,
            focus_tags=list(cmd.focus_tags),
            facilitator_member_id=cmd.facilitator_member_id,
            capacity=cmd.capacity,
            child_care_seats=cmd.child_care_seats,
            rrule=rule,
            first_start_local=cmd.first_start,
            duration_minutes=cmd.duration_minutes,
            timezone=cmd.timezone,
            sessions_scheduled=len(planned),
            created_at=now,
        ),
        subject=group_id,
        site_id=cmd.site_id,
        actor_id=cmd.actor_id,
        at=now,
    )
    await _add_sessions(
        uow,
        group_id=group_id,
        site_id=cmd.site_id,
        support_type=cmd.support_type,
        capacity=cmd.capacity,
        child_care_seats=cmd.child_care_seats,
        room=cmd.room,
        planned=planned,
        now=now,
        actor_id=cmd.actor_id,
    )
    return GroupCreatedResult(
        group_id=group_id,
        sessions_scheduled=len(planned),
        first_session_at=planned[0].starts_at.astimezone(zone) if planned else None,
        last_session_at=planned[-1].starts_at.astimezone(zone) if planned else None,
    )


async def extend_schedules(cmd: ExtendSchedules, *, uow: GatheringsUnitOfWork, clock: Clock) -> SchedulesExtended:
    """Roll every group's sessions forward to the horizon (a day's slack, so this writes about once a day)."""
    now = clock.now()
    target = now + timedelta(weeks=cmd.horizon_weeks)
    extended = scheduled = 0
    for group in await uow.gatherings.groups_to_extend(target - timedelta(days=1)):
        try:
            planned = await off_loop(
                domain.plan_sessions,
                group.rrule,
                first_local_start=group.first_start_local,
                duration=timedelta(minutes=group.duration_minutes),
                zone=zoneinfo.ZoneInfo(group.timezone),
                exceptions=[domain.parse_exception(e) for e in group.exceptions],
                after=group.scheduled_until,
                until=target,
                now=now,
            )
        except (domain.TooManySessions, InvalidInput):
            planned = []  # refused when the group was created, or by today's stricter rule check: nothing to add
        scheduled += await _add_sessions(
            uow,
            group_id=group.group_id,
            site_id=group.site_id,
            support_type=group.support_type,
            capacity=group.capacity,
            child_care_seats=group.child_care_seats,
            room=group.room,
            planned=planned,
            now=now,
            actor_id=None,
        )
        await uow.gatherings.set_scheduled_until(group.group_id, target)
        extended += 1
    return SchedulesExtended(groups=extended, sessions_scheduled=scheduled)


async def _add_sessions(
    uow: GatheringsUnitOfWork,
    *,
    group_id: uuid.UUID,
    site_id: str,
    support_type: SupportType,
    capacity: int,
    child_care_seats: int,
    room: str | None,
    planned: list[Occurrence],
    now: datetime,
    actor_id: str | None,
) -> int:
    rows = {uuid.uuid4(): occurrence for occurrence in planned}
    added = await uow.gatherings.add_sessions(
        [
            NewSession(
                session_id=session_id,
                site_id=site_id,
                group_id=group_id,
                occurrence_start=occurrence.local_start,
                support_type=support_type,
                room=room,
                starts_at=occurrence.starts_at,
                ends_at=occurrence.ends_at,
                capacity=capacity,
                child_care_seats=child_care_seats,
                created_at=now,
            )
            for session_id, occurrence in rows.items()
        ]
    )
    for session_id in sorted(added, key=lambda s: rows[s].starts_at):
        occurrence = rows[session_id]
        uow.emit(
            SessionScheduled(
                session_id=session_id,
                group_id=group_id,
                support_type=support_type,
                starts_at=occurrence.starts_at,
                ends_at=occurrence.ends_at,
                capacity=capacity,
                child_care_seats=child_care_seats,
                change="scheduled",
                previous_starts_at=None,
            ),
            subject=session_id,
            site_id=site_id,
            actor_id=actor_id,
            at=now,
        )
    return len(added)


async def move_session(cmd: MoveSession, *, uow: GatheringsUnitOfWork, clock: Clock) -> GatheringChanged:
    """One session to another time; the group's other sessions and this session's registrations stay."""
    now = clock.now()
    session = await _locked(uow, "session", cmd.session_id, cmd.site_id)
    await uow.gatherings.move(session.gathering_id, cmd.starts_at, cmd.ends_at, now)
    assert session.group_id is not None
    uow.emit(
        SessionScheduled(
            session_id=session.gathering_id,
            group_id=session.group_id,
            support_type=session.support_type,  # type: ignore[arg-type]
            starts_at=cmd.starts_at,
            ends_at=cmd.ends_at,
            capacity=session.capacity,
            child_care_seats=session.child_care_seats,
            change="moved",
            previous_starts_at=session.starts_at,
        ),
        subject=session.gathering_id,
        site_id=session.site_id,
        actor_id=cmd.actor_id,
        at=now,
    )
    room = session.room_left
    return GatheringChanged(
        gathering_id=session.gathering_id,
        starts_at=cmd.starts_at,
        ends_at=cmd.ends_at,
        capacity=session.capacity,
        child_care_seats=session.child_care_seats,
        seats_left=room.adults,
        child_care_seats_left=room.children,
        promoted=[],
    )


# Sober events


async def schedule_sober_event(
    cmd: ScheduleSoberEvent, *, uow: GatheringsUnitOfWork, clock: Clock
) -> EventScheduledResult:
    now = clock.now()
    support_type = domain.sober_event_support_type(cmd.kind, cmd.support_type)
    if support_type is None:
        raise InvalidInput("Say which SAMHSA support type an event of kind 'other' is.", code="support_type_required")
    if cmd.ends_at <= now:
        raise InvalidInput("This event would be over already.", code="ends_in_past")
    sober_event_id = uuid.uuid4()
    await uow.gatherings.add_sober_event(
        NewSoberEvent(
            sober_event_id=sober_event_id,
            site_id=cmd.site_id,
            title=cmd.title,
            kind=cmd.kind,
            support_type=support_type,
            family_friendly=cmd.family_friendly,
            room=cmd.room,
            starts_at=cmd.starts_at,
            ends_at=cmd.ends_at,
            capacity=cmd.capacity,
            child_care_seats=cmd.child_care_seats,
            registration_opens_at=cmd.registration_opens_at,
            registration_closes_at=cmd.registration_closes_at,
            created_at=now,
        )
    )
    closes_at = domain.registration_closes_at(cmd.starts_at, cmd.registration_closes_at)
    uow.emit(
        EventScheduled(
            event_id=sober_event_id,
            kind=cmd.kind,
            support_type=support_type,
            starts_at=cmd.starts_at,
            ends_at=cmd.ends_at,
            capacity=cmd.capacity,
            child_care_seats=cmd.child_care_seats,
            family_friendly=cmd.family_friendly,
            registration_opens_at=cmd.registration_opens_at,
            registration_closes_at=closes_at,
            change="scheduled",
        ),
        subject=sober_event_id,
        site_id=cmd.site_id,
        actor_id=cmd.actor_id,
        at=now,
    )
    zone = zoneinfo.ZoneInfo(cmd.timezone)
    return EventScheduledResult(
        event_id=sober_event_id,
        support_type=support_type,
        starts_at=cmd.starts_at.astimezone(zone),
        ends_at=cmd.ends_at.astimezone(zone),
        registration_opens_at=cmd.registration_opens_at.astimezone(zone) if cmd.registration_opens_at else None,
        registration_closes_at=closes_at.astimezone(zone),
    )


# Both kinds of gathering


async def change_capacity(cmd: ChangeCapacity, *, uow: GatheringsUnitOfWork, clock: Clock) -> GatheringChanged:
    """More seats promote waiting parties at once; fewer seats than are taken, or fewer than a waiting party needs
    (it would wait forever), are refused."""
    now = clock.now()
    gathering = await _locked(uow, cmd.gathering_type, cmd.gathering_id, cmd.site_id)
    capacity = cmd.capacity if cmd.capacity is not None else gathering.capacity
    child_care_seats = cmd.child_care_seats if cmd.child_care_seats is not None else gathering.child_care_seats
    promoted: list[RegistrationRow] = []
    if (capacity, child_care_seats) != (gathering.capacity, gathering.child_care_seats):
        waiting = await uow.gatherings.waiting(gathering.gathering_id)
        problem = domain.capacity_change_problem(
            capacity=capacity,
            child_care_seats=child_care_seats,
            taken_adults=gathering.taken_adults,
            taken_children=gathering.taken_children,
            waiting=[w.party for w in waiting],
        )
        if problem == "capacity_below_confirmed":
            raise Conflict(
                "Fewer seats than are taken: cancel registrations first.",
                code="capacity_below_confirmed",
                taken_adults=gathering.taken_adults,
                taken_children=gathering.taken_children,
            )
        if problem == "capacity_below_waiting_party":
            raise Conflict(
                "A waiting party would never fit: cancel its registration first.",
                code="capacity_below_waiting_party",
                registration_ids=[
                    str(w.registration_id)
                    for w in waiting
                    if not domain.can_ever_fit(w.party, capacity, child_care_seats)
                ],
            )
        await uow.gatherings.set_capacity(gathering.gathering_id, capacity, child_care_seats, now)
        # The new capacity first, then the promotions it caused: the event stream replays in causal order.
        _emit_rescheduled(uow, gathering, capacity, child_care_seats, now, cmd.actor_id)
        room = domain.room_left(capacity, child_care_seats, gathering.taken_adults, gathering.taken_children)
        promoted = await _promote(uow, gathering, waiting, room, now, "capacity_increase", cmd.actor_id)
        if promoted:
            await uow.gatherings.set_taken(
                gathering.gathering_id,
                gathering.taken_adults + sum(r.adults for r in promoted),
                gathering.taken_children + sum(r.children for r in promoted),
            )
    taken = Party(
        gathering.taken_adults + sum(r.adults for r in promoted),
        gathering.taken_children + sum(r.children for r in promoted),
    )
    return GatheringChanged(
        gathering_id=gathering.gathering_id,
        starts_at=gathering.starts_at,
        ends_at=gathering.ends_at,
        capacity=capacity,
        child_care_seats=child_care_seats,
        seats_left=capacity - taken.adults,
        child_care_seats_left=child_care_seats - taken.children,
        promoted=[r.registration_id for r in promoted],
    )


def _emit_rescheduled(
    uow: GatheringsUnitOfWork,
    gathering: GatheringRow,
    capacity: int,
    child_care_seats: int,
    now: datetime,
    actor_id: str,
) -> None:
    data: SessionScheduled | EventScheduled
    if gathering.gathering_type == "session":
        assert gathering.group_id is not None
        data = SessionScheduled(
            session_id=gathering.gathering_id,
            group_id=gathering.group_id,
            support_type=gathering.support_type,  # type: ignore[arg-type]
            starts_at=gathering.starts_at,
            ends_at=gathering.ends_at,
            capacity=capacity,
            child_care_seats=child_care_seats,
            change="capacity_changed",
            previous_starts_at=None,
        )
    else:
        data = EventScheduled(
            event_id=gathering.gathering_id,
            kind=gathering.kind,  # type: ignore[arg-type]
            support_type=gathering.support_type,  # type: ignore[arg-type]
            starts_at=gathering.starts_at,
            ends_at=gathering.ends_at,
            capacity=capacity,
            child_care_seats=child_care_seats,
            family_friendly=gathering.family_friendly,
            registration_opens_at=gathering.registration_opens_at,
            registration_closes_at=domain.registration_closes_at(gathering.starts_at, gathering.registration_closes_at),
            change="capacity_changed",
        )
    uow.emit(data, subject=gathering.gathering_id, site_id=gathering.site_id, actor_id=actor_id, at=now)


async def cancel_gathering(cmd: CancelGathering, *, uow: GatheringsUnitOfWork, clock: Clock) -> Cancelled:
    """The gathering and its registrations end; the event names who had a seat or waited (ids), so they can be
    told."""
    now = clock.now()
    gathering = await _locked(uow, cmd.gathering_type, cmd.gathering_id, cmd.site_id, allow_cancelled=True)
    if gathering.cancelled_at is not None:
        raise Conflict(f"This {cmd.gathering_type} was cancelled already.", code="already_cancelled")
    affected = await uow.gatherings.cancel_gathering(gathering.gathering_id, now, cmd.actor_id)
    confirmed = [r.member_id for r in affected if r.previous_status == "confirmed"]
    waitlisted = [r.member_id for r in affected if r.previous_status == "waitlisted"]
    data: SessionCancelled | EventCancelled
    if gathering.gathering_type == "session":
        assert gathering.group_id is not None
        data = SessionCancelled(
            session_id=gathering.gathering_id,
            group_id=gathering.group_id,
            support_type=gathering.support_type,  # type: ignore[arg-type]
            starts_at=gathering.starts_at,
            cancelled_at=now,
            confirmed_member_ids=confirmed,
            waitlisted_member_ids=waitlisted,
        )
    else:
        data = EventCancelled(
            event_id=gathering.gathering_id,
            kind=gathering.kind,  # type: ignore[arg-type]
            support_type=gathering.support_type,  # type: ignore[arg-type]
            starts_at=gathering.starts_at,
            cancelled_at=now,
            confirmed_member_ids=confirmed,
            waitlisted_member_ids=waitlisted,
        )
    uow.emit(data, subject=gathering.gathering_id, site_id=gathering.site_id, actor_id=cmd.actor_id, at=now)
    return Cancelled(gathering_id=gathering.gathering_id, cancelled_at=now, registrations_cancelled=len(affected))


# Registrations


async def register(cmd: Register, *, uow: GatheringsUnitOfWork, clock: Clock) -> RegistrationResult:
    """Sign-ups for one gathering are decided one at a time under its row lock, so what each costs under the lock
    is paid in series: two prepared statements on the raw connection (lock and read, a no-op wait when the run's
    transaction holds the lock already; place with its outbox row) and only the Python that needs the row between.
    The view runs sign-ups that arrive together in one transaction (``shared.groupcommit``)."""
    if cmd.acting_member_id is not None and cmd.member_id != cmd.acting_member_id:
        raise Forbidden("A volunteer token registers only its own member.", code="not_yours")
    now = clock.now()
    party = Party(cmd.adults, cmd.children)
    locked = await uow.gatherings.lock_for_registration(
        cmd.gathering_id, cmd.gathering_type, cmd.site_id, cmd.member_id
    )
    gathering = _present(locked[0] if locked else None, cmd.gathering_type)
    domain.require_member(locked[1] if locked else None, "member")
    closes_at = domain.registration_closes_at(gathering.starts_at, gathering.registration_closes_at)
    if domain.window_state(now, gathering.registration_opens_at, closes_at) != "open":
        raise Conflict(
            "Registration is not open now.",
            code="registration_closed",
            opens_at=gathering.registration_opens_at.isoformat() if gathering.registration_opens_at else None,
            closes_at=closes_at.isoformat(),
        )
    if not domain.can_ever_fit(party, gathering.capacity, gathering.child_care_seats):
        raise Conflict(
            "This party is bigger than the whole gathering (adults against capacity, children against child-care "
            "seats).",
            code="party_too_large",
            capacity=gathering.capacity,
            child_care_seats=gathering.child_care_seats,
        )
    # No waiting party fits the room left (promotion guarantees it), so a party that fits is the one a
    # first-come-first-served walk of the waitlist would seat: seat it; otherwise it waits at the end.
    confirmed = gathering.room_left.fits(party)
    registration_id = uuid.uuid4()
    common = _seat_fields(gathering, registration_id, cmd.member_id, party)
    data: GatheringRegistered | GatheringWaitlisted
    if confirmed:
        data = GatheringRegistered(**common, registered_by=cmd.role, registered_at=now)
    else:
        # The statement that places it knows the position and writes it into the outbox row's data.
        data = GatheringWaitlisted(**common, registered_by=cmd.role, registered_at=now, position=1)
    registration = NewRegistration(
        registration_id, gathering.gathering_id, gathering.site_id, cmd.member_id, party, cmd.role, now
    )
    event = uow.emit(
        data, subject=registration_id, site_id=gathering.site_id, actor_id=cmd.actor_id, at=now, by_statement=True
    )
    placed = await uow.gatherings.place(registration, confirmed=confirmed, event=event)
    if placed is None:
        existing = await uow.gatherings.active_registration_of(gathering.gathering_id, cmd.member_id)
        raise Conflict(
            f"This member is registered for this {cmd.gathering_type} already.",
            code="already_registered",
            registration_id=str(existing.registration_id) if existing else None,
        )
    return RegistrationResult(
        registration_id=registration_id,
        status="confirmed" if confirmed else "waitlisted",
        position=placed.position,
    )


async def cancel_registration(
    cmd: CancelRegistration, *, uow: GatheringsUnitOfWork, clock: Clock
) -> RegistrationCancelled:
    """Cancel a seat or a place in the waitlist; freed seats go to waiting parties in order, in this transaction."""
    now = clock.now()
    found = await uow.gatherings.get_registration(cmd.registration_id)
    if found is None or (cmd.site_id is not None and found.site_id != cmd.site_id):
        raise NotFound("No such registration here.", code="registration_not_found")
    if cmd.acting_member_id is not None and found.member_id != cmd.acting_member_id:
        raise Forbidden("A volunteer token cancels only its own registrations.", code="not_yours")
    gathering = await _locked(uow, None, found.gathering_id, None, allow_cancelled=True)
    # Read again under the lock: a concurrent cancel or promotion may have changed it while we waited.
    registration = await uow.gatherings.get_registration(cmd.registration_id)
    assert registration is not None
    if registration.status == "cancelled":
        raise Conflict("This registration was cancelled already.", code="already_cancelled")
    await uow.gatherings.mark_cancelled(registration.registration_id, now, cmd.actor_id)
    uow.emit(
        GatheringRegistrationCancelled(
            **_seat_fields(gathering, registration.registration_id, registration.member_id, registration.party),
            previous_status=registration.status,  # type: ignore[arg-type]
            cancelled_at=now,
            cancelled_by=cmd.role,
        ),
        subject=registration.registration_id,
        site_id=gathering.site_id,
        actor_id=cmd.actor_id,
        at=now,
    )
    promoted: list[RegistrationRow] = []
    if registration.status == "confirmed":
        taken_adults = gathering.taken_adults - registration.adults
        taken_children = gathering.taken_children - registration.children
        room = domain.room_left(gathering.capacity, gathering.child_care_seats, taken_adults, taken_children)
        waiting = await uow.gatherings.waiting(gathering.gathering_id) if room.adults > 0 else []
        promoted = await _promote(uow, gathering, waiting, room, now, "cancellation", cmd.actor_id)
        await uow.gatherings.set_taken(
            gathering.gathering_id,
            taken_adults + sum(r.adults for r in promoted),
            taken_children + sum(r.children for r in promoted),
        )
    return RegistrationCancelled(
        registration_id=registration.registration_id,
        status="cancelled",
        promoted=[r.registration_id for r in promoted],
    )


async def _promote(
    uow: GatheringsUnitOfWork,
    gathering: GatheringRow,
    waiting: list[RegistrationRow],
    room: Room,
    now: datetime,
    reason: str,
    actor_id: str,
) -> list[RegistrationRow]:
    """Seat the waiting parties that fit, in order (``domain.promote``). The caller updates the seats taken."""
    if gathering.cancelled_at is not None or now >= gathering.ends_at:
        return []
    chosen = set(domain.promote([WaitingParty(r.registration_id, r.party) for r in waiting], room))
    promoted = [r for r in waiting if r.registration_id in chosen]
    await uow.gatherings.confirm([r.registration_id for r in promoted], now)
    for registration in promoted:
        uow.emit(
            GatheringPromotedFromWaitlist(
                **_seat_fields(gathering, registration.registration_id, registration.member_id, registration.party),
                waiting_since=registration.registered_at,
                promoted_at=now,
                reason=reason,  # type: ignore[arg-type]
            ),
            subject=registration.registration_id,
            site_id=gathering.site_id,
            actor_id=actor_id,
            at=now,
        )
    return promoted


# Attendance


async def mark_attendance(cmd: MarkAttendance, *, uow: GatheringsUnitOfWork, clock: Clock) -> AttendanceResult:
    """A coordinator's roster mark; marking the same member twice (or after a check-in) records nothing new."""
    now = clock.now()
    gathering = await uow.gatherings.find_gathering(cmd.gathering_id, cmd.site_id, cmd.gathering_type)
    if gathering is None:
        raise domain.gathering_not_found(cmd.gathering_type)
    if gathering.cancelled_at is not None:
        raise domain.gathering_cancelled(cmd.gathering_type)
    standing = await uow.gatherings.member_standing(cmd.member_id, gathering.site_id)
    domain.require_member(standing, "member", erased_ok=True)
    registration = await _confirmed_registration(uow, gathering, cmd.member_id)
    default = registration.party if registration is not None else Party(1, 0)
    party = Party(
        cmd.adults if cmd.adults is not None else default.adults,
        cmd.children if cmd.children is not None else default.children,
    )
    attendance_id = await _record_attendance(
        uow,
        gathering,
        member_id=cmd.member_id,
        visit_id=None,
        registration=registration,
        party=party,
        source="roster",
        at=now,
        actor_id=cmd.actor_id,
        correlation_id=None,
    )
    if attendance_id is None:
        attendance_id = await uow.gatherings.attendance_of(gathering.gathering_id, cmd.member_id)
        return AttendanceResult(attendance_id=attendance_id, recorded=False, registered=registration is not None)
    return AttendanceResult(attendance_id=attendance_id, recorded=True, registered=registration is not None)


async def record_check_in_attendance(
    event: Delivered[VisitorCheckedIn], *, uow: GatheringsUnitOfWork, clock: Clock
) -> None:
    """A kiosk check-in for a recovery group or a sober event is attendance at the session or sober event in its ref.

    Other purposes, refs that are not one of this site's gatherings, and cancelled gatherings are ignored. A
    member is recorded once per gathering, an anonymous walk-in once per visit: a redelivery adds nothing."""
    visit = event.data
    gathering_type = domain.PURPOSE_GATHERING.get(visit.purpose)
    if gathering_type is None or visit.ref is None:
        return
    try:
        gathering_id = uuid.UUID(visit.ref)
    except ValueError:
        return
    gathering = await uow.gatherings.find_gathering(gathering_id, event.site_id, gathering_type)
    if gathering is None or gathering.cancelled_at is not None:
        return
    registration = None
    if visit.member_id is not None:
        registration = await _confirmed_registration(uow, gathering, visit.member_id)
    await _record_attendance(
        uow,
        gathering,
        member_id=visit.member_id,
        visit_id=visit.visit_id,
        registration=registration,
        party=registration.party if registration is not None else Party(1, 0),
        source="checkin",
        at=visit.checked_in_at,
        actor_id=None,
        correlation_id=str(event.id),
    )


async def record_member_registered(
    event: Delivered[MemberRegistered], *, uow: GatheringsUnitOfWork, clock: Clock
) -> None:
    """Check-in registered a member at the site the event came from: from now on they can be named here."""
    registered = event.data
    await uow.gatherings.know_member(registered.member_id, event.site_id, registered.registered_at)


async def record_member_erased(event: Delivered[MemberErased], *, uow: GatheringsUnitOfWork, clock: Clock) -> None:
    erased = event.data
    await uow.gatherings.mark_member_erased(erased.member_id, event.site_id, erased.erased_at)


async def _confirmed_registration(
    uow: GatheringsUnitOfWork, gathering: GatheringRow, member_id: uuid.UUID
) -> RegistrationRow | None:
    registration = await uow.gatherings.active_registration_of(gathering.gathering_id, member_id)
    return registration if registration is not None and registration.status == "confirmed" else None


async def _record_attendance(
    uow: GatheringsUnitOfWork,
    gathering: GatheringRow,
    *,
    member_id: uuid.UUID | None,
    visit_id: uuid.UUID | None,
    registration: RegistrationRow | None,
    party: Party,
    source: AttendanceSource,
    at: datetime,
    actor_id: str | None,
    correlation_id: str | None,
) -> uuid.UUID | None:
    attendance_id = uuid.uuid4()
    recorded = await uow.gatherings.add_attendance(
        NewAttendance(
            attendance_id=attendance_id,
            gathering_id=gathering.gathering_id,
            site_id=gathering.site_id,
            member_id=member_id,
            visit_id=visit_id,
            registration_id=registration.registration_id if registration else None,
            party=party,
            source=source,
            attended_at=at,
        )
    )
    if not recorded:
        return None
    uow.emit(
        GatheringAttended(
            attendance_id=attendance_id,
            session_id=gathering.session_id,
            group_id=gathering.group_id,
            event_id=gathering.sober_event_id,
            support_type=gathering.support_type,
            starts_at=gathering.starts_at,
            member_id=member_id,
            anonymous=member_id is None,
            visit_id=visit_id,
            registered=registration is not None,
            registration_id=registration.registration_id if registration else None,
            adults=party.adults,
            children=party.children,
            source=source,
            attended_at=at,
        ),
        subject=attendance_id,
        site_id=gathering.site_id,
        actor_id=actor_id,
        correlation_id=correlation_id,
        at=at,
    )
    return attendance_id


# Helpers


async def _locked(
    uow: GatheringsUnitOfWork,
    gathering_type: GatheringType | None,
    gathering_id: uuid.UUID,
    site_id: str | None,
    *,
    allow_cancelled: bool = False,
) -> GatheringRow:
    return _present(
        await uow.gatherings.lock_gathering(gathering_id, gathering_type, site_id),
        gathering_type,
        allow_cancelled=allow_cancelled,
    )


def _present(
    gathering: GatheringRow | None, gathering_type: GatheringType | None, *, allow_cancelled: bool = False
) -> GatheringRow:
    if gathering is None:
        raise domain.gathering_not_found(gathering_type)
    if gathering.cancelled_at is not None and not allow_cancelled:
        raise domain.gathering_cancelled(gathering.gathering_type)
    return gathering


def _seat_fields(gathering: GatheringRow, registration_id: uuid.UUID, member_id: uuid.UUID, party: Party) -> dict:
    return {
        "registration_id": registration_id,
        "member_id": member_id,
        "session_id": gathering.session_id,
        "group_id": gathering.group_id,
        "event_id": gathering.sober_event_id,
        "support_type": gathering.support_type,
        "starts_at": gathering.starts_at,
        "adults": party.adults,
        "children": party.children,
    }
