"""The audit service consumes every event (``#``) into the hash-chained log, a batch per transaction."""

from __future__ import annotations

from aiohttp import web

from services.audit import handlers
from services.audit.commands import AppendToAuditLog
from services.audit.views import CLOCK, UOW
from shared.events import ReceivedEvent
from shared.messaging import ProcessBatch
from shared.uow import execute

QUEUE = "audit"
BINDINGS = ("#",)


def append_batch(app: web.Application) -> ProcessBatch:
    async def process(events: list[ReceivedEvent]) -> None:
        await execute(handlers.append_to_audit_log, AppendToAuditLog(events), uow=app[UOW](), clock=app[CLOCK])

    return process
