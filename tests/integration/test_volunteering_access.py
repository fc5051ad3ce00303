"""Who may do what in the volunteering service, bad input, and the schema the migration builds matching the models."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from services.volunteering import SCHEMA
from services.volunteering.models import Base
from shared.settings import Settings
from tests.support.stack import Client, make_site
from tests.support.volunteering import Center, Volunteer

pytestmark = pytest.mark.integration

STAFF = {"coordinator", "admin"}
PEOPLE = {"volunteer", "coordinator", "admin"}


@dataclass
class Scene:
    center: Center
    role: str
    shift_id: str
    mine: Volunteer  # holds the site's own "volunteer" token
    theirs: Volunteer
    their_hours: str


async def scene(center: Center) -> Scene:
    role = await center.role()
    volunteer_token = center.site.tokens["volunteer"]
    [row] = await center.rows(
        "SELECT member_id FROM access.tokens WHERE token_id = :t", t=center.site.token_ids["volunteer"]
    )
    mine = Volunteer(row.member_id, volunteer_token)
    await center.set_up_volunteer(mine.member_id, [role], {})
    [theirs] = await center.volunteers(1, [role])
    shift_id = await center.shift(role, starts_in=timedelta(days=3), capacity=3)
    for person in (mine, theirs):
        assert (await center.sign_up(shift_id, person)).status == 201
    hours = await center.ok(
        "POST",
        "/hours",
        status=201,
        json={"member_id": str(theirs.member_id), "shift_id": shift_id, "minutes": 60, "reason": "setup"},
    )
    return Scene(center, role, shift_id, mine, theirs, hours["hours_id"])


def _matrix(s: Scene) -> list[tuple[str, str, Any, set[str]]]:
    start = (datetime.now(UTC) + timedelta(days=6)).replace(microsecond=0)
    shift_body = {
        "role_id": s.role,
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=2)).isoformat(),
        "capacity": 2,
    }
    return [
        ("GET", "/roles", None, PEOPLE),
        ("POST", "/roles", {"role_id": f"r_{uuid.uuid4().hex[:6]}", "title": "Greeter"}, STAFF),
        ("PUT", f"/roles/{s.role}", {"title": "Front desk"}, STAFF),
        ("PUT", f"/volunteers/{uuid.uuid4()}", {"roles": [s.role]}, STAFF),
        (
            "POST",
            f"/volunteers/{s.theirs.member_id}/trainings",
            {"training_id": "orientation", "completed_on": "2026-01-05"},
            STAFF,
        ),
        ("POST", "/shifts", shift_body, STAFF),
        (
            "POST",
            "/shift-series",
            {
                "role_id": s.role,
                "first_start": start.replace(tzinfo=None).isoformat(),
                "duration_minutes": 60,
                "rrule": "FREQ=WEEKLY;COUNT=2",
                "capacity": 1,
            },
            STAFF,
        ),
        ("GET", "/shifts", None, PEOPLE),
        ("GET", f"/shifts/{s.shift_id}", None, PEOPLE),
        ("PATCH", f"/shifts/{s.shift_id}", {"needs_supervisor": True}, STAFF),
        ("GET", f"/shifts/{s.shift_id}/signups", None, STAFF),
        ("POST", f"/shifts/{s.shift_id}/signups", {"member_id": str(s.theirs.member_id)}, PEOPLE),
        ("DELETE", f"/shifts/{s.shift_id}/signups/{s.mine.member_id}", None, PEOPLE),
        ("GET", "/me/shifts", None, {"volunteer"}),
        ("GET", "/me/hours", None, {"volunteer"}),
        ("POST", "/me/calendar-feed", None, {"volunteer"}),
        ("GET", "/hours", None, STAFF),
        ("GET", f"/hours/{s.their_hours}", None, PEOPLE),
        (
            "POST",
            "/hours",
            {"member_id": str(s.theirs.member_id), "shift_id": s.shift_id, "minutes": 15, "reason": "matrix"},
            STAFF,
        ),
        ("POST", f"/hours/{s.their_hours}/correct", {"minutes": 45, "reason": "matrix"}, STAFF),
        ("POST", f"/hours/{s.their_hours}/approve", None, STAFF),
        ("POST", f"/hours/{s.their_hours}/reject", {"reason": "matrix"}, STAFF),
        ("POST", f"/shifts/{s.shift_id}/cancel", None, STAFF),
    ]


async def test_every_endpoint_needs_a_token_and_the_right_role(center: Center) -> None:
    s = await scene(center)
    tokens = center.site.tokens
    for method, path, body, allowed in _matrix(s):
        missing = await center.call(method, path, json=body)
        assert (missing.status, missing.body["code"]) == (401, "missing_token"), (method, path)
        forged = await center.call(method, path, json=body, token="rcc_" + "x" * 43)
        assert (forged.status, forged.body["code"]) == (401, "invalid_token"), (method, path)
        kiosk = await center.call(method, path, json=body, token=tokens["kiosk"])
        assert (kiosk.status, kiosk.body["code"]) == (403, "wrong_role"), (method, path)
        for role in ("volunteer", "coordinator", "admin"):
            reply = await center.call(method, path, json=body, token=tokens[role])
            if role in allowed:
                assert reply.status not in (401, 500) and (reply.body or {}).get("code") != "wrong_role", (
                    method,
                    path,
                    role,
                    reply.body,
                )
            else:
                assert (reply.status, reply.body["code"]) == (403, "wrong_role"), (method, path, role)


async def test_a_volunteer_sees_and_changes_only_their_own_sign_ups_and_hours(center: Center) -> None:
    s = await scene(center)
    me, them = s.mine, s.theirs
    for method, path, body in [
        ("DELETE", f"/shifts/{s.shift_id}/signups/{them.member_id}", None),
        ("POST", f"/shifts/{s.shift_id}/signups", {"member_id": str(them.member_id)}),
        ("GET", f"/volunteers/{them.member_id}", None),
        ("GET", f"/hours/{s.their_hours}", None),
    ]:
        reply = await center.call(method, path, token=me.token, json=body)
        assert (reply.status, reply.body["code"]) == (403, "not_yours"), (method, path)
        assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert (await center.call("GET", f"/hours/{s.their_hours}", token=them.token)).status == 200
    assert (await center.call("GET", f"/volunteers/{me.member_id}", token=me.token)).status == 200
    mine = await center.ok("GET", "/me/hours", token=me.token)
    assert mine["items"] == []
    # Nothing changed for the other volunteer.
    assert {r.status for r in await center.signups(s.shift_id)} == {"confirmed"}


async def test_another_sites_staff_and_volunteers_cannot_touch_this_sites_shifts(
    settings: Settings, center: Center, vstack: Client
) -> None:
    s = await scene(center)
    elsewhere = await make_site(settings)
    coordinator = elsewhere.tokens["coordinator"]
    for method, path, body, code in [
        ("GET", f"/shifts/{s.shift_id}", None, "shift_not_found"),
        ("PATCH", f"/shifts/{s.shift_id}", {"capacity": 9}, "shift_not_found"),
        ("POST", f"/shifts/{s.shift_id}/cancel", None, "shift_not_found"),
        ("GET", f"/shifts/{s.shift_id}/signups", None, "shift_not_found"),
        ("DELETE", f"/shifts/{s.shift_id}/signups/{s.mine.member_id}", None, "shift_not_found"),
        ("POST", f"/shifts/{s.shift_id}/signups", {"member_id": str(s.mine.member_id)}, "shift_not_found"),
        ("GET", f"/volunteers/{s.mine.member_id}", None, "volunteer_not_found"),
        (
            "POST",
            f"/volunteers/{s.mine.member_id}/trainings",
            {"training_id": "x", "completed_on": "2026-01-01"},
            "volunteer_not_found",
        ),
        ("GET", f"/hours/{s.their_hours}", None, "hours_not_found"),
        ("POST", f"/hours/{s.their_hours}/approve", None, "hours_not_found"),
        (
            "POST",
            "/hours",
            {"member_id": str(s.theirs.member_id), "shift_id": s.shift_id, "minutes": 5, "reason": "x"},
            "shift_not_found",
        ),
    ]:
        reply = await center.call(method, path, token=coordinator, json=body)
        assert (reply.status, reply.body["code"]) == (404, code), (method, path, reply.body)
    taken = await center.call("PUT", f"/volunteers/{s.mine.member_id}", token=coordinator, json={"roles": []})
    assert (taken.status, taken.body["code"]) == (403, "wrong_site")
    assert (await center.ok("GET", "/shifts", token=coordinator))["items"] == []
    their_volunteer = await center.call(
        "POST", f"/shifts/{s.shift_id}/signups", token=elsewhere.tokens["volunteer"], json={}
    )
    assert (their_volunteer.status, their_volunteer.body["code"]) == (404, "shift_not_found")
    # An admin works on any site.
    assert (await center.call("GET", f"/shifts/{s.shift_id}", token=elsewhere.tokens["admin"])).status == 200
    assert {r.status for r in await center.signups(s.shift_id)} == {"confirmed"}


def _bad_inputs(role: str, shift_id: str) -> list[tuple[str, str, Any, int, str]]:
    start = datetime(2030, 3, 1, 18, 0, tzinfo=UTC)
    shift = {
        "role_id": role,
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=2)).isoformat(),
        "capacity": 2,
    }
    series = {
        "role_id": role,
        "first_start": "2030-03-05T18:00",
        "duration_minutes": 60,
        "rrule": "FREQ=WEEKLY;COUNT=2",
        "capacity": 1,
    }
    return [
        ("POST", "/shifts", {**shift, "starts_at": "2030-03-01T18:00:00"}, 422, "invalid_request"),
        ("POST", "/shifts", {**shift, "capacity": 0}, 422, "invalid_request"),
        ("POST", "/shifts", {**shift, "note": "bring keys"}, 422, "invalid_request"),
        ("POST", "/shifts", {**shift, "ends_at": start.isoformat()}, 422, "ends_before_start"),
        ("POST", "/shifts", {**shift, "role_id": "no_such_role"}, 422, "unknown_role"),
        ("POST", "/shifts", b"{not json", 400, "malformed_json"),
        ("POST", "/shifts", b"role_id=x", 415, "unsupported_media_type"),
        ("POST", "/shift-series", {**series, "rrule": "FREQ=SECONDLY"}, 422, "bad_rrule"),
        ("POST", "/shift-series", {**series, "rrule": "FREQ=WEEKLY;BYDAY=XX"}, 422, "bad_rrule"),
        ("POST", "/shift-series", {**series, "end": "20:00"}, 422, "invalid_request"),
        ("POST", "/shift-series", {**series, "first_start": "2030-03-05T18:00:00+01:00"}, 422, "invalid_request"),
        ("POST", "/shift-series", {**series, "exceptions": ["soon"]}, 422, "invalid_request"),
        ("POST", "/roles", {"role_id": "Front Desk", "title": "x"}, 422, "invalid_request"),
        ("POST", "/roles", {"role_id": role, "title": "again"}, 409, "role_exists"),
        ("PUT", f"/volunteers/{uuid.uuid4()}", {"roles": ["no_such_role"]}, 422, "unknown_role"),
        ("PUT", f"/volunteers/{uuid.uuid4()}", {"roles": [], "monthly_hours_goal": -1}, 422, "invalid_request"),
        ("PUT", "/volunteers/not-a-uuid", {"roles": []}, 404, "not_found"),
        ("PATCH", f"/shifts/{shift_id}", {}, 422, "invalid_request"),
        ("PATCH", f"/shifts/{shift_id}", {"starts_at": "2030-03-01T18:00:00"}, 422, "invalid_request"),
        ("POST", f"/shifts/{shift_id}/signups", {"member_id": "nobody"}, 422, "invalid_request"),
        ("POST", f"/shifts/{shift_id}/signups", {}, 422, "member_required"),
        ("POST", f"/shifts/{uuid.uuid4()}/signups", {"member_id": str(uuid.uuid4())}, 404, "shift_not_found"),
        (
            "POST",
            "/hours",
            {"member_id": str(uuid.uuid4()), "shift_id": shift_id, "minutes": -5, "reason": "x"},
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/hours",
            {"member_id": str(uuid.uuid4()), "shift_id": shift_id, "minutes": 5},
            422,
            "invalid_request",
        ),
        ("POST", f"/hours/{uuid.uuid4()}/reject", {}, 422, "invalid_request"),
        ("POST", f"/hours/{uuid.uuid4()}/approve", None, 404, "hours_not_found"),
        ("GET", "/shifts?from=someday", None, 422, "invalid_request"),
        ("GET", "/shifts?from=2030-01-01T10:00:00", None, 422, "naive_datetime"),
        ("GET", "/shifts?from=2030-01-01&to=2030-12-31", None, 422, "range_too_long"),
        ("GET", "/shifts?from=2030-01-10&to=2030-01-01", None, 422, "range_reversed"),
        ("GET", "/hours?from=2030-01-10&to=2030-01-01", None, 422, "range_reversed"),
        ("GET", "/hours?from=0001-01-01", None, 422, "date_out_of_range"),
        ("GET", "/shifts?cursor=bm9wZQ==", None, 422, "bad_cursor"),
        ("GET", "/shifts?limit=1000", None, 422, "invalid_request"),
        ("GET", "/hours?status=maybe", None, 422, "invalid_request"),
    ]


async def test_bad_input_gets_a_problem_with_a_code_and_changes_nothing(center: Center) -> None:
    role = await center.role()
    shift_id = await center.shift(role, starts_in=timedelta(days=2))
    before = await center.rows(
        "SELECT count(*) AS n FROM volunteering.outbox WHERE site_id = :s", s=center.site.site_id
    )
    for method, path, body, status, code in _bad_inputs(role, shift_id):
        if isinstance(body, bytes):
            content_type = "application/json" if body.startswith(b"{") else "application/x-www-form-urlencoded"
            reply = await center.call(
                method, path, token=center.coordinator, data=body, headers={"Content-Type": content_type}
            )
        else:
            reply = await center.call(method, path, token=center.coordinator, json=body)
        assert (reply.status, reply.body.get("code")) == (status, code), (method, path, body, reply.body)
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        assert reply.body["status"] == status
    after = await center.rows("SELECT count(*) AS n FROM volunteering.outbox WHERE site_id = :s", s=center.site.site_id)
    assert after[0].n == before[0].n


async def test_the_calendar_feed_needs_its_secret_and_nothing_else(center: Center) -> None:
    for path in ("/calendar/nothing.ics", f"/calendar/{'a' * 43}.ics", "/calendar/x"):
        reply = await center.call("GET", path)
        assert (reply.status, reply.body["code"]) == (404, "calendar_not_found")


async def test_the_migration_builds_the_schema_the_models_describe(engine: AsyncEngine) -> None:
    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, kind, _parents: name == SCHEMA if kind == "schema" else True,
                "compare_type": True,
                "version_table_schema": SCHEMA,
            },
        )
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as conn:
        found = await conn.run_sync(differences)
    # The shared messaging tables come from shared.migrate (outside this service); only its own tables count here.
    ours = [d for d in found if "outbox" not in repr(d) and "inbox" not in repr(d) and "idempotency" not in repr(d)]
    assert ours == []
