from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.gatherings import SERVICE, consumers, handlers
from services.gatherings.commands import ExtendSchedules
from services.gatherings.models import Base, GatheringsUnitOfWork
from services.gatherings.settings import GatheringsSettings
from services.gatherings.views import CLOCK, LOCKS, REGISTRATIONS, SETTINGS, UOW, api
from shared import runtime
from shared.clock import Clock, SystemClock
from shared.db import make_connector
from shared.groupcommit import GroupCommit
from shared.locks import KeyedLocks
from shared.settings import Settings
from shared.uow import execute
from shared.web import make_app


def create_app(base: Settings | None = None, *, clock: Clock | None = None) -> web.Application:
    settings = GatheringsSettings.of(base)
    app = make_app(api, settings)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[LOCKS] = KeyedLocks()
    app.cleanup_ctx.extend(
        [
            runtime.database(settings, SERVICE),
            _unit_of_work,
            runtime.broker(settings, SERVICE),
            runtime.outbox_relay(settings, SERVICE, Base.metadata),
            runtime.consumer(settings, consumers.QUEUE, consumers.BINDINGS, consumers.process),
            runtime.every(settings, "gatherings-horizon", settings.horizon_interval_s, extend_schedules),
        ]
    )
    return app


async def _unit_of_work(app: web.Application) -> AsyncIterator[None]:
    sessionmaker = make_connector(app[runtime.ENGINE])
    app[UOW] = lambda: GatheringsUnitOfWork(sessionmaker, Base.metadata)
    app[REGISTRATIONS] = GroupCommit(
        handlers.register,
        run_handler=handlers.register_run,
        uow=app[UOW],
        clock=app[CLOCK],
        locks=app[LOCKS],
        status=201,
    )
    yield
    await app[REGISTRATIONS].close()  # before the database closes: runs in progress finish


async def extend_schedules(app: web.Application) -> None:
    """Long-running groups get their next sessions as the horizon moves forward."""
    await execute(
        handlers.extend_schedules,
        ExtendSchedules(horizon_weeks=app[SETTINGS].group_horizon_weeks),
        uow=app[UOW](),
        clock=app[CLOCK],
    )
