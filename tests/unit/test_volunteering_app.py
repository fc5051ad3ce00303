"""The volunteering app's wiring, without I/O: settings, routes, consumer bindings, OpenAPI, per-shift queues."""

from __future__ import annotations

import asyncio

from services.volunteering import consumers
from services.volunteering.app import create_app
from services.volunteering.settings import VolunteeringSettings
from services.volunteering.views import SETTINGS, SHIFT_LOCKS, KeyedLocks, api
from shared.settings import Settings
from shared.web import RATE_LIMITER


def test_the_app_takes_the_settings_it_is_given() -> None:
    app = create_app(Settings(rate_limit_per_minute=6, rate_limit_burst=2, max_body_bytes=1000))
    assert app[RATE_LIMITER].burst == 2
    assert isinstance(app[SETTINGS], VolunteeringSettings)
    assert app[SETTINGS].drop_cutoff_hours == 24
    assert app._client_max_size == 1000
    assert isinstance(app[SHIFT_LOCKS], KeyedLocks)


def test_every_route_of_the_issue_is_served() -> None:
    routes = {(route.method, route.resource.canonical) for route in create_app().router.routes()}
    assert {
        ("GET", "/shifts"),
        ("POST", "/shifts"),
        ("POST", "/shift-series"),
        ("PATCH", "/shifts/{shift_id}"),
        ("POST", "/shifts/{shift_id}/cancel"),
        ("POST", "/shifts/{shift_id}/signups"),
        ("DELETE", "/shifts/{shift_id}/signups/{member_id}"),
        ("GET", "/me/shifts"),
        ("GET", "/me/hours"),
        ("POST", "/me/calendar-feed"),
        ("GET", "/calendar/{feed}"),
        ("POST", "/roles"),
        ("GET", "/roles"),
        ("PUT", "/volunteers/{member_id}"),
        ("GET", "/volunteers/{member_id}"),
        ("POST", "/volunteers/{member_id}/trainings"),
        ("GET", "/hours"),
        ("POST", "/hours"),
        ("POST", "/hours/{hours_id}/correct"),
        ("POST", "/hours/{hours_id}/approve"),
        ("POST", "/hours/{hours_id}/reject"),
    } <= routes


def test_the_consumer_takes_check_ins_check_outs_and_members_registered_or_erased() -> None:
    assert consumers.QUEUE == "volunteering"
    assert set(consumers.BINDINGS) == {
        "checkin.visitor_checked_in",
        "checkin.visitor_checked_out",
        "checkin.member_registered",
        "checkin.member_erased",
    }


def test_openapi_describes_writes_with_their_problems_and_idempotency() -> None:
    document = api.openapi()
    sign_up = document["paths"]["/shifts/{shift_id}/signups"]["post"]
    assert {"201", "401", "403", "404", "409", "422"} <= set(sign_up["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in sign_up["parameters"])
    feed = document["paths"]["/calendar/{feed}"]["get"]
    assert "security" not in feed
    assert "text/calendar" in feed["responses"]["200"]["content"]


async def test_requests_for_one_shift_queue_while_other_shifts_go_ahead() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    release = asyncio.Event()

    async def hold(key: str, name: str) -> None:
        async with locks.hold(key):
            order.append(f"{name} in")
            if name == "first":
                await release.wait()
            order.append(f"{name} out")

    first = asyncio.create_task(hold("shift-a", "first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(hold("shift-a", "second"))
    other = asyncio.create_task(hold("shift-b", "other"))
    await other
    await asyncio.sleep(0)
    assert order == ["first in", "other in", "other out"]
    release.set()
    await asyncio.gather(first, second)
    assert order[3:] == ["first out", "second in", "second out"]
    assert locks._locks == {}
