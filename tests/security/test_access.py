"""Items 12 and 13: every route that takes an object id refuses other people, other sites and lower roles; every
create or update route refuses fields a caller may not set, and changes nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from shared.access import Role
from shared.settings import Settings
from shared.web import Operation
from tests.security.conftest import SERVICES, api_of, operations
from tests.support.samples import body_for, path_for
from tests.support.stack import Client, SiteUnderTest
from tests.support.volunteering import Center, Volunteer

pytestmark = pytest.mark.e2e

LADDER = (Role.KIOSK, Role.VOLUNTEER, Role.COORDINATOR, Role.ADMIN)
# Objects a volunteer owns: another volunteer reaching them by id must be refused.
PERSONAL = {"member_id", "hours_id", "registration_id"}
EXTRA_FIELDS = {
    "role": "admin",
    "status": "confirmed",
    "amount_cents": 1,
    "capacity": 999,
    "member_id": None,
    "site_id": "elsewhere",
    "id": None,
}


@dataclass
class World:
    """Real objects of the home site, and the ids that name them."""

    ids: dict[str, str]
    owner: Volunteer  # a volunteer whose sign-up, hours and registration the ids name
    stranger: Volunteer  # another volunteer of the same site


@pytest.fixture(scope="module")
async def world(settings: Settings, stack: Client, home: SiteUnderTest) -> World:
    engine = create_async_engine(settings.database_url)
    center = Center(stack, settings, home, engine)
    try:
        role = await center.role()
        owner, stranger = await center.volunteers(2, [role])
        shift_id = await center.shift(role, starts_in=timedelta(days=5), capacity=3)
        assert (await center.sign_up(shift_id, owner)).status == 201
        hours = await center.ok(
            "POST",
            "/hours",
            status=201,
            json={
                "member_id": str(owner.member_id),
                "shift_id": shift_id,
                "minutes": 60,
                "reason": "setup",
            },
        )
        staff = home.tokens["coordinator"]
        member = await stack.call("checkin", "POST", "/members", token=home.tokens["kiosk"], json={})
        visit = await stack.call(
            "checkin",
            "POST",
            "/visits",
            token=home.tokens["kiosk"],
            json={"member_id": member.body["member_id"], "purpose": "drop_in"},
        )
        start = (datetime.now(UTC) + timedelta(days=4)).replace(microsecond=0)
        event = await stack.call(
            "gatherings",
            "POST",
            "/events",
            token=staff,
            json={
                "title": "Sober bowling",
                "kind": "sports",
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=2)).isoformat(),
                "capacity": 10,
            },
        )
        group = await stack.call(
            "gatherings",
            "POST",
            "/groups",
            token=staff,
            json={
                "name": "Peer support",
                "facilitator_member_id": str(stranger.member_id),
                "capacity": 8,
                "first_start": start.replace(tzinfo=None).isoformat(),
                "duration_minutes": 60,
                "rrule": "FREQ=WEEKLY;COUNT=2",
            },
        )
        sessions = await stack.call(
            "gatherings",
            "GET",
            f"/groups/{group.body['group_id']}/sessions",
            token=staff,
        )
        registration = await stack.call(
            "gatherings",
            "POST",
            f"/events/{event.body['event_id']}/registrations",
            token=owner.token,
            json={"member_id": str(owner.member_id), "adults": 1, "children": 0},
        )
        for reply in (member, visit, event, group, sessions, registration):
            assert reply.status in (200, 201), reply.body
    finally:
        await engine.dispose()
    ids = {
        "role_id": role,
        "shift_id": shift_id,
        "hours_id": hours["hours_id"],
        "member_id": str(owner.member_id),
        "visit_id": visit.body["visit_id"],
        "event_id": event.body["event_id"],
        "group_id": group.body["group_id"],
        "session_id": sessions.body["items"][0]["session_id"],
        "registration_id": registration.body["registration_id"],
    }
    return World(ids, owner, stranger)


def _with_ids() -> list[tuple[str, Operation]]:
    return [(service, op) for service, op in operations() if "{" in op.path and op.roles is not None]


def _label(item: tuple[str, Operation]) -> str:
    return f"{item[1].method} {item[1].path}"


def _lower_role(op: Operation) -> Role | None:
    lowest = min(LADDER.index(role) for role in op.roles or ())
    return LADDER[lowest - 1] if lowest > 0 else None


def _reveals(body: object, world: World) -> list[str]:
    text = str(body)
    return [name for name, value in world.ids.items() if value in text]


@pytest.mark.parametrize("route", _with_ids(), ids=_label)
async def test_an_object_is_out_of_reach_of_other_sites_people_and_lower_roles(
    route: tuple[str, Operation],
    stack: Client,
    home: SiteUnderTest,
    elsewhere: SiteUnderTest,
    world: World,
) -> None:
    service, op = route
    path = path_for(op, world.ids)
    body = body_for(op, world.ids)
    callers = {
        "no token": (None, {401}),
        "another site's kiosk": (elsewhere.tokens["kiosk"], {401, 403, 404}),
        "another site's coordinator": (elsewhere.tokens["coordinator"], {403, 404}),
        "another site's volunteer": (elsewhere.tokens["volunteer"], {403, 404}),
    }
    lower = _lower_role(op)
    if lower is not None:
        callers[f"a {lower} of the site"] = (home.tokens[lower], {403})
    if Role.VOLUNTEER in (op.roles or ()) and PERSONAL & set(_names(op.path)):
        callers["another volunteer of the site"] = (world.stranger.token, {403, 404})
    for who, (token, refusals) in callers.items():
        reply = await stack.call(service, op.method, path, token=token, json=body)
        assert reply.status in refusals, (who, reply.status, reply.body)
        assert reply.headers["Content-Type"].startswith("application/problem+json"), who
        assert not _reveals(reply.body, world), (who, reply.body)


def _names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def test_every_id_route_is_in_the_matrix() -> None:
    """The matrix derives from the routes themselves: a new id route is covered without editing this file."""
    routes = _with_ids()
    assert {service for service, _ in routes} == set(SERVICES) - {"audit"}
    assert len(routes) >= 30


# Item 13: mass assignment


def _writes() -> list[tuple[str, Operation]]:
    return [(service, op) for service, op in operations() if op.body is not None]


def test_every_request_model_refuses_unknown_fields() -> None:
    for service in SERVICES:
        for op in api_of(service).operations:
            for model in (op.body, op.query):
                if model is not None:
                    assert model.model_config.get("extra") == "forbid", (
                        op.method,
                        op.path,
                        model.__name__,
                    )


@pytest.mark.parametrize("route", _writes(), ids=_label)
async def test_fields_a_caller_may_not_set_are_refused(
    route: tuple[str, Operation], stack: Client, home: SiteUnderTest, world: World
) -> None:
    service, op = route
    path = path_for(op, world.ids)
    token = home.tokens[next(role for role in reversed(LADDER) if role in (op.roles or ()))]
    declared = set(op.body.model_fields)  # type: ignore[union-attr]
    for field, value in EXTRA_FIELDS.items():
        if field in declared:
            continue
        body = {
            **body_for(op, world.ids),
            field: str(uuid.uuid4()) if value is None else value,
        }  # type: ignore[dict-item]
        reply = await stack.call(service, op.method, path, token=token, json=body)
        assert reply.status == 422, (field, reply.status, reply.body)
        assert reply.body["code"] == "invalid_request"
        assert [e["type"] for e in reply.body["errors"]] == ["extra_forbidden"], reply.body


async def test_a_refused_update_changes_nothing(stack: Client, home: SiteUnderTest, world: World) -> None:
    staff = home.tokens["coordinator"]
    shift = f"/shifts/{world.ids['shift_id']}"
    event = f"/events/{world.ids['event_id']}"
    before = [
        (await stack.call("volunteering", "GET", shift, token=staff)).body,
        (await stack.call("gatherings", "GET", event, token=staff)).body,
    ]
    for service, path, body in (
        (
            "volunteering",
            shift,
            {"capacity": 9, "status": "cancelled", "site_id": "elsewhere"},
        ),
        (
            "gatherings",
            event,
            {"capacity": 9, "status": "cancelled", "id": str(uuid.uuid4())},
        ),
    ):
        reply = await stack.call(service, "PATCH", path, token=staff, json=body)
        assert (reply.status, reply.body["code"]) == (422, "invalid_request")
    after = [
        (await stack.call("volunteering", "GET", shift, token=staff)).body,
        (await stack.call("gatherings", "GET", event, token=staff)).body,
    ]
    assert after == before
    signup = await stack.call(
        "volunteering",
        "POST",
        f"/shifts/{world.ids['shift_id']}/signups",
        token=world.stranger.token,
        json={"status": "confirmed", "role": "admin"},
    )
    assert signup.status == 422
    roster = await stack.call("volunteering", "GET", f"/shifts/{world.ids['shift_id']}/signups", token=staff)
    assert str(world.stranger.member_id) not in str(roster.body)
