from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from services.notify import SERVICE, consumers, reminders, sender
from services.notify.models import Base, NotifyUnitOfWork
from services.notify.settings import NotifySettings
from services.notify.views import CLOCK, SENDER, SETTINGS, UOW, api
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
            _sender,
            runtime.consumer(settings, consumers.QUEUE, consumers.BINDINGS, consumers.process),
            # Reminders and the sender claim their rows with FOR UPDATE SKIP LOCKED: every scheduler replica may
            # work at once.
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


async def _sender(app: web.Application) -> AsyncIterator[None]:
    """The sender's rounds for the app's life (scheduler role); at shutdown it finishes the messages on the wire and
    records them. Other roles keep an idle sender, so a consumer's ``wake()`` costs nothing there."""
    postbox = sender.Sender(app[SETTINGS], app[UOW], app[CLOCK])
    app[SENDER] = postbox
    if not app[SETTINGS].runs("scheduler"):
        yield
        return
    task = asyncio.create_task(postbox.run(), name="notify-sender")
    yield
    await postbox.stop(task)


async def remind_due(app: web.Application) -> None:
    while True:
        handled = await reminders.remind_due(app[SETTINGS], app[UOW], app[CLOCK])
        if handled:
            app[SENDER].wake()  # their messages are queued: no need to wait for the sender's tick
        if handled < app[SETTINGS].remind_batch_size:
            return
