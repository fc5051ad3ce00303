"""What is on the calendar: recovery groups and the sessions their rule makes (rolled forward to the horizon), a
session moved, and sober events."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import datetime, timedelta

from services.gatherings import domain
from services.gatherings.commands import (
    CreateGroup,
    EventScheduledResult,
    ExtendSchedules,
    GatheringChanged,
    GroupCreatedResult,
    MoveSession,
    SchedulesExtended,
    ScheduleSoberEvent,
)
from services.gatherings.handlers.seats import locked
from services.gatherings.models import GatheringsUnitOfWork, GroupRecord, NewSession, NewSoberEvent
from shared.clock import Clock
from shared.contracts import SupportType
from shared.contracts.gatherings import EventScheduled, GroupCreated, SessionScheduled
from shared.errors import InvalidInput
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
    session = await locked(uow, "session", cmd.session_id, cmd.site_id)
    await uow.gatherings.move(session.gathering_id, cmd.starts_at, cmd.ends_at, now)
    assert session.group_id is not None
    uow.emit(
        SessionScheduled(
            session_id=session.gathering_id,
            group_id=session.group_id,
            support_type=session.support_type,
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
