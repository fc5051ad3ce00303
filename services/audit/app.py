from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from services.audit import DB_ROLE, SERVICE, consumers
from services.audit.handlers import Withholder
from services.audit.models import AuditUnitOfWork, Base
from services.audit.settings import AuditSettings
from services.audit.views import CLOCK, SETTINGS, UOW, WITHHOLDER, api
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
            _withholder,
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


async def _withholder(app: web.Application) -> AsyncIterator[None]:
    # One thread for the choice of withheld cells: pure-Python work holding the GIL, kept off the event loop. The
    # app's own, closed with it (after the choice in progress): why it is not shared/recurrence's pool is said there.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-suppression") as executor:
        app[WITHHOLDER] = Withholder(executor, app[SETTINGS].report_suppression_max_cells)
        yield
