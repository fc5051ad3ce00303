"""Tables of the ``checkin`` schema and the repository handlers use (Core statements on the hot path)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Index,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import UUID, Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.checkin import SCHEMA
from shared.db import service_metadata
from shared.uow import UnitOfWork


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


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
    __tablename__ = "visits"
    __table_args__ = (
        # One open visit per member, enforced by the database under any concurrency.
        Index("uq_visits_open_member", "member_id", unique=True, postgresql_where=text("checked_out_at IS NULL")),
        Index("ix_visits_open_site", "site_id", postgresql_where=text("checked_out_at IS NULL")),
        Index("ix_visits_site_checked_in", "site_id", "checked_in_at", "visit_id"),
        Index("ix_visits_member", "member_id", "checked_in_at"),
    )

    visit_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[str] = mapped_column(Text)
    member_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    purpose: Mapped[str] = mapped_column(Text)
    support_type: Mapped[str | None] = mapped_column(Text)
    ref: Mapped[str | None] = mapped_column(Text)
    checked_in_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    checked_out_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(Text)


members = Member.__table__
visits = Visit.__table__


@dataclass(frozen=True, slots=True)
class NewVisit:
    visit_id: uuid.UUID
    site_id: str
    purpose: str
    support_type: str | None
    ref: str | None
    checked_in_at: datetime


@dataclass(frozen=True, slots=True)
class VisitRecord:
    visit_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID | None
    purpose: str
    ref: str | None
    checked_in_at: datetime
    checked_out_at: datetime | None


class CheckinRepository:
    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

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
        self, visit: NewVisit, *, member_id: uuid.UUID | None = None, kiosk_code: str | None = None
    ) -> tuple[bool, uuid.UUID | None]:
        """Insert the visit in one statement, resolving the member by code or id on this site.

        Returns (started, member_id); not started means no such member here, or one already checked in."""
        params = {
            "visit_id": visit.visit_id,
            "site_id": visit.site_id,
            "purpose": visit.purpose,
            "support_type": visit.support_type,
            "ref": visit.ref,
            "checked_in_at": visit.checked_in_at,
        }
        if member_id is None and kiosk_code is None:
            await self.session.execute(_START_ANONYMOUS, params)
            return True, None
        if kiosk_code is not None:
            result = await self.session.execute(_START_BY_CODE, {**params, "kiosk_code": kiosk_code})
        else:
            result = await self.session.execute(_START_BY_MEMBER, {**params, "member_id": member_id})
        started = result.scalar_one_or_none()
        return started is not None, started

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
        self, visit_id: uuid.UUID, site_id: str, at: datetime, closed_by: str
    ) -> VisitRecord | None:
        row = (
            await self.session.execute(
                update(visits)
                .where(visits.c.visit_id == visit_id, visits.c.site_id == site_id, visits.c.checked_out_at.is_(None))
                .values(checked_out_at=func.greatest(at, visits.c.checked_in_at), closed_by=closed_by)
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
        return await self.session.scalar(
            select(func.count()).select_from(visits).where(
                and_(visits.c.site_id == site_id, visits.c.checked_out_at.is_(None))
            )
        ) or 0

    async def erase_member(self, member_id: uuid.UUID, at: datetime) -> bool:
        result = await self.session.execute(
            update(members)
            .where(members.c.member_id == member_id, members.c.erased_at.is_(None))
            .values(nickname=None, kiosk_code=None, erased_at=at)
            .returning(members.c.member_id)
        )
        return result.first() is not None

    async def site_of_member(self, member_id: uuid.UUID) -> str | None:
        return await self.session.scalar(select(members.c.site_id).where(members.c.member_id == member_id))


_VISIT_VALUES = {
    "visit_id": bindparam("visit_id", type_=UUID(as_uuid=True)),
    "site_id": bindparam("site_id", type_=Text),
    "purpose": bindparam("purpose", type_=Text),
    "support_type": bindparam("support_type", type_=Text),
    "ref": bindparam("ref", type_=Text),
    "checked_in_at": bindparam("checked_in_at", type_=DateTime(timezone=True)),
}
_START_ANONYMOUS = insert(visits).values(_VISIT_VALUES)


def _start_by(who: ColumnElement[bool]) -> Insert:
    """INSERT … SELECT: the member is found (on this site, not erased) and the visit started in one round trip;
    the partial unique index turns a second open visit into no row instead of an error."""
    member = select(*_VISIT_VALUES.values(), members.c.member_id).where(
        who, members.c.site_id == bindparam("site_id", type_=Text), members.c.erased_at.is_(None)
    )
    return (
        insert(visits)
        .from_select([*_VISIT_VALUES, "member_id"], member)
        .on_conflict_do_nothing(index_elements=["member_id"], index_where=text("checked_out_at IS NULL"))
        .returning(visits.c.member_id)
    )


_START_BY_CODE = _start_by(members.c.kiosk_code == bindparam("kiosk_code", type_=Text))
_START_BY_MEMBER = _start_by(members.c.member_id == bindparam("member_id", type_=UUID(as_uuid=True)))


def _visit_columns() -> tuple:
    c = visits.c
    return (c.visit_id, c.site_id, c.member_id, c.purpose, c.ref, c.checked_in_at, c.checked_out_at)


class CheckinUnitOfWork(UnitOfWork):
    source = "/rcc/checkin"

    def start(self) -> None:
        self.checkin = CheckinRepository(self.session)
