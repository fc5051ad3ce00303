"""The audit service's read side: a page of log entries, the snapshot a report reads in, a table's row count. The
report figures themselves are in services/audit/reports/queries.py; the chain is read for verification through the
repository (services/audit/models.py)."""

from __future__ import annotations

import json
import zoneinfo

import asyncpg
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.audit.commands import AuditEntryOut, AuditPage, AuditQuery
from services.audit.models import audit_log
from shared import paging

UTC_ZONE = zoneinfo.ZoneInfo("UTC")


async def entries_page(conn: AsyncConnection, query: AuditQuery) -> AuditPage:
    """Entries oldest first, filtered by type, site, subject and time, after the cursor."""
    c = audit_log.c
    stmt = select(audit_log)
    for value, column in ((query.type, c.type), (query.site, c.site_id), (query.subject, c.subject)):
        if value is not None:
            stmt = stmt.where(column == value)
    between = paging.instant_range(query.from_, query.to, UTC_ZONE)
    if between.start is not None:
        stmt = stmt.where(c.time >= between.start)
    if between.end is not None:
        stmt = stmt.where(c.time < between.end)
    if query.after is not None:
        stmt = stmt.where(c.sequence > query.after)
    stmt = stmt.order_by(c.sequence).limit(query.limit + 1)
    rows = (await conn.execute(stmt)).all()
    items = [
        AuditEntryOut(
            sequence=r.sequence,
            event_id=r.event_id,
            type=r.type,
            source=r.source,
            site_id=r.site_id,
            subject=r.subject,
            time=r.time,
            recorded_at=r.recorded_at,
            event=json.loads(r.body),
            prev_hash=r.prev_hash,
            hash=r.hash,
        )
        for r in rows[: query.limit]
    ]
    return AuditPage(items=items, next_after=items[-1].sequence if len(rows) > query.limit else None)


async def begin_consistent_read(driver: asyncpg.Connection) -> None:
    """Make the unit of work's transaction (begun on its ``driver`` connection) read one snapshot (a report's
    figures must agree with each other even while appends commit); must come before the transaction's first query."""
    # Report queries bound their scans by the request's dates and hours; a cached generic plan cannot see them and
    # may scan whole tables. (Two settings, one round trip: the driver's simple query protocol.)
    await driver.execute(
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SET LOCAL plan_cache_mode = force_custom_plan"
    )


async def count_rows(conn: AsyncConnection, table: Table) -> int:
    return int(await conn.scalar(select(func.count()).select_from(table)) or 0)
