"""The read side of gatherings: what the views list and show (groups, calendars, one gathering, rosters,
registration status), in the shapes the API answers with. Handlers never read through here; they use
``GatheringsRepository``."""

from __future__ import annotations

import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gatherings import domain
from services.gatherings.commands import GatheringOut, GroupOut, RegistrationOut, Roster
from services.gatherings.domain import CalendarEntry, GatheringType
from services.gatherings.models import (
    GatheringRow,
    GroupRecord,
    RegistrationRow,
    find_gathering,
    gatherings,
    group_columns,
    groups,
    registration_columns,
    registrations,
)
from shared.contracts import SupportType
from shared.contracts.gatherings import EventKind
from shared.recurrence import localize


@dataclass(frozen=True, slots=True)
class GatheringView:
    """A session or a sober event with what a reader needs: the group's name and tags, seats, waitlist length."""

    gathering_id: uuid.UUID
    site_id: str
    gathering_type: GatheringType
    group_id: uuid.UUID | None
    title: str
    kind: EventKind | None
    support_type: SupportType
    focus_tags: list[str]
    family_friendly: bool
    room: str | None
    starts_at: datetime
    ends_at: datetime
    capacity: int
    child_care_seats: int
    taken_adults: int
    taken_children: int
    waitlisted: int
    registration_opens_at: datetime | None
    registration_closes_at: datetime | None
    occurrence_start: datetime | None
    timezone: str | None
    revision: int
    updated_at: datetime
    cancelled_at: datetime | None


class GatheringsQueries:
    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

    async def groups_page(self, site_id: str, after: tuple[str, uuid.UUID] | None, limit: int) -> list[GroupOut]:
        g = groups.c
        stmt = select(*group_columns()).where(g.site_id == site_id)
        if after is not None:
            stmt = stmt.where(tuple_(g.name, g.group_id) > tuple_(*after))
        stmt = stmt.order_by(g.name, g.group_id).limit(limit)
        return [_group_out(GroupRecord(*row)) for row in await self.session.execute(stmt)]

    async def group_exists(self, group_id: uuid.UUID, site_id: str | None) -> bool:
        stmt = select(groups.c.group_id).where(groups.c.group_id == group_id)
        if site_id is not None:
            stmt = stmt.where(groups.c.site_id == site_id)
        return await self.session.scalar(stmt) is not None

    async def gathering_views(
        self,
        *,
        site_id: str | None,
        gathering_id: uuid.UUID | None = None,
        gathering_type: GatheringType | None = None,
        group_id: uuid.UUID | None = None,
        ends_after: datetime | None = None,
        starts_before: datetime | None = None,
        after: tuple[datetime, uuid.UUID] | None = None,
        limit: int | None = None,
    ) -> list[GatheringView]:
        """Gatherings by start, with what a reader needs."""
        g, r = gatherings.c, registrations.c
        waitlisted = (
            select(func.count())
            .where(r.gathering_id == g.gathering_id, r.status == "waitlisted")
            .correlate(gatherings)
            .scalar_subquery()
        )
        # GatheringView's fields, in order.
        columns: tuple[ColumnElement[Any], ...] = (
            g.gathering_id,
            g.site_id,
            g.gathering_type,
            g.group_id,
            func.coalesce(g.title, groups.c.name).label("title"),
            g.kind,
            g.support_type,
            func.coalesce(groups.c.focus_tags, literal([], ARRAY(Text))).label("focus_tags"),
            g.family_friendly,
            g.room,
            g.starts_at,
            g.ends_at,
            g.capacity,
            g.child_care_seats,
            g.taken_adults,
            g.taken_children,
            waitlisted.label("waitlisted"),
            g.registration_opens_at,
            g.registration_closes_at,
            g.occurrence_start,
            groups.c.timezone,
            g.revision,
            g.updated_at,
            g.cancelled_at,
        )
        stmt = select(*columns).select_from(gatherings.outerjoin(groups, g.group_id == groups.c.group_id))
        if site_id is not None:
            stmt = stmt.where(g.site_id == site_id)
        if gathering_id is not None:
            stmt = stmt.where(g.gathering_id == gathering_id)
        if gathering_type is not None:
            stmt = stmt.where(g.gathering_type == gathering_type)
        if group_id is not None:
            stmt = stmt.where(g.group_id == group_id)
        if ends_after is not None:
            stmt = stmt.where(g.ends_at > ends_after)
        if starts_before is not None:
            stmt = stmt.where(g.starts_at < starts_before)
        if after is not None:
            stmt = stmt.where(tuple_(g.starts_at, g.gathering_id) > tuple_(*after))
        stmt = stmt.order_by(g.starts_at, g.gathering_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [GatheringView(*row) for row in await self.session.execute(stmt)]

    async def roster(
        self, gathering_id: uuid.UUID, site_id: str | None, gathering_type: GatheringType
    ) -> Roster | None:
        """Who has a seat and who waits, in order; None: no such gathering (here)."""
        found = await self.gathering(gathering_id, site_id, gathering_type)
        if found is None:
            return None
        active = await self.active_registrations(gathering_id)
        waiting = [r for r in active if r.status == "waitlisted"]
        return Roster(
            gathering_id=gathering_id,
            capacity=found.capacity,
            child_care_seats=found.child_care_seats,
            confirmed=[_registration_out(r, None) for r in active if r.status == "confirmed"],
            waitlist=[_registration_out(r, position) for position, r in enumerate(waiting, start=1)],
        )

    async def calendar_entries(
        self, *, site_id: str, ends_after: datetime, starts_before: datetime
    ) -> list[CalendarEntry]:
        """The site's public calendar: what a notice board shows, cancelled gatherings too (as cancelled)."""
        return [
            CalendarEntry(
                uid=f"{v.gathering_id}@rcc-gatherings",
                summary=v.title,
                starts_at=v.starts_at,
                ends_at=v.ends_at,
                location=v.room,
                categories=_categories(v),
                revision=v.revision,
                updated_at=v.updated_at,
                cancelled=v.cancelled_at is not None,
            )
            for v in await self.gathering_views(site_id=site_id, ends_after=ends_after, starts_before=starts_before)
        ]

    async def gathering(
        self, gathering_id: uuid.UUID, site_id: str | None, gathering_type: GatheringType | None
    ) -> GatheringRow | None:
        row = (await self.session.execute(find_gathering(gathering_id, gathering_type, site_id))).first()
        return None if row is None else GatheringRow(*row)

    async def active_registrations(self, gathering_id: uuid.UUID) -> list[RegistrationRow]:
        r = registrations.c
        rows = await self.session.execute(
            select(*registration_columns())
            .where(r.gathering_id == gathering_id, r.status != "cancelled")
            .order_by(r.seq)
        )
        return [RegistrationRow(*row) for row in rows]

    async def registration(self, registration_id: uuid.UUID) -> RegistrationRow | None:
        row = (
            await self.session.execute(
                select(*registration_columns()).where(registrations.c.registration_id == registration_id)
            )
        ).first()
        return None if row is None else RegistrationRow(*row)

    async def waiting_position(self, registration: RegistrationRow) -> int | None:
        if registration.status != "waitlisted":
            return None
        r = registrations.c
        ahead = await self.session.scalar(
            select(func.count()).where(
                r.gathering_id == registration.gathering_id, r.status == "waitlisted", r.seq < registration.seq
            )
        )
        return (ahead or 0) + 1


def gathering_out(v: GatheringView, zone: zoneinfo.ZoneInfo, now: datetime) -> GatheringOut:
    """A gathering as the API shows it: times in the site's zone, seats left, whether registration is open now."""
    room = domain.room_left(v.capacity, v.child_care_seats, v.taken_adults, v.taken_children)
    closes_at = domain.registration_closes_at(v.starts_at, v.registration_closes_at)
    moved = (
        v.occurrence_start is not None
        and v.timezone is not None
        and localize(v.occurrence_start, zoneinfo.ZoneInfo(v.timezone)) != v.starts_at
    )
    cancelled = v.cancelled_at is not None
    return GatheringOut(
        type=v.gathering_type,
        session_id=v.gathering_id if v.gathering_type == "session" else None,
        event_id=v.gathering_id if v.gathering_type == "event" else None,
        group_id=v.group_id,
        title=v.title,
        kind=v.kind,
        support_type=v.support_type,
        focus_tags=v.focus_tags,
        family_friendly=v.family_friendly,
        room=v.room,
        starts_at=v.starts_at.astimezone(zone),
        ends_at=v.ends_at.astimezone(zone),
        capacity=v.capacity,
        child_care_seats=v.child_care_seats,
        seats_left=0 if cancelled else room.adults,
        child_care_seats_left=0 if cancelled else room.children,
        waitlisted=v.waitlisted,
        registration_opens_at=v.registration_opens_at.astimezone(zone) if v.registration_opens_at else None,
        registration_closes_at=closes_at.astimezone(zone),
        registration_open=not cancelled and domain.window_state(now, v.registration_opens_at, closes_at) == "open",
        moved=moved,
        cancelled=cancelled,
    )


def _categories(v: GatheringView) -> tuple[str, ...]:
    what = "recovery group" if v.gathering_type == "session" else (v.kind or "other").replace("_", " ")
    return (what, v.support_type, *(("family friendly",) if v.family_friendly else ()))


def _group_out(g: GroupRecord) -> GroupOut:
    return GroupOut(
        group_id=g.group_id,
        name=g.name,
        focus_tags=g.focus_tags,
        support_type=g.support_type,
        facilitator_member_id=g.facilitator_member_id,
        capacity=g.capacity,
        child_care_seats=g.child_care_seats,
        room=g.room,
        timezone=g.timezone,
        first_start=g.first_start_local,
        duration_minutes=g.duration_minutes,
        rrule=g.rrule,
        exceptions=g.exceptions,
        scheduled_until=g.scheduled_until,
    )


def _registration_out(r: RegistrationRow, position: int | None) -> RegistrationOut:
    return RegistrationOut(
        registration_id=r.registration_id,
        member_id=r.member_id,
        adults=r.adults,
        children=r.children,
        registered_at=r.registered_at,
        position=position,
    )
