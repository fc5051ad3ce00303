from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.audit import DB_ROLE, SERVICE, consumers
from services.audit.models import AuditUnitOfWork, Base
from services.audit.settings import AuditSettings
from services.audit.views import CLOCK, SETTINGS, UOW, api
from shared import runtime
from shared.clock import Clock, SystemClock
from shared.db import make_connector
from shared.settings import Settings
from shared.web import make_app


def create_app(base: Settings | None = None, *, clock: Clock | None = None) -> web.Application:
    settings = AuditSettings.of(base)
    app = make_app(api, settings)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app.cleanup_ctx.extend(
        [
            runtime.database(settings, SERVICE, role=DB_ROLE),
            _unit_of_work,
            runtime.broker(settings, SERVICE),
            # The audit service's own facts (who read which report) leave through its outbox like anyone's.
            runtime.outbox_relay(settings, SERVICE, Base.metadata),
            runtime.consumer(settings, consumers.QUEUE, consumers.BINDINGS, consumers.append_batch),
        ]
    )
    return app


async def _unit_of_work(app: web.Application) -> AsyncIterator[None]:
    sessionmaker = make_connector(app[runtime.ENGINE])
    app[UOW] = lambda: AuditUnitOfWork(sessionmaker, Base.metadata)
    yield
