"""A service must be able to stop whatever its background tasks were doing: a consumer or a relay that ignores its
cancellation keeps ``runner.cleanup()`` (and so the process, or a deploy) waiting forever. Two ways a cancellation
got lost, each reproduced without timing luck:

- ``asyncio.wait_for`` on Python 3.11 returns the inner result when the cancellation arrives in the same tick as
  that result, and the caller carries on as if nothing happened;
- a rollback after a cancelled query fails, and its error (asyncpg's InterfaceError, "transient") replaces the
  CancelledError on the way up, so the consumer retries instead of stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import asyncpg
import pytest
from aiohttp import web

from services.checkin.models import Base
from shared.events import ReceivedEvent
from shared.messaging import Broker, Consumer, _Delivery
from shared.outbox import OutboxRelay
from shared.runtime import background, every
from shared.settings import Settings
from tests.support.pgproxy import PostgresProxy
from tests.support.stack import eventually

pytestmark = pytest.mark.integration

STOP_BOUND_S = 10.0  # a generous bound for "it stopped"; the failure mode is "never"


class NoBroker:
    """Never connected. ``give_up`` ends whoever asks (a relay that ignored its cancellation, so the failing
    test does not hang the run)."""

    channel = None

    def __init__(self) -> None:
        self.give_up = False

    @property
    def is_ready(self) -> bool:
        if self.give_up:
            raise asyncio.CancelledError()
        return False


class FakeMessage:
    message_id = "m"
    routing_key = "k"
    headers: ClassVar[dict[str, Any]] = {}

    async def ack(self, multiple: bool = False) -> None:
        pass


async def stops(task: asyncio.Task[Any], give_up: Callable[[], None] = lambda: None) -> bool:
    """Whether the cancelled ``task`` ended. If not (the bug), ``give_up`` ends it another way, so that a failing
    test fails instead of hanging the whole run."""
    done, _ = await asyncio.wait({task}, timeout=STOP_BOUND_S)
    if not done:
        give_up()
        await asyncio.wait({task}, timeout=STOP_BOUND_S)
        return False
    with contextlib.suppress(asyncio.CancelledError):
        task.result()
    return True


def consumer(**settings: Any) -> Consumer:
    return Consumer(
        NoBroker(),
        name="shutdown-test",
        bindings=["x"],
        process=None,  # type: ignore[arg-type]
        settings=Settings(**settings),
    )


async def test_a_consumer_cancelled_as_a_message_arrives_stops() -> None:
    worker = consumer(consumer_batch_linger_s=5.0, consumer_batch_size=10)

    giving_up = False

    async def batches() -> None:
        while not giving_up:
            await worker._next_batch()

    def give_up() -> None:
        nonlocal giving_up
        giving_up = True
        worker._pending.put_nowait(FakeMessage())  # type: ignore[arg-type]

    task = asyncio.create_task(batches())
    await asyncio.sleep(0.01)
    worker._pending.put_nowait(FakeMessage())  # type: ignore[arg-type]
    await asyncio.sleep(0.05)  # the first message is in; the batch is lingering for more
    worker._pending.put_nowait(FakeMessage())  # type: ignore[arg-type]
    task.cancel()  # ... and the stop comes in the same tick as the second one
    assert await stops(task, give_up), "the consumer ignored its cancellation"


async def test_a_consumer_whose_cancellation_surfaces_as_a_database_error_stops() -> None:
    worker = consumer()
    started = asyncio.Event()
    giving_up = asyncio.Event()

    async def process(_events: list[ReceivedEvent]) -> None:
        started.set()
        if giving_up.is_set():
            raise asyncio.CancelledError()
        try:
            await giving_up.wait()
        except asyncio.CancelledError:
            # What a rollback after a cancelled query raises in place of the cancellation.
            raise asyncpg.InterfaceError("cannot perform operation: another operation is in progress") from None
        raise asyncio.CancelledError()

    worker.process = process
    event = ReceivedEvent(
        id=uuid.uuid4(),
        type="x",
        source="/t",
        subject=None,
        site_id="s",
        time=None,  # type: ignore[arg-type]
        data={},
        attributes={},
    )
    task = asyncio.create_task(worker._apply([_Delivery(FakeMessage(), event)]))  # type: ignore[arg-type]
    await started.wait()
    task.cancel()
    assert await stops(task, giving_up.set), "the consumer retried a 'transient' error instead of stopping"
    assert task.cancelled()


@pytest.mark.parametrize("kind", ["background", "every"])
async def test_a_background_task_whose_cancellation_surfaces_as_an_error_is_not_restarted(kind: str) -> None:
    runs = 0
    giving_up = asyncio.Event()

    async def run(_app: web.Application) -> None:
        nonlocal runs
        runs += 1
        if giving_up.is_set():
            raise asyncio.CancelledError()
        try:
            await giving_up.wait()
        except asyncio.CancelledError:
            raise RuntimeError("connection closed") from None
        raise asyncio.CancelledError()

    app = web.Application()
    ctx = background("t", run)(app) if kind == "background" else every(Settings(), "t", 0.01, run, shared=True)(app)
    await ctx.__anext__()
    await asyncio.sleep(0.05)
    stopping = asyncio.create_task(anext(ctx, None))
    assert await stops(stopping, giving_up.set), "the task was restarted instead of stopped"
    assert runs == 1


async def test_a_relay_cancelled_as_it_is_woken_stops() -> None:
    settings = Settings(relay_poll_interval_s=5.0, database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    broker = NoBroker()
    relay = OutboxRelay(
        service="checkin",
        engine=None,
        outbox=Base.metadata.tables["checkin.outbox"],  # type: ignore[arg-type]
        broker=broker,
        settings=settings,
    )  # type: ignore[arg-type]
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0.1)  # waiting for a wake-up (the broker is not there, so a pass does nothing)
    relay.wakeup.set()
    task.cancel()

    def give_up() -> None:
        broker.give_up = True
        relay.wakeup.set()

    assert await stops(task, give_up), "the relay ignored its cancellation"


async def test_a_broker_closed_while_connecting_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing the process's broker while it is still connecting (RabbitMQ away at start-up, then a deploy stops
    the process): the connect attempt's cancellation surfaces as a connection error, which must not be retried."""
    attempts = 0
    giving_up = asyncio.Event()

    async def connect(*_args: Any, **_kwargs: Any) -> None:
        nonlocal attempts
        attempts += 1
        if giving_up.is_set():
            raise asyncio.CancelledError()
        try:
            await giving_up.wait()
        except asyncio.CancelledError:
            raise ConnectionResetError("connection reset by peer") from None
        raise asyncio.CancelledError()

    monkeypatch.setattr("shared.messaging.aio_pika.RobustConnection.connect", connect)
    broker = Broker(Settings(), name="shutdown-test")
    broker.start()
    await asyncio.sleep(0.05)
    closing = asyncio.create_task(broker.close())
    assert await stops(closing, giving_up.set), "the broker retried connecting instead of stopping"
    assert attempts == 1


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[str, list[asyncio.StreamWriter]]]:
    """A broker address that accepts TCP and never says a word (a hung node, a half-open proxy): its AMQP URL and
    the connections it holds."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        yield f"amqp://guest:guest@127.0.0.1:{server.sockets[0].getsockname()[1]}/", held
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_broker_closed_while_its_server_is_silent_leaves_no_connect_task_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A close in the middle of the handshake with a silent server: the connection's own connect task must be
    closed with it, not left pending for the garbage collector (which then complains in whichever later test it
    happens to run)."""
    async with silent_server() as (url, held):
        broker = Broker(Settings().model_copy(update={"amqp_url": url}), name="silent-server")
        broker.start()

        async def handshake_started() -> bool:
            return bool(held)

        await eventually(handshake_started, timeout=5, interval=0.01)
        await broker.close()
        del broker
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.05)
    assert not [r for r in caplog.records if "Task was destroyed but it is pending" in r.getMessage()]


async def test_a_broker_whose_server_never_answers_the_handshake_tries_again() -> None:
    """A silent server must not hold the process's broker connection forever: each attempt gives up after the
    connect timeout and the next one begins, so the service connects once a healthy node answers on that address."""
    async with silent_server() as (url, held):
        broker = Broker(
            Settings().model_copy(update={"amqp_url": url, "broker_connect_timeout_s": 0.5}), name="silent-server"
        )
        try:
            broker.start()

            async def tried_again() -> bool:
                return len(held) >= 2

            await eventually(tried_again, timeout=10, interval=0.05)
            assert not broker.is_ready
        finally:
            await broker.close()


async def test_a_broker_whose_server_went_silent_still_closes() -> None:
    """Shutdown says goodbye to the broker. A node that went silent after the handshake never answers it, and the
    process must stop all the same (aiormq waits 2 s for the Close-Ok, then closes the socket; this holds it to
    that)."""
    proxy = PostgresProxy(target_port=5672)  # a plain TCP proxy with a blackhole; AMQP passes through it unchanged
    await proxy.start()
    broker = Broker(
        Settings().model_copy(
            update={"amqp_url": f"amqp://guest:guest@127.0.0.1:{proxy.port}/", "publish_timeout_s": 0.5}
        ),
        name="went-silent",
    )
    try:
        broker.start()
        async with asyncio.timeout(30):
            await broker.wait_ready()
        proxy.blackhole()
        async with asyncio.timeout(20):  # unbounded, it waits for an answer that never comes
            await broker.close()
    finally:
        await proxy.close()
