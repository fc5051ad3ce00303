"""Building blocks of every service's ``create_app``: cleanup contexts that open the database, the broker, the
outbox relay, consumers and periodic tasks, and close them in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from aiohttp import web
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.access import SiteDirectory, TokenStore
from shared.db import create_engine
from shared.logging import get_logger
from shared.messaging import Broker, Consumer, ProcessBatch, cancel_requested, process_broker
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.web import READINESS, SITES, TOKENS, broker_check, database_check

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


def broker(settings: Settings, service: str) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with process_broker(settings, service) as shared_broker:
            app[BROKER] = shared_broker
            app[READINESS].append(broker_check(shared_broker))
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


def outbox_relay(settings: Settings, service: str, metadata: MetaData) -> CleanupCtx:
    async def run(app: web.Application) -> None:
        relay = OutboxRelay(
            service=service,
            engine=app[ENGINE],
            outbox=metadata.tables[f"{metadata.schema}.outbox"],
            broker=app[BROKER],
            settings=settings,
        )
        await relay.run()

    return background(f"{service}-outbox-relay", run)


def consumer(
    settings: Settings, name: str, bindings: Sequence[str], process: Callable[[web.Application], ProcessBatch]
) -> CleanupCtx:
    async def run(app: web.Application) -> None:
        await Consumer(app[BROKER], name=name, bindings=bindings, process=process(app), settings=settings).run()

    return background(f"consumer-{name}", run)


def every(name: str, interval_s: float, tick: Callable[[web.Application], Awaitable[None]]) -> CleanupCtx:
    async def run(app: web.Application) -> None:
        while True:
            try:
                await tick(app)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # try again next time; the database may be restarting
                if cancel_requested():
                    raise asyncio.CancelledError() from exc
                log.warning("periodic_task_failed", task=name, error=type(exc).__name__)
            await asyncio.sleep(interval_s)

    return background(name, run)
