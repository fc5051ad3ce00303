"""The consumer runner against the real RabbitMQ and PostgreSQL: inbox dedupe, dead-lettering, retries; and the
audit consumer of the running stack."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import asyncpg
import pytest
from pydantic import create_model
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.checkin.models import Base, CheckinUnitOfWork
from shared.clock import SystemClock
from shared.contracts import EventData
from shared.db import asyncpg_dsn, create_engine, make_connector
from shared.events import ReceivedEvent
from shared.inbox import Delivered, Subscriptions, inbox_consumer
from shared.messaging import (
    DEAD_REASON_HEADER,
    Broker,
    Consumer,
    declare_consumer_queue,
    declare_exchanges,
)
from shared.outbox import amqp_message
from shared.settings import Settings
from tests.integration.helpers import (
    cloud_event,
    header_text,
    message_of,
    queue_state,
    sub_prefix,
    unique,
)
from tests.support.broker import delete_prefixed
from tests.support.stack import Client, eventually, make_site

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, service="it-consumer")
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def scratch(engine: AsyncEngine) -> AsyncIterator[str]:
    """A schema of this module's own for the effects the test consumers record; dropped afterwards."""
    schema = unique("it_effects_")
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.execute(
            text(
                f'CREATE TABLE "{schema}".effects (id bigserial PRIMARY KEY, consumer text NOT NULL, '
                "event_id uuid NOT NULL, routing_type text NOT NULL)"
            )
        )
    yield schema
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def probe_contract(event_type: str) -> type[EventData]:
    """A contract of this test's own, for its own routing key (the payload is whatever the test sends)."""
    probe = create_model("Probe", __base__=EventData, n=(int | None, None))
    probe.event_type = event_type
    return probe


class Recorder:
    """A consumer's ``process`` built the way services build it (``shared.inbox.inbox_consumer``): one transaction
    per batch, the inbox claims and the effects together. Each effect is a row in the scratch schema; ``fail``
    may raise from the handler, inside that transaction, after the effect was written."""

    def __init__(
        self,
        sessionmaker: Callable[[], AsyncConnection],
        schema: str,
        consumer: str,
        routing_key: str,
        fail: Callable[[Delivered[EventData], int], None] | None = None,
    ) -> None:
        self.schema = schema
        self.consumer = consumer
        self.fail = fail
        self.calls: list[list[uuid.UUID]] = []
        self._process = inbox_consumer(
            consumer,
            lambda: CheckinUnitOfWork(sessionmaker, Base.metadata),
            SystemClock(),
            Subscriptions({probe_contract(routing_key): self.apply}),
        )

    async def __call__(self, events: list[ReceivedEvent]) -> None:
        self.calls.append([e.id for e in events])
        await self._process(events)

    async def apply(self, event: Delivered[EventData], *, uow: CheckinUnitOfWork, clock: object) -> None:
        await uow.session.execute(
            text(
                f'INSERT INTO "{self.schema}".effects (consumer, event_id, routing_type) '
                "VALUES (:consumer, :event_id, :type)"
            ),
            {"consumer": self.consumer, "event_id": event.id, "type": event.data.event_type},
        )
        if self.fail is not None:
            self.fail(event, len(self.calls))

    async def effects(self, engine: AsyncEngine) -> list[uuid.UUID]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(f'SELECT event_id FROM "{self.schema}".effects WHERE consumer = :c ORDER BY id'),
                {"c": self.consumer},
            )
            return [r.event_id for r in rows]


@contextlib.asynccontextmanager
async def harness(
    settings: Settings, label: str
) -> AsyncIterator[tuple[Settings, str, str, aio_pika.abc.AbstractConnection]]:
    """A broker prefix of the test's own (nothing else binds there), a consumer name and routing key, and a
    publishing connection; removes the queues and exchanges afterwards."""
    isolated = sub_prefix(settings, label)
    name = unique(f"{label}-")
    routing_key = f"it.{label}.{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        yield isolated, name, routing_key, connection
    finally:
        await connection.close()
        await delete_prefixed(isolated, [name])


async def publish(
    connection: aio_pika.abc.AbstractConnection, settings: Settings, routing_key: str, messages: list[aio_pika.Message]
) -> None:
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    exchange, _ = await declare_exchanges(channel, settings)
    for message in messages:
        await exchange.publish(message, routing_key=routing_key, timeout=5)
    await channel.close()


@contextlib.asynccontextmanager
async def running_consumer(settings: Settings, name: str, bindings: list[str], process: Any) -> AsyncIterator[Consumer]:
    broker = Broker(settings, name=name)
    broker.start()
    consumer = Consumer(broker, name=name, bindings=bindings, process=process, settings=settings)
    task = asyncio.create_task(consumer.run(), name=f"it-consumer-{name}")
    try:

        async def started() -> bool:
            if task.done():
                task.result()
            return consumer.queue is not None

        await eventually(started, timeout=10)
        yield consumer

        async def settled() -> bool:
            return consumer.unacked == 0

        await eventually(settled, timeout=10)  # a graceful stop: every delivery acked or dead-lettered
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await broker.close()


async def queue_settles_empty(connection: aio_pika.abc.AbstractConnection, queue_name: str) -> None:
    """Nothing left to deliver and, once the broker has noticed the closed connection, no consumer attached."""

    states = []

    async def settled() -> bool:
        states.append(await queue_state(connection, queue_name))
        return states[-1] == (0, 0)

    try:
        await eventually(settled, timeout=10)
    except AssertionError as exc:
        raise AssertionError(f"queue never settled: (ready, consumers) went {states[:3]} … {states[-3:]}") from exc


async def declare_queue(connection: aio_pika.abc.AbstractConnection, settings: Settings, name: str, key: str) -> None:
    """The consumer's queue, declared exactly as the consumer will, so messages can wait in it before it starts."""
    channel = await connection.channel()
    await declare_consumer_queue(channel, settings, name, [key])
    await channel.close()


async def drain_dead(
    connection: aio_pika.abc.AbstractConnection, queue_name: str
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    channel = await connection.channel()
    dead = await channel.declare_queue(f"{queue_name}.dead", passive=True)
    messages = []
    while (message := await dead.get(no_ack=True, fail=False)) is not None:
        messages.append(message)
    await channel.close()
    return messages


async def wait_drained(connection: aio_pika.abc.AbstractConnection, queue_name: str) -> None:
    async def drained() -> bool:
        return await queue_state(connection, queue_name) == (0, 1)

    await eventually(drained, timeout=20)


async def test_a_redelivered_event_is_applied_once(settings: Settings, engine: AsyncEngine, scratch: str) -> None:
    async with harness(settings, "dedupe") as (isolated, name, key, connection):
        recorder = Recorder(make_connector(engine), scratch, name, key)
        twice = cloud_event(key)
        others = [cloud_event(key), cloud_event(key)]
        queue_name = isolated.queue_name(name)
        await declare_queue(connection, isolated, name, key)
        # Duplicates inside one batch (they wait in the queue before the consumer starts) ...
        await publish(
            connection,
            isolated,
            key,
            [message_of(twice), message_of(others[0]), message_of(twice), message_of(others[1])],
        )
        async with running_consumer(isolated, name, [key], recorder):

            async def applied() -> bool:
                return len(await recorder.effects(engine)) == 3

            await eventually(applied, timeout=20)
            await wait_drained(connection, queue_name)
            # ... and a redelivery in a later batch.
            await publish(connection, isolated, key, [message_of(twice)])

            async def third_copy_seen() -> bool:
                return sum(ids.count(uuid.UUID(twice["id"])) for ids in recorder.calls) == 3

            await eventually(third_copy_seen, timeout=20)
            await wait_drained(connection, queue_name)
        # With the consumer gone, anything unacked would be back in the queue: nothing is.
        await queue_settles_empty(connection, queue_name)
        effects = await recorder.effects(engine)
        assert sorted(effects) == sorted(uuid.UUID(ce["id"]) for ce in [twice, *others])
        assert await drain_dead(connection, queue_name) == []


async def test_a_consumer_the_broker_cancels_subscribes_again(
    settings: Settings, engine: AsyncEngine, scratch: str
) -> None:
    """The consumer subscribes under aio-pika, which does not restore that subscription: when the broker cancels it
    (here: its queue is deleted), the consumer declares the queue again, subscribes and goes on consuming."""
    async with harness(settings, "cancelled") as (isolated, name, key, connection):
        recorder = Recorder(make_connector(engine), scratch, name, key)
        before, after = cloud_event(key), cloud_event(key)
        queue_name = isolated.queue_name(name)
        await declare_queue(connection, isolated, name, key)
        await publish(connection, isolated, key, [message_of(before)])
        async with running_consumer(isolated, name, [key], recorder):

            async def applied(count: int) -> bool:
                return len(await recorder.effects(engine)) == count

            await eventually(lambda: applied(1), timeout=20)
            channel = await connection.channel()
            await channel.queue_delete(queue_name)
            await channel.close()

            async def consumed_again() -> bool:  # declared, bound, and a consumer on it
                probe = await connection.channel()
                try:
                    queue = await probe.declare_queue(queue_name, passive=True)
                except aio_pika.exceptions.ChannelClosed:
                    return False
                finally:
                    with contextlib.suppress(Exception):
                        await probe.close()
                return bool(queue.declaration_result.consumer_count)

            await eventually(consumed_again, timeout=20)
            await publish(connection, isolated, key, [message_of(after)])
            await eventually(lambda: applied(2), timeout=20)
        assert sorted(await recorder.effects(engine)) == sorted(uuid.UUID(ce["id"]) for ce in [before, after])


async def test_a_malformed_message_is_dead_lettered_and_the_valid_ones_are_processed(
    settings: Settings, engine: AsyncEngine, scratch: str
) -> None:
    async with harness(settings, "malformed") as (isolated, name, key, connection):
        recorder = Recorder(make_connector(engine), scratch, name, key)
        valid = [cloud_event(key, n=i) for i in range(100)]
        queue_name = isolated.queue_name(name)
        await declare_queue(connection, isolated, name, key)
        poison = aio_pika.Message(b"not json", message_id="poison", content_type="application/cloudevents+json")
        await publish(
            connection,
            isolated,
            key,
            [message_of(ce) for ce in valid[:50]] + [poison] + [message_of(ce) for ce in valid[50:]],
        )
        async with running_consumer(isolated, name, [key], recorder):

            async def applied() -> bool:
                return len(await recorder.effects(engine)) == 100

            await eventually(applied, timeout=20)
            await wait_drained(connection, queue_name)
        await queue_settles_empty(connection, queue_name)
        assert sorted(await recorder.effects(engine)) == sorted(uuid.UUID(ce["id"]) for ce in valid)
        dead = await drain_dead(connection, queue_name)
        assert len(dead) == 1
        [parked] = dead
        assert parked.body == b"not json"
        assert parked.message_id == "poison"
        assert header_text(parked.headers[DEAD_REASON_HEADER]).startswith("malformed")
        assert header_text(parked.headers["x-rcc-original-routing-key"]) == key


async def test_a_message_failing_on_its_own_is_dead_lettered_and_the_rest_of_its_batch_applied(
    settings: Settings, engine: AsyncEngine, scratch: str
) -> None:
    async with harness(settings, "fatal") as (isolated, name, key, connection):
        events = [cloud_event(key, n=i) for i in range(10)]
        bad = uuid.UUID(events[4]["id"])

        def fail(event: Delivered[EventData], _call: int) -> None:
            if event.id == bad:
                raise ValueError(f"cannot apply {bad}")

        recorder = Recorder(make_connector(engine), scratch, name, key, fail=fail)
        queue_name = isolated.queue_name(name)
        await declare_queue(connection, isolated, name, key)
        await publish(connection, isolated, key, [message_of(ce) for ce in events])
        async with running_consumer(isolated, name, [key], recorder):

            async def applied() -> bool:
                return len(await recorder.effects(engine)) == 9

            await eventually(applied, timeout=20)
            await wait_drained(connection, queue_name)
        await queue_settles_empty(connection, queue_name)
        # The failed batch rolled back (its inbox claims too), so every good event was applied, once.
        good = [uuid.UUID(ce["id"]) for ce in events if ce is not events[4]]
        assert sorted(await recorder.effects(engine)) == sorted(good)
        # It came in a batch first (after the consumer's one-message slow start), then was applied alone.
        assert any(bad in call and len(call) > 1 for call in recorder.calls)
        assert [bad] in recorder.calls
        [parked] = await drain_dead(connection, queue_name)
        assert parked.message_id == str(bad)
        reason = header_text(parked.headers[DEAD_REASON_HEADER])
        assert "ValueError" in reason
        assert str(bad) in reason


async def test_a_transient_failure_is_retried_then_applied_once(
    settings: Settings, engine: AsyncEngine, scratch: str
) -> None:
    async with harness(settings, "transient") as (isolated, name, key, connection):
        event = cloud_event(key)

        def fail(_event: Delivered[EventData], call: int) -> None:
            if call <= 2:
                raise OSError("database restarting")

        recorder = Recorder(make_connector(engine), scratch, name, key, fail=fail)
        queue_name = isolated.queue_name(name)
        async with running_consumer(isolated, name, [key], recorder):
            await publish(connection, isolated, key, [message_of(event)])

            async def applied() -> bool:
                return len(await recorder.effects(engine)) == 1

            await eventually(applied, timeout=20)
            await wait_drained(connection, queue_name)
        await queue_settles_empty(connection, queue_name)
        assert recorder.calls == [[uuid.UUID(event["id"])]] * 3
        assert await recorder.effects(engine) == [uuid.UUID(event["id"])]
        assert await drain_dead(connection, queue_name) == []


async def test_the_audit_consumer_records_a_twice_delivered_event_once(settings: Settings, stack: Client) -> None:
    queue_name = settings.queue_name("audit")
    event = cloud_event("checkin.member_registered", site_id="site-audit-dup", member_id=str(uuid.uuid4()))
    markers = [
        cloud_event("checkin.member_registered", site_id="site-audit-dup", member_id=str(uuid.uuid4()))
        for _ in range(2)
    ]
    dsn = asyncpg_dsn(settings.database_url)
    db = await asyncpg.connect(dsn)
    connection = await aio_pika.connect(settings.amqp_url)
    try:

        async def consuming() -> bool:
            state = await queue_state(connection, queue_name)
            return state is not None and state[1] >= 1

        await eventually(consuming, timeout=10)
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange, _ = await declare_exchanges(channel, settings)

        async def count(ce: dict[str, Any]) -> int:
            return await db.fetchval("SELECT count(*) FROM audit.audit_log WHERE event_id = $1", uuid.UUID(ce["id"]))

        # Twice in a row (most likely one batch), then once more after it was recorded (a later batch). One
        # queue, one consumer, in order: once a marker is in, everything published before it was handled.
        for burst, marker in (([event, event], markers[0]), ([event], markers[1])):
            for ce in (*burst, marker):
                await exchange.publish(amqp_message(ce), routing_key=ce["type"], timeout=5)

            async def marker_recorded(marker: dict[str, Any] = marker) -> bool:
                return await count(marker) == 1

            await eventually(marker_recorded, timeout=20)
            assert await count(event) == 1

        body = await db.fetchval("SELECT body FROM audit.audit_log WHERE event_id = $1", uuid.UUID(event["id"]))
        assert ReceivedEvent.from_body(body.encode()).attributes == event
    finally:
        await connection.close()
        await db.close()

    verdict = await stack.call("audit", "GET", "/audit/verify", token=(await make_site(settings)).tokens["admin"])
    assert verdict.status == 200
    assert verdict.body["ok"] is True, verdict.body
