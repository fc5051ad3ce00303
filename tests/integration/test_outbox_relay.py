"""The outbox relay against the real PostgreSQL and RabbitMQ: order, confirms, unroutable rows, NOTIFY wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import aio_pika
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.checkin.models import Base, CheckinUnitOfWork
from shared.contracts import EventData
from shared.contracts.checkin import MemberRegistered
from shared.db import create_engine, make_connector
from shared.events import CONTENT_TYPE, Event
from shared.messaging import Broker, declare_exchanges
from shared.outbox import OutboxRelay
from shared.settings import Settings
from tests.integration.helpers import sub_prefix, unique
from tests.support.broker import delete_prefixed
from tests.support.stack import eventually

pytestmark = pytest.mark.integration

OUTBOX = Base.metadata.tables["checkin.outbox"]


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, service="it-relay")
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
def sessionmaker(engine: AsyncEngine) -> Callable[[], AsyncConnection]:
    return make_connector(engine)


@contextlib.asynccontextmanager
async def ready_broker(settings: Settings) -> AsyncIterator[Broker]:
    broker = Broker(settings, name=unique("it-relay-"))
    broker.start()
    try:
        await asyncio.wait_for(broker.wait_ready(), 10)
        yield broker
    finally:
        await broker.close()


@contextlib.asynccontextmanager
async def tap_queue(settings: Settings, routing_key: str = "checkin.#") -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """An exclusive queue on the run's exchange: something routes there, so the broker confirms the publishes."""
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        exchange, _ = await declare_exchanges(channel, settings)
        tap = await channel.declare_queue(exclusive=True, auto_delete=True)
        await tap.bind(exchange, routing_key=routing_key)
        yield tap
    finally:
        await connection.close()


def relay_of(engine: AsyncEngine, broker: Broker, settings: Settings) -> OutboxRelay:
    return OutboxRelay(service="checkin", engine=engine, outbox=OUTBOX, broker=broker, settings=settings)


def member_registered(site_id: str = "site-relay") -> Event:
    member_id = uuid.uuid4()
    return Event(
        MemberRegistered(member_id=member_id, registered_at=datetime.now(UTC), registered_by="kiosk"),
        subject=str(member_id),
        site_id=site_id,
        actor_id="token:it",
    )


def probe_event(event_type: str) -> Event:
    """An event of a type no service (and no other test) binds: its own contract class."""
    contract = type(
        "Probe", (EventData,), {"__annotations__": {"n": int}, "event_type": event_type, "classification": "internal"}
    )
    return Event(contract(n=1), subject="probe", site_id="site-relay")


async def commit(sessionmaker: Callable[[], AsyncConnection], *events: Event) -> None:
    # Queued as built (the tests know their ids), as ``uow.emit`` would have queued them.
    async with CheckinUnitOfWork(sessionmaker, Base.metadata) as uow:
        uow.events.extend(events)
        await uow.commit()


async def rows_of(engine: AsyncEngine, events: list[Event]) -> dict[uuid.UUID, tuple[int, datetime | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(OUTBOX.c.event_id, OUTBOX.c.sequence, OUTBOX.c.published_at).where(
                OUTBOX.c.event_id.in_([e.event_id for e in events])
            )
        )
        return {r.event_id: (r.sequence, r.published_at) for r in rows}


async def publish_until_drained(relay: OutboxRelay) -> list[tuple[int, bool, bool]]:
    passes = []
    while True:
        published, full, failed = await relay.publish_pending()
        passes.append((published, full, failed))
        if not full or failed:
            return passes


async def test_rows_are_published_in_sequence_order_with_cloudevent_properties_and_marked(
    settings: Settings, engine: AsyncEngine, sessionmaker: Callable[[], AsyncConnection]
) -> None:
    small_batches = settings.model_copy(update={"relay_batch_size": 25})
    events = [member_registered() for _ in range(60)]
    # Several transactions, so the sequence is not just one statement's order.
    for chunk in range(0, 60, 12):
        await commit(sessionmaker, *events[chunk : chunk + 12])
    before = await rows_of(engine, events)
    assert len(before) == 60
    assert all(published_at is None for _, published_at in before.values())

    async with tap_queue(settings) as tap:
        async with ready_broker(settings) as broker:
            relay = relay_of(engine, broker, small_batches)
            passes = await publish_until_drained(relay)
        assert passes[0] == (25, True, False), passes  # a full batch asks for another pass at once
        assert not any(failed for _, _, failed in passes), passes
        assert sum(published for published, _, _ in passes) >= 60

        received: list[aio_pika.abc.AbstractIncomingMessage] = []
        ours = {e.event_id for e in events}

        async def all_arrived() -> bool:
            while (message := await tap.get(no_ack=True, fail=False)) is not None:
                received.append(message)
            return ours <= {uuid.UUID(m.message_id) for m in received if m.message_id}

        await eventually(all_arrived, timeout=10)

    after = await rows_of(engine, events)
    bodies = [json.loads(m.body) for m in received]
    # Everything the relay sent (ours and any row another test left behind) arrived in outbox order.
    sequences = [int(ce["sequence"]) for ce in bodies]  # a String extension: compare as numbers
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)
    mine = [(m, ce) for m, ce in zip(received, bodies, strict=True) if uuid.UUID(ce["id"]) in ours]
    assert [uuid.UUID(ce["id"]) for _, ce in mine] == sorted(ours, key=lambda i: after[i][0])
    by_id = {e.event_id: e for e in events}
    for message, ce in mine:
        event = by_id[uuid.UUID(ce["id"])]
        assert message.content_type == CONTENT_TYPE
        assert message.message_id == str(event.event_id) == ce["id"]
        assert message.routing_key == ce["type"] == "checkin.member_registered"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert ce["sequence"] == str(after[event.event_id][0])
        assert ce["specversion"] == "1.0"
        assert ce["source"] == "/rcc/checkin"
        assert ce["siteid"] == "site-relay"
        assert ce["subject"] == event.subject
        assert ce["data"]["member_id"] == event.subject
        assert ce["dataschema"] == "urn:rcc:schema:checkin.member_registered:v1"
    assert all(published_at is not None for _, published_at in after.values())


async def test_an_unroutable_row_stays_unpublished_until_a_queue_binds_its_type(
    settings: Settings, engine: AsyncEngine, sessionmaker: Callable[[], AsyncConnection]
) -> None:
    # A prefix of its own: the audit queue (bound to "#") of the run's exchange is not there.
    isolated = sub_prefix(settings, "unroutable-")
    event_type = f"checkin.it_unroutable_{uuid.uuid4().hex[:8]}"
    event = probe_event(event_type)
    await commit(sessionmaker, event)
    queue_name = isolated.queue_name("unroutable-probe")
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        async with ready_broker(isolated) as broker:
            relay = relay_of(engine, broker, isolated)
            _, _, failed = await relay.publish_pending()
            assert failed
            assert (await rows_of(engine, [event]))[event.event_id][1] is None
            # It steps aside for a while (backoff) instead of being re-sent on the very next pass.
            assert await relay.publish_pending() == (0, False, False)
            assert (await rows_of(engine, [event]))[event.event_id][1] is None

            channel = await connection.channel()
            exchange, _ = await declare_exchanges(channel, isolated)
            queue = await channel.declare_queue(queue_name, durable=False, auto_delete=False)
            await queue.bind(exchange, routing_key=event_type)

            async def published_once_due() -> bool:
                published, _, _ = await relay.publish_pending()
                return published >= 1

            await eventually(published_once_due, timeout=10)
        _, published_at = (await rows_of(engine, [event]))[event.event_id]
        assert published_at is not None

        async def delivered() -> bool:
            return (await queue.get(no_ack=True, fail=False)) is not None

        await eventually(delivered, timeout=10)
    finally:
        with contextlib.suppress(Exception):
            cleanup = await connection.channel()
            await cleanup.queue_delete(queue_name)
        await connection.close()
        await delete_prefixed(isolated, [])


async def test_without_a_connected_broker_nothing_is_published_or_marked(
    settings: Settings, engine: AsyncEngine, sessionmaker: Callable[[], AsyncConnection]
) -> None:
    event = member_registered()
    await commit(sessionmaker, event)

    never_started = Broker(settings, name="it-never-started")
    assert not never_started.is_ready
    assert await relay_of(engine, never_started, settings).publish_pending() == (0, False, False)

    closed = Broker(settings, name="it-closed")
    closed.start()
    await asyncio.wait_for(closed.wait_ready(), 10)
    await closed.close()
    assert not closed.is_ready
    assert await relay_of(engine, closed, settings).publish_pending() == (0, False, False)

    unreachable = Broker(settings.model_copy(update={"amqp_url": "amqp://guest:guest@127.0.0.1:1/"}), name="it-down")
    unreachable.start()
    try:
        await asyncio.sleep(0.2)
        assert not unreachable.is_ready
        assert await relay_of(engine, unreachable, settings).publish_pending() == (0, False, False)
    finally:
        await unreachable.close()

    assert (await rows_of(engine, [event]))[event.event_id][1] is None
    # Once a broker is there, the row goes out (and stops being a backlog for later tests).
    async with tap_queue(settings), ready_broker(settings) as broker:
        await publish_until_drained(relay_of(engine, broker, settings))
    assert (await rows_of(engine, [event]))[event.event_id][1] is not None


async def test_run_wakes_on_notify_long_before_the_poll_interval(
    settings: Settings, engine: AsyncEngine, sessionmaker: Callable[[], AsyncConnection]
) -> None:
    slow_poll = settings.model_copy(update={"relay_poll_interval_s": 30.0})
    async with tap_queue(settings) as tap, ready_broker(settings) as broker:
        relay = relay_of(engine, broker, slow_poll)
        passes: list[int] = []
        running = 0
        original = relay.publish_pending

        async def counting() -> tuple[int, bool, bool]:
            nonlocal running
            running += 1
            try:
                return await original()
            finally:
                running -= 1
                passes.append(1)

        relay.publish_pending = counting  # type: ignore[method-assign]
        task = asyncio.create_task(relay.run())
        try:
            # The first pass, then the one the listener triggers once it LISTENs; then it sleeps for 30 s.
            async def settled() -> bool:
                return len(passes) >= 2 and running == 0

            await eventually(settled, timeout=10)
            await asyncio.sleep(0.2)
            assert len(passes) == 2

            event = member_registered()
            committed_at = asyncio.get_running_loop().time()
            await commit(sessionmaker, event)

            async def published() -> bool:
                return (await rows_of(engine, [event]))[event.event_id][1] is not None

            await eventually(published, timeout=2.0)
            assert asyncio.get_running_loop().time() - committed_at < 2.0
            assert len(passes) >= 3
            assert not task.done()

            seen: set[str | None] = set()

            async def on_the_tap() -> bool:
                while (message := await tap.get(no_ack=True, fail=False)) is not None:
                    seen.add(message.message_id)
                return str(event.event_id) in seen

            await eventually(on_the_tap, timeout=5)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_rows_behind_a_full_batch_of_unconfirmed_rows_are_still_published(
    settings: Settings, engine: AsyncEngine, sessionmaker: Callable[[], AsyncConnection]
) -> None:
    """A row the broker will not confirm (here: unroutable) must not hold back every row committed after it."""
    # Nothing older may wait in the outbox: publish it to the run's exchange, where a tap takes everything.
    async with tap_queue(settings, "#"), ready_broker(settings) as broker:
        await publish_until_drained(relay_of(engine, broker, settings))

    isolated = sub_prefix(settings, "starved-")
    small_batches = isolated.model_copy(update={"relay_batch_size": 3})
    suffix = uuid.uuid4().hex[:8]
    unbound_type, bound_type = f"checkin.it_unbound_{suffix}", f"checkin.it_bound_{suffix}"
    stuck = [probe_event(unbound_type) for _ in range(3)]
    behind = probe_event(bound_type)
    await commit(sessionmaker, *stuck)
    await commit(sessionmaker, behind)
    queue_name = isolated.queue_name("starved-probe")
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        exchange, _ = await declare_exchanges(channel, isolated)
        queue = await channel.declare_queue(queue_name, durable=False, auto_delete=False)
        await queue.bind(exchange, routing_key=bound_type)
        async with ready_broker(isolated) as broker:
            relay = relay_of(engine, broker, small_batches)
            for _ in range(5):
                await relay.publish_pending()
            behind_published = (await rows_of(engine, [behind]))[behind.event_id][1] is not None
            # Leave nothing unpublished for later tests: let the stuck rows through too.
            await queue.bind(exchange, routing_key=unbound_type)
            cleanup_relay = relay_of(engine, broker, isolated)

            async def stuck_rows_published() -> bool:
                await cleanup_relay.publish_pending()  # they are retried once their backoff is over
                return all(at is not None for _, at in (await rows_of(engine, stuck)).values())

            await eventually(stuck_rows_published, timeout=10)
    finally:
        with contextlib.suppress(Exception):
            cleanup = await connection.channel()
            await cleanup.queue_delete(queue_name)
        await connection.close()
        await delete_prefixed(isolated, [])
    assert behind_published, (
        "a committed, routable row stays unpublished for as long as relay_batch_size older rows are refused"
    )
