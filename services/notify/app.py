from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.notify import SERVICE, consumers, reminders, sender
from services.notify.models import Base, NotifyUnitOfWork
from services.notify.settings import NotifySettings
from services.notify.views import CLOCK, SETTINGS, UOW, api
from shared import runtime
from shared.clock import Clock, SystemClock
from shared.db import make_connector
from shared.settings import Settings
from shared.web import make_app


def create_app(base: Settings | None = None, *, clock: Clock | None = None) -> web.Application:
    settings = NotifySettings.of(base)
    app = make_app(api, settings)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app.cleanup_ctx.extend(
        [
            runtime.database(settings, SERVICE),
            _unit_of_work,
            runtime.broker(settings, SERVICE),
            runtime.outbox_relay(settings, SERVICE, Base.metadata),
            runtime.consumer(settings, consumers.QUEUE, consumers.BINDINGS, consumers.process),
            # Both claim their rows with FOR UPDATE SKIP LOCKED, so every scheduler replica may work at once.
            runtime.every(settings, "notify-sender", settings.send_interval_s, send_due, shared=True),
            runtime.every(settings, "notify-reminders", settings.remind_interval_s, remind_due, shared=True),
        ]
    )
    return app


async def _unit_of_work(app: web.Application) -> AsyncIterator[None]:
    sessionmaker = make_connector(app[runtime.ENGINE])
    sender = app[SETTINGS].notify_from

    def unit_of_work() -> NotifyUnitOfWork:
        uow = NotifyUnitOfWork(sessionmaker, Base.metadata)
        uow.sender = sender
        return uow

    app[UOW] = unit_of_work
    yield


async def send_due(app: web.Application) -> None:
    # A full batch means more are waiting: keep going without the pause between ticks.
    while await sender.send_due(app[SETTINGS], app[UOW], app[CLOCK]) >= app[SETTINGS].send_batch_size:
        pass


async def remind_due(app: web.Application) -> None:
    while await reminders.remind_due(app[SETTINGS], app[UOW], app[CLOCK]) >= app[SETTINGS].remind_batch_size:
        pass
