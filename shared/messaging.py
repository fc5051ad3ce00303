"""RabbitMQ: one robust connection per process, the topology, and the consumer runner (publishing is the outbox
relay's, ``shared.outbox``).

Topology: a durable topic exchange ``rcc.events``; each consumer has a durable quorum queue bound to the routing
keys it needs, with ``x-delivery-limit`` and a dead-letter exchange ``rcc.dead`` that routes to ``<queue>.dead``.
Every name starts with ``Settings.broker_prefix`` (empty in production), so test runs are isolated.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aio_pika
import aiormq
import asyncpg
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aio_pika.connection import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from shared.events import MalformedEvent, ReceivedEvent
from shared.logging import get_logger
from shared.metrics import MESSAGES_CONSUMED
from shared.settings import Settings

log = get_logger(component="messaging")

DEAD_REASON_HEADER = "x-rcc-dead-reason"
# Opening a consumer's channel and subscribing: a few round trips, normally milliseconds.
SETUP_TIMEOUT_S = 30.0


class Broker:
    """The process's one connection (reconnects by itself) and the channel the outbox relays publish on
    (publisher confirms on). Each connection attempt declares the exchanges, so a relay's first publish finds
    them; the relay publishes through the channel's aiormq underlay, naming the exchange (``shared.outbox``).
    Consumers open channels of their own on the connection.

    Connecting never blocks start-up: while the broker is unreachable, requests still succeed and outbox rows
    wait; ``wait_ready`` lets consumers start once it is there.

    With several nodes (a cluster: ``Settings.amqp_nodes``) the first connection goes to the first node that
    answers, and while the connection is down every reconnect attempt goes to the next node in turn, so it comes back
    on whichever node is alive; aio-pika's robust connection then restores the channels and the consumers on it."""

    def __init__(self, settings: Settings, *, name: str) -> None:
        self.settings = settings
        self.name = name
        self.connection: AbstractRobustConnection | None = None
        self.channel: AbstractRobustChannel | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.users = 0
        self._nodes = [make_url(url, reconnect_interval=1) for url in settings.amqp_nodes]
        self._node = 0
        self.failovers = 0

    @property
    def node(self) -> str:
        """The node this connection uses (or tries next), without its credentials."""
        url = self._nodes[self._node]
        return f"{url.host}:{url.port}"

    def _next_node(self) -> None:
        self._node = (self._node + 1) % len(self._nodes)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._connect_until_done(), name=f"broker-{self.name}")

    async def _connect_until_done(self) -> None:
        while True:
            try:
                # Made first and connected second (what connect_robust does in one call), so that a close that
                # cancels us mid-connect still has the connection to close: otherwise its pending connect task is
                # left behind for the garbage collector.
                self.connection = connection = aio_pika.RobustConnection(
                    self._nodes[self._node],
                    # The prefix names the deployment (or test run) in `rabbitmqctl list_connections`.
                    client_properties={"connection_name": f"rcc-{self.name} {self.settings.broker_prefix}".strip()},
                )
                # Bounded: a node that accepts TCP and never answers (hung, or a half-open proxy) would otherwise
                # hold this attempt, and the service's broker connection, forever.
                async with asyncio.timeout(self.settings.broker_connect_timeout_s):
                    await self.connection.connect(timeout=self.settings.broker_connect_timeout_s)
                    self.channel = await self.connection.channel(publisher_confirms=True)
                    await declare_exchanges(self.channel, self.settings)
                self._connected.set()
                log.info("broker_connected", node=self.node)
                if len(self._nodes) > 1:
                    await self._follow_live_node(connection)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep trying; readiness reports it meanwhile
                if cancel_requested():  # closing mid-connect: the error is how the cancellation surfaced
                    raise asyncio.CancelledError() from exc
                log.warning("broker_connect_failed", node=self.node, error=type(exc).__name__)
                self._next_node()
                if self.connection is not None:
                    with contextlib.suppress(Exception):
                        await self.connection.close()
                    self.connection = None
                await asyncio.sleep(1)

    async def _follow_live_node(self, connection: aio_pika.RobustConnection) -> None:
        """While the connection is down, point its next reconnect attempt at the next node. The robust connection
        reads its URL at every attempt (one a second), so a node that is stopped is left within a second or two;
        one that answers keeps it. An attempt already under way when the URL moves on still finishes on its node,
        so once connected the node is read back from the connection itself."""
        while not connection.is_closed:
            await asyncio.sleep(1.0)
            if connection.connected.is_set() and connection.transport is not None:
                actual = connection.transport.connection.url
                at = next(
                    (n for n, url in enumerate(self._nodes) if (url.host, url.port) == (actual.host, actual.port)),
                    self._node,
                )
                if at != self._node:
                    self._node = at
                    connection.url = self._nodes[at]
                    log.info("broker_connected", node=self.node)
                continue
            self._next_node()
            self.failovers += 1
            connection.url = self._nodes[self._node]  # aio-pika reads it at each reconnect attempt
            log.warning("broker_trying_next_node", node=self.node)

    async def wait_ready(self) -> AbstractRobustConnection:
        await self._connected.wait()
        assert self.connection is not None
        return self.connection

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.connection is not None:
            with contextlib.suppress(Exception):  # one that never connected has nothing to say goodbye to
                await self.connection.close()

    @property
    def is_ready(self) -> bool:
        return (
            self._connected.is_set()
            and self.connection is not None
            and not self.connection.is_closed
            and self.connection.connected.is_set()
            and self.channel is not None
            and not self.channel.is_closed
        )


_BROKERS: dict[tuple[str, str], Broker] = {}


@contextlib.asynccontextmanager
async def process_broker(settings: Settings, name: str) -> AsyncIterator[Broker]:
    """One broker connection per process, shared by every service app that runs in it (``rcc serve all``)."""
    key = (settings.amqp_url, settings.broker_prefix)
    broker = _BROKERS.get(key)
    if broker is None:
        broker = _BROKERS[key] = Broker(settings, name=name)
        broker.start()
    broker.users += 1
    try:
        yield broker
    finally:
        broker.users -= 1
        if broker.users == 0:
            del _BROKERS[key]
            await broker.close()


async def declare_exchanges(
    channel: aio_pika.abc.AbstractChannel, settings: Settings
) -> tuple[aio_pika.abc.AbstractExchange, aio_pika.abc.AbstractExchange]:
    events = await channel.declare_exchange(settings.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
    dead = await channel.declare_exchange(settings.dead_exchange_name, aio_pika.ExchangeType.DIRECT, durable=True)
    return events, dead


async def declare_consumer_queue(
    channel: aio_pika.abc.AbstractChannel, settings: Settings, name: str, bindings: Sequence[str]
) -> aio_pika.abc.AbstractQueue:
    events, dead = await declare_exchanges(channel, settings)
    queue_name = settings.queue_name(name)
    dead_queue = await channel.declare_queue(f"{queue_name}.dead", durable=True, arguments={"x-queue-type": "quorum"})
    await dead_queue.bind(dead, routing_key=queue_name)
    queue = await channel.declare_queue(
        queue_name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": settings.delivery_limit,
            "x-dead-letter-exchange": settings.dead_exchange_name,
            "x-dead-letter-routing-key": queue_name,
        },
    )
    for key in bindings:
        await queue.bind(events, routing_key=key)
    return queue


def cancel_requested() -> bool:
    """The running task was asked to stop, even if its CancelledError turned into another error on the way up.

    That happens: a rollback after a cancelled query fails (asyncpg: "another operation is in progress") and its
    InterfaceError replaces the CancelledError. Retrying that "transient" error, or restarting after it, would
    swallow the cancellation, and a task that ignores its cancellation keeps its process from shutting down."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def is_transient(exc: BaseException) -> bool:
    """Failures that go away by themselves (database restarting, network blip): retry, never dead-letter."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        OSError
        | ConnectionError
        | asyncio.TimeoutError
        | OperationalError
        | InterfaceError
        | PoolTimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.InterfaceError,
    )


ProcessBatch = Callable[[list[ReceivedEvent]], Awaitable[None]]


class Delivery(Protocol):
    """What the consumer reads of a delivered message, and how it settles it."""

    @property
    def body(self) -> bytes: ...
    @property
    def redelivered(self) -> bool: ...
    @property
    def headers(self) -> dict[str, Any] | None: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def routing_key(self) -> str | None: ...
    async def ack(self, multiple: bool = False) -> None: ...
    async def reject(self, requeue: bool = False) -> None: ...


class _Message:
    """A delivery as aiormq hands it over, settled on the channel it came on. Not aio-pika's IncomingMessage: that
    one copies every property into a locked object (a guarded ``__setattr__`` per field) and runs the callback in a
    task of its own, about a third of the consumer's CPU per message for fields nobody reads (bench/RESULTS.md,
    issue #19's second round)."""

    __slots__ = ("_delivered",)

    def __init__(self, delivered: aiormq.abc.DeliveredMessage) -> None:
        self._delivered = delivered

    @property
    def body(self) -> bytes:
        return self._delivered.body

    @property
    def redelivered(self) -> bool:
        return bool(getattr(self._delivered.delivery, "redelivered", False))

    @property
    def headers(self) -> dict[str, Any] | None:
        return self._delivered.header.properties.headers

    @property
    def content_type(self) -> str | None:
        return self._delivered.header.properties.content_type

    @property
    def message_id(self) -> str | None:
        return self._delivered.header.properties.message_id

    @property
    def routing_key(self) -> str | None:
        return self._delivered.routing_key

    async def ack(self, multiple: bool = False) -> None:
        tag = self._delivered.delivery_tag
        if tag is not None:
            await self._delivered.channel.basic_ack(tag, multiple=multiple)

    async def reject(self, requeue: bool = False) -> None:
        tag = self._delivered.delivery_tag
        if tag is not None:
            await self._delivered.channel.basic_reject(tag, requeue=requeue)


class _SubscriptionLost(Exception):
    """The channel under the subscription closed, or the broker cancelled it."""


@dataclass
class _Delivery:
    message: Delivery
    event: ReceivedEvent


class Consumer:
    """Consumes one queue in small batches: ``process`` applies a batch in one transaction and must dedupe by
    event id in that transaction (see ``shared.inbox``). Acks only after it returned (i.e. committed).

    A message that is not a CloudEvent, or that fails on its own, is dead-lettered with the reason in a header;
    transient failures (database down) are retried here with backoff, holding the messages unacked.

    It subscribes on the aiormq channel under its aio-pika channel, so aio-pika does not restore the subscription
    after a reconnect: when the channel under it closes (or the broker cancels it), the consumer finishes what it
    holds, opens a channel of its own again and subscribes anew, slow start and all, as a restarted process would."""

    def __init__(
        self,
        broker: Broker,
        *,
        name: str,
        bindings: Sequence[str],
        process: ProcessBatch,
        settings: Settings,
    ) -> None:
        self.broker = broker
        self.name = name
        self.bindings = bindings
        self.process = process
        self.settings = settings
        # None marks the end of a subscription (see _watch); what came before it is still handled.
        self._pending: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._underlay: aiormq.abc.AbstractChannel | None = None
        self.queue: aio_pika.abc.AbstractQueue | None = None
        self._careful = True
        self._consumer_tag = ""
        # Delivered to us and not yet acked or dead-lettered (what a graceful stop waits for).
        self.unacked = 0

    async def start(self) -> None:
        connection = await self.broker.wait_ready()
        await connection.connected.wait()  # after a reconnect: however long the broker is away
        # Bounded, like every exchange with the broker here (see _ack): on a timeout run() fails, closes the channel
        # and its supervisor starts the consumer again.
        async with asyncio.timeout(SETUP_TIMEOUT_S):
            await self._subscribe(connection)

    async def _subscribe(self, connection: AbstractRobustConnection) -> None:
        self._channel = await connection.channel(publisher_confirms=True)
        # Slow start: one message at a time until a message delivered for the first time has been handled. A
        # process that dies holding messages costs each of them a delivery against the queue's delivery limit; one
        # at a time, the redeliveries after a crash are held alone, so a message that kills its consumer again and
        # again is parked by itself instead of taking the valid messages of its batch to the dead-letter queue.
        self._careful = True
        await self._channel.set_qos(prefetch_count=1)
        self.queue = await declare_consumer_queue(self._channel, self.settings, self.name, self.bindings)
        self._underlay = underlay = await self._channel.get_underlay_channel()
        self._watch(underlay)
        self._consumer_tag = await self._consume(underlay)

    def _watch(self, underlay: aiormq.abc.AbstractChannel) -> None:
        """End the subscription on ``underlay`` when it closes or the broker cancels it (a queue deleted)."""

        def lost(*_: object) -> None:
            if self._underlay is underlay:
                self._underlay = None
                self._pending.put_nowait(None)

        def cancelled(frame: aiormq.spec.Basic.Cancel) -> None:
            if frame.consumer_tag == self._consumer_tag:
                lost()

        underlay.closing.add_done_callback(lost)
        underlay.on_consumer_cancel_callbacks.add(cancelled)

    async def _consume(self, underlay: aiormq.abc.AbstractChannel) -> str:
        assert self.queue is not None
        ok = await underlay.basic_consume(self.queue.name, self._receive, no_ack=False)
        assert ok.consumer_tag is not None
        return ok.consumer_tag

    async def _widen(self) -> None:
        """Leave the slow start: a consumer's prefetch is fixed when it subscribes (RabbitMQ applies a new
        per-consumer qos to new consumers only), so subscribe again with the full prefetch, then cancel the
        one-at-a-time subscription. Its unacked delivery, if any, stays ours to ack on this channel."""
        assert self._channel is not None
        underlay = self._underlay
        if underlay is None:
            return  # lost meanwhile: the next subscription starts carefully again
        self._careful = False
        await self._channel.set_qos(prefetch_count=self.settings.consumer_prefetch)
        narrow, self._consumer_tag = self._consumer_tag, await self._consume(underlay)
        await underlay.basic_cancel(narrow)

    async def _receive(self, delivered: aiormq.abc.DeliveredMessage) -> None:
        self.unacked += 1
        self._pending.put_nowait(_Message(delivered))

    async def run(self) -> None:
        try:
            while True:
                await self.start()
                try:
                    while True:
                        batch = await self._next_batch()
                        await self._handle(batch)
                        if self._careful and not any(message.redelivered for message in batch):
                            async with asyncio.timeout(SETUP_TIMEOUT_S):  # as in start()
                                await self._widen()
                except _SubscriptionLost:
                    log.warning("consumer_subscribing_again", consumer=self.name)
                await self._close_channel()
        finally:
            await self._close_channel()

    async def _close_channel(self) -> None:
        # Otherwise a stopped consumer's channel keeps receiving (and holding) messages. Closed even when it looks
        # closed: a robust channel waiting to reconnect would come back, and hold messages no one reads.
        self._underlay = None
        if self._channel is not None:
            channel, self._channel = self._channel, None
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.settings.publish_timeout_s):
                    await asyncio.shield(channel.close())

    async def _next_batch(self) -> list[Delivery]:
        first = await self._pending.get()
        if first is None:
            raise _SubscriptionLost()
        batch = [first]
        if self._careful:
            return batch  # nothing more comes before this one is settled
        deadline = asyncio.get_running_loop().time() + self.settings.consumer_batch_linger_s
        message: Delivery | None
        while len(batch) < self.settings.consumer_batch_size:
            if not self._pending.empty():
                message = self._pending.get_nowait()
            else:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives in the same tick as a
                # message, and a consumer that ignored its cancellation keeps the process from ever shutting down.
                try:
                    async with asyncio.timeout(remaining):
                        message = await self._pending.get()
                except TimeoutError:
                    break
            if message is None:
                self._pending.put_nowait(None)  # this batch first; the next call ends the subscription
                break
            batch.append(message)
        return batch

    async def _handle(self, messages: list[Delivery]) -> None:
        deliveries: list[_Delivery] = []
        for message in messages:
            try:
                deliveries.append(_Delivery(message, ReceivedEvent.from_body(message.body)))
            except MalformedEvent as exc:
                await self._dead_letter(message, f"malformed: {exc}")
        if not deliveries:
            return
        if await self._apply(deliveries):
            return
        # The batch failed for a reason of its own: find the message at fault by applying them one by one.
        for delivery in deliveries:
            await self._apply([delivery], alone=True)

    async def _apply(self, deliveries: list[_Delivery], *, alone: bool = False) -> bool:
        backoff = 0.2
        while True:
            try:
                await self.process([d.event for d in deliveries])
            except Exception as exc:  # sorted into transient / fatal below
                if cancel_requested():
                    raise asyncio.CancelledError() from exc
                if is_transient(exc):
                    log.warning("consumer_retrying", consumer=self.name, error=type(exc).__name__, backoff_s=backoff)
                    MESSAGES_CONSUMED.labels(self.name, "retried").inc(len(deliveries))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if not alone and len(deliveries) > 1:
                    return False
                kind = "malformed" if isinstance(exc, MalformedEvent) else type(exc).__name__
                await self._dead_letter(deliveries[0].message, f"{kind}: {exc}")
                return True
            await self._ack(deliveries[-1].message, covering=len(deliveries))
            MESSAGES_CONSUMED.labels(self.name, "processed").inc(len(deliveries))
            return True

    async def _ack(self, message: Delivery, covering: int = 1) -> None:
        """Ack ``message`` and, with ``covering`` > 1, every earlier delivery of its batch in one frame (batches
        are handled in delivery order, so everything before it on the channel is settled)."""
        self.unacked -= covering
        try:
            # Bounded: an ack written while the connection dies can wait forever. aiormq queues it on the dead
            # connection's frame buffer when the channel is not yet marked closed, and once that buffer is full
            # nothing drains it; the consumer would sit on that ack, its prefetch window full, and the queue stall.
            async with asyncio.timeout(self.settings.publish_timeout_s):
                await message.ack(multiple=covering > 1)
        except Exception as exc:  # the channel died; the broker redelivers, the inbox dedupes
            if cancel_requested():
                raise asyncio.CancelledError() from exc
            log.warning("consumer_ack_lost", consumer=self.name, error=type(exc).__name__)

    async def _dead_letter(self, message: Delivery, reason: str) -> None:
        reason = reason[:500]
        log.error("message_dead_lettered", consumer=self.name, message_id=message.message_id, reason=reason)
        MESSAGES_CONSUMED.labels(self.name, "dead_lettered").inc()
        assert self._channel is not None
        dead = await self._channel.get_exchange(self.settings.dead_exchange_name, ensure=False)
        headers: dict[str, Any] = dict(message.headers or {})
        headers[DEAD_REASON_HEADER] = reason
        headers["x-rcc-original-routing-key"] = message.routing_key or ""
        try:
            await dead.publish(
                aio_pika.Message(
                    message.body,
                    headers=headers,
                    content_type=message.content_type,
                    message_id=message.message_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=self.settings.queue_name(self.name),
                timeout=self.settings.publish_timeout_s,
            )
        except Exception as exc:  # the dead-letter exchange is out of reach too: hand the message back below
            if cancel_requested():  # unacked, so the broker redelivers it to whoever consumes next
                raise asyncio.CancelledError() from exc
            # Could not park it ourselves: let the broker dead-letter it (reason "rejected").
            log.warning("dead_letter_publish_failed", consumer=self.name, error=type(exc).__name__)
            self.unacked -= 1
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.settings.publish_timeout_s):  # bounded, as in _ack
                    await message.reject(requeue=False)
            return
        await self._ack(message)
