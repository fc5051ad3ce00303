"""Seats under concurrency, over HTTP against the real PostgreSQL and RabbitMQ: capacity is never exceeded, the
waitlist is first come first served, and promotion after cancellations and capacity changes follows the waitlist
order. Checked three ways: the HTTP answers, the database, and a replay of the event stream from the broker."""

from __future__ import annotations

import asyncio
import functools
import json
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import pytest

from services.gatherings import handlers
from services.gatherings.commands import CancelRegistration, Register
from services.gatherings.domain import Party, Room
from services.gatherings.models import Base, GatheringsUnitOfWork
from shared.clock import SystemClock
from shared.db import asyncpg_dsn, create_engine, make_connector
from shared.settings import Settings
from shared.uow import execute
from tests.support.stack import Client, Reply, SiteUnderTest, eventually, services

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Client]:
    # Hundreds of requests at once from one kiosk token would (rightly) be rate limited; here they stand for many
    # kiosks, phones and coordinators registering at the same moment.
    unlimited = settings.model_copy(update={"rate_limit_per_minute": 0})
    async with services(unlimited, ["checkin", "gatherings", "audit"]) as client:
        yield client


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(asyncpg_dsn(settings.database_url), min_size=1, max_size=4)
    yield pool
    await pool.close()


class Tap:
    """Every gatherings event published on the test's exchange, as the broker delivers them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.events: dict[str, dict[str, Any]] = {}

    async def __aenter__(self) -> Tap:
        self.connection = await aio_pika.connect(self.settings.amqp_url)
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(
            self.settings.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "gatherings.#")
        await queue.consume(self._receive, no_ack=True)
        return self

    async def _receive(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        event = json.loads(message.body)
        self.events[event["id"]] = event  # a redelivery is the same event

    async def __aexit__(self, *exc_info: object) -> None:
        await self.connection.close()

    def of(self, event_id: str) -> list[dict[str, Any]]:
        """The events about one sober event, in the order they were recorded (the outbox sequence)."""
        mine = [e for e in self.events.values() if e["data"].get("event_id") == event_id]
        return sorted(mine, key=lambda e: int(e["sequence"]))


async def create_event(stack: Client, site: SiteUnderTest, capacity: int, child_care_seats: int = 0) -> str:
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    reply = await stack.call(
        "gatherings",
        "POST",
        "/events",
        token=site.tokens["coordinator"],
        json={
            "title": "Sober bowling night",
            "kind": "sports",
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=2)).isoformat(),
            "capacity": capacity,
            "child_care_seats": child_care_seats,
        },
    )
    assert reply.status == 201, reply.body
    return reply.body["event_id"]


async def known(db: asyncpg.Pool, site: SiteUnderTest, count: int) -> Iterator[uuid.UUID]:
    """Members of the site as gatherings knows them once check-in's registrations arrived (put in its view here,
    before the race, so the race is only the registrations')."""
    made = [uuid.uuid4() for _ in range(count)]
    await db.executemany(
        "INSERT INTO gatherings.known_members (member_id, site_id, registered_at) VALUES ($1, $2, now())",
        [(m, site.site_id) for m in made],
    )
    return iter(made)


async def register(
    stack: Client, site: SiteUnderTest, event_id: str, member: uuid.UUID, adults: int = 1, children: int = 0
) -> Reply:
    return await stack.call(
        "gatherings",
        "POST",
        f"/events/{event_id}/registrations",
        token=site.tokens["kiosk"],
        json={"member_id": str(member), "adults": adults, "children": children},
    )


async def cancel(stack: Client, site: SiteUnderTest, registration_id: str) -> Reply:
    return await stack.call(
        "gatherings", "DELETE", f"/registrations/{registration_id}", token=site.tokens["coordinator"]
    )


async def registrations(db: asyncpg.Pool, event_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT registration_id::text AS id, status, adults, children, seq FROM gatherings.registrations "
        "WHERE gathering_id = $1 ORDER BY seq",
        uuid.UUID(event_id),
    )


async def seats(db: asyncpg.Pool, event_id: str) -> asyncpg.Record:
    return await db.fetchrow(
        "SELECT capacity, child_care_seats, taken_adults, taken_children FROM gatherings.gatherings "
        "WHERE gathering_id = $1",
        uuid.UUID(event_id),
    )


async def test_200_concurrent_registrations_for_20_seats(stack: Client, site: SiteUnderTest, db: asyncpg.Pool) -> None:
    for _ in range(3):
        event_id = await create_event(stack, site, capacity=20)
        people = await known(db, site, 200)
        replies = await asyncio.gather(*(register(stack, site, event_id, next(people)) for _ in range(200)))
        assert {r.status for r in replies} == {201}, [r.body for r in replies if r.status != 201][:3]
        confirmed = [r.body for r in replies if r.body["status"] == "confirmed"]
        waitlisted = [r.body for r in replies if r.body["status"] == "waitlisted"]
        assert len(confirmed) == 20
        assert sorted(w["position"] for w in waitlisted) == list(range(1, 181))

        # Arrival order is the order the database decided them in: the first 20 got seats, then the line formed.
        rows = await registrations(db, event_id)
        assert [r["status"] for r in rows] == ["confirmed"] * 20 + ["waitlisted"] * 180
        position = {w["registration_id"]: w["position"] for w in waitlisted}
        assert [position[r["id"]] for r in rows[20:]] == list(range(1, 181))
        assert tuple(await seats(db, event_id)) == (20, 0, 20, 0)

        roster = await stack.call(
            "gatherings", "GET", f"/events/{event_id}/registrations", token=site.tokens["coordinator"]
        )
        assert [(w["registration_id"], w["position"]) for w in roster.body["waitlist"]] == [
            (r["id"], i) for i, r in enumerate(rows[20:], start=1)
        ]


async def test_a_member_registering_twice_in_one_burst_gets_one_registration(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    """Registrations that arrive together are decided as one run: the same member's second and third in it are
    refused as they would be one after another, and the seats and the line count the first only."""
    event_id = await create_event(stack, site, capacity=5)
    people = list(await known(db, site, 20))
    twice = people[8]
    replies = await asyncio.gather(*(register(stack, site, event_id, m) for m in [*people, twice, twice]))
    assert Counter(r.status for r in replies) == {201: 20, 409: 2}
    refused = [r.body for r in replies if r.status == 409]
    mine = await db.fetchval(
        "SELECT registration_id::text FROM gatherings.registrations WHERE gathering_id = $1 AND member_id = $2",
        uuid.UUID(event_id),
        twice,
    )
    assert [(b["code"], b["registration_id"]) for b in refused] == [("already_registered", mine)] * 2
    rows = await registrations(db, event_id)
    assert [r["status"] for r in rows] == ["confirmed"] * 5 + ["waitlisted"] * 15
    assert tuple(await seats(db, event_id)) == (5, 0, 5, 0)


@dataclass
class Model:
    """What the event stream says the gathering looks like, replayed one event at a time."""

    capacity: int
    child_care_seats: int
    parties: dict[str, Party] = field(default_factory=dict)
    confirmed: set[str] = field(default_factory=set)
    waiting: list[str] = field(default_factory=list)

    @property
    def room(self) -> Room:
        adults = sum(self.parties[r].adults for r in self.confirmed)
        children = sum(self.parties[r].children for r in self.confirmed)
        assert adults <= self.capacity and children <= self.child_care_seats, "capacity exceeded"
        return Room(self.capacity - adults, self.child_care_seats - children)

    def settled(self) -> bool:
        """No waiting party fits the room left: promotion has done its work."""
        room = self.room
        return not any(room.fits(self.parties[r]) for r in self.waiting)

    def first_fitting(self) -> str | None:
        room = self.room
        return next((r for r in self.waiting if room.fits(self.parties[r])), None)


def replay(events: list[dict[str, Any]], capacity: int, child_care_seats: int) -> Model:
    model = Model(capacity, child_care_seats)
    for index, event in enumerate(events):
        data, kind = event["data"], event["type"].removeprefix("gatherings.")
        if kind != "promoted_from_waitlist":
            # A new transaction begins: the previous one left no waiting party that fits.
            assert model.settled(), f"event {index} ({kind}) found a waiting party that fits"
        registration = data.get("registration_id")
        if registration is not None:
            model.parties.setdefault(registration, Party(data["adults"], data["children"]))
        match kind:
            case "event_scheduled":
                model.capacity, model.child_care_seats = data["capacity"], data["child_care_seats"]
            case "registered":
                assert model.room.fits(model.parties[registration])
                model.confirmed.add(registration)
            case "waitlisted":
                assert not model.room.fits(model.parties[registration])
                model.waiting.append(registration)
                assert data["position"] == len(model.waiting)
            case "registration_cancelled":
                if data["previous_status"] == "confirmed":
                    model.confirmed.remove(registration)
                else:
                    model.waiting.remove(registration)
            case "promoted_from_waitlist":
                assert registration == model.first_fitting(), f"event {index}: promoted out of order"
                model.waiting.remove(registration)
                model.confirmed.add(registration)
        model.room  # noqa: B018 - asserts the capacity after every event
    assert model.settled()
    return model


async def test_concurrent_cancellations_and_registrations_never_exceed_capacity_and_promote_in_order(
    settings: Settings, stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    print(f"random seed {seed}")  # shown when the test fails, to replay the same parties and choices
    async with Tap(settings) as tap:
        for _ in range(3):
            event_id = await create_event(stack, site, capacity=12, child_care_seats=4)
            people = await known(db, site, 60)
            first = await asyncio.gather(
                *(
                    register(stack, site, event_id, next(people), rng.randint(1, 3), rng.choice([0, 0, 1, 2]))
                    for _ in range(40)
                )
            )
            assert {r.status for r in first} == {201}
            ids = [r.body["registration_id"] for r in first]
            confirmed = [r.body["registration_id"] for r in first if r.body["status"] == "confirmed"]
            to_cancel = rng.sample(confirmed, min(6, len(confirmed))) + rng.sample(
                [i for i in ids if i not in confirmed], 4
            )
            work = [cancel(stack, site, registration_id) for registration_id in to_cancel]
            work += [
                register(stack, site, event_id, next(people), rng.randint(1, 2), rng.choice([0, 1])) for _ in range(20)
            ]
            work.append(
                stack.call(
                    "gatherings",
                    "PATCH",
                    f"/events/{event_id}",
                    token=site.tokens["coordinator"],
                    json={"capacity": 14, "child_care_seats": 5},
                )
            )
            rng.shuffle(work)
            second = await asyncio.gather(*work)
            assert {r.status for r in second} <= {200, 201}, [r.body for r in second if r.status >= 300][:3]

            rows = await registrations(db, event_id)
            state = await seats(db, event_id)
            taken = [r for r in rows if r["status"] == "confirmed"]
            assert state["taken_adults"] == sum(r["adults"] for r in taken) <= state["capacity"] == 14
            assert state["taken_children"] == sum(r["children"] for r in taken) <= state["child_care_seats"] == 5
            room = Room(state["capacity"] - state["taken_adults"], state["child_care_seats"] - state["taken_children"])
            waiting = [r for r in rows if r["status"] == "waitlisted"]
            assert not any(room.fits(Party(r["adults"], r["children"])) for r in waiting)
            assert sum(r["status"] == "cancelled" for r in rows) == len(to_cancel)
            promoted = [
                r["id"]
                for r in await db.fetch(
                    "SELECT registration_id::text AS id FROM gatherings.registrations "
                    "WHERE gathering_id = $1 AND promoted_at IS NOT NULL",
                    uuid.UUID(event_id),
                )
            ]

            expected_events = 1 + len(rows) + len(to_cancel) + len(promoted) + 1

            async def whole_stream_arrived(event_id: str = event_id, expected: int = expected_events) -> bool:
                return len(tap.of(event_id)) >= expected

            await eventually(whole_stream_arrived)
            stream = tap.of(event_id)
            assert len(stream) == expected_events
            model = replay(stream, capacity=12, child_care_seats=4)
            assert model.confirmed == {r["id"] for r in taken}
            assert model.waiting == [r["id"] for r in waiting]


async def test_processes_deciding_at_once_are_kept_apart_by_the_row_lock(
    settings: Settings, stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    """Two "processes" (two engines, no in-process queue in front) register and cancel at once: the row lock
    alone keeps the seats and the waitlist right."""
    patient = settings.model_copy(update={"db_connect_timeout_s": 60.0, "db_statement_timeout_ms": 60_000})
    engines = [create_engine(patient, service=f"it-process-{i}") for i in range(2)]
    try:
        uows = [functools.partial(GatheringsUnitOfWork, make_connector(e), Base.metadata) for e in engines]
        event_id = uuid.UUID(await create_event(stack, site, capacity=15, child_care_seats=3))
        people = await known(db, site, 120)

        def registering(i: int, adults: int = 1, children: int = 0) -> Any:
            cmd = Register(
                site_id=site.site_id,
                actor_id="token:it",
                role="kiosk",
                acting_member_id=None,
                gathering_type="event",
                gathering_id=event_id,
                member_id=next(people),
                adults=adults,
                children=children,
            )
            return execute(handlers.register, cmd, uow=uows[i % 2](), clock=SystemClock())

        first = await asyncio.gather(*(registering(i, 1 + i % 2, int(i % 3 == 0)) for i in range(80)))
        confirmed = [o.body["registration_id"] for o in first if o.body["status"] == "confirmed"]
        cancels = [
            execute(
                handlers.cancel_registration,
                CancelRegistration(
                    site_id=site.site_id,
                    actor_id="token:it",
                    role="coordinator",
                    acting_member_id=None,
                    registration_id=uuid.UUID(r),
                ),
                uow=uows[i % 2](),
                clock=SystemClock(),
            )
            for i, r in enumerate(confirmed[:5])
        ]
        await asyncio.gather(*cancels, *(registering(i) for i in range(40)))
    finally:
        for engine in engines:
            await engine.dispose()
    rows = await registrations(db, str(event_id))
    state = await seats(db, str(event_id))
    taken = [r for r in rows if r["status"] == "confirmed"]
    assert state["taken_adults"] == sum(r["adults"] for r in taken) <= 15
    assert state["taken_children"] == sum(r["children"] for r in taken) <= 3
    room = Room(15 - state["taken_adults"], 3 - state["taken_children"])
    assert not any(room.fits(Party(r["adults"], r["children"])) for r in rows if r["status"] == "waitlisted")
    outbox = await db.fetch(
        "SELECT type, data FROM gatherings.outbox WHERE data->>'event_id' = $1 ORDER BY sequence", str(event_id)
    )
    stream = [{"type": r["type"], "data": json.loads(r["data"])} for r in outbox]
    model = replay(stream, capacity=15, child_care_seats=3)
    assert model.confirmed == {r["id"] for r in taken}


async def test_the_database_refuses_overbooking_whatever_the_code_does(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    event_id = await create_event(stack, site, capacity=2)
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "UPDATE gatherings.gatherings SET taken_adults = 3 WHERE gathering_id = $1", uuid.UUID(event_id)
        )
    with pytest.raises(asyncpg.UniqueViolationError):
        member = uuid.uuid4()
        for _ in range(2):
            await db.execute(
                "INSERT INTO gatherings.registrations (registration_id, gathering_id, site_id, member_id, adults, "
                "children, status, registered_by, registered_at) "
                "VALUES ($1, $2, $3, $4, 1, 0, 'waitlisted', 'kiosk', now())",
                uuid.uuid4(),
                uuid.UUID(event_id),
                site.site_id,
                member,
            )
