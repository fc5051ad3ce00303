"""HTTP adapters of the audit service (admin only)."""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web
from sqlalchemy import select

from services.audit import handlers
from services.audit.commands import AuditEntryOut, AuditPage, AuditQuery, VerifyResult
from services.audit.models import AuditUnitOfWork, audit_log
from services.audit.settings import AuditSettings
from shared.access import Role
from shared.clock import Clock
from shared.errors import InvalidInput
from shared.web import Api, Call

UOW = web.AppKey("audit_uow", Callable[[], AuditUnitOfWork])
CLOCK = web.AppKey("audit_clock", Clock)
SETTINGS = web.AppKey("audit_settings", AuditSettings)

api = Api(service="audit", title="Recovery community center: audit log")


@api.get(
    "/audit",
    summary="Audit log entries, oldest first, filtered by type, site, subject and time",
    roles=(Role.ADMIN,),
    query=AuditQuery,
    response=AuditPage,
)
async def list_entries(call: Call) -> AuditPage:
    query: AuditQuery = call.query
    c = audit_log.c
    stmt = select(audit_log)
    for value, column in ((query.type, c.type), (query.site, c.site_id), (query.subject, c.subject)):
        if value is not None:
            stmt = stmt.where(column == value)
    for value in (query.from_, query.to):
        if value is not None and value.tzinfo is None:
            raise InvalidInput("Times need an offset, e.g. 2026-11-26T18:00:00Z.", code="naive_datetime")
    if query.from_ is not None:
        stmt = stmt.where(c.time >= query.from_)
    if query.to is not None:
        stmt = stmt.where(c.time < query.to)
    if query.after is not None:
        stmt = stmt.where(c.sequence > query.after)
    stmt = stmt.order_by(c.sequence).limit(query.limit + 1)
    async with call.request.app[UOW]() as uow:
        rows = (await uow.session.execute(stmt)).all()
    items = [
        AuditEntryOut(
            sequence=r.sequence, event_id=r.event_id, type=r.type, source=r.source, site_id=r.site_id,
            subject=r.subject, time=r.time, recorded_at=r.recorded_at, event=json.loads(r.body),
            prev_hash=r.prev_hash, hash=r.hash,
        )
        for r in rows[: query.limit]
    ]
    return AuditPage(items=items, next_after=items[-1].sequence if len(rows) > query.limit else None)


@api.get(
    "/audit/verify",
    summary="Recompute the hash chain; name the first entry that does not hold",
    roles=(Role.ADMIN,),
    response=VerifyResult,
)
async def verify(call: Call) -> VerifyResult:
    async with call.request.app[UOW]() as uow:
        return await handlers.verify_audit_log(uow, call.request.app[SETTINGS].verify_chunk_rows)
