"""The read side of volunteering: what the views list and show (roles, profiles, shifts with their seats and
waitlists, sign-ups, a volunteer's own shifts and hours, the calendar feed). Handlers never read through here;
they use the repositories in ``models``. Nothing here locks or writes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, and_, case, exists, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from services.volunteering.domain import ACTIVE_SIGNUP
from services.volunteering.models import site_filter
from services.volunteering.records import RoleRecord
from services.volunteering.tables import calendar_feeds, hours, roles, shifts, signups, trainings, volunteers

# A row of a listing: columns by name, as the views read them.
ResultRow = Row[*tuple[Any, ...]]


class VolunteeringQueries:
    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

    async def roles(self, site_id: str) -> list[RoleRecord]:
        rows = await self.session.execute(
            select(roles.c.site_id, roles.c.role_id, roles.c.title, roles.c.required_trainings, roles.c.supervisor)
            .where(roles.c.site_id == site_id)
            .order_by(roles.c.role_id)
        )
        return [RoleRecord(r[0], r[1], r[2], tuple(r[3]), r[4]) for r in rows]

    async def volunteer(self, member_id: uuid.UUID) -> ResultRow | None:
        row: ResultRow | None = (
            await self.session.execute(select(volunteers).where(volunteers.c.member_id == member_id))
        ).first()
        return row

    async def training_records(self, member_id: uuid.UUID) -> list[ResultRow]:
        rows = await self.session.execute(
            select(trainings.c.record_id, trainings.c.training_id, trainings.c.completed_on, trainings.c.expires_on)
            .where(trainings.c.member_id == member_id)
            .order_by(trainings.c.training_id, trainings.c.completed_on)
        )
        return list(rows)

    async def minutes_by_status(self, member_id: uuid.UUID, start: datetime, end: datetime) -> dict[str, int]:
        """Minutes of the member's hours records whose shift started in ``[start, end)``, by status."""
        rows = await self.session.execute(
            select(hours.c.status, func.sum(hours.c.minutes))
            .where(hours.c.member_id == member_id, hours.c.shift_starts_at >= start, hours.c.shift_starts_at < end)
            .group_by(hours.c.status)
        )
        return {status: int(total) for status, total in rows}

    def _shift_listing(self) -> Select[Any]:
        waiting = (
            select(func.count())
            .where(signups.c.shift_id == shifts.c.shift_id, signups.c.status == "waitlisted")
            .correlate(shifts)
            .scalar_subquery()
        )
        other, other_role = shifts.alias("other"), roles.alias("other_role")
        supervisor_on_duty = exists(
            select(other.c.shift_id)
            .join(other_role, and_(other_role.c.site_id == other.c.site_id, other_role.c.role_id == other.c.role_id))
            .where(
                other_role.c.supervisor,
                other.c.site_id == shifts.c.site_id,
                other.c.shift_id != shifts.c.shift_id,
                other.c.status == "scheduled",
                other.c.confirmed > 0,
                other.c.starts_at < shifts.c.ends_at,
                other.c.ends_at > shifts.c.starts_at,
            )
        ).correlate(shifts)
        return select(
            shifts.c.shift_id,
            shifts.c.series_id,
            shifts.c.role_id,
            roles.c.title.label("role_title"),
            roles.c.required_trainings,
            shifts.c.starts_at,
            shifts.c.ends_at,
            shifts.c.timezone,
            shifts.c.capacity,
            shifts.c.confirmed,
            waiting.label("waitlisted"),
            shifts.c.needs_supervisor,
            supervisor_on_duty.label("supervisor_on_duty"),
            shifts.c.status,
        ).join(roles, and_(roles.c.site_id == shifts.c.site_id, roles.c.role_id == shifts.c.role_id))

    async def shift(self, shift_id: uuid.UUID, site_id: str | None) -> ResultRow | None:
        row: ResultRow | None = (
            await self.session.execute(
                self._shift_listing().where(shifts.c.shift_id == shift_id, site_filter(shifts.c.site_id, site_id))
            )
        ).first()
        return row

    async def shifts(
        self,
        site_id: str,
        *,
        start: datetime,
        end: datetime,
        after: tuple[datetime, uuid.UUID] | None,
        role_ids: Sequence[str] | None,
        open_after: datetime | None,
        seats_only: bool,
        include_cancelled: bool,
        limit: int,
    ) -> list[ResultRow]:
        stmt = self._shift_listing().where(
            shifts.c.site_id == site_id, shifts.c.starts_at >= start, shifts.c.starts_at < end
        )
        if role_ids is not None:
            stmt = stmt.where(shifts.c.role_id.in_(list(role_ids)))
        if open_after is not None:
            stmt = stmt.where(shifts.c.starts_at > open_after)
        if seats_only:
            stmt = stmt.where(shifts.c.confirmed < shifts.c.capacity)
        if not include_cancelled or open_after is not None:
            stmt = stmt.where(shifts.c.status == "scheduled")
        if after is not None:
            stmt = stmt.where(tuple_(shifts.c.starts_at, shifts.c.shift_id) > tuple_(*after))
        stmt = stmt.order_by(shifts.c.starts_at, shifts.c.shift_id).limit(limit)
        return list(await self.session.execute(stmt))

    @staticmethod
    def _position() -> ColumnElement[Any]:
        """1-based place of a waitlisted sign-up (rank among the shift's waitlisted by arrival); else null."""
        ahead = signups.alias("ahead")
        rank = (
            select(func.count())
            .where(ahead.c.shift_id == signups.c.shift_id, ahead.c.status == "waitlisted", ahead.c.seq <= signups.c.seq)
            .correlate(signups)
            .scalar_subquery()
        )
        return case((signups.c.status == "waitlisted", rank), else_=None)

    async def my_active_signups(
        self, member_id: uuid.UUID, shift_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, ResultRow]:
        if not shift_ids:
            return {}
        rows = await self.session.execute(
            select(signups.c.shift_id, signups.c.status, self._position().label("position")).where(
                signups.c.member_id == member_id,
                signups.c.shift_id.in_(list(shift_ids)),
                signups.c.status.in_(ACTIVE_SIGNUP),
            )
        )
        return {row.shift_id: row for row in rows}

    async def signups_of(self, shift_id: uuid.UUID) -> list[ResultRow]:
        rows = await self.session.execute(
            select(
                signups.c.signup_id,
                signups.c.member_id,
                signups.c.status,
                self._position().label("position"),
                signups.c.signed_up_at,
                signups.c.signed_up_by,
                signups.c.promoted,
                signups.c.missed_at.is_not(None).label("missed"),
            )
            .where(signups.c.shift_id == shift_id)
            .order_by(signups.c.seq)
        )
        return list(rows)

    async def my_shifts(self, member_id: uuid.UUID, *, now: datetime, upcoming: bool, limit: int) -> list[ResultRow]:
        worked = (
            select(func.sum(hours.c.minutes))
            .where(
                hours.c.shift_id == signups.c.shift_id,
                hours.c.member_id == signups.c.member_id,
                hours.c.status != "rejected",
            )
            .correlate(signups)
            .scalar_subquery()
        )
        stmt = (
            select(
                signups.c.signup_id,
                signups.c.shift_id,
                shifts.c.role_id,
                roles.c.title.label("role_title"),
                shifts.c.starts_at,
                shifts.c.ends_at,
                shifts.c.status.label("shift_status"),
                signups.c.status,
                self._position().label("position"),
                signups.c.missed_at.is_not(None).label("missed"),
                worked.label("worked_minutes"),
            )
            .join(shifts, shifts.c.shift_id == signups.c.shift_id)
            .join(roles, and_(roles.c.site_id == shifts.c.site_id, roles.c.role_id == shifts.c.role_id))
            .where(signups.c.member_id == member_id)
        )
        if upcoming:
            stmt = stmt.where(shifts.c.ends_at > now).order_by(shifts.c.starts_at, signups.c.seq)
        else:
            stmt = stmt.where(shifts.c.ends_at <= now).order_by(shifts.c.starts_at.desc(), signups.c.seq.desc())
        return list(await self.session.execute(stmt.limit(limit)))

    async def hours_page(
        self,
        *,
        site_id: str | None,
        member_id: uuid.UUID | None,
        status: str | None,
        start: datetime | None,
        end: datetime | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[ResultRow]:
        stmt = select(hours)
        if site_id is not None:
            stmt = stmt.where(hours.c.site_id == site_id)
        if member_id is not None:
            stmt = stmt.where(hours.c.member_id == member_id)
        if status is not None:
            stmt = stmt.where(hours.c.status == status)
        if start is not None:
            stmt = stmt.where(hours.c.shift_starts_at >= start)
        if end is not None:
            stmt = stmt.where(hours.c.shift_starts_at < end)
        if before is not None:
            stmt = stmt.where(tuple_(hours.c.created_at, hours.c.hours_id) < tuple_(*before))
        stmt = stmt.order_by(hours.c.created_at.desc(), hours.c.hours_id.desc()).limit(limit)
        return list(await self.session.execute(stmt))

    async def hours_record(self, hours_id: uuid.UUID, site_id: str | None) -> ResultRow | None:
        return (
            await self.session.execute(
                select(hours).where(hours.c.hours_id == hours_id, site_filter(hours.c.site_id, site_id))
            )
        ).first()

    async def feed_owner(self, secret_hash: str) -> uuid.UUID | None:
        return await self.session.scalar(
            select(calendar_feeds.c.member_id).where(calendar_feeds.c.secret_hash == secret_hash)
        )

    async def calendar_entries(self, member_id: uuid.UUID, since: datetime) -> list[ResultRow]:
        """Confirmed shifts from ``since`` on, and ones cancelled on the volunteer (so calendars remove them)."""
        rows = await self.session.execute(
            select(
                signups.c.signup_id,
                signups.c.status,
                shifts.c.shift_id,
                shifts.c.starts_at,
                shifts.c.ends_at,
                shifts.c.status.label("shift_status"),
                shifts.c.revision,
                shifts.c.updated_at,
                signups.c.left_at,
                roles.c.title.label("role_title"),
            )
            .join(shifts, shifts.c.shift_id == signups.c.shift_id)
            .join(roles, and_(roles.c.site_id == shifts.c.site_id, roles.c.role_id == shifts.c.role_id))
            .where(
                signups.c.member_id == member_id,
                signups.c.status.in_(("confirmed", "cancelled")),
                shifts.c.ends_at >= since,
            )
            .order_by(shifts.c.starts_at)
            .limit(1000)
        )
        return list(rows)
