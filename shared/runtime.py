"""Building blocks of every service's ``create_app``: cleanup contexts that open the database, the broker, the
outbox relay, consumers and periodic tasks, and close them in reverse order.

Each part runs only in the process roles that own it (``Settings.role``; ``all`` runs everything): the relay in
``relay``, consumers in ``consumers``, periodic jobs in ``scheduler``, and the broker connection only where
something uses it. Every role keeps ``/healthz``, ``/readyz`` and ``/metrics``; only ``web`` (and ``all``) serve the
API. Any number of replicas of each role may run at once:

- relay replicas take turns: each pass holds the schema's advisory lock while it reads unsent rows in ``sequence``
  order, publishes them and marks them sent, so two relays never publish one row twice nor one site's rows out of
  order (one relay publishes at a time; the others are stand-bys that take over within a poll interval);
- consumers share their quorum queue (competing consumers); the inbox makes each effect happen once;
- a periodic job runs on one scheduler replica at a time (``every``: an advisory lock per job, held for the tick);
  jobs that claim their rows with ``FOR UPDATE SKIP LOCKED`` may run on every replica at once (``shared=True``).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from aiohttp import web
from sqlalchemy import MetaData, Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.access import SiteDirectory, TokenStore
from shared.db import create_engine
from shared.logging import get_logger
from shared.messaging import Broker, Consumer, ProcessBatch, cancel_requested, process_broker
from shared.metrics import BROKER_CONNECTED, OUTBOX_OLDEST_UNSENT
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.web import BROKER_STATE, METRIC_PROBES, READINESS, SITES, TOKENS, broker_check, database_check

ENGINE = web.AppKey("engine", AsyncEngine)
BROKER = web.AppKey("broker", Broker)

log = get_logger(component="runtime")

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


def database(settings: Settings, service: str, *, role: str | None = None) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        engine = create_engine(settings, service=service, role=role)
        app[ENGINE] = engine
        app[TOKENS] = TokenStore(engine, ttl_s=settings.token_cache_ttl_s)
        app[SITES] = SiteDirectory(engine)
        app[READINESS].append(database_check(engine))
        yield
        try:
            # Closing says goodbye on every pooled connection (a ROLLBACK, then a Terminate); to a server that went
            # silent each would wait out the command timeout, and the process would take minutes to stop.
            async with asyncio.timeout(settings.db_connect_timeout_s):
                await engine.dispose()
        except TimeoutError:
            log.warning("database_close_timed_out", service=service)
            await engine.dispose(close=False)  # the sockets close with the process

    return ctx


def uses_broker(settings: Settings) -> bool:
    """A web replica publishes nothing (its writes wait in the outbox) and a scheduler's jobs write through the
    outbox too: only the relay and the consumers talk to RabbitMQ."""
    return settings.runs("relay") or settings.runs("consumers")


def broker(settings: Settings, service: str) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if not uses_broker(settings):
            app[BROKER_STATE] = lambda: "not used by this role"
            yield
            return
        async with process_broker(settings, service) as shared_broker:
            app[BROKER] = shared_broker
            # What the process needs to do its work: a relay or consumer replica without the broker is not ready.
            app[READINESS].append(broker_check(shared_broker))
            app[BROKER_STATE] = lambda: "connected" if shared_broker.is_ready else "disconnected"

            async def probe() -> None:
                BROKER_CONNECTED.labels(service).set(1 if shared_broker.is_ready else 0)

            app[METRIC_PROBES].append(probe)
            yield

    return ctx


def background(name: str, run: Callable[[web.Application], Awaitable[None]]) -> CleanupCtx:
    """A task that lives as long as the app; it is restarted if it crashes, and cancelled at shutdown."""

    async def supervise(app: web.Application) -> None:
        while True:
            try:
                await run(app)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # logged; a background task must not die silently
                if cancel_requested():  # stopping: the error is how the cancellation surfaced, not a crash
                    raise asyncio.CancelledError() from exc
                log.exception("background_task_crashed", task=name)
                await asyncio.sleep(1)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(supervise(app), name=name)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx


async def _nothing(_app: web.Application) -> AsyncIterator[None]:
    yield


def outbox_relay(settings: Settings, service: str, metadata: MetaData) -> CleanupCtx:
    """The relay (``relay`` role), and in every role the age of the oldest unsent outbox row on ``/metrics``: read
    from the table, so a relay that is stuck, or not running at all, shows on the web replicas an operator scrapes."""
    outbox = metadata.tables[f"{metadata.schema}.outbox"]

    async def run(app: web.Application) -> None:
        relay = OutboxRelay(service=service, engine=app[ENGINE], outbox=outbox, broker=app[BROKER], settings=settings)
        await relay.run()

    relay = background(f"{service}-outbox-relay", run) if settings.runs("relay") else _nothing

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[METRIC_PROBES].append(oldest_unsent_probe(app, service, outbox))
        async for _ in relay(app):
            yield

    return ctx


def oldest_unsent_probe(app: web.Application, service: str, outbox: Table) -> Callable[[], Awaitable[None]]:
    # The oldest unsent row by sequence (the partial index on unsent rows finds it at once); 0 when none waits.
    oldest = (
        select(func.extract("epoch", func.clock_timestamp() - outbox.c.created_at))
        .where(outbox.c.published_at.is_(None))
        .order_by(outbox.c.sequence)
        .limit(1)
    )

    async def probe() -> None:
        async with asyncio.timeout(2), app[ENGINE].connect() as conn:
            seconds = await conn.scalar(oldest)
        OUTBOX_OLDEST_UNSENT.labels(service).set(max(0.0, float(seconds or 0)))

    return probe


def consumer(
    settings: Settings, name: str, bindings: Sequence[str], process: Callable[[web.Application], ProcessBatch]
) -> CleanupCtx:
    if not settings.runs("consumers"):
        return _nothing

    async def run(app: web.Application) -> None:
        await Consumer(app[BROKER], name=name, bindings=bindings, process=process(app), settings=settings).run()

    return background(f"consumer-{name}", run)


def every(
    settings: Settings,
    name: str,
    interval_s: float,
    tick: Callable[[web.Application], Awaitable[None]],
    *,
    shared: bool = False,
) -> CleanupCtx:
    """A periodic job of the ``scheduler`` role. With several scheduler replicas it runs on one of them at a time: the
    tick holds an advisory lock named after the job, and a replica that finds it taken skips its turn. ``shared``
    jobs (those that claim their rows with ``FOR UPDATE SKIP LOCKED``) run on every replica at once instead."""
    if not settings.runs("scheduler"):
        return _nothing
    lock_key = zlib.crc32(f"rcc-periodic-{name}".encode())

    async def once(app: web.Application) -> None:
        if shared:
            await tick(app)
            return
        async with app[ENGINE].connect() as conn, conn.begin():
            if await conn.scalar(select(func.pg_try_advisory_xact_lock(lock_key))):
                await tick(app)
            # released at the end of the transaction, or when its connection dies with the process

    async def run(app: web.Application) -> None:
        while True:
            try:
                await once(app)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # try again next time; the database may be restarting
                if cancel_requested():
                    raise asyncio.CancelledError() from exc
                log.warning("periodic_task_failed", task=name, error=type(exc).__name__)
            await asyncio.sleep(interval_s)

    return background(name, run)
