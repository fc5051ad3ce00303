"""The ``audit`` schema: the append-only log, the report projections (``rp_*``) derived from it, and the repository
that appends to the log and keeps the projections in step in the same transaction."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Table, Text, func, select, text
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.audit import SCHEMA
from services.audit.domain import GENESIS_HASH, ChainLink
from services.audit.projections import LoggedEvent, Projector
from shared.db import service_metadata
from shared.uow import UnitOfWork


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_site_time", "site_id", "time"),
        Index("ix_audit_log_type_time", "type", "time"),
        Index("ix_audit_log_subject", "subject"),
    )

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    type: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    site_id: Mapped[str] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The CloudEvent as received, as canonical JSON text: exactly the bytes the hash covers.
    body: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(Text, unique=True)
    hash: Mapped[str] = mapped_column(Text)


audit_log = AuditEntry.__table__


# Appends are serialised: the chain is a sequence, one link after another.
CHAIN_LOCK_KEY = zlib.crc32(b"rcc-audit-chain")


class AuditRepository:
    def __init__(self, session: AsyncConnection) -> None:
        self.session = session
        self.projector = Projector(session)

    async def lock_chain_and_read_head(self) -> tuple[int, str]:
        row = (
            await self.session.execute(
                text(
                    "SELECT l.sequence, l.hash FROM (SELECT pg_advisory_xact_lock(:key)) AS locked "
                    f"LEFT JOIN LATERAL (SELECT sequence, hash FROM {SCHEMA}.audit_log "
                    "ORDER BY sequence DESC LIMIT 1) AS l ON true"
                ),
                {"key": CHAIN_LOCK_KEY},
            )
        ).one()
        return (row.sequence or 0, row.hash or GENESIS_HASH)

    async def recorded_ids(self, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        rows = await self.session.scalars(select(audit_log.c.event_id).where(audit_log.c.event_id.in_(event_ids)))
        return set(rows)

    async def append(self, entries: list[dict[str, Any]]) -> None:
        """Append entries (already chained) and project exactly them, in this transaction: an event is counted in
        the reports if and only if it is in the log, once."""
        if entries:
            await self.session.execute(insert(audit_log), entries)
            await self.projector.apply([LoggedEvent.from_entry(entry) for entry in entries])

    async def begin_consistent_read(self) -> None:
        """Make this transaction read one snapshot (a report's figures must agree with each other even while
        appends commit); must come before the transaction's first query."""
        # Report queries bound their scans by the request's dates and hours; a cached generic plan cannot see them
        # and may scan whole tables. (Two settings, one round trip: the driver's simple query protocol.)
        driver = (await self.session.get_raw_connection()).driver_connection
        await driver.execute(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SET LOCAL plan_cache_mode = force_custom_plan"
        )

    async def count_rows(self, table: Table) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(table)) or 0)

    async def links(self, chunk_rows: int) -> AsyncIterator[list[ChainLink]]:
        """The whole chain in sequence order, a chunk at a time (keyset pagination keeps memory flat)."""
        after = 0
        c = audit_log.c
        while True:
            rows = (
                await self.session.execute(
                    select(c.sequence, c.prev_hash, c.hash, c.body, c.type, c.site_id, c.event_id)
                    .where(c.sequence > after)
                    .order_by(c.sequence)
                    .limit(chunk_rows)
                )
            ).all()
            if not rows:
                return
            yield [
                ChainLink(r.sequence, r.prev_hash, r.hash, r.body, r.type, r.site_id, str(r.event_id)) for r in rows
            ]
            after = rows[-1].sequence


class AuditUnitOfWork(UnitOfWork):
    source = "/rcc/audit"

    def start(self) -> None:
        self.audit = AuditRepository(self.session)
