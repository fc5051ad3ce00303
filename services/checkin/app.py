from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.checkin import SERVICE, handlers
from services.checkin.commands import CloseVisitsAtClosingTime
from services.checkin.models import Base, CheckinUnitOfWork
from services.checkin.settings import CheckinSettings
from services.checkin.views import CLOCK, CODE_CHECKS, SETTINGS, UOW, api
from shared import runtime
from shared.clock import Clock, SystemClock
from shared.db import make_connector
from shared.ratelimit import RateLimiter
from shared.settings import Settings
from shared.uow import execute
from shared.web import SITES, make_app


def create_app(base: Settings | None = None, *, clock: Clock | None = None) -> web.Application:
    settings = CheckinSettings.of(base)
    app = make_app(api, settings)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[CODE_CHECKS] = RateLimiter(settings.code_checks_per_minute, settings.code_checks_burst)
    app.cleanup_ctx.extend(
        [
            runtime.database(settings, SERVICE),
            _unit_of_work,
            runtime.broker(settings, SERVICE),
            runtime.outbox_relay(settings, SERVICE, Base.metadata),
            runtime.every(settings, "checkin-auto-close", settings.auto_close_interval_s, close_visits_at_closing_time),
        ]
    )
    return app


async def _unit_of_work(app: web.Application) -> AsyncIterator[None]:
    sessionmaker = make_connector(app[runtime.ENGINE])
    app[UOW] = lambda: CheckinUnitOfWork(sessionmaker, Base.metadata)
    yield


async def close_visits_at_closing_time(app: web.Application) -> None:
    for site in await app[SITES].all():
        await execute(
            handlers.close_visits_at_closing_time,
            CloseVisitsAtClosingTime(site=site),
            uow=app[UOW](),
            clock=app[CLOCK],
        )
