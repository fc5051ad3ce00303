"""HTTP adapters: parse, authorize, call a handler (writes) or read through ``queries`` (reads), answer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from aiohttp import web

from services.gatherings import domain, handlers
from services.gatherings.commands import (
    AttendanceBody,
    AttendanceResult,
    CalendarQuery,
    CancelGathering,
    Cancelled,
    CancelRegistration,
    ChangeCapacity,
    ChangeCapacityBody,
    CreateGroup,
    CreateGroupBody,
    EventScheduledResult,
    GatheringChanged,
    GatheringOut,
    GatheringPage,
    GroupCreatedResult,
    GroupPage,
    MarkAttendance,
    MoveSession,
    MoveSessionBody,
    PageQuery,
    RangeQuery,
    Register,
    RegisterBody,
    RegistrationCancelled,
    RegistrationResult,
    RegistrationStatus,
    Roster,
    ScheduleEventBody,
    ScheduleSoberEvent,
    Upcoming,
)
from services.gatherings.domain import GatheringType
from services.gatherings.models import GatheringsUnitOfWork
from services.gatherings.queries import GatheringsQueries, gathering_out
from services.gatherings.settings import GatheringsSettings
from shared import paging
from shared.access import STAFF, Principal, Role, Site
from shared.clock import Clock
from shared.errors import Forbidden, NotFound
from shared.groupcommit import GroupCommit
from shared.locks import KeyedLocks
from shared.uow import execute
from shared.web import SITES, Api, Call, View

UOW: web.AppKey[Callable[[], GatheringsUnitOfWork]] = web.AppKey("gatherings_uow")
LOCKS = web.AppKey("gatherings_locks", KeyedLocks)
CLOCK = web.AppKey("gatherings_clock", Clock)
SETTINGS = web.AppKey("gatherings_settings", GatheringsSettings)
# Registrations for one gathering, a run of them per transaction (see shared.groupcommit).
REGISTRATIONS = web.AppKey("gatherings_registrations", GroupCommit)

api = Api(service="gatherings", title="Recovery community center: gatherings (recovery groups and sober events)")

# Kiosks register members at their site, volunteers themselves, coordinators anyone at their site, admins anyone.
EVERYONE = (Role.KIOSK, Role.VOLUNTEER, *STAFF)


def _uow(call: Call) -> GatheringsUnitOfWork:
    return call.request.app[UOW]()


@asynccontextmanager
async def _queries(call: Call) -> AsyncIterator[GatheringsQueries]:
    """A read: the unit of work's connection, nothing written, rolled back at the end."""
    async with _uow(call) as uow:
        yield GatheringsQueries(uow.session)


def _clock(call: Call) -> Clock:
    return call.request.app[CLOCK]


def _scope(who: Principal) -> str | None:
    """The site a token may act on by id; None: an admin, any site."""
    return None if who.role is Role.ADMIN else who.site_id


async def _site(call: Call) -> Site:
    return await call.request.app[SITES].get(call.who.site_id)


# Groups


@api.post(
    "/groups",
    summary="Create a recurring recovery group; its sessions are scheduled up to the horizon",
    roles=STAFF,
    body=CreateGroupBody,
    response=GroupCreatedResult,
    status=201,
    idempotent=True,
)
async def create_group(call: Call) -> object:
    body: CreateGroupBody = call.body
    site = await _site(call)
    cmd = CreateGroup(
        site_id=site.site_id,
        actor_id=call.who.actor_id,
        timezone=site.timezone,
        name=body.name,
        focus_tags=tuple(dict.fromkeys(body.focus_tags)),
        support_type=body.support_type,
        facilitator_member_id=body.facilitator_member_id,
        capacity=body.capacity,
        child_care_seats=body.child_care_seats,
        room=body.room,
        first_start=body.first_start,
        duration_minutes=body.duration_minutes,
        rrule=body.rrule,
        exceptions=tuple(body.exceptions),
        horizon_weeks=call.request.app[SETTINGS].group_horizon_weeks,
    )
    return await execute(
        handlers.create_group, cmd, uow=_uow(call), clock=_clock(call), status=201, idempotency=call.idempotency()
    )


@api.get("/groups", summary="Recovery groups of this site, by name", roles=STAFF, query=PageQuery, response=GroupPage)
async def list_groups(call: Call) -> GroupPage:
    query: PageQuery = call.query
    after = paging.decode_cursor(query.cursor) if query.cursor is not None else None
    async with _queries(call) as queries:
        found = await queries.groups_page(call.who.site_id, after, query.limit + 1)
    items = found[: query.limit]
    next_cursor = paging.encode_cursor(items[-1].name, items[-1].group_id) if len(found) > query.limit else None
    return GroupPage(items=items, next_cursor=next_cursor)


@api.get(
    "/groups/{group_id}/sessions",
    summary="A group's sessions by start (from/to: local dates, inclusive, or instants)",
    roles=EVERYONE,
    query=RangeQuery,
    response=GatheringPage,
    errors=(404,),
)
async def list_group_sessions(call: Call) -> GatheringPage:
    group_id = call.uuid_param("group_id")
    site = await _site(call)
    async with _queries(call) as queries:
        if not await queries.group_exists(group_id, call.who.site_id):
            raise NotFound("No such group here.", code="group_not_found")
    return await _gathering_page(call, site, gathering_type="session", group_id=group_id)


# Sessions


@api.get(
    "/sessions/{session_id}",
    summary="One session with seats left",
    roles=EVERYONE,
    response=GatheringOut,
    errors=(404,),
)
async def get_session(call: Call) -> GatheringOut:
    return await _one(call, "session")


@api.route(
    "PATCH",
    "/sessions/{session_id}",
    summary="Change one session's capacity or child-care seats (more seats promote from the waitlist)",
    roles=STAFF,
    body=ChangeCapacityBody,
    response=GatheringChanged,
    errors=(404, 409),
)
async def change_session_capacity(call: Call) -> object:
    return await _change_capacity(call, "session")


@api.post(
    "/sessions/{session_id}/move",
    summary="Move one session to another time (the group's other sessions stay)",
    roles=STAFF,
    body=MoveSessionBody,
    response=GatheringChanged,
    errors=(404, 409),
)
async def move_session(call: Call) -> object:
    body: MoveSessionBody = call.body
    cmd = MoveSession(
        site_id=_scope(call.who),
        actor_id=call.who.actor_id,
        session_id=call.uuid_param("session_id"),
        starts_at=body.starts_at,
        ends_at=body.ends_at,
    )
    return await execute(handlers.move_session, cmd, uow=_uow(call), clock=_clock(call))


@api.post(
    "/sessions/{session_id}/cancel",
    summary="Cancel one session of a group (its registrations end; the event lists who to tell, by id)",
    roles=STAFF,
    response=Cancelled,
    errors=(404, 409),
)
async def cancel_session(call: Call) -> object:
    return await _cancel(call, "session")


# Sober events


@api.post(
    "/events",
    summary="Schedule a sober event (times with an offset)",
    roles=STAFF,
    body=ScheduleEventBody,
    response=EventScheduledResult,
    status=201,
    idempotent=True,
)
async def schedule_sober_event(call: Call) -> object:
    body: ScheduleEventBody = call.body
    site = await _site(call)
    cmd = ScheduleSoberEvent(
        site_id=site.site_id,
        actor_id=call.who.actor_id,
        timezone=site.timezone,
        title=body.title,
        kind=body.kind,
        support_type=body.support_type,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        capacity=body.capacity,
        child_care_seats=body.child_care_seats,
        family_friendly=body.family_friendly,
        room=body.room,
        registration_opens_at=body.registration_opens_at,
        registration_closes_at=body.registration_closes_at,
    )
    return await execute(
        handlers.schedule_sober_event,
        cmd,
        uow=_uow(call),
        clock=_clock(call),
        status=201,
        idempotency=call.idempotency(),
    )


@api.get(
    "/events",
    summary="Sober events of this site by start (from/to: local dates, inclusive, or instants)",
    roles=EVERYONE,
    query=RangeQuery,
    response=GatheringPage,
)
async def list_sober_events(call: Call) -> GatheringPage:
    return await _gathering_page(call, await _site(call), gathering_type="event")


@api.get(
    "/events/{event_id}", summary="One event with seats left", roles=EVERYONE, response=GatheringOut, errors=(404,)
)
async def get_sober_event(call: Call) -> GatheringOut:
    return await _one(call, "event")


@api.route(
    "PATCH",
    "/events/{event_id}",
    summary="Change an event's capacity or child-care seats (more seats promote from the waitlist)",
    roles=STAFF,
    body=ChangeCapacityBody,
    response=GatheringChanged,
    errors=(404, 409),
)
async def change_sober_event_capacity(call: Call) -> object:
    return await _change_capacity(call, "event")


@api.post(
    "/events/{event_id}/cancel",
    summary="Cancel an event (its registrations end; the event lists who to tell, by id)",
    roles=STAFF,
    response=Cancelled,
    errors=(404, 409),
)
async def cancel_sober_event(call: Call) -> object:
    return await _cancel(call, "event")


# Registrations


def _register(gathering_type: GatheringType) -> View:
    async def view(call: Call) -> object:
        body: RegisterBody = call.body
        gathering_id = call.uuid_param(f"{gathering_type}_id")
        cmd = Register(
            site_id=_scope(call.who),
            actor_id=call.who.actor_id,
            role=call.who.role.value,
            acting_member_id=call.who.member_id if call.who.role is Role.VOLUNTEER else None,
            gathering_type=gathering_type,
            gathering_id=gathering_id,
            member_id=body.member_id,
            adults=body.adults,
            children=body.children,
        )
        return await call.request.app[REGISTRATIONS].submit(gathering_id, cmd, idempotency=call.idempotency())

    return view


_REGISTER_SUMMARY = (
    "Register a member's party (adults against capacity, children against child-care seats): confirmed, or "
    "waitlisted first come first served"
)
api.post(
    "/sessions/{session_id}/registrations",
    summary=_REGISTER_SUMMARY,
    roles=EVERYONE,
    body=RegisterBody,
    response=RegistrationResult,
    status=201,
    errors=(404, 409),
    idempotent=True,
)(_register("session"))
api.post(
    "/events/{event_id}/registrations",
    summary=_REGISTER_SUMMARY,
    roles=EVERYONE,
    body=RegisterBody,
    response=RegistrationResult,
    status=201,
    errors=(404, 409),
    idempotent=True,
)(_register("event"))


def _roster(gathering_type: GatheringType) -> View:
    async def view(call: Call) -> Roster:
        async with _queries(call) as queries:
            found = await queries.roster(call.uuid_param(f"{gathering_type}_id"), _scope(call.who), gathering_type)
        if found is None:
            raise domain.gathering_not_found(gathering_type)
        return found

    return view


api.get(
    "/sessions/{session_id}/registrations",
    summary="Who has a seat and who waits, in order (member ids only)",
    roles=STAFF,
    response=Roster,
    errors=(404,),
)(_roster("session"))
api.get(
    "/events/{event_id}/registrations",
    summary="Who has a seat and who waits, in order (member ids only)",
    roles=STAFF,
    response=Roster,
    errors=(404,),
)(_roster("event"))


@api.get(
    "/registrations/{registration_id}",
    summary="A registration's status and waitlist position",
    roles=EVERYONE,
    response=RegistrationStatus,
    errors=(404,),
)
async def get_registration(call: Call) -> RegistrationStatus:
    registration_id = call.uuid_param("registration_id")
    site_id = _scope(call.who)
    async with _queries(call) as queries:
        found = await queries.registration(registration_id)
        if found is None or (site_id is not None and found.site_id != site_id):
            raise NotFound("No such registration here.", code="registration_not_found")
        if call.who.role is Role.VOLUNTEER and found.member_id != call.who.member_id:
            raise Forbidden("A volunteer token sees only its own registrations.", code="not_yours")
        position = await queries.waiting_position(found)
        gathering = await queries.gathering(found.gathering_id, None, None)
    assert gathering is not None
    return RegistrationStatus(
        registration_id=found.registration_id,
        member_id=found.member_id,
        session_id=gathering.session_id,
        event_id=gathering.sober_event_id,
        adults=found.adults,
        children=found.children,
        status=found.status,
        position=position,
        registered_at=found.registered_at,
    )


@api.delete(
    "/registrations/{registration_id}",
    summary="Cancel a registration; freed seats go to the waitlist in order",
    roles=EVERYONE,
    response=RegistrationCancelled,
    errors=(404, 409),
    idempotent=True,
)
async def cancel_registration(call: Call) -> object:
    cmd = CancelRegistration(
        site_id=_scope(call.who),
        actor_id=call.who.actor_id,
        role=call.who.role.value,
        acting_member_id=call.who.member_id if call.who.role is Role.VOLUNTEER else None,
        registration_id=call.uuid_param("registration_id"),
    )
    return await execute(
        handlers.cancel_registration, cmd, uow=_uow(call), clock=_clock(call), idempotency=call.idempotency()
    )


# Attendance


def _mark_attendance(gathering_type: GatheringType) -> View:
    async def view(call: Call) -> object:
        body: AttendanceBody = call.body
        cmd = MarkAttendance(
            site_id=_scope(call.who),
            actor_id=call.who.actor_id,
            gathering_type=gathering_type,
            gathering_id=call.uuid_param(f"{gathering_type}_id"),
            member_id=body.member_id,
            adults=body.adults,
            children=body.children,
        )
        return await execute(handlers.mark_attendance, cmd, uow=_uow(call), clock=_clock(call))

    return view


_ATTENDANCE_SUMMARY = "Mark a member present on the roster (a walk-in too); marking twice records nothing new"
api.post(
    "/sessions/{session_id}/attendance",
    summary=_ATTENDANCE_SUMMARY,
    roles=STAFF,
    body=AttendanceBody,
    response=AttendanceResult,
    errors=(404, 409),
)(_mark_attendance("session"))
api.post(
    "/events/{event_id}/attendance",
    summary=_ATTENDANCE_SUMMARY,
    roles=STAFF,
    body=AttendanceBody,
    response=AttendanceResult,
    errors=(404, 409),
)(_mark_attendance("event"))


# Kiosk display and the public calendar


@api.get(
    "/upcoming",
    summary="The kiosk display: sessions and events of the next days with seats left, in the site's time zone",
    roles=(Role.KIOSK, *STAFF),
    response=Upcoming,
)
async def upcoming(call: Call) -> Upcoming:
    site = await _site(call)
    now = _clock(call).now()
    until = now + timedelta(days=call.request.app[SETTINGS].upcoming_days)
    async with _queries(call) as queries:
        found = await queries.gathering_views(site_id=site.site_id, ends_after=now, starts_before=until, limit=500)
    return Upcoming(
        site_id=site.site_id,
        timezone=site.timezone,
        since=now.astimezone(site.zone),
        until=until.astimezone(site.zone),
        items=[gathering_out(v, site.zone, now) for v in found],
    )


@api.get(
    "/calendar.ics",
    summary="The site's public calendar (iCalendar): groups and events, no seats, no people",
    roles=None,
    query=CalendarQuery,
    content_types=("text/calendar",),
    errors=(404,),
)
async def calendar(call: Call) -> web.Response:
    query: CalendarQuery = call.query
    site = await call.request.app[SITES].get(query.site)
    settings = call.request.app[SETTINGS]
    now = _clock(call).now()
    async with _queries(call) as queries:
        entries = await queries.calendar_entries(
            site_id=site.site_id,
            ends_after=now - timedelta(days=settings.calendar_past_days),
            starts_before=now + timedelta(weeks=settings.group_horizon_weeks),
        )
    body = domain.build_calendar(entries, zone=site.zone, calendar_name=site.name, now=now)
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300", "Content-Disposition": 'inline; filename="calendar.ics"'},
    )


# Shared by sessions and sober events


async def _one(call: Call, gathering_type: GatheringType) -> GatheringOut:
    gathering_id = call.uuid_param(f"{gathering_type}_id")
    async with _queries(call) as queries:
        found = await queries.gathering_views(
            site_id=_scope(call.who), gathering_id=gathering_id, gathering_type=gathering_type
        )
    if not found:
        raise domain.gathering_not_found(gathering_type)
    site = await call.request.app[SITES].get(found[0].site_id)
    return gathering_out(found[0], site.zone, _clock(call).now())


async def _change_capacity(call: Call, gathering_type: GatheringType) -> object:
    body: ChangeCapacityBody = call.body
    gathering_id = call.uuid_param(f"{gathering_type}_id")
    cmd = ChangeCapacity(
        site_id=_scope(call.who),
        actor_id=call.who.actor_id,
        gathering_type=gathering_type,
        gathering_id=gathering_id,
        capacity=body.capacity,
        child_care_seats=body.child_care_seats,
    )
    async with call.request.app[LOCKS].hold(gathering_id):
        return await execute(handlers.change_capacity, cmd, uow=_uow(call), clock=_clock(call))


async def _cancel(call: Call, gathering_type: GatheringType) -> object:
    cmd = CancelGathering(
        site_id=_scope(call.who),
        actor_id=call.who.actor_id,
        gathering_type=gathering_type,
        gathering_id=call.uuid_param(f"{gathering_type}_id"),
    )
    return await execute(handlers.cancel_gathering, cmd, uow=_uow(call), clock=_clock(call))


async def _gathering_page(
    call: Call, site: Site, *, gathering_type: GatheringType, group_id: uuid.UUID | None = None
) -> GatheringPage:
    query: RangeQuery = call.query
    after = paging.decode_time_cursor(query.cursor) if query.cursor is not None else None
    between = paging.instant_range(query.from_, query.to, site.zone)
    async with _queries(call) as queries:
        found = await queries.gathering_views(
            site_id=site.site_id,
            gathering_type=gathering_type,
            group_id=group_id,
            ends_after=between.start,
            starts_before=between.end,
            after=after,
            limit=query.limit + 1,
        )
    now = _clock(call).now()
    items = [gathering_out(v, site.zone, now) for v in found[: query.limit]]
    last = found[query.limit - 1] if len(found) > query.limit else None
    return GatheringPage(
        items=items,
        next_cursor=paging.encode_cursor(last.starts_at, last.gathering_id) if last is not None else None,
    )
