from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from services.volunteering import SERVICE, consumers, handlers, signups
from services.volunteering.base import Base
from services.volunteering.commands import ExtendSeries, MarkMissedShifts
from services.volunteering.models import VolunteeringUnitOfWork
from services.volunteering.settings import VolunteeringSettings
from services.volunteering.views import CLOCK, SETTINGS, SHIFT_LOCKS, SIGNUPS, UOW, api
from shared import runtime
from shared.clock import Clock, SystemClock
from shared.db import make_connector
from shared.groupcommit import GroupCommit
from shared.locks import KeyedLocks
from shared.settings import Settings
from shared.uow import execute
from shared.web import SITES, make_app


def create_app(base: Settings | None = None, *, clock: Clock | None = None) -> web.Application:
    settings = VolunteeringSettings.of(base)
    app = make_app(api, settings)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[SHIFT_LOCKS] = KeyedLocks()
    app.cleanup_ctx.extend(
        [
            runtime.database(settings, SERVICE),
            _unit_of_work,
            runtime.broker(settings, SERVICE),
            runtime.outbox_relay(settings, SERVICE, Base.metadata),
            runtime.consumer(settings, consumers.QUEUE, consumers.BINDINGS, consumers.attendance),
            runtime.every(settings, "volunteering-missed-shifts", settings.missed_check_interval_s, mark_missed_shifts),
            runtime.every(settings, "volunteering-series-horizon", settings.series_extend_interval_s, extend_series),
        ]
    )
    return app


async def _unit_of_work(app: web.Application) -> AsyncIterator[None]:
    sessionmaker = make_connector(app[runtime.ENGINE])
    app[UOW] = lambda: VolunteeringUnitOfWork(sessionmaker, Base.metadata)
    app[SIGNUPS] = GroupCommit(
        signups.sign_up,
        run_handler=signups.sign_up_run,
        uow=app[UOW],
        clock=app[CLOCK],
        locks=app[SHIFT_LOCKS],
        status=201,
    )
    yield
    await app[SIGNUPS].close()  # before the database closes: runs in progress finish


async def mark_missed_shifts(app: web.Application) -> None:
    grace = timedelta(minutes=app[SETTINGS].missed_grace_minutes)
    for site in await app[SITES].all():
        cmd = MarkMissedShifts(site_id=site.site_id, grace=grace)
        while (await execute(handlers.mark_missed_shifts, cmd, uow=app[UOW](), clock=app[CLOCK])).body["marked"]:
            pass  # a full batch may have left more behind


async def extend_series(app: web.Application) -> None:
    settings = app[SETTINGS]
    cmd = ExtendSeries(horizon=timedelta(weeks=settings.series_horizon_weeks))
    await execute(handlers.extend_series, cmd, uow=app[UOW](), clock=app[CLOCK])
