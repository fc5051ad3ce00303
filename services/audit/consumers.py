"""The audit service consumes every event (``#``): a batch per transaction, appended to the hash-chained log and
projected into the report tables (``handlers.append_to_audit_log``), each event's body parsed once, on arrival."""

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
