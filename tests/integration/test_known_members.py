"""Members that don't exist: gatherings and volunteering accept only members check-in registered at the site
concerned, learnt from its ``checkin.member_registered`` events (and ``checkin.member_erased``), with no call to
check-in; and their calendar feeds tell calendar programs when a session or a shift moved (SEQUENCE,
LAST-MODIFIED)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.gatherings import handlers as gatherings_handlers
from services.gatherings.models import Base as GatheringsBase
from services.gatherings.models import GatheringsUnitOfWork
from services.volunteering import handlers as volunteering_handlers
from services.volunteering.models import Base as VolunteeringBase
from services.volunteering.models import VolunteeringUnitOfWork
from shared import access
from shared.clock import SystemClock
from shared.contracts.checkin import MemberRegistered
from shared.db import make_connector
from shared.events import ReceivedEvent
from shared.inbox import Subscriptions, inbox_consumer
from shared.settings import Settings
from tests.support import members
from tests.support.stack import Client, Reply, SiteUnderTest, eventually, services

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Client]:
    async with services(
        settings.model_copy(update={"rate_limit_per_minute": 0}), ["checkin", "gatherings", "volunteering"]
    ) as client:
        yield client


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(settings.database_url)
    yield engine
    await engine.dispose()


def soon(days: float = 2) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


async def ok(
    stack: Client, service: str, method: str, path: str, token: str, json: Any = None, status: int = 200
) -> Any:
    reply = await stack.call(service, method, path, token=token, json=json)
    assert reply.status == status, (method, path, reply.body)
    return reply.body


class Places:
    """One site's gatherings and volunteering objects that name a member, and a call per route that names one."""

    def __init__(self, stack: Client, site: SiteUnderTest) -> None:
        self.stack, self.site = stack, site
        self.coordinator = site.tokens["coordinator"]

    async def set_up(self, engine: AsyncEngine) -> Places:
        starts = soon()
        self.event_id = (
            await ok(
                self.stack,
                "gatherings",
                "POST",
                "/events",
                self.coordinator,
                {
                    "title": "Payday potluck",
                    "kind": "payday",
                    "starts_at": starts.isoformat(),
                    "ends_at": (starts + timedelta(hours=3)).isoformat(),
                    "capacity": 10,
                },
                201,
            )
        )["event_id"]
        [facilitator] = await members.register(self.stack, self.site, known_to=["gatherings"])
        group = await ok(
            self.stack, "gatherings", "POST", "/groups", self.coordinator, self.group_body(facilitator), 201
        )
        sessions = await ok(self.stack, "gatherings", "GET", f"/groups/{group['group_id']}/sessions", self.coordinator)
        self.session_id = sessions["items"][0]["session_id"]
        self.role_id = f"role_{uuid.uuid4().hex[:8]}"
        await ok(
            self.stack,
            "volunteering",
            "POST",
            "/roles",
            self.coordinator,
            {"role_id": self.role_id, "title": "Front desk"},
            201,
        )
        self.shift_id = (
            await ok(
                self.stack,
                "volunteering",
                "POST",
                "/shifts",
                self.coordinator,
                {
                    "role_id": self.role_id,
                    "starts_at": starts.isoformat(),
                    "ends_at": (starts + timedelta(hours=3)).isoformat(),
                    "capacity": 5,
                },
                201,
            )
        )["shift_id"]
        self.engine = engine
        return self

    def group_body(self, facilitator: uuid.UUID) -> dict[str, Any]:
        first = (datetime.now(UTC) + timedelta(days=3)).replace(tzinfo=None, hour=18, minute=0, second=0, microsecond=0)
        return {
            "name": "Peer group",
            "facilitator_member_id": str(facilitator),
            "capacity": 8,
            "first_start": first.isoformat(),
            "duration_minutes": 60,
            "rrule": "FREQ=WEEKLY;COUNT=2",
        }

    async def volunteer(self, member_id: uuid.UUID) -> None:
        """A volunteer profile made while the member is known (for the routes that need one first)."""
        await ok(
            self.stack, "volunteering", "PUT", f"/volunteers/{member_id}", self.coordinator, {"roles": [self.role_id]}
        )

    def routes(self) -> dict[str, Callable[[uuid.UUID], Any]]:
        """Each route that names a member, called for ``member_id`` by this site's coordinator."""
        call, c = self.stack.call, self.coordinator
        return {
            "facilitator": lambda m: call("gatherings", "POST", "/groups", token=c, json=self.group_body(m)),
            "event registration": lambda m: call(
                "gatherings", "POST", f"/events/{self.event_id}/registrations", token=c, json={"member_id": str(m)}
            ),
            "session registration": lambda m: call(
                "gatherings", "POST", f"/sessions/{self.session_id}/registrations", token=c, json={"member_id": str(m)}
            ),
            "roster attendance": lambda m: call(
                "gatherings", "POST", f"/sessions/{self.session_id}/attendance", token=c, json={"member_id": str(m)}
            ),
            "volunteer profile": lambda m: call(
                "volunteering", "PUT", f"/volunteers/{m}", token=c, json={"roles": [self.role_id]}
            ),
            "sign-up": lambda m: call(
                "volunteering", "POST", f"/shifts/{self.shift_id}/signups", token=c, json={"member_id": str(m)}
            ),
            "hours": lambda m: call(
                "volunteering",
                "POST",
                "/hours",
                token=c,
                json={"member_id": str(m), "shift_id": self.shift_id, "minutes": 60, "reason": "front desk"},
            ),
        }


NEEDS_PROFILE = {"sign-up", "hours"}


async def test_a_made_up_member_is_refused_by_every_route_that_names_one(
    stack: Client, site: SiteUnderTest, engine: AsyncEngine
) -> None:
    places = await Places(stack, site).set_up(engine)
    for name, route in places.routes().items():
        reply: Reply = await route(uuid.uuid4())
        assert (reply.status, reply.body["code"]) == (422, "unknown_member"), (name, reply.body)
        assert reply.headers["Content-Type"].startswith("application/problem+json")
    async with engine.connect() as conn:
        left = await conn.scalar(
            text(
                "SELECT (SELECT count(*) FROM gatherings.registrations WHERE site_id = :s)"
                " + (SELECT count(*) FROM volunteering.volunteers WHERE site_id = :s)"
                " + (SELECT count(*) FROM volunteering.signups WHERE site_id = :s)"
                " + (SELECT count(*) FROM volunteering.hours WHERE site_id = :s)"
                " + (SELECT count(*) FROM gatherings.attendance WHERE site_id = :s)"
            ),
            {"s": site.site_id},
        )
    assert left == 0


async def test_another_sites_member_is_refused_as_if_unknown(
    stack: Client, site: SiteUnderTest, other_site: SiteUnderTest, engine: AsyncEngine
) -> None:
    places = await Places(stack, site).set_up(engine)
    [theirs] = await members.register(stack, other_site)
    # Even with a profile at their own site, a member is not another site's volunteer.
    await ok(stack, "volunteering", "PUT", f"/volunteers/{theirs}", other_site.tokens["coordinator"], {"roles": []})
    for name, route in places.routes().items():
        reply = await route(theirs)
        # Their profile is another site's: that answer (403) stays, and tells nothing new.
        expected = (403, "wrong_site") if name == "volunteer profile" else (422, "unknown_member")
        assert (reply.status, reply.body["code"]) == expected, (name, reply.body)


async def test_a_member_registered_at_check_in_is_accepted_once_the_event_arrived(
    stack: Client, site: SiteUnderTest, engine: AsyncEngine
) -> None:
    places = await Places(stack, site).set_up(engine)
    routes = places.routes()
    for name in routes:
        [member] = await members.register(stack, site)  # waits for both services to have the event
        if name in NEEDS_PROFILE:
            await places.volunteer(member)
        reply = await routes[name](member)
        assert reply.status in (200, 201), (name, reply.body)


async def test_the_kiosk_member_is_accepted_without_asking_check_in(
    stack: Client, site: SiteUnderTest, engine: AsyncEngine
) -> None:
    """The services answer from their own view: a member check-in registered is accepted once the view has them
    (here put there directly), whatever check-in would say now."""
    places = await Places(stack, site).set_up(engine)
    [member] = await members.new_known(engine, site.site_id)
    reply = await places.routes()["event registration"](member)
    assert reply.status == 201, reply.body


def _received(event_type: str, site_id: str, data: dict[str, Any], event_id: uuid.UUID | None = None) -> ReceivedEvent:
    return ReceivedEvent(
        id=event_id or uuid.uuid4(),
        type=event_type,
        source="/rcc/checkin",
        subject=data["member_id"],
        site_id=site_id,
        time=datetime.now(UTC),
        data=data,
        attributes={},
    )


async def test_redelivered_and_repeated_member_events_are_harmless(
    stack: Client, site: SiteUnderTest, other_site: SiteUnderTest, engine: AsyncEngine
) -> None:
    member = uuid.uuid4()
    at = datetime(2026, 1, 5, 9, tzinfo=UTC)
    registered = {"member_id": str(member), "registered_at": at.isoformat(), "registered_by": "kiosk"}
    first = _received("checkin.member_registered", site.site_id, registered)
    # The same event again, the same fact under a new event id, and a forged registration at another site.
    again = _received("checkin.member_registered", site.site_id, registered, first.id)
    repeated = _received(
        "checkin.member_registered", site.site_id, {**registered, "registered_at": (at + timedelta(days=1)).isoformat()}
    )
    elsewhere = _received("checkin.member_registered", other_site.site_id, registered)
    consumers = {
        "gatherings": inbox_consumer(
            "test-known-members",
            lambda: GatheringsUnitOfWork(make_connector(engine), GatheringsBase.metadata),
            SystemClock(),
            Subscriptions({MemberRegistered: gatherings_handlers.record_member_registered}),
        ),
        "volunteering": inbox_consumer(
            "test-known-members",
            lambda: VolunteeringUnitOfWork(make_connector(engine), VolunteeringBase.metadata),
            SystemClock(),
            Subscriptions({MemberRegistered: volunteering_handlers.record_member_registered}),
        ),
    }
    for process in consumers.values():
        await process([first, again])
        await process([again, repeated])
        await process([elsewhere])
    async with engine.connect() as conn:
        for schema in consumers:
            rows = list(
                await conn.execute(
                    text(f"SELECT site_id, registered_at, erased_at FROM {schema}.known_members WHERE member_id = :m"),
                    {"m": member},
                )
            )
            assert [tuple(r) for r in rows] == [(site.site_id, at, None)], schema
    places = await Places(stack, site).set_up(engine)
    assert (await places.routes()["event registration"](member)).status == 201


async def test_an_erased_member_keeps_their_history_but_gets_nothing_new(
    stack: Client, site: SiteUnderTest, engine: AsyncEngine
) -> None:
    places = await Places(stack, site).set_up(engine)
    [member] = await members.register(stack, site)
    await places.volunteer(member)
    seat = await places.routes()["event registration"](member)
    assert seat.status == 201, seat.body
    erased = await stack.call("checkin", "POST", f"/members/{member}/erase", token=site.tokens["admin"])
    assert erased.status == 200, erased.body

    async def erased_everywhere() -> bool:
        async with engine.connect() as conn:
            return (
                await conn.scalar(
                    text(
                        "SELECT count(*) FROM (SELECT erased_at FROM gatherings.known_members WHERE member_id = :m"
                        " UNION ALL SELECT erased_at FROM volunteering.known_members WHERE member_id = :m) AS k"
                        " WHERE erased_at IS NOT NULL"
                    ),
                    {"m": member},
                )
                == 2
            )

    await eventually(erased_everywhere)
    routes = places.routes()
    for name in ("session registration", "sign-up", "facilitator"):
        reply = await routes[name](member)
        assert (reply.status, reply.body["code"]) == (422, "member_erased"), (name, reply.body)
    # What happened stays reachable: the registration, the profile, hours worked before the erasure.
    status = await ok(stack, "gatherings", "GET", f"/registrations/{seat.body['registration_id']}", places.coordinator)
    assert status["member_id"] == str(member)
    await ok(stack, "volunteering", "GET", f"/volunteers/{member}", places.coordinator)
    assert (await routes["hours"](member)).status == 201
    assert (await routes["roster attendance"](member)).status == 200


# iCalendar: SEQUENCE and LAST-MODIFIED


async def _feed(stack: Client, url: str) -> dict[str, icalendar.Event]:
    async with stack.http.get(url) as response:
        assert response.status == 200
        parsed = icalendar.Calendar.from_ical(await response.read())
    return {str(v["uid"]).split("@")[0]: v for v in parsed.walk("VEVENT")}


async def test_a_moved_session_has_a_higher_sequence_and_a_new_last_modified(
    stack: Client, site: SiteUnderTest, engine: AsyncEngine
) -> None:
    places = await Places(stack, site).set_up(engine)
    url = stack.urls["gatherings"] + f"/calendar.ics?site={site.site_id}"
    before = (await _feed(stack, url))[places.session_id]
    assert before.decoded("sequence") == 0
    assert before.decoded("last-modified").tzinfo is not None
    await asyncio.sleep(1.1)  # LAST-MODIFIED counts whole seconds
    session = await ok(stack, "gatherings", "GET", f"/sessions/{places.session_id}", places.coordinator)
    start = datetime.fromisoformat(session["starts_at"]) + timedelta(hours=1)
    await ok(
        stack,
        "gatherings",
        "POST",
        f"/sessions/{places.session_id}/move",
        places.coordinator,
        {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()},
    )
    moved = (await _feed(stack, url))[places.session_id]
    assert moved.decoded("sequence") == 1
    assert moved.decoded("last-modified") > before.decoded("last-modified")
    assert moved.decoded("dtstart") == start
    assert str(moved["status"]) == "CONFIRMED"
    await ok(stack, "gatherings", "POST", f"/sessions/{places.session_id}/cancel", places.coordinator)
    cancelled = (await _feed(stack, url))[places.session_id]
    assert (cancelled.decoded("sequence"), str(cancelled["status"])) == (2, "CANCELLED")
    assert cancelled.decoded("last-modified") >= moved.decoded("last-modified")


async def test_a_moved_shift_has_a_higher_sequence_in_the_volunteers_feed(
    stack: Client, site: SiteUnderTest, engine: AsyncEngine
) -> None:
    places = await Places(stack, site).set_up(engine)
    [member] = await members.register(stack, site)
    await places.volunteer(member)
    async with engine.begin() as conn:
        _, token = await access.issue_token(conn, role=access.Role.VOLUNTEER, site_id=site.site_id, member_id=member)
    await ok(stack, "volunteering", "POST", f"/shifts/{places.shift_id}/signups", token, {}, 201)
    feed = await ok(stack, "volunteering", "POST", "/me/calendar-feed", token, status=201)
    url = stack.urls["volunteering"] + feed["url"]
    [before] = (await _feed(stack, url)).values()
    assert before.decoded("sequence") == 0
    await asyncio.sleep(1.1)  # LAST-MODIFIED counts whole seconds
    shift = await ok(stack, "volunteering", "GET", f"/shifts/{places.shift_id}", places.coordinator)
    start = datetime.fromisoformat(shift["starts_at"]) + timedelta(hours=2)
    await ok(
        stack,
        "volunteering",
        "PATCH",
        f"/shifts/{places.shift_id}",
        places.coordinator,
        {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=3)).isoformat()},
    )
    [moved] = (await _feed(stack, url)).values()
    assert str(moved["uid"]) == str(before["uid"])
    assert moved.decoded("sequence") == 1
    assert moved.decoded("last-modified") > before.decoded("last-modified")
    assert moved.decoded("dtstart") == start
    # More seats change no time: calendars need not fetch it again.
    await ok(stack, "volunteering", "PATCH", f"/shifts/{places.shift_id}", places.coordinator, {"capacity": 9})
    assert (await _feed(stack, url))[str(before["uid"]).split("@")[0]].decoded("sequence") == 1
    await ok(stack, "volunteering", "POST", f"/shifts/{places.shift_id}/cancel", places.coordinator)
    [cancelled] = (await _feed(stack, url)).values()
    assert str(cancelled["status"]) == "CANCELLED"
    assert cancelled.decoded("sequence") > moved.decoded("sequence")
