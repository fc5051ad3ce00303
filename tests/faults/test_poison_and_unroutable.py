"""Messages that cannot be processed and events that no queue receives, on the running services:

- poison among 100 valid check-ins: one message that is not a CloudEvent and one well-formed event its handler
  cannot apply are parked in the consumer's ``<queue>.dead`` with the reason in ``x-rcc-dead-reason``, after a
  bounded number of deliveries, while all 100 valid check-ins become attendance, each once;
- a consumer that dies every time it holds a message (the process crashes on it): the broker parks the message
  after ``delivery_limit`` deliveries instead of redelivering it forever, and the consumer goes on;
- check-ins published while no queue is bound (unroutable: the broker returns them): not one outbox row is marked
  sent; once the queues exist they are all published, and audited once each.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import pytest

from services.registry import SERVICES
from shared.events import ReceivedEvent
from shared.messaging import (
    DEAD_REASON_HEADER,
    Broker,
    Consumer,
    declare_consumer_queue,
    declare_exchanges,
)
from shared.settings import Settings
from tests.integration.helpers import cloud_event, header_text, message_of, queue_state
from tests.support.report import report
from tests.support.stack import Client, Reply, eventually, make_site, services
from tests.support.tally import audit_entries, outbox, post_all, tally, unpublished

pytestmark = pytest.mark.e2e

VALID = 100


async def publish(settings: Settings, routing_key: str, messages: list[aio_pika.Message]) -> None:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange, _ = await declare_exchanges(channel, settings)
        for message in messages:
            await exchange.publish(message, routing_key=routing_key, timeout=5)
    finally:
        await connection.close()


async def parked(settings: Settings, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Everything in ``<queue>.dead``, taken out."""
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        dead = await channel.declare_queue(settings.queue_name(queue) + ".dead", passive=True)
        messages = []
        while (message := await dead.get(no_ack=True, fail=False)) is not None:
            messages.append(message)
        return messages
    finally:
        await connection.close()


async def depth(settings: Settings, queue: str) -> tuple[int, int] | None:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        return await queue_state(connection, queue)
    finally:
        await connection.close()


def deliveries(message: aio_pika.abc.AbstractIncomingMessage) -> int:
    """How often the broker had delivered the message before it was parked (quorum queues count returns in
    ``x-delivery-count``; a first delivery has none)."""
    return int((message.headers or {}).get("x-delivery-count", 0)) + 1


async def test_poison_among_100_check_ins_is_dead_lettered_with_its_reason_and_the_rest_are_attended(
    isolated: Settings, db: asyncpg.Pool
) -> None:
    site = await make_site(isolated, capacity=500)
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    async with services(isolated, ["checkin", "gatherings"]) as stack:
        created = await stack.call(
            "gatherings",
            "POST",
            "/events",
            token=site.tokens["coordinator"],
            json={
                "title": "Recovery walk",
                "kind": "sports",
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=2)).isoformat(),
                "capacity": 500,
            },
        )
        assert created.status == 201, created.body
        event_id = created.body["event_id"]
        body = {"anonymous": True, "purpose": "sober_event", "ref": event_id}

        async def check_ins(n: int) -> list[Reply | BaseException]:
            return await post_all(
                stack.http,
                lambda: stack.urls["checkin"],
                [("/visits", body)] * n,
                token=site.tokens["kiosk"],
                concurrency=8,
            )

        answers = await check_ins(VALID // 2)
        # Amid the stream: bytes that are no CloudEvent, and a well-formed check-in event without its visit.
        unreadable = aio_pika.Message(
            b"\x00{not json", message_id=str(uuid.uuid4()), content_type="application/cloudevents+json"
        )
        unappliable = cloud_event(
            "checkin.visitor_checked_in", site_id=site.site_id, purpose="sober_event", ref=event_id
        )
        poison = {unreadable.message_id, unappliable["id"]}
        await publish(isolated, "checkin.visitor_checked_in", [unreadable, message_of(unappliable)])
        answers += await check_ins(VALID - VALID // 2)
        accepted = {a.body["visit_id"] for a in answers if isinstance(a, Reply) and a.status == 201}

        async def settled() -> bool:
            attended = await db.fetchval("SELECT count(DISTINCT visit_id) FROM gatherings.attendance")
            dead = await depth(isolated, isolated.queue_name("gatherings") + ".dead")
            return attended >= len(accepted) and dead is not None and dead[0] >= len(poison)

        await eventually(settled, timeout=60, interval=0.25)
        await eventually(lambda: _drained(isolated, stack), timeout=30, interval=0.25)
        dead = await parked(isolated, "gatherings")

    attendance = Counter(str(r["visit_id"]) for r in await db.fetch("SELECT visit_id FROM gatherings.attendance"))
    dead_ids = Counter(m.message_id for m in dead)
    reasons = {m.message_id: header_text((m.headers or {}).get(DEAD_REASON_HEADER, "")) for m in dead}
    for message_id, reason in reasons.items():
        print(f"parked {message_id}: {reason[:120]}")
    report(
        "poison among 100 check-ins",
        {
            **tally(accepted, attendance).counts("attendance_"),
            "poison_not_parked": sum(1 for p in poison if dead_ids[p] == 0),
            "parked_twice": sum(n - 1 for n in dead_ids.values() if n > 1),
            "valid_parked": sum(n for m, n in dead_ids.items() if m not in poison),
            "parked_without_reason": sum(1 for r in reasons.values() if not r),
            "deliveries_over_limit": sum(1 for m in dead if deliveries(m) > isolated.delivery_limit),
        },
        accepted=len(accepted),
        parked=len(dead),
        deliveries=max(map(deliveries, dead), default=0),
    )
    assert len(accepted) == VALID
    assert reasons[unreadable.message_id].startswith("malformed")
    # Read by the consumer's contract and found wanting: malformed too, saying where (never the values).
    assert reasons[unappliable["id"]].startswith("malformed: checkin.visitor_checked_in payload: ")


async def _drained(settings: Settings, stack: Client) -> bool:
    return await depth(settings, settings.queue_name("gatherings")) == (0, 1)


async def test_a_message_its_consumer_dies_on_is_parked_by_the_broker_after_the_delivery_limit(
    isolate: Any,
) -> None:
    """The broker's bound, for what our own dead-lettering cannot catch: a process that dies while it holds the
    message (the consumer's channel goes away unacked, as on SIGKILL) gets it redelivered, ``delivery_limit``
    times at most; then the message is parked and the next consumer only sees the valid messages."""
    _, settings = await isolate(delivery_limit=3)
    name, key = "gatherings", "checkin.visitor_checked_in"
    deadly = cloud_event(key)
    valid = [cloud_event(key, n=i) for i in range(VALID)]
    await publish(settings, key, [message_of(deadly)])
    held: Counter[uuid.UUID] = Counter()
    applied: Counter[uuid.UUID] = Counter()
    crashes = 0
    for _ in range(settings.delivery_limit + 3):
        holding = asyncio.Event()

        async def process(events: list[ReceivedEvent], holding: asyncio.Event = holding) -> None:
            held.update(e.id for e in events)
            if any(e.id == uuid.UUID(deadly["id"]) for e in events):
                holding.set()
                await asyncio.Event().wait()  # the process is about to die holding it
            applied.update(e.id for e in events)

        async with _consumer(settings, name, [key], process):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await holding.wait()
            if not holding.is_set():
                break
            crashes += 1
    await publish(settings, key, [message_of(ce) for ce in valid])

    async def record(events: list[ReceivedEvent]) -> None:
        applied.update(e.id for e in events)

    async with _consumer(settings, name, [key], record):

        async def all_applied() -> bool:
            return len(applied) >= VALID

        await eventually(all_applied, timeout=30, interval=0.1)
    dead = await parked(settings, name)
    deadly_id = uuid.UUID(deadly["id"])
    report(
        "a message its consumer dies on",
        {
            **tally((uuid.UUID(ce["id"]) for ce in valid), applied).counts("valid_"),
            "not_parked": 0 if [m.message_id for m in dead] == [deadly["id"]] else 1,
            "deliveries_over_limit": max(0, held[deadly_id] - settings.delivery_limit - 1),
        },
        deliveries=held[deadly_id],
        crashes=crashes,
        delivery_limit=settings.delivery_limit,
    )
    assert applied[deadly_id] == 0


async def test_a_message_its_consumer_dies_on_does_not_take_its_batch_to_the_dead_letter_queue(
    isolate: Any,
) -> None:
    """The killer sits among valid messages that are delivered with it. Every crash costs each message the dead
    process held one delivery; the consumer's slow start (one message at a time until a first-time delivery has
    been handled) means only the killer is held again and again, so it alone reaches the limit and is parked."""
    _, settings = await isolate(delivery_limit=3)
    name, key = "gatherings", "checkin.visitor_checked_in"
    deadly = cloud_event(key)
    deadly_id = uuid.UUID(deadly["id"])
    before = [cloud_event(key, n=i) for i in range(10)]
    after = [cloud_event(key, n=i) for i in range(10, 40)]
    valid = before + after
    await publish(settings, key, [message_of(ce) for ce in [*before, deadly, *after]])
    dead_queue = settings.queue_name(name) + ".dead"
    held: Counter[uuid.UUID] = Counter()
    applied: Counter[uuid.UUID] = Counter()
    crashes = 0
    for _ in range(settings.delivery_limit + 3):
        holding = asyncio.Event()

        async def process(events: list[ReceivedEvent], holding: asyncio.Event = holding) -> None:
            held.update(e.id for e in events)
            if any(e.id == deadly_id for e in events):
                holding.set()
                await asyncio.Event().wait()  # dies holding its batch
            applied.update(e.id for e in events)

        async with _consumer(settings, name, [key], process):

            async def stuck_or_done(holding: asyncio.Event = holding) -> bool:
                # Every valid message applied is not the end: a quorum queue may return the killer behind the
                # valid ones, so this consumer is done only once the killer got it again or is parked.
                if holding.is_set():
                    return True
                return len(applied) == len(valid) and ((await depth(settings, dead_queue)) or (0, 0))[0] >= 1

            await eventually(stuck_or_done, timeout=20, interval=0.05)
        if not holding.is_set():
            break
        crashes += 1
    dead = await parked(settings, name)
    parked_ids = {m.message_id for m in dead}
    report(
        "a message its consumer dies on, among valid ones",
        {
            **tally((uuid.UUID(ce["id"]) for ce in valid), applied).counts("valid_"),
            "valid_parked": sum(1 for ce in valid if ce["id"] in parked_ids),
            "not_parked": 0 if deadly["id"] in parked_ids else 1,
        },
        crashes=crashes,
        deliveries=held[deadly_id],
        delivery_limit=settings.delivery_limit,
    )
    assert crashes > 1  # it did kill its consumer more than once, with valid messages delivered around it


@contextlib.asynccontextmanager
async def _consumer(settings: Settings, name: str, bindings: list[str], process: Any) -> Any:
    """A consumer of its own connection; leaving closes it abruptly, unacked deliveries and all, like a crash."""
    broker = Broker(settings, name=f"fault-{name}")
    broker.start()
    consumer = Consumer(broker, name=name, bindings=bindings, process=process, settings=settings)
    task = asyncio.create_task(consumer.run())
    try:

        async def started() -> bool:
            if task.done():
                task.result()
            return consumer.queue is not None

        await eventually(started, timeout=20)
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await broker.close()


async def test_check_ins_no_queue_receives_are_not_marked_sent_until_one_does(
    isolated: Settings, db: asyncpg.Pool
) -> None:
    await _delete_service_queues(isolated)
    site = await make_site(isolated)
    async with services(isolated, ["checkin"]) as stack:
        answers = await post_all(
            stack.http,
            lambda: stack.urls["checkin"],
            [("/visits", {"anonymous": True, "purpose": "drop_in"})] * 50,
            token=site.tokens["kiosk"],
            concurrency=8,
        )
        accepted = {a.body["visit_id"] for a in answers if isinstance(a, Reply) and a.status == 201}

        async def every_row_tried() -> bool:
            return await db.fetchval("SELECT count(*) FROM checkin.outbox WHERE attempts = 0") == 0

        await eventually(every_row_tried, timeout=30, interval=0.2)
        marked_while_unroutable = await db.fetchval(
            "SELECT count(*) FROM checkin.outbox WHERE published_at IS NOT NULL"
        )
        attempts = await db.fetchval("SELECT sum(attempts) FROM checkin.outbox")

        # The audit queue (bound to everything) comes back. Only it: with the relay publishing meanwhile, a queue
        # declared earlier would take the events alone, and "routed somewhere" is all a publisher confirm says.
        await _declare_audit_queue(isolated)
        async with services(isolated, ["audit"]):

            async def delivered() -> bool:
                if await unpublished(db, "checkin"):
                    return False
                recorded = await audit_entries(db, site.site_id, ["checkin.visitor_checked_in"])
                return len(recorded) >= len(accepted)

            await eventually(delivered, timeout=90, interval=0.25)
    events = {
        r["subject"]: r["event_id"] for r in await outbox(db, "checkin", site.site_id, ["checkin.visitor_checked_in"])
    }
    recorded = Counter(r["event_id"] for r in await audit_entries(db, site.site_id, ["checkin.visitor_checked_in"]))
    report(
        "check-ins no queue receives",
        {
            "marked_sent_while_unroutable": marked_while_unroutable,
            **tally((events[v] for v in accepted if v in events), recorded).counts(),
            "state_without_event": len(accepted - events.keys()),
        },
        accepted=len(accepted),
        publish_attempts_while_unroutable=attempts,
    )
    assert len(accepted) == 50


async def _declare_audit_queue(settings: Settings) -> None:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        queue, bindings = SERVICES["audit"].queue() or ("", ())
        await declare_consumer_queue(await connection.channel(), settings, queue, bindings)
    finally:
        await connection.close()


async def _delete_service_queues(settings: Settings) -> None:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        for service in SERVICES.values():
            if (queue := service.queue()) is not None:
                await channel.queue_delete(settings.queue_name(queue[0]))
    finally:
        await connection.close()
