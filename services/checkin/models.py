"""Tables of the ``checkin`` schema and the repository handlers use (Core statements on the hot path)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import asyncpg
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.checkin import SCHEMA
from services.checkin.domain import ClosedBy
from shared.contracts import SupportType
from shared.contracts.checkin import Purpose
from shared.db import service_metadata
from shared.events import Event
from shared.partitions import MonthlyTable
from shared.uow import OUTBOX_COLUMNS, UnitOfWork, outbox_args, outbox_insert


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)
    # Every class here maps a Table (declarative types it as any FromClause): insert() and update() take it.
    __table__: ClassVar[Table]


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("site_id", "kiosk_code"),)

    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[str] = mapped_column(Text)
    # The only personal detail in the whole system; optional, erasable, never in an event or a log.
    nickname: Mapped[str | None] = mapped_column(Text)
    kiosk_code: Mapped[str | None] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Visit(Base):
    """Partitioned by month of ``checked_in_at`` (shared/partitions.py; ``rcc maintain`` creates the months ahead):
    the key includes it, and a lookup by ``visit_id`` alone probes each partition's key index."""

    __tablename__ = "visits"
    __table_args__ = (
        Index("ix_visits_open_site", "site_id", postgresql_where=text("checked_out_at IS NULL")),
        Index("ix_visits_site_checked_in", "site_id", "checked_in_at", "visit_id"),
        Index("ix_visits_member", "member_id", "checked_in_at"),
        {"postgresql_partition_by": "RANGE (checked_in_at)"},
    )

    visit_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[str] = mapped_column(Text)
    member_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    purpose: Mapped[str] = mapped_column(Text)
    support_type: Mapped[str | None] = mapped_column(Text)
    ref: Mapped[str | None] = mapped_column(Text)
    checked_in_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    checked_out_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(Text)
    # checked_in_at/checked_out_at are when it happened (a kiosk's occurred_at for one saved offline); these are
    # when the server received it. Null on visits older than migration 0002.
    checked_in_received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    checked_out_received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    checked_in_offline: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    checked_out_offline: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


_MEMBER_KEY = f"{SCHEMA}.members.member_id"


class DisplayName(Base):
    """The name a volunteer chose for staff of their site to see (not the kiosk's nickname: README, "Display
    names"). A row of its own, so that only the look-ups that disclose it read it; erasure deletes it."""

    __tablename__ = "display_names"
    __table_args__ = (CheckConstraint("char_length(display_name) BETWEEN 1 AND 60", name="display_name_length"),)

    member_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey(_MEMBER_KEY, ondelete="CASCADE"), primary_key=True
    )
    display_name: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OpenVisit(Base):
    """One open visit per member, enforced by the database under any concurrency and across the visits' monthly
    partitions: row triggers on ``visits`` claim the member's row here when a visit starts (a visit whose member
    holds a claim is not inserted) and release it at check-out (migration 0002 of this schema)."""

    __tablename__ = "open_visits"

    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    visit_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))


members = Member.__table__
visits = Visit.__table__
display_names = DisplayName.__table__
PARTITIONED = MonthlyTable(SCHEMA, "visits", "checked_in_at")


@dataclass(frozen=True, slots=True)
class NewVisit:
    visit_id: uuid.UUID
    site_id: str
    purpose: Purpose
    support_type: SupportType | None
    ref: str | None
    checked_in_at: datetime
    received_at: datetime
    recorded_offline: bool
    # Set for a check-in saved before the site last closed: the visit ended at that closing (closed_by auto_close).
    checked_out_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class VisitRecord:
    visit_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID | None
    purpose: Purpose
    ref: str | None
    checked_in_at: datetime
    checked_out_at: datetime | None


class CheckinRepository:
    def __init__(self, session: AsyncConnection, driver: asyncpg.Connection) -> None:
        self.session = session
        self.driver = driver

    async def add_member(
        self, member_id: uuid.UUID, site_id: str, nickname: str | None, kiosk_code: str, at: datetime
    ) -> bool:
        """False when the kiosk code is taken at this site (the caller draws another)."""
        result = await self.session.execute(
            insert(members)
            .values(member_id=member_id, site_id=site_id, nickname=nickname, kiosk_code=kiosk_code, registered_at=at)
            .on_conflict_do_nothing()
            .returning(members.c.member_id)
        )
        return result.first() is not None

    async def start_visit(
        self, visit: NewVisit, event: Event, *, member_id: uuid.UUID | None = None, kiosk_code: str | None = None
    ) -> tuple[bool, uuid.UUID | None]:
        """Insert the visit and its event's outbox row in one statement, resolving the member by code or id on this
        site (the event's ``member_id`` becomes the one resolved); neither is written when the check-in is refused.

        Returns (started, member_id); not started means no such member here, or one already checked in."""
        who: str | uuid.UUID | None
        if kiosk_code is not None:
            sql, who = _START_BY_CODE, kiosk_code
        elif member_id is not None:
            sql, who = _START_BY_MEMBER, member_id
        else:
            sql, who = _START_ANONYMOUS, None
        args = (
            visit.visit_id,
            visit.site_id,
            visit.purpose,
            visit.support_type,
            visit.ref,
            visit.checked_in_at,
            visit.received_at,
            visit.recorded_offline,
            visit.checked_out_at,
        )
        started = await self.driver.fetchrow(sql, *args, *outbox_args(event), *(() if who is None else (who,)))
        return (False, None) if started is None else (True, started[0])

    async def find_member_id(
        self, site_id: str, *, kiosk_code: str | None = None, member_id: uuid.UUID | None = None
    ) -> uuid.UUID | None:
        who = members.c.kiosk_code == kiosk_code if kiosk_code is not None else members.c.member_id == member_id
        return await self.session.scalar(
            select(members.c.member_id).where(who, members.c.site_id == site_id, members.c.erased_at.is_(None))
        )

    async def open_visit_of(self, member_id: uuid.UUID) -> uuid.UUID | None:
        return await self.session.scalar(
            select(visits.c.visit_id).where(visits.c.member_id == member_id, visits.c.checked_out_at.is_(None))
        )

    async def close_visit(
        self,
        visit_id: uuid.UUID,
        site_id: str,
        at: datetime,
        closed_by: ClosedBy,
        *,
        received_at: datetime,
        recorded_offline: bool = False,
    ) -> VisitRecord | None:
        row = (
            await self.session.execute(
                update(visits)
                .where(visits.c.visit_id == visit_id, visits.c.site_id == site_id, visits.c.checked_out_at.is_(None))
                .values(
                    checked_out_at=func.greatest(at, visits.c.checked_in_at),
                    closed_by=closed_by,
                    checked_out_received_at=received_at,
                    checked_out_offline=recorded_offline,
                )
                .returning(*_visit_columns())
            )
        ).first()
        return None if row is None else VisitRecord(*row)

    async def get_visit(self, visit_id: uuid.UUID, site_id: str) -> VisitRecord | None:
        row = (
            await self.session.execute(
                select(*_visit_columns()).where(visits.c.visit_id == visit_id, visits.c.site_id == site_id)
            )
        ).first()
        return None if row is None else VisitRecord(*row)

    async def open_visits(self, site_id: str) -> list[VisitRecord]:
        rows = await self.session.execute(
            select(*_visit_columns())
            .where(visits.c.site_id == site_id, visits.c.checked_out_at.is_(None))
            .order_by(visits.c.checked_in_at)
        )
        return [VisitRecord(*row) for row in rows]

    async def count_present(self, site_id: str) -> int:
        return (
            await self.session.scalar(
                select(func.count())
                .select_from(visits)
                .where(and_(visits.c.site_id == site_id, visits.c.checked_out_at.is_(None)))
            )
            or 0
        )

    async def erase_member(self, member_id: uuid.UUID, at: datetime) -> bool:
        result = await self.session.execute(
            update(members)
            .where(members.c.member_id == member_id, members.c.erased_at.is_(None))
            .values(nickname=None, kiosk_code=None, erased_at=at)
            .returning(members.c.member_id)
        )
        if result.first() is None:
            return False
        await self.remove_display_name(member_id)
        return True

    async def site_of_member(self, member_id: uuid.UUID) -> str | None:
        return await self.session.scalar(select(members.c.site_id).where(members.c.member_id == member_id))

    # Display names

    async def is_current_member(self, member_id: uuid.UUID, site_id: str) -> bool:
        """Registered at this site and not erased."""
        found = await self.session.scalar(
            select(members.c.member_id).where(
                members.c.member_id == member_id, members.c.site_id == site_id, members.c.erased_at.is_(None)
            )
        )
        return found is not None

    async def set_display_name(self, member_id: uuid.UUID, name: str, at: datetime) -> None:
        await self.session.execute(
            insert(display_names)
            .values(member_id=member_id, display_name=name, updated_at=at)
            .on_conflict_do_update(
                index_elements=[display_names.c.member_id], set_={"display_name": name, "updated_at": at}
            )
        )

    async def remove_display_name(self, member_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(display_names).where(display_names.c.member_id == member_id).returning(display_names.c.member_id)
        )
        return result.first() is not None

    async def display_name_of(self, member_id: uuid.UUID) -> tuple[str, datetime] | None:
        row = (
            await self.session.execute(
                select(display_names.c.display_name, display_names.c.updated_at).where(
                    display_names.c.member_id == member_id
                )
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def display_names_at(self, site_id: str, member_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The display names of those of ``member_ids`` who are current members of ``site_id``."""
        rows = await self.session.execute(
            select(display_names.c.member_id, display_names.c.display_name)
            .join(members, members.c.member_id == display_names.c.member_id)
            .where(
                display_names.c.member_id.in_(member_ids),
                members.c.site_id == site_id,
                members.c.erased_at.is_(None),
            )
        )
        return {row.member_id: row.display_name for row in rows}


def _start_visit_sql(member: str) -> str:
    """The check-in as one statement, prepared once per connection (asyncpg's statement cache). ``member`` selects
    the member (NULL for an anonymous walk-in; ``{who}`` is the code or id); the member's claim in ``open_visits``
    turns a second open visit into no row instead of an error; the outbox row is written only with a visit. Being
    one statement, it needs no BEGIN and COMMIT of its own. A visit given its end ($9: one that happened before the
    site last closed) is written closed by the closing, and claims nothing."""
    who = 10 + len(OUTBOX_COLUMNS)
    event = outbox_insert(
        SCHEMA, first_param=10, rows="visit", merge_into_data="jsonb_build_object('member_id', visit.member_id)"
    )
    return f"""
        WITH member AS ({member.format(who=f"${who}")}),
        visit AS (
            INSERT INTO "{SCHEMA}".visits (visit_id, site_id, purpose, support_type, ref, checked_in_at,
                                           checked_in_received_at, checked_in_offline, member_id, checked_out_at,
                                           closed_by, checked_out_received_at)
            SELECT $1, $2, $3, $4, $5, $6, $7, $8, member.member_id, $9::timestamptz,
                   CASE WHEN $9 IS NOT NULL THEN 'auto_close' END, CASE WHEN $9 IS NOT NULL THEN $7::timestamptz END
            FROM member
            RETURNING member_id
        ),
        event AS ({event})
        SELECT member_id FROM visit
    """


_MEMBER_HERE = f'SELECT member_id FROM "{SCHEMA}".members WHERE site_id = $2 AND erased_at IS NULL'
_START_BY_CODE = _start_visit_sql(_MEMBER_HERE + " AND kiosk_code = {who}")
_START_BY_MEMBER = _start_visit_sql(_MEMBER_HERE + " AND member_id = {who}")
_START_ANONYMOUS = _start_visit_sql("SELECT NULL::uuid AS member_id")


def _visit_columns() -> tuple[Column[Any], ...]:
    c = visits.c
    return (c.visit_id, c.site_id, c.member_id, c.purpose, c.ref, c.checked_in_at, c.checked_out_at)


class CheckinUnitOfWork(UnitOfWork):
    source = "/rcc/checkin"

    def start(self) -> None:
        self.checkin = CheckinRepository(self.session, self.driver)
