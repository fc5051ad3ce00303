"""The ``audit`` schema's log: the append-only, hash-chained ``audit_log`` table; its repository, which takes the
chain's lock and reads its head (the append handler holds it for the rest of the transaction, so appends are
serialised), tells which events the log already has (the log is its own inbox: a redelivered event is found there),
inserts entries the handler chained, and reads the chain back in chunks (verification and ``rcc reports rebuild``);
and the unit of work that also carries the report projector (the ``rp_*`` tables are in
services/audit/reports/tables.py; other reads in services/audit/queries.py)."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import ClassVar

import asyncpg
from sqlalchemy import BigInteger, DateTime, Index, Table, Text, UniqueConstraint, func, select, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.audit import SCHEMA
from services.audit.domain import GENESIS_HASH, ChainLink
from services.audit.reports.projector import Projector
from shared.db import service_metadata
from shared.partitions import MonthlyTable
from shared.uow import UnitOfWork


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)
    # Every class here maps a Table (declarative types it as any FromClause): insert() and update() take it.
    __table__: ClassVar[Table]


class AuditEntry(Base):
    """Partitioned by month of the event's ``time`` (shared/partitions.py; ``rcc maintain`` creates the months
    ahead). Unique keys include ``time``: a redelivered event has its first delivery's time, so (event_id, time)
    still refuses it; sequence and prev_hash are unique within a month, and the chain lock below is what makes them
    one line across months (migration 0003 of this schema says why)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("event_id", "time", name="audit_log_event_id_key"),
        UniqueConstraint("prev_hash", "time", name="audit_log_prev_hash_key"),
        Index("ix_audit_log_site_time", "site_id", "time"),
        Index("ix_audit_log_type_time", "type", "time"),
        Index("ix_audit_log_subject", "subject"),
        {"postgresql_partition_by": "RANGE (time)"},
    )

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    type: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    site_id: Mapped[str] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The CloudEvent as received, as canonical JSON text: exactly the bytes the hash covers.
    body: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(Text)


audit_log = AuditEntry.__table__
PARTITIONED = MonthlyTable(SCHEMA, "audit_log", "time")


# Appends are serialised: the chain is a sequence, one link after another.
CHAIN_LOCK_KEY = zlib.crc32(b"rcc-audit-chain")


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry the append handler chained: ``prev_hash`` is the head before it, ``hash`` links it."""

    sequence: int
    event_id: uuid.UUID
    type: str
    source: str
    site_id: str
    subject: str | None
    time: datetime
    recorded_at: datetime
    body: str
    prev_hash: str
    hash: str


# The append's two statements, on the driver: one array per column (a batch is one Bind, whatever its size), where
# SQLAlchemy would bind and send each row, and an IN list of as many parameters, on its own.
_APPEND_COLUMNS = {
    "sequence": "bigint",
    "event_id": "uuid",
    "type": "text",
    "source": "text",
    "site_id": "text",
    "subject": "text",
    "time": "timestamptz",
    "recorded_at": "timestamptz",
    "body": "text",
    "prev_hash": "text",
    "hash": "text",
}
_APPEND = (
    f"INSERT INTO {SCHEMA}.audit_log ({', '.join(_APPEND_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(_APPEND_COLUMNS.values(), start=1))
    + ")"
)
_entry_row = attrgetter(*_APPEND_COLUMNS)
_RECORDED = f"SELECT event_id FROM {SCHEMA}.audit_log WHERE event_id = any($1::uuid[])"


class AuditRepository:
    def __init__(self, session: AsyncConnection, driver: asyncpg.Connection) -> None:
        self.session = session
        self.driver = driver

    async def lock_chain_and_read_head(self) -> tuple[int, str]:
        """Take the chain's transaction-scoped lock, then read the head: (last sequence, its hash), or (0, genesis).

        Two statements, not one: a statement reads the snapshot taken when it started (READ COMMITTED), so a head read
        in the statement that waited for the lock would miss the entries the lock's previous holder committed
        meanwhile, and two appenders (two consumer replicas) would both write the same next sequence."""
        await self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})
        row = (
            await self.session.execute(
                text(f"SELECT sequence, hash FROM {SCHEMA}.audit_log ORDER BY sequence DESC LIMIT 1")
            )
        ).first()
        return (row.sequence, row.hash) if row is not None else (0, GENESIS_HASH)

    async def recorded_ids(self, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        return {row[0] for row in await self.driver.fetch(_RECORDED, event_ids)}

    async def append(self, entries: list[NewEntry]) -> None:
        if entries:
            await self.driver.execute(
                _APPEND, *(list(column) for column in zip(*map(_entry_row, entries), strict=True))
            )

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
            yield [ChainLink(r.sequence, r.prev_hash, r.hash, r.body, r.type, r.site_id, str(r.event_id)) for r in rows]
            after = rows[-1].sequence


class AuditUnitOfWork(UnitOfWork):
    source = "/rcc/audit"

    def start(self) -> None:
        self.audit = AuditRepository(self.session, self.driver)
        # The append handler projects what it appended, in the same transaction (services/audit/reports/projector.py).
        self.projector = Projector(self.session)
