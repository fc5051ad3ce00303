"""HTTP adapters: parse, authorize, call a handler (writes) or read through ``queries`` (reads), answer."""

from __future__ import annotations

import contextlib
import uuid
import zoneinfo
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import icalendar
from aiohttp import web

from services.volunteering import attendance, domain, handlers
from services.volunteering.commands import (
    Actor,
    AddHours,
    AddHoursBody,
    ApproveHours,
    CalendarFeedOut,
    CancelShift,
    ChangeShift,
    CorrectHours,
    CorrectHoursBody,
    CreateRole,
    DropResult,
    DropSignup,
    HoursOut,
    HoursPage,
    HoursQuery,
    MonthMinutes,
    MyHoursQuery,
    MyShiftOut,
    MyShifts,
    MyShiftsQuery,
    MySignupOut,
    RecordTraining,
    RejectHours,
    RejectHoursBody,
    RoleBody,
    RoleList,
    RoleOut,
    RoleUpdateBody,
    RotateCalendarFeed,
    ScheduleSeries,
    ScheduleShift,
    SeriesBody,
    SeriesResult,
    SetVolunteerProfile,
    ShiftBody,
    ShiftCancelledResult,
    ShiftChangedResult,
    ShiftOut,
    ShiftPage,
    ShiftPatchBody,
    ShiftResult,
    ShiftsQuery,
    SignUp,
    SignUpBody,
    SignupList,
    SignupOut,
    SignUpResult,
    TrainingBody,
    TrainingOut,
    UpdateRole,
    VolunteerBody,
    VolunteerOut,
)
from services.volunteering.models import VolunteeringUnitOfWork
from services.volunteering.queries import ResultRow, VolunteeringQueries
from services.volunteering.settings import VolunteeringSettings
from shared import paging
from shared.access import STAFF, Role, Site
from shared.clock import Clock
from shared.errors import Forbidden, NotFound
from shared.groupcommit import GroupCommit
from shared.locks import KeyedLocks
from shared.uow import Outcome, execute
from shared.web import SITES, Api, Call

UOW = web.AppKey[Callable[[], VolunteeringUnitOfWork]]("volunteering_uow")
CLOCK = web.AppKey("volunteering_clock", Clock)
SETTINGS = web.AppKey("volunteering_settings", VolunteeringSettings)

api = Api(service="volunteering", title="Recovery community center: volunteering")

PEOPLE = (Role.VOLUNTEER, *STAFF)
DEFAULT_RANGE = timedelta(days=28)
SHIFT_LOCKS = web.AppKey("volunteering_shift_locks", KeyedLocks)
# Sign-ups for one shift, a run of them per transaction (see shared.groupcommit).
SIGNUPS = web.AppKey("volunteering_signups", GroupCommit)


def uow_for(call: Call) -> VolunteeringUnitOfWork:
    return call.request.app[UOW]()


@contextlib.asynccontextmanager
async def queries_for(call: Call) -> AsyncIterator[VolunteeringQueries]:
    """A read: the unit of work's connection, nothing written, rolled back at the end."""
    async with uow_for(call) as uow:
        yield VolunteeringQueries(uow.session)


def clock_for(call: Call) -> Clock:
    return call.request.app[CLOCK]


def _settings(call: Call) -> VolunteeringSettings:
    return call.request.app[SETTINGS]


def actor_for(call: Call) -> Actor:
    return Actor.of(call.who)


async def site_for(call: Call, site_id: str | None = None) -> Site:
    return await call.request.app[SITES].get(site_id or call.who.site_id)


async def run_command(
    call: Call,
    handler: Callable[..., Any],
    cmd: Any,
    *,
    status: int = 200,
    idempotent: bool = False,
    shift_id: uuid.UUID | None = None,
) -> Outcome[Any]:
    async with contextlib.AsyncExitStack() as stack:
        if shift_id is not None:
            await stack.enter_async_context(call.request.app[SHIFT_LOCKS].hold(shift_id))
        return await execute(
            handler,
            cmd,
            uow=uow_for(call),
            clock=clock_for(call),
            status=status,
            idempotency=call.idempotency() if idempotent else None,
        )
    raise AssertionError("unreachable")


# Roles


@api.post(
    "/roles",
    summary="Create a volunteer role of this site, with the trainings it requires",
    roles=STAFF,
    body=RoleBody,
    response=RoleOut,
    status=201,
    errors=(409,),
    idempotent=True,
)
async def create_role(call: Call) -> object:
    body: RoleBody = call.body
    cmd = CreateRole(actor_for(call), body.role_id, body.title, tuple(body.required_trainings), body.supervisor)
    return await run_command(call, handlers.create_role, cmd, status=201, idempotent=True)


@api.route(
    "PUT",
    "/roles/{role_id}",
    summary="Change a role's title, required trainings or supervisor flag",
    roles=STAFF,
    body=RoleUpdateBody,
    response=RoleOut,
    errors=(404,),
)
async def update_role(call: Call) -> object:
    body: RoleUpdateBody = call.body
    cmd = UpdateRole(
        actor_for(call), call.request.match_info["role_id"], body.title, tuple(body.required_trainings), body.supervisor
    )
    return await run_command(call, handlers.update_role, cmd)


@api.get("/roles", summary="The roles of this site", roles=PEOPLE, response=RoleList)
async def list_roles(call: Call) -> RoleList:
    async with queries_for(call) as queries:
        records = await queries.roles(call.who.site_id)
    return RoleList(
        items=[
            RoleOut(
                role_id=r.role_id, title=r.title, required_trainings=list(r.required_trainings), supervisor=r.supervisor
            )
            for r in records
        ]
    )


# Volunteer profiles and trainings


@api.route(
    "PUT",
    "/volunteers/{member_id}",
    summary="Create or replace a volunteer's profile (roles, monthly hours goal, stipend eligibility, "
    "active/paused). Keyed by the member id from check-in; no names.",
    roles=STAFF,
    body=VolunteerBody,
    response=VolunteerOut,
    errors=(403, 422),
    idempotent=True,
)
async def set_volunteer(call: Call) -> object:
    body: VolunteerBody = call.body
    cmd = SetVolunteerProfile(
        actor_for(call),
        call.uuid_param("member_id"),
        tuple(body.roles),
        body.monthly_hours_goal,
        body.stipend_eligible,
        body.active,
    )
    return await run_command(call, handlers.set_volunteer_profile, cmd, idempotent=True)


@api.get(
    "/volunteers/{member_id}",
    summary="A volunteer's profile, trainings, roles qualified for today and this month's minutes "
    "(coordinators, or the volunteer themself)",
    roles=PEOPLE,
    response=VolunteerOut,
    errors=(404,),
)
async def get_volunteer(call: Call) -> VolunteerOut:
    member_id = call.uuid_param("member_id")
    actor = actor_for(call)
    domain.member_acted_on(is_staff=actor.is_staff, own_member_id=actor.member_id, requested=member_id)
    async with queries_for(call) as queries:
        row = await queries.volunteer(member_id)
        if row is None or (actor.scope is not None and row.site_id != actor.scope):
            raise NotFound("No such volunteer here.", code="volunteer_not_found")
        site = await site_for(call, row.site_id)
        now = clock_for(call).now()
        local_now = now.astimezone(site.zone)
        month_start = datetime(local_now.year, local_now.month, 1, tzinfo=site.zone)
        next_month = (month_start + timedelta(days=32)).replace(day=1)
        minutes = await queries.minutes_by_status(member_id, month_start, next_month)
        records = await queries.training_records(member_id)
        role_records = {r.role_id: r for r in await queries.roles(row.site_id)}
    profile = domain.Profile(row.member_id, row.site_id, tuple(row.roles), row.active)
    held = [domain.TrainingRecord(r.training_id, r.completed_on, r.expires_on) for r in records]
    qualified = [
        role_id
        for role_id in row.roles
        if role_id in role_records
        and domain.qualification(
            profile,
            site_id=row.site_id,
            role_id=role_id,
            required_trainings=role_records[role_id].required_trainings,
            trainings=held,
            on=local_now.date(),
        ).ok
    ]
    return VolunteerOut(
        member_id=row.member_id,
        site_id=row.site_id,
        roles=list(row.roles),
        monthly_hours_goal=row.monthly_hours_goal,
        stipend_eligible=row.stipend_eligible,
        active=row.active,
        trainings=[
            TrainingOut(
                record_id=r.record_id, training_id=r.training_id, completed_on=r.completed_on, expires_on=r.expires_on
            )
            for r in records
        ],
        qualified_roles_today=qualified,
        this_month=MonthMinutes(
            month=f"{local_now:%Y-%m}",
            approved_minutes=minutes.get("approved", 0),
            pending_minutes=minutes.get("pending", 0),
        ),
    )


@api.post(
    "/volunteers/{member_id}/trainings",
    summary="Record a completed training or certification (expires_on is its last valid day, or null)",
    roles=STAFF,
    body=TrainingBody,
    response=TrainingOut,
    status=201,
    errors=(404,),
    idempotent=True,
)
async def record_training(call: Call) -> object:
    body: TrainingBody = call.body
    cmd = RecordTraining(
        actor_for(call), call.uuid_param("member_id"), body.training_id, body.completed_on, body.expires_on
    )
    return await run_command(call, handlers.record_training, cmd, status=201, idempotent=True)


# Shifts


@api.post(
    "/shifts",
    summary="Schedule a single shift (times with an offset)",
    roles=STAFF,
    body=ShiftBody,
    response=ShiftResult,
    status=201,
    idempotent=True,
)
async def schedule_shift(call: Call) -> object:
    body: ShiftBody = call.body
    site = await site_for(call)
    cmd = ScheduleShift(
        actor_for(call), site.timezone, body.role_id, body.starts_at, body.ends_at, body.capacity, body.needs_supervisor
    )
    return await run_command(call, handlers.schedule_shift, cmd, status=201, idempotent=True)


@api.post(
    "/shift-series",
    summary="Schedule a recurring shift: RRULE on the site's wall clock (stays at the same local time "
    "across daylight-saving changes), with exceptions; shifts are created up to the horizon",
    roles=STAFF,
    body=SeriesBody,
    response=SeriesResult,
    status=201,
    idempotent=True,
)
async def schedule_series(call: Call) -> object:
    body: SeriesBody = call.body
    site = await site_for(call)
    cmd = ScheduleSeries(
        actor_for(call),
        site.timezone,
        body.role_id,
        body.first_start,
        body.duration_minutes,
        body.end,
        body.rrule,
        tuple(body.exceptions),
        body.capacity,
        body.needs_supervisor,
        timedelta(weeks=_settings(call).series_horizon_weeks),
    )
    return await run_command(call, handlers.schedule_series, cmd, status=201, idempotent=True)


@api.get(
    "/shifts",
    summary="Shifts of this site by start time. A volunteer sees only shifts they are qualified for; "
    "open=true keeps those still ahead with a seat left, include_full=true those still ahead, full or not (with "
    "the caller's own my_signup). Dates are inclusive local days.",
    roles=PEOPLE,
    query=ShiftsQuery,
    response=ShiftPage,
)
async def list_shifts(call: Call) -> ShiftPage:
    query: ShiftsQuery = call.query
    actor = actor_for(call)
    site = await site_for(call)
    now = clock_for(call).now()
    between = paging.instant_range(
        query.from_,
        query.to,
        site.zone,
        max_days=_settings(call).list_range_max_days,
        default_start=now,
        default_span=DEFAULT_RANGE,
    )
    start, end = between.start, between.end
    assert start is not None and end is not None  # a default start and span always bound the window
    after = paging.decode_time_cursor(query.cursor) if query.cursor else None
    volunteer = None if actor.is_staff else actor.member_id
    items: list[ShiftOut] = []
    more = False
    async with uow_for(call) as uow:
        queries = VolunteeringQueries(uow.session)
        role_ids: list[str] | None = [query.role] if query.role else None
        profile: domain.Profile | None = None
        held: list[domain.TrainingRecord] = []
        if volunteer is not None:
            profile, held = await uow.people.qualification_facts(volunteer)
            if profile is None or not profile.active or profile.site_id != site.site_id:
                return ShiftPage(items=[], next_cursor=None)
            role_ids = [r for r in profile.roles if query.role in (None, r)]
        # Qualification is checked here, with the same rule sign-up uses; pages are refilled until full.
        while len(items) <= query.limit:
            rows = await queries.shifts(
                site.site_id,
                start=start,
                end=end,
                after=after,
                role_ids=role_ids,
                open_after=now if query.open or query.include_full else None,
                seats_only=query.open and not query.include_full,
                include_cancelled=actor.is_staff,
                limit=query.limit + 1,
            )
            for row in rows:
                after = (row.starts_at, row.shift_id)
                if (
                    profile is not None
                    and not domain.qualification(
                        profile,
                        site_id=site.site_id,
                        role_id=row.role_id,
                        required_trainings=row.required_trainings,
                        trainings=held,
                        on=domain.local_date(row.starts_at, zoneinfo.ZoneInfo(row.timezone)),
                    ).ok
                ):
                    continue
                if len(items) == query.limit:
                    more = True
                    break
                items.append(_shift_out(row))
            if more or len(rows) <= query.limit:
                break
        if volunteer is not None:
            mine = await queries.my_active_signups(volunteer, [i.shift_id for i in items])
            for item in items:
                if item.shift_id in mine:
                    _set_mine(item, mine[item.shift_id])
    next_cursor = paging.encode_cursor(items[-1].starts_at, items[-1].shift_id) if more and items else None
    return ShiftPage(items=items, next_cursor=next_cursor)


@api.get(
    "/shifts/{shift_id}",
    summary="One shift: seats, waitlist length, supervisor on duty",
    roles=PEOPLE,
    response=ShiftOut,
    errors=(404,),
)
async def get_shift(call: Call) -> ShiftOut:
    shift_id = call.uuid_param("shift_id")
    actor = actor_for(call)
    async with queries_for(call) as queries:
        row = await queries.shift(shift_id, actor.scope)
        if row is None:
            raise NotFound("No such shift here.", code="shift_not_found")
        out = _shift_out(row)
        if actor.member_id is not None:
            mine = (await queries.my_active_signups(actor.member_id, [shift_id])).get(shift_id)
            if mine is not None:
                _set_mine(out, mine)
    return out


@api.route(
    "PATCH",
    "/shifts/{shift_id}",
    summary="Change a shift's time, capacity or supervision need; everyone signed up is notified by event. "
    "More capacity promotes the waitlist; less than the confirmed count is refused.",
    roles=STAFF,
    body=ShiftPatchBody,
    response=ShiftChangedResult,
    errors=(404, 409),
    idempotent=True,
)
async def change_shift(call: Call) -> object:
    body: ShiftPatchBody = call.body
    cmd = ChangeShift(
        actor_for(call), call.uuid_param("shift_id"), body.starts_at, body.ends_at, body.capacity, body.needs_supervisor
    )
    return await run_command(call, handlers.change_shift, cmd, idempotent=True, shift_id=cmd.shift_id)


@api.post(
    "/shifts/{shift_id}/cancel",
    summary="Cancel a shift; everyone signed up is notified by event",
    roles=STAFF,
    response=ShiftCancelledResult,
    errors=(404, 409),
    idempotent=True,
)
async def cancel_shift(call: Call) -> object:
    cmd = CancelShift(actor_for(call), call.uuid_param("shift_id"))
    return await run_command(call, handlers.cancel_shift, cmd, idempotent=True, shift_id=cmd.shift_id)


@api.get(
    "/shifts/{shift_id}/signups",
    summary="Who is confirmed and who waits, in order (coordinators)",
    roles=STAFF,
    response=SignupList,
    errors=(404,),
)
async def list_signups(call: Call) -> SignupList:
    shift_id = call.uuid_param("shift_id")
    async with queries_for(call) as queries:
        if await queries.shift(shift_id, actor_for(call).scope) is None:
            raise NotFound("No such shift here.", code="shift_not_found")
        rows = await queries.signups_of(shift_id)
    return SignupList(items=[SignupOut.model_validate(row, from_attributes=True) for row in rows])


@api.post(
    "/shifts/{shift_id}/signups",
    summary="Sign up: a volunteer for themself, a coordinator for anyone (member_id). A full shift puts you "
    "on its waitlist.",
    roles=PEOPLE,
    body=SignUpBody,
    response=SignUpResult,
    status=201,
    errors=(404, 409),
    idempotent=True,
)
async def sign_up(call: Call) -> object:
    body: SignUpBody = call.body
    cmd = SignUp(actor_for(call), call.uuid_param("shift_id"), body.member_id)
    return await call.request.app[SIGNUPS].submit(cmd.shift_id, cmd, idempotency=call.idempotency())


@api.delete(
    "/shifts/{shift_id}/signups/{member_id}",
    summary="Drop a sign-up (a volunteer only their own; close to the start only a coordinator). "
    "A freed seat goes to the waitlist at once.",
    roles=PEOPLE,
    response=DropResult,
    errors=(404, 409),
    idempotent=True,
)
async def drop(call: Call) -> object:
    cutoff = timedelta(hours=_settings(call).drop_cutoff_hours)
    cmd = DropSignup(actor_for(call), call.uuid_param("shift_id"), call.uuid_param("member_id"), cutoff)
    return await run_command(call, handlers.drop_signup, cmd, idempotent=True, shift_id=cmd.shift_id)


# The volunteer's own view


def own_member(call: Call) -> uuid.UUID:
    if call.who.member_id is None:
        raise Forbidden("This token does not act as a volunteer.", code="not_yours")
    return call.who.member_id


@api.get(
    "/me/shifts",
    summary="My upcoming and past shifts with their status",
    roles=(Role.VOLUNTEER,),
    query=MyShiftsQuery,
    response=MyShifts,
)
async def my_shifts(call: Call) -> MyShifts:
    query: MyShiftsQuery = call.query
    member_id = own_member(call)
    now = clock_for(call).now()
    async with queries_for(call) as queries:
        upcoming = await queries.my_shifts(member_id, now=now, upcoming=True, limit=query.upcoming_limit)
        past = await queries.my_shifts(member_id, now=now, upcoming=False, limit=query.past_limit)
    return MyShifts(
        upcoming=[MyShiftOut.model_validate(r, from_attributes=True) for r in upcoming],
        past=[MyShiftOut.model_validate(r, from_attributes=True) for r in past],
    )


@api.get(
    "/me/hours",
    summary="My hours records, newest first",
    roles=(Role.VOLUNTEER,),
    query=MyHoursQuery,
    response=HoursPage,
)
async def my_hours(call: Call) -> HoursPage:
    query: MyHoursQuery = call.query
    return await _hours_page(
        call,
        site_id=None,
        member_id=own_member(call),
        status=query.status,
        from_=query.from_,
        to=query.to,
        limit=query.limit,
        cursor=query.cursor,
    )


@api.post(
    "/me/calendar-feed",
    summary="Make (or replace) my private calendar feed URL; the old URL stops working",
    roles=(Role.VOLUNTEER,),
    response=CalendarFeedOut,
    status=201,
)
async def rotate_calendar_feed(call: Call) -> object:
    return await run_command(call, handlers.rotate_calendar_feed, RotateCalendarFeed(actor_for(call)), status=201)


@api.get(
    "/calendar/{feed}",
    summary="A volunteer's confirmed shifts as iCalendar; the secret in the URL (<secret>.ics) is the only credential",
    roles=None,
    errors=(404,),
    content_types=("text/calendar",),
)
async def calendar_feed(call: Call) -> web.Response:
    feed = call.request.match_info["feed"]
    if not feed.endswith(".ics") or not 20 <= len(feed) <= 100:
        raise NotFound("No such calendar.", code="calendar_not_found")
    now = clock_for(call).now()
    async with queries_for(call) as queries:
        member_id = await queries.feed_owner(domain.hash_feed_secret(feed.removesuffix(".ics")))
        if member_id is None:
            raise NotFound("No such calendar.", code="calendar_not_found")
        entries = await queries.calendar_entries(member_id, now - timedelta(days=_settings(call).calendar_past_days))
    return web.Response(
        body=_calendar(entries, now),
        content_type="text/calendar",
        charset="utf-8",
        headers={"Cache-Control": "private, max-age=300"},
    )


def _calendar(entries: list[ResultRow], now: datetime) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Recovery community center//volunteering//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "Volunteer shifts")
    for entry in entries:
        event = icalendar.Event()
        event.add("uid", f"{entry.signup_id}@rcc-volunteering")
        event.add("dtstamp", now)
        # The shift's revision counts its moves and its cancellation; leaving it is one more change to this copy.
        left = entry.status != "confirmed"
        event.add("sequence", entry.revision + (1 if left else 0))
        changed = max(entry.updated_at, entry.left_at) if left and entry.left_at else entry.updated_at
        event.add("last-modified", changed.astimezone(UTC))
        event.add("dtstart", entry.starts_at)
        event.add("dtend", entry.ends_at)
        event.add("summary", f"{entry.role_title} shift")
        cancelled = left or entry.shift_status == "cancelled"
        event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
        calendar.add_component(event)
    ical: bytes = calendar.to_ical()
    return ical


# Hours


@api.get(
    "/hours",
    summary="Hours records of this site, newest first (coordinators); e.g. status=pending",
    roles=STAFF,
    query=HoursQuery,
    response=HoursPage,
)
async def list_hours(call: Call) -> HoursPage:
    query: HoursQuery = call.query
    return await _hours_page(
        call,
        site_id=actor_for(call).scope or call.who.site_id,
        member_id=query.member_id,
        status=query.status,
        from_=query.from_,
        to=query.to,
        limit=query.limit,
        cursor=query.cursor,
    )


@api.get(
    "/hours/{hours_id}",
    summary="One hours record (coordinators, or the volunteer it belongs to)",
    roles=PEOPLE,
    response=HoursOut,
    errors=(404,),
)
async def get_hours(call: Call) -> HoursOut:
    hours_id = call.uuid_param("hours_id")
    actor = actor_for(call)
    async with queries_for(call) as queries:
        row = await queries.hours_record(hours_id, actor.scope)
    if row is None:
        raise NotFound("No such hours record here.", code="hours_not_found")
    domain.member_acted_on(is_staff=actor.is_staff, own_member_id=actor.member_id, requested=row.member_id)
    return HoursOut.model_validate(row, from_attributes=True)


@api.post(
    "/hours",
    summary="Add hours a volunteer worked on a shift, with a reason (pending approval)",
    roles=STAFF,
    body=AddHoursBody,
    response=HoursOut,
    status=201,
    errors=(404, 409),
    idempotent=True,
)
async def add_hours(call: Call) -> object:
    body: AddHoursBody = call.body
    cmd = AddHours(actor_for(call), body.member_id, body.shift_id, body.minutes, body.reason)
    return await run_command(call, attendance.add_hours, cmd, status=201, idempotent=True)


@api.post(
    "/hours/{hours_id}/correct",
    summary="Correct the minutes of an hours record, with a reason; it goes back to pending",
    roles=STAFF,
    body=CorrectHoursBody,
    response=HoursOut,
    errors=(404,),
    idempotent=True,
)
async def correct_hours(call: Call) -> object:
    body: CorrectHoursBody = call.body
    cmd = CorrectHours(actor_for(call), call.uuid_param("hours_id"), body.minutes, body.reason)
    return await run_command(call, attendance.correct_hours, cmd, idempotent=True)


@api.post(
    "/hours/{hours_id}/approve",
    summary="Approve pending hours (never one's own)",
    roles=STAFF,
    response=HoursOut,
    errors=(404, 409),
    idempotent=True,
)
async def approve_hours(call: Call) -> object:
    cmd = ApproveHours(actor_for(call), call.uuid_param("hours_id"))
    return await run_command(call, attendance.approve_hours, cmd, idempotent=True)


@api.post(
    "/hours/{hours_id}/reject",
    summary="Reject pending hours with a reason (never one's own)",
    roles=STAFF,
    body=RejectHoursBody,
    response=HoursOut,
    errors=(404, 409),
    idempotent=True,
)
async def reject_hours(call: Call) -> object:
    body: RejectHoursBody = call.body
    cmd = RejectHours(actor_for(call), call.uuid_param("hours_id"), body.reason)
    return await run_command(call, attendance.reject_hours, cmd, idempotent=True)


async def _hours_page(
    call: Call,
    *,
    site_id: str | None,
    member_id: uuid.UUID | None,
    status: str | None,
    from_: date | datetime | None,
    to: date | datetime | None,
    limit: int,
    cursor: str | None,
) -> HoursPage:
    site = await site_for(call)
    between = paging.instant_range(from_, to, site.zone)
    start, end = between.start, between.end
    before = paging.decode_time_cursor(cursor) if cursor else None
    async with queries_for(call) as queries:
        rows = await queries.hours_page(
            site_id=site_id, member_id=member_id, status=status, start=start, end=end, before=before, limit=limit + 1
        )
    items = [HoursOut.model_validate(r, from_attributes=True) for r in rows[:limit]]
    totals: dict[str, int] = {}
    for item in items:
        totals[item.status] = totals.get(item.status, 0) + item.minutes
    more = len(rows) > limit
    next_cursor = paging.encode_cursor(rows[limit - 1].created_at, items[-1].hours_id) if more else None
    return HoursPage(items=items, next_cursor=next_cursor, total_minutes=totals)


def _set_mine(out: ShiftOut, mine: ResultRow) -> None:
    out.my_signup = MySignupOut(status=mine.status, position=mine.position)


def _shift_out(row: ResultRow) -> ShiftOut:
    zone = zoneinfo.ZoneInfo(row.timezone)
    scheduled = row.status == "scheduled"
    return ShiftOut(
        shift_id=row.shift_id,
        series_id=row.series_id,
        role_id=row.role_id,
        role_title=row.role_title,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        local_start=row.starts_at.astimezone(zone).replace(tzinfo=None),
        timezone=row.timezone,
        capacity=row.capacity,
        confirmed=row.confirmed,
        waitlisted=row.waitlisted,
        spots_left=max(0, row.capacity - row.confirmed) if scheduled else 0,
        needs_supervisor=row.needs_supervisor,
        supervisor_on_duty=row.supervisor_on_duty if row.needs_supervisor else None,
        status=row.status,
    )


# The stipends' routes go on this same api (same app, same paths), after volunteering's own.
from services.volunteering.stipends import views as _stipend_views  # noqa: E402, F401
