"""The gatherings service over HTTP against the real PostgreSQL and RabbitMQ (with check-in and audit running):
groups and their sessions, events, registrations and waitlists, attendance from check-ins and the roster, the
public calendar, the kiosk display, access rules and bad input."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import aio_pika
import asyncpg
import icalendar
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from services.gatherings import handlers
from services.gatherings.commands import CreateGroup, ExtendSchedules
from services.gatherings.models import Base, GatheringsUnitOfWork
from services.gatherings.settings import GatheringsSettings
from shared.clock import FixedClock
from shared.db import asyncpg_dsn, create_engine, make_connector
from shared.outbox import amqp_message, cloudevent_from_row
from shared.settings import Settings
from shared.uow import execute
from tests.support import members
from tests.support.stack import Client, Reply, SiteUnderTest, eventually, services

pytestmark = pytest.mark.integration

CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Client]:
    # A longer horizon than the default, so a weekly group's sessions span a daylight-saving change whenever this runs.
    wide = GatheringsSettings.of(settings).model_copy(update={"group_horizon_weeks": 60})
    async with services(wide, ["checkin", "gatherings", "audit"]) as client:
        yield client


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(asyncpg_dsn(settings.database_url), min_size=1, max_size=4, init=_json_codec)
    yield pool
    await pool.close()


async def _json_codec(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def iso(at: datetime) -> str:
    return at.isoformat()


def soon(days: float = 2, hours: float = 0) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days, hours=hours)).replace(microsecond=0)


async def create_event(stack: Client, site: SiteUnderTest, **overrides: Any) -> dict[str, Any]:
    starts = soon()
    body = {
        "title": "Payday potluck",
        "kind": "payday",
        "starts_at": iso(starts),
        "ends_at": iso(starts + timedelta(hours=3)),
        "capacity": 10,
    } | overrides
    reply = await stack.call("gatherings", "POST", "/events", token=site.tokens["coordinator"], json=body)
    assert reply.status == 201, reply.body
    return reply.body


def next_weekday(weekday: int, at: datetime | None = None) -> date:
    today = (at or datetime.now(CHICAGO)).date() + timedelta(days=1)
    return today + timedelta(days=(weekday - today.weekday()) % 7)


async def create_group(stack: Client, site: SiteUnderTest, **overrides: Any) -> dict[str, Any]:
    first = datetime.combine(next_weekday(1), datetime.min.time()).replace(hour=18)
    body = {
        "name": "Tuesday 6 pm re-entry peer group",
        "focus_tags": ["re-entry"],
        "facilitator_member_id": str((await members.register(stack, site, known_to=["gatherings"]))[0]),
        "capacity": 8,
        "room": "Room 2",
        "first_start": first.isoformat(),
        "duration_minutes": 90,
        "rrule": "FREQ=WEEKLY;BYDAY=TU;COUNT=6",
    } | overrides
    reply = await stack.call("gatherings", "POST", "/groups", token=site.tokens["coordinator"], json=body)
    assert reply.status == 201, reply.body
    return reply.body


async def member_of(stack: Client, site: SiteUnderTest) -> uuid.UUID:
    """A member registered at the site's check-in, once gatherings knows them."""
    return (await members.register(stack, site, known_to=["gatherings"]))[0]


async def sessions_of(stack: Client, site: SiteUnderTest, group_id: str) -> list[dict[str, Any]]:
    reply = await stack.call(
        "gatherings", "GET", f"/groups/{group_id}/sessions?limit=200", token=site.tokens["coordinator"]
    )
    assert reply.status == 200, reply.body
    return reply.body["items"]


async def register(
    stack: Client,
    site: SiteUnderTest,
    path: str,
    member_id: uuid.UUID | str | None = None,
    *,
    adults: int = 1,
    children: int = 0,
    role: str = "kiosk",
    **kw: Any,
) -> Reply:
    if member_id is None:
        member_id = await member_of(stack, site)
    body = {"member_id": str(member_id), "adults": adults, "children": children}
    return await stack.call("gatherings", "POST", f"{path}/registrations", token=site.tokens[role], json=body, **kw)


async def outbox(db: asyncpg.Pool, event_type: str, **data: str) -> list[dict[str, Any]]:
    conditions = " AND ".join(f"data->>'{key}' = ${i}" for i, key in enumerate(data, start=2))
    rows = await db.fetch(
        f"SELECT * FROM gatherings.outbox WHERE type = $1 {'AND ' + conditions if data else ''} ORDER BY sequence",
        event_type,
        *data.values(),
    )
    return [dict(row) for row in rows]


# Events and registrations


async def test_registration_confirms_until_full_then_waitlists_in_order(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    event = await create_event(stack, site, capacity=3, child_care_seats=2, family_friendly=True)
    path = f"/events/{event['event_id']}"
    assert event["support_type"] == "affiliational"  # payday events count as affiliational unless told
    assert (
        datetime.fromisoformat(event["starts_at"]).utcoffset()
        == datetime.fromisoformat(event["starts_at"]).astimezone(CHICAGO).utcoffset()
    ), "times come back in the site's zone"
    family = await register(stack, site, path, adults=2, children=2)
    assert (family.status, family.body["status"], family.body["position"]) == (201, "confirmed", None)
    too_many_children = await register(stack, site, path, adults=1, children=1)
    assert (too_many_children.body["status"], too_many_children.body["position"]) == ("waitlisted", 1)
    single = await register(stack, site, path)
    assert (single.body["status"], single.body["position"]) == ("confirmed", None)
    late = await register(stack, site, path)
    assert (late.body["status"], late.body["position"]) == ("waitlisted", 2)

    shown = await stack.call("gatherings", "GET", path, token=site.tokens["kiosk"])
    assert shown.status == 200, shown.body
    assert (shown.body["seats_left"], shown.body["child_care_seats_left"], shown.body["waitlisted"]) == (0, 0, 2)
    assert shown.body["family_friendly"] is True and shown.body["registration_open"] is True
    roster = await stack.call("gatherings", "GET", f"{path}/registrations", token=site.tokens["coordinator"])
    assert [r["registration_id"] for r in roster.body["confirmed"]] == [
        family.body["registration_id"],
        single.body["registration_id"],
    ]
    assert [(r["registration_id"], r["position"]) for r in roster.body["waitlist"]] == [
        (too_many_children.body["registration_id"], 1),
        (late.body["registration_id"], 2),
    ]

    # The family cancels: three seats and two child-care seats free up; both waiting parties fit, in order.
    cancelled = await stack.call(
        "gatherings", "DELETE", f"/registrations/{family.body['registration_id']}", token=site.tokens["kiosk"]
    )
    assert cancelled.status == 200, cancelled.body
    assert cancelled.body["promoted"] == [too_many_children.body["registration_id"], late.body["registration_id"]]
    status = await stack.call(
        "gatherings", "GET", f"/registrations/{late.body['registration_id']}", token=site.tokens["kiosk"]
    )
    assert (status.body["status"], status.body["position"], status.body["event_id"]) == (
        "confirmed",
        None,
        event["event_id"],
    )
    row = await db.fetchrow(
        "SELECT taken_adults, taken_children FROM gatherings.gatherings WHERE gathering_id = $1",
        uuid.UUID(event["event_id"]),
    )
    assert (row["taken_adults"], row["taken_children"]) == (3, 1)
    promoted = await outbox(db, "gatherings.promoted_from_waitlist", event_id=event["event_id"])
    assert [p["data"]["registration_id"] for p in promoted] == cancelled.body["promoted"]
    assert {p["data"]["reason"] for p in promoted} == {"cancellation"}
    assert {p["data"]["support_type"] for p in promoted} == {"affiliational"}
    [gone] = await outbox(db, "gatherings.registration_cancelled", registration_id=family.body["registration_id"])
    assert (gone["data"]["previous_status"], gone["data"]["adults"], gone["data"]["children"]) == ("confirmed", 2, 2)
    again = await stack.call(
        "gatherings", "DELETE", f"/registrations/{family.body['registration_id']}", token=site.tokens["kiosk"]
    )
    assert (again.status, again.body["code"]) == (409, "already_cancelled")


async def test_a_big_party_keeps_its_place_while_smaller_ones_get_freed_seats(
    stack: Client, site: SiteUnderTest
) -> None:
    event = await create_event(stack, site, capacity=4)
    path = f"/events/{event['event_id']}"
    seated = [await register(stack, site, path) for _ in range(4)]
    assert {r.body["status"] for r in seated} == {"confirmed"}
    family = await register(stack, site, path, adults=3)
    single = await register(stack, site, path)
    assert [family.body["position"], single.body["position"]] == [1, 2]
    freed = await stack.call(
        "gatherings", "DELETE", f"/registrations/{seated[0].body['registration_id']}", token=site.tokens["coordinator"]
    )
    assert freed.body["promoted"] == [single.body["registration_id"]]  # the family of three does not fit in one
    status = await stack.call(
        "gatherings", "GET", f"/registrations/{family.body['registration_id']}", token=site.tokens["coordinator"]
    )
    assert (status.body["status"], status.body["position"]) == ("waitlisted", 1)
    newcomer = await register(stack, site, path)
    assert (newcomer.body["status"], newcomer.body["position"]) == ("waitlisted", 2)
    # Three more seats: the family is first in line and fits; the newcomer still waits.
    more = await stack.call("gatherings", "PATCH", path, token=site.tokens["coordinator"], json={"capacity": 7})
    assert more.status == 200, more.body
    assert more.body["promoted"] == [family.body["registration_id"]]
    assert (more.body["capacity"], more.body["seats_left"]) == (7, 0)
    fewer = await stack.call("gatherings", "PATCH", path, token=site.tokens["coordinator"], json={"capacity": 6})
    assert (fewer.status, fewer.body["code"]) == (409, "capacity_below_confirmed")
    huge = await register(stack, site, path, adults=8)
    assert (huge.status, huge.body["code"]) == (409, "party_too_large")


async def test_fewer_seats_than_a_waiting_party_needs_are_refused(stack: Client, site: SiteUnderTest) -> None:
    event = await create_event(stack, site, capacity=2, child_care_seats=2)
    path = f"/events/{event['event_id']}"
    await register(stack, site, path, adults=2)
    family = await register(stack, site, path, adults=1, children=2)
    assert family.body["status"] == "waitlisted"
    reply = await stack.call(
        "gatherings", "PATCH", path, token=site.tokens["coordinator"], json={"child_care_seats": 1}
    )
    assert (reply.status, reply.body["code"]) == (409, "capacity_below_waiting_party")
    assert reply.body["registration_ids"] == [family.body["registration_id"]]
    nothing = await stack.call("gatherings", "PATCH", path, token=site.tokens["coordinator"], json={})
    assert (nothing.status, nothing.body["code"]) == (422, "invalid_request")


async def test_double_registration_and_closed_windows_are_conflicts(stack: Client, site: SiteUnderTest) -> None:
    event = await create_event(stack, site)
    path = f"/events/{event['event_id']}"
    member = await member_of(stack, site)
    first = await register(stack, site, path, member)
    assert first.status == 201
    twice = await register(stack, site, path, member, role="coordinator")
    assert (twice.status, twice.body["code"], twice.body["registration_id"]) == (
        409,
        "already_registered",
        first.body["registration_id"],
    )
    await stack.call(
        "gatherings", "DELETE", f"/registrations/{first.body['registration_id']}", token=site.tokens["kiosk"]
    )
    assert (await register(stack, site, path, member)).status == 201  # after cancelling, again

    later = soon(days=10)
    not_yet = await create_event(
        stack,
        site,
        registration_opens_at=iso(soon(days=5)),
        starts_at=iso(later),
        ends_at=iso(later + timedelta(hours=2)),
    )
    closed = await register(stack, site, f"/events/{not_yet['event_id']}")
    assert (closed.status, closed.body["code"]) == (409, "registration_closed")
    assert closed.body["opens_at"] is not None

    under_way = await create_event(stack, site, starts_at=iso(soon(days=0, hours=-1)))
    late = await register(stack, site, f"/events/{under_way['event_id']}")
    assert (late.status, late.body["code"]) == (409, "registration_closed")

    cancelled = await create_event(stack, site)
    assert (
        await stack.call(
            "gatherings", "POST", f"/events/{cancelled['event_id']}/cancel", token=site.tokens["coordinator"]
        )
    ).status == 200
    refused = await register(stack, site, f"/events/{cancelled['event_id']}")
    assert (refused.status, refused.body["code"]) == (409, "event_cancelled")


async def test_idempotency_key_makes_a_retried_registration_one_registration(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    event = await create_event(stack, site)
    path = f"/events/{event['event_id']}"
    member = await member_of(stack, site)
    headers = {"Idempotency-Key": f"kiosk-{uuid.uuid4()}"}
    first = await register(stack, site, path, member, headers=headers)
    retry = await register(stack, site, path, member, headers=headers)
    assert (retry.status, retry.body) == (201, first.body)
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert len(await outbox(db, "gatherings.registered", event_id=event["event_id"])) == 1


async def test_cancelling_an_event_ends_its_registrations_and_names_members_by_id(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    event = await create_event(stack, site, capacity=1)
    path = f"/events/{event['event_id']}"
    seated, waiting = await members.register(stack, site, 2, known_to=["gatherings"])
    await register(stack, site, path, seated)
    await register(stack, site, path, waiting)
    reply = await stack.call("gatherings", "POST", f"{path}/cancel", token=site.tokens["coordinator"])
    assert (reply.status, reply.body["registrations_cancelled"]) == (200, 2)
    [cancelled] = await outbox(db, "gatherings.event_cancelled", event_id=event["event_id"])
    assert cancelled["data"]["confirmed_member_ids"] == [str(seated)]
    assert cancelled["data"]["waitlisted_member_ids"] == [str(waiting)]
    assert cancelled["classification"] == "sensitive"
    twice = await stack.call("gatherings", "POST", f"{path}/cancel", token=site.tokens["coordinator"])
    assert (twice.status, twice.body["code"]) == (409, "already_cancelled")
    shown = await stack.call("gatherings", "GET", path, token=site.tokens["coordinator"])
    assert (shown.body["cancelled"], shown.body["seats_left"], shown.body["registration_open"]) == (True, 0, False)


# Access


async def test_a_kiosk_registers_only_at_its_own_site(
    stack: Client, site: SiteUnderTest, other_site: SiteUnderTest
) -> None:
    event = await create_event(stack, other_site)
    path = f"/events/{event['event_id']}"
    elsewhere = await register(stack, site, path)
    assert (elsewhere.status, elsewhere.body["code"]) == (404, "event_not_found")
    change = await stack.call("gatherings", "PATCH", path, token=site.tokens["coordinator"], json={"capacity": 50})
    assert (change.status, change.body["code"]) == (404, "event_not_found")
    roster = await stack.call("gatherings", "GET", f"{path}/registrations", token=site.tokens["coordinator"])
    assert roster.status == 404
    mine = await register(stack, other_site, path)
    cancel = await stack.call(
        "gatherings", "DELETE", f"/registrations/{mine.body['registration_id']}", token=site.tokens["kiosk"]
    )
    assert (cancel.status, cancel.body["code"]) == (404, "registration_not_found")
    # An admin works on any site (for a member of the gathering's site).
    by_admin = await register(stack, site, path, await member_of(stack, other_site), role="admin")
    assert by_admin.status == 201, by_admin.body
    listed = await stack.call("gatherings", "GET", "/events?limit=200", token=site.tokens["kiosk"])
    assert event["event_id"] not in {e["event_id"] for e in listed.body["items"]}


async def test_a_volunteer_registers_and_cancels_only_for_themself(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    event = await create_event(stack, site)
    path = f"/events/{event['event_id']}"
    someone_else = await register(stack, site, path, role="volunteer")
    assert (someone_else.status, someone_else.body["code"]) == (403, "not_yours")
    volunteer_member = await db.fetchval(
        "SELECT member_id FROM access.tokens WHERE token_id = $1", site.token_ids["volunteer"]
    )
    own = await register(stack, site, path, volunteer_member, role="volunteer")
    assert own.status == 201, own.body
    other = await register(stack, site, path)
    denied = await stack.call(
        "gatherings", "DELETE", f"/registrations/{other.body['registration_id']}", token=site.tokens["volunteer"]
    )
    assert (denied.status, denied.body["code"]) == (403, "not_yours")
    mine = await stack.call(
        "gatherings", "DELETE", f"/registrations/{own.body['registration_id']}", token=site.tokens["volunteer"]
    )
    assert mine.status == 200, mine.body


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/events", {"coordinator", "admin"}),
        ("POST", "/groups", {"coordinator", "admin"}),
        ("GET", "/groups", {"coordinator", "admin"}),
        ("GET", "/events", {"kiosk", "volunteer", "coordinator", "admin"}),
        ("GET", "/upcoming", {"kiosk", "coordinator", "admin"}),
    ],
)
async def test_tokens_need_the_right_role(
    stack: Client, site: SiteUnderTest, method: str, path: str, allowed: set[str]
) -> None:
    assert (await stack.call("gatherings", method, path, json={})).status == 401
    for role in ("kiosk", "volunteer", "coordinator", "admin"):
        reply = await stack.call("gatherings", method, path, json={}, token=site.tokens[role])
        if role in allowed:
            assert reply.status != 403, (role, reply.body)
        else:
            assert (reply.status, reply.body["code"]) == (403, "wrong_role"), role


# Bad input


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        (
            "/events",
            {
                "title": "x",
                "kind": "payday",
                "starts_at": "2030-01-01T18:00:00",
                "ends_at": "2030-01-01T20:00:00Z",
                "capacity": 5,
            },
            "invalid_request",
        ),  # naive start
        (
            "/events",
            {
                "title": "x",
                "kind": "rave",
                "starts_at": "2030-01-01T18:00:00Z",
                "ends_at": "2030-01-01T20:00:00Z",
                "capacity": 5,
            },
            "invalid_request",
        ),
        (
            "/events",
            {
                "title": "x",
                "kind": "payday",
                "starts_at": "2030-01-01T18:00:00Z",
                "ends_at": "2030-01-01T17:00:00Z",
                "capacity": 5,
            },
            "invalid_request",
        ),
        (
            "/events",
            {
                "title": "x",
                "kind": "payday",
                "starts_at": "2030-01-01T18:00:00Z",
                "ends_at": "2030-01-01T20:00:00Z",
                "capacity": 0,
            },
            "invalid_request",
        ),
        (
            "/events",
            {
                "title": "x",
                "kind": "other",
                "starts_at": "2030-01-01T18:00:00Z",
                "ends_at": "2030-01-01T20:00:00Z",
                "capacity": 5,
            },
            "support_type_required",
        ),
        (
            "/events",
            {
                "title": "x",
                "kind": "payday",
                "starts_at": "2020-01-01T18:00:00Z",
                "ends_at": "2020-01-01T20:00:00Z",
                "capacity": 5,
            },
            "ends_in_past",
        ),
        (
            "/events",
            {
                "title": "x",
                "kind": "payday",
                "starts_at": "2030-01-01T18:00:00Z",
                "ends_at": "2030-01-01T20:00:00Z",
                "capacity": 5,
                "nickname": "Sunny",
            },
            "invalid_request",
        ),
        (
            "/groups",
            {
                "name": "g",
                "facilitator_member_id": "not-a-uuid",
                "capacity": 5,
                "first_start": "2030-01-01T18:00:00",
                "duration_minutes": 60,
                "rrule": "FREQ=WEEKLY",
            },
            "invalid_request",
        ),
        (
            "/groups",
            {
                "name": "g",
                "facilitator_member_id": str(uuid.uuid4()),
                "capacity": 5,
                "first_start": "2030-01-01T18:00:00Z",
                "duration_minutes": 60,
                "rrule": "FREQ=WEEKLY",
            },
            "invalid_request",
        ),  # first_start is a wall-clock time
        (
            "/groups",
            {
                "name": "g",
                "facilitator_member_id": str(uuid.uuid4()),
                "capacity": 5,
                "first_start": "2027-01-05T18:00:00",
                "duration_minutes": 60,
                "rrule": "FREQ=SECONDLY",
            },
            "bad_rrule",
        ),
        (
            "/groups",
            {
                "name": "g",
                "facilitator_member_id": str(uuid.uuid4()),
                "capacity": 5,
                "first_start": "2027-01-05T18:00:00",
                "duration_minutes": 60,
                "rrule": "FREQ=WEEKLY",
                "focus_tags": ["Re Entry!"],
            },
            "invalid_request",
        ),
        (
            "/groups",
            {
                "name": "g",
                "facilitator_member_id": str(uuid.uuid4()),
                "capacity": 5,
                "first_start": "2020-01-07T18:00:00",
                "duration_minutes": 60,
                "rrule": "FREQ=WEEKLY;COUNT=2",
            },
            "no_sessions",
        ),
    ],
)
async def test_bad_bodies_get_a_problem_with_a_code(
    stack: Client, site: SiteUnderTest, path: str, body: dict[str, Any], code: str
) -> None:
    reply = await stack.call("gatherings", "POST", path, token=site.tokens["coordinator"], json=body)
    assert reply.status == 422, reply.body
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert reply.body["code"] == code


@pytest.mark.parametrize(
    "body",
    [
        {"adults": 1},  # no member id
        {"member_id": "123", "adults": 1},
        {"member_id": str(uuid.uuid4()), "adults": 0},
        {"member_id": str(uuid.uuid4()), "children": -1},
        {"member_id": str(uuid.uuid4()), "adults": "two"},
        {"member_id": str(uuid.uuid4()), "guests": 3},
    ],
)
async def test_bad_registration_bodies_are_422_and_change_nothing(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool, body: dict[str, Any]
) -> None:
    event = await create_event(stack, site)
    reply = await stack.call(
        "gatherings", "POST", f"/events/{event['event_id']}/registrations", token=site.tokens["kiosk"], json=body
    )
    assert (reply.status, reply.body["code"]) == (422, "invalid_request")
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    count = await db.fetchval(
        "SELECT count(*) FROM gatherings.registrations WHERE gathering_id = $1", uuid.UUID(event["event_id"])
    )
    assert count == 0


async def test_unknown_or_malformed_ids_are_404(stack: Client, site: SiteUnderTest) -> None:
    for path in (
        f"/events/{uuid.uuid4()}/registrations",
        "/events/nope/registrations",
        f"/sessions/{uuid.uuid4()}/registrations",
    ):
        reply = await register(stack, site, path.removesuffix("/registrations"))
        assert reply.status == 404, (path, reply.body)
    event = await create_event(stack, site)
    as_session = await register(stack, site, f"/sessions/{event['event_id']}")
    assert (as_session.status, as_session.body["code"]) == (404, "session_not_found")


# Groups and sessions


async def test_a_group_schedules_its_sessions_at_the_same_local_time(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    group = await create_group(
        stack, site, rrule="FREQ=WEEKLY;BYDAY=TU;COUNT=40", child_care_seats=2, focus_tags=["re-entry", "parents"]
    )
    sessions = await sessions_of(stack, site, group["group_id"])
    assert len(sessions) == group["sessions_scheduled"] == 40
    starts = [datetime.fromisoformat(s["starts_at"]) for s in sessions]
    assert {(s.hour, s.minute, s.weekday()) for s in starts} == {(18, 0, 1)}
    assert len({s.utcoffset() for s in starts}) == 2, "40 weeks span a daylight-saving change"
    assert all(s["title"] == "Tuesday 6 pm re-entry peer group" and s["room"] == "Room 2" for s in sessions)
    assert sessions[0]["focus_tags"] == ["re-entry", "parents"]
    assert (sessions[0]["support_type"], sessions[0]["child_care_seats_left"]) == ("emotional", 2)
    [created] = await outbox(db, "gatherings.group_created", group_id=group["group_id"])
    assert created["data"]["sessions_scheduled"] == 40
    assert "name" not in created["data"] and "Tuesday" not in str(created["data"])
    scheduled = await outbox(db, "gatherings.session_scheduled", group_id=group["group_id"])
    assert [s["data"]["session_id"] for s in scheduled] == [s["session_id"] for s in sessions]
    assert {s["classification"] for s in scheduled} == {"internal"}

    listed = await stack.call("gatherings", "GET", "/groups", token=site.tokens["coordinator"])
    mine = [g for g in listed.body["items"] if g["group_id"] == group["group_id"]]
    assert mine[0]["rrule"] == "FREQ=WEEKLY;BYDAY=TU;COUNT=40"


async def test_sessions_are_cancelled_and_moved_one_at_a_time(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    group = await create_group(stack, site, exceptions=[next_weekday(1).isoformat()])
    sessions = await sessions_of(stack, site, group["group_id"])
    assert len(sessions) == 5  # six Tuesdays, the first one an exception
    first, second = sessions[0], sessions[1]
    member = await member_of(stack, site)
    seat = await register(stack, site, f"/sessions/{first['session_id']}", member)
    assert seat.status == 201, seat.body
    cancel = await stack.call(
        "gatherings", "POST", f"/sessions/{first['session_id']}/cancel", token=site.tokens["coordinator"]
    )
    assert cancel.status == 200, cancel.body
    [cancelled] = await outbox(db, "gatherings.session_cancelled", session_id=first["session_id"])
    assert cancelled["data"]["confirmed_member_ids"] == [str(member)]
    assert cancelled["data"]["group_id"] == group["group_id"]
    refused = await register(stack, site, f"/sessions/{first['session_id']}")
    assert (refused.status, refused.body["code"]) == (409, "session_cancelled")

    new_start = datetime.fromisoformat(second["starts_at"]) + timedelta(days=1, hours=-1)
    moved = await stack.call(
        "gatherings",
        "POST",
        f"/sessions/{second['session_id']}/move",
        token=site.tokens["coordinator"],
        json={"starts_at": iso(new_start), "ends_at": iso(new_start + timedelta(hours=2))},
    )
    assert moved.status == 200, moved.body
    again = await sessions_of(stack, site, group["group_id"])
    by_id = {s["session_id"]: s for s in again}
    assert by_id[second["session_id"]]["moved"] is True
    assert datetime.fromisoformat(by_id[second["session_id"]]["starts_at"]) == new_start
    assert by_id[first["session_id"]]["cancelled"] is True
    assert [s["moved"] for s in again[2:]] == [False] * 3
    [rescheduled] = [
        e
        for e in await outbox(db, "gatherings.session_scheduled", session_id=second["session_id"])
        if e["data"]["change"] == "moved"
    ]
    assert datetime.fromisoformat(rescheduled["data"]["previous_starts_at"]) == datetime.fromisoformat(
        second["starts_at"]
    )
    naive = await stack.call(
        "gatherings",
        "POST",
        f"/sessions/{second['session_id']}/move",
        token=site.tokens["coordinator"],
        json={"starts_at": "2030-01-01T18:00:00", "ends_at": "2030-01-01T19:00:00"},
    )
    assert (naive.status, naive.body["code"]) == (422, "invalid_request")


async def test_group_sessions_take_children_only_with_child_care_seats(stack: Client, site: SiteUnderTest) -> None:
    group = await create_group(stack, site)
    [first, *_] = await sessions_of(stack, site, group["group_id"])
    reply = await register(stack, site, f"/sessions/{first['session_id']}", adults=1, children=1)
    assert (reply.status, reply.body["code"]) == (409, "party_too_large")
    more = await stack.call(
        "gatherings",
        "PATCH",
        f"/sessions/{first['session_id']}",
        token=site.tokens["coordinator"],
        json={"child_care_seats": 3},
    )
    assert more.status == 200, more.body
    assert (await register(stack, site, f"/sessions/{first['session_id']}", adults=1, children=1)).status == 201


async def test_the_horizon_rolls_forward_for_long_running_groups(
    settings: Settings, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    """The periodic task's handler, run with a clock three weeks ahead: the group's next sessions appear, once."""
    engine = create_engine(settings, service="it-gatherings")
    sessionmaker = make_connector(engine)
    now = datetime.now(UTC)
    first = datetime.combine(next_weekday(1), datetime.min.time()).replace(hour=18)
    try:
        created = await execute(
            handlers.create_group,
            CreateGroup(
                site_id=site.site_id,
                actor_id="token:test",
                timezone="America/Chicago",
                name="Parents in recovery",
                focus_tags=("parents",),
                support_type="emotional",
                facilitator_member_id=(await members.new_known(engine, site.site_id, services=["gatherings"]))[0],
                capacity=10,
                child_care_seats=4,
                room=None,
                first_start=first,
                duration_minutes=60,
                rrule="FREQ=WEEKLY;BYDAY=TU",
                exceptions=(),
                horizon_weeks=4,
            ),
            uow=GatheringsUnitOfWork(sessionmaker, Base.metadata),
            clock=FixedClock(now),
        )
        group_id = uuid.UUID(created.body["group_id"])
        before = created.body["sessions_scheduled"]
        assert before in (4, 5)
        later = FixedClock(now + timedelta(weeks=3))
        extended = await execute(
            handlers.extend_schedules,
            ExtendSchedules(horizon_weeks=4),
            uow=GatheringsUnitOfWork(sessionmaker, Base.metadata),
            clock=later,
        )
        assert extended.body["sessions_scheduled"] == 3
        again = await execute(
            handlers.extend_schedules,
            ExtendSchedules(horizon_weeks=4),
            uow=GatheringsUnitOfWork(sessionmaker, Base.metadata),
            clock=later,
        )
        assert again.body["sessions_scheduled"] == 0
    finally:
        await engine.dispose()
    rows = await db.fetch(
        "SELECT gathering_id, starts_at FROM gatherings.gatherings WHERE group_id = $1 ORDER BY starts_at", group_id
    )
    assert len(rows) == before + 3
    local = [r["starts_at"].astimezone(CHICAGO) for r in rows]
    assert {(t.weekday(), t.hour) for t in local} == {(1, 18)}
    days = [t.date() for t in local]
    assert all(later_day - day == timedelta(days=7) for day, later_day in itertools.pairwise(days))
    scheduled = await outbox(db, "gatherings.session_scheduled", group_id=str(group_id))
    assert sorted(s["data"]["session_id"] for s in scheduled) == sorted(str(r["gathering_id"]) for r in rows)


# The public calendar and the kiosk display


async def test_the_calendar_feed_parses_and_shows_local_times(stack: Client, site: SiteUnderTest) -> None:
    group = await create_group(stack, site, rrule="FREQ=WEEKLY;BYDAY=TU;COUNT=40")
    sessions = await sessions_of(stack, site, group["group_id"])
    await stack.call(
        "gatherings", "POST", f"/sessions/{sessions[1]['session_id']}/cancel", token=site.tokens["coordinator"]
    )
    event = await create_event(stack, site, title="New Year's Eve sober party", kind="holiday", room="Main hall")
    member = await member_of(stack, site)
    await register(stack, site, f"/events/{event['event_id']}", member)

    async with stack.http.get(stack.urls["gatherings"] + f"/calendar.ics?site={site.site_id}") as response:
        assert response.status == 200
        assert response.content_type == "text/calendar"
        feed = await response.read()
    parsed = icalendar.Calendar.from_ical(feed)
    vevents = list(parsed.walk("VEVENT"))
    assert len(vevents) == 40 + 1  # the sessions and the event
    by_uid = {str(v["uid"]).split("@")[0]: v for v in vevents}
    # The cancelled session stays under its UID, so calendars that imported it remove it.
    assert str(by_uid[sessions[1]["session_id"]]["status"]) == "CANCELLED"
    assert {str(v["status"]) for uid, v in by_uid.items() if uid != sessions[1]["session_id"]} == {"CONFIRMED"}
    for session in sessions[2:]:
        vevent = by_uid[session["session_id"]]
        start = vevent.decoded("dtstart")
        assert vevent["dtstart"].params["TZID"] == "America/Chicago"
        assert (start.hour, start.minute) == (18, 0)
        assert start == datetime.fromisoformat(session["starts_at"])
        assert str(vevent["summary"]) == "Tuesday 6 pm re-entry peer group"
        assert str(vevent["location"]) == "Room 2"
    party = by_uid[event["event_id"]]
    assert str(party["summary"]) == "New Year's Eve sober party"
    assert party.decoded("dtstart") == datetime.fromisoformat(event["starts_at"])
    assert str(member).encode() not in feed
    assert b"seats" not in feed.lower()

    unknown = await stack.call("gatherings", "GET", "/calendar.ics?site=no-such-site")
    assert (unknown.status, unknown.body["code"]) == (404, "site_not_found")
    bad = await stack.call("gatherings", "GET", "/calendar.ics?site=../etc")
    assert (bad.status, bad.body["code"]) == (422, "invalid_request")


async def test_the_kiosk_display_shows_the_next_week_with_seats_left(
    stack: Client, site: SiteUnderTest, other_site: SiteUnderTest
) -> None:
    event = await create_event(stack, site, capacity=5, child_care_seats=3, family_friendly=True)
    await register(stack, site, f"/events/{event['event_id']}", adults=2, children=1)
    far = soon(days=12)
    await create_event(stack, site, starts_at=iso(far), ends_at=iso(far + timedelta(hours=1)))
    elsewhere = await create_event(stack, other_site)
    tomorrow = datetime.combine(datetime.now(CHICAGO).date() + timedelta(days=1), datetime.min.time())
    group = await create_group(
        stack, site, first_start=tomorrow.replace(hour=18).isoformat(), rrule="FREQ=WEEKLY;COUNT=2"
    )
    reply = await stack.call("gatherings", "GET", "/upcoming", token=site.tokens["kiosk"])
    assert reply.status == 200, reply.body
    items = reply.body["items"]
    ids = [i["event_id"] or i["session_id"] for i in items]
    assert event["event_id"] in ids and elsewhere["event_id"] not in ids
    assert all(datetime.fromisoformat(i["starts_at"]) < soon(days=7, hours=1) for i in items)
    starts = [datetime.fromisoformat(i["starts_at"]) for i in items]
    assert starts == sorted(starts)
    mine = next(i for i in items if i["event_id"] == event["event_id"])
    assert (mine["seats_left"], mine["child_care_seats_left"], mine["family_friendly"]) == (3, 2, True)
    assert (mine["kind"], mine["support_type"]) == ("payday", "affiliational")
    assert (
        datetime.fromisoformat(mine["starts_at"]).utcoffset()
        == datetime.fromisoformat(event["starts_at"]).astimezone(CHICAGO).utcoffset()
    )
    sessions = [i for i in items if i["group_id"] == group["group_id"]]
    assert len(sessions) == 1 and sessions[0]["seats_left"] == 8
    assert "member_id" not in str(reply.body)


# Attendance


async def check_in(stack: Client, site: SiteUnderTest, purpose: str, ref: str, member_id: str | None) -> Reply:
    body: dict[str, Any] = {"purpose": purpose, "ref": ref}
    body |= {"member_id": member_id} if member_id else {"anonymous": True}
    reply = await stack.call("checkin", "POST", "/visits", token=site.tokens["kiosk"], json=body)
    assert reply.status == 201, reply.body
    return reply


async def new_member(stack: Client, site: SiteUnderTest) -> str:
    return str(await member_of(stack, site))


async def attendance_rows(db: asyncpg.Pool, gathering_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM gatherings.attendance WHERE gathering_id = $1 ORDER BY recorded_at",
        uuid.UUID(gathering_id),
    )


async def test_check_ins_for_a_session_are_attendance_registered_or_walk_in(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    group = await create_group(stack, site)
    [session, *_] = await sessions_of(stack, site, group["group_id"])
    registered, walk_in = await new_member(stack, site), await new_member(stack, site)
    await register(stack, site, f"/sessions/{session['session_id']}", registered)
    await check_in(stack, site, "recovery_group", session["session_id"], registered)
    await check_in(stack, site, "recovery_group", session["session_id"], walk_in)
    await check_in(stack, site, "recovery_group", session["session_id"], None)
    await check_in(stack, site, "drop_in", session["session_id"], None)  # not for a group: ignored

    async def three() -> bool:
        return len(await attendance_rows(db, session["session_id"])) == 3

    await eventually(three)
    rows = await attendance_rows(db, session["session_id"])
    by_member = {str(r["member_id"]) if r["member_id"] else None: r for r in rows}
    assert by_member[registered]["registered"] is True
    assert by_member[walk_in]["registered"] is False
    assert by_member[None]["visit_id"] is not None
    attended = await outbox(db, "gatherings.attended", session_id=session["session_id"])
    assert sorted((a["data"]["registered"], a["data"]["anonymous"]) for a in attended) == [
        (False, False),
        (False, True),
        (True, False),
    ]
    assert {a["data"]["support_type"] for a in attended} == {"emotional"}
    assert {a["data"]["group_id"] for a in attended} == {group["group_id"]}
    assert {a["data"]["source"] for a in attended} == {"checkin"}

    # The coordinator's roster: a member already counted is not counted twice; a new one is.
    again = await stack.call(
        "gatherings",
        "POST",
        f"/sessions/{session['session_id']}/attendance",
        token=site.tokens["coordinator"],
        json={"member_id": registered, "present": True},
    )
    assert (again.status, again.body["recorded"], again.body["registered"]) == (200, False, True)
    assert again.body["attendance_id"] == str(by_member[registered]["attendance_id"])
    late = await member_of(stack, site)
    marked = await stack.call(
        "gatherings",
        "POST",
        f"/sessions/{session['session_id']}/attendance",
        token=site.tokens["coordinator"],
        json={"member_id": str(late), "present": True},
    )
    assert (marked.body["recorded"], marked.body["registered"]) == (True, False)
    [roster] = await outbox(db, "gatherings.attended", member_id=str(late))
    assert roster["data"]["source"] == "roster" and roster["data"]["visit_id"] is None
    absent = await stack.call(
        "gatherings",
        "POST",
        f"/sessions/{session['session_id']}/attendance",
        token=site.tokens["coordinator"],
        json={"member_id": str(late), "present": False},
    )
    assert (absent.status, absent.body["code"]) == (422, "invalid_request")


async def test_a_duplicate_check_in_event_records_one_attendance(
    settings: Settings, stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    event = await create_event(stack, site, kind="sober_social")
    member = await new_member(stack, site)
    await register(stack, site, f"/events/{event['event_id']}", member, adults=2, children=0)
    visit = await check_in(stack, site, "sober_event", event["event_id"], member)

    async def recorded() -> bool:
        return len(await attendance_rows(db, event["event_id"])) == 1

    await eventually(recorded)
    [row] = await db.fetch(
        "SELECT * FROM checkin.outbox WHERE type = 'checkin.visitor_checked_in' AND subject = $1",
        visit.body["visit_id"],
    )
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(settings.exchange_name)
        for _ in range(2):
            await exchange.publish(
                amqp_message(cloudevent_from_row(SimpleNamespace(**row), "/rcc/checkin")),
                routing_key=row["type"],
                timeout=5,
            )
    finally:
        await connection.close()
    # A later check-in (an anonymous walk-in) behind the duplicates on the same queue: once it is recorded, the
    # duplicates before it have been consumed.
    await check_in(stack, site, "sober_event", event["event_id"], None)

    async def walk_in_recorded() -> bool:
        return len(await attendance_rows(db, event["event_id"])) >= 2

    await eventually(walk_in_recorded)
    rows = await attendance_rows(db, event["event_id"])
    assert [str(r["member_id"]) if r["member_id"] else None for r in rows] == [member, None]
    assert (rows[0]["registered"], rows[0]["adults"], rows[0]["children"]) == (True, 2, 0)
    attended = await outbox(db, "gatherings.attended", event_id=event["event_id"])
    assert len(attended) == 2
    assert attended[0]["data"]["member_id"] == member
    assert attended[0]["correlation_id"] == str(row["event_id"])
    processed = await db.fetchval(
        "SELECT count(*) FROM gatherings.inbox WHERE consumer = 'gatherings' AND event_id = $1", row["event_id"]
    )
    assert processed == 1


async def test_check_ins_for_unknown_cancelled_or_other_sites_gatherings_are_ignored(
    stack: Client, site: SiteUnderTest, other_site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    theirs = await create_event(stack, other_site)
    cancelled = await create_event(stack, site)
    await stack.call("gatherings", "POST", f"/events/{cancelled['event_id']}/cancel", token=site.tokens["coordinator"])
    group = await create_group(stack, site)
    [session, *_] = await sessions_of(stack, site, group["group_id"])
    await check_in(stack, site, "sober_event", theirs["event_id"], None)
    await check_in(stack, site, "sober_event", cancelled["event_id"], None)
    await check_in(stack, site, "sober_event", session["session_id"], None)  # a session is not an event
    await check_in(stack, site, "sober_event", "not-a-uuid", None)
    await check_in(stack, site, "recovery_group", session["session_id"], None)

    async def the_good_one() -> bool:
        return len(await attendance_rows(db, session["session_id"])) == 1

    await eventually(the_good_one)
    for event_id in (theirs["event_id"], cancelled["event_id"]):
        assert await attendance_rows(db, event_id) == []


# Events reach the audit log


async def test_gatherings_events_reach_the_audit_log(stack: Client, site: SiteUnderTest, db: asyncpg.Pool) -> None:
    event = await create_event(stack, site, capacity=1)
    first = await register(stack, site, f"/events/{event['event_id']}")
    await register(stack, site, f"/events/{event['event_id']}")
    await stack.call(
        "gatherings", "DELETE", f"/registrations/{first.body['registration_id']}", token=site.tokens["kiosk"]
    )
    wanted = {
        "gatherings.event_scheduled",
        "gatherings.registered",
        "gatherings.waitlisted",
        "gatherings.registration_cancelled",
        "gatherings.promoted_from_waitlist",
    }

    async def arrived() -> bool:
        reply = await stack.call("audit", "GET", f"/audit?site={site.site_id}&limit=500", token=site.tokens["admin"])
        types = {e["type"] for e in reply.body["items"] if e["event"]["data"].get("event_id") == event["event_id"]}
        return wanted <= types

    await eventually(arrived)
    reply = await stack.call(
        "audit", "GET", f"/audit?site={site.site_id}&type=gatherings.waitlisted", token=site.tokens["admin"]
    )
    entry = next(e for e in reply.body["items"] if e["event"]["data"]["event_id"] == event["event_id"])
    assert entry["source"] == "/rcc/gatherings"
    assert entry["event"]["dataclassification"] == "sensitive"
    assert entry["event"]["data"]["position"] == 1
    verdict = await stack.call("audit", "GET", "/audit/verify", token=site.tokens["admin"])
    assert verdict.body["ok"] is True
    rows = await db.fetch(
        "SELECT type, body FROM audit.audit_log WHERE site_id = $1 AND source = '/rcc/gatherings'", site.site_id
    )
    assert wanted <= {r["type"] for r in rows}
    assert all("Payday potluck" not in r["body"] for r in rows), "titles stay out of events"


# The schema


async def test_the_migration_matches_the_models(settings: Settings) -> None:
    engine = create_async_engine(settings.database_url)
    ours = {"groups", "gatherings", "registrations", "attendance"}

    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, kind, _parent: kind != "schema" or name == "gatherings",
                "include_object": lambda obj, name, kind, *_: kind != "table" or name in ours,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        return compare_metadata(context, Base.metadata)

    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(differences)
    finally:
        await engine.dispose()
    relevant = [d for d in diff if any(t in repr(d) for t in ours)]
    assert relevant == []


async def test_a_reversed_range_of_events_or_sessions_is_422_range_reversed(stack: Client, site: SiteUnderTest) -> None:
    group = await create_group(stack, site)
    for path in ("/events", f"/groups/{group['group_id']}/sessions"):
        for query in ("from=2027-01-10&to=2027-01-01", "from=2027-01-10T00:00:00Z&to=2027-01-01T00:00:00Z"):
            reply = await stack.call("gatherings", "GET", f"{path}?{query}", token=site.tokens["coordinator"])
            assert (reply.status, reply.body["code"]) == (422, "range_reversed"), (path, query)
