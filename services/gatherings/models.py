"""Tables of the ``gatherings`` schema and the repository handlers use.

One table holds every *gathering* (a group session or a sober event): anything with seats. Registrations and
attendance point at it, so capacity, waitlist and attendance are written once for both. Seats taken are kept on
the gathering's row (``taken_adults``, ``taken_children``): every change locks that row first, and CHECK
constraints make overbooking impossible even for a bug. Core statements on the registration path."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar, Literal

import asyncpg
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Select,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.gatherings import SCHEMA
from services.gatherings.domain import GatheringType, Party, Room, room_left
from shared.contracts import SupportType
from shared.contracts.gatherings import AttendanceSource, EventKind, RegisteredBy
from shared.db import service_metadata
from shared.members import KnownMembersRepository, MemberStanding
from shared.uow import UnitOfWork


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)
    # Every class here maps a Table (declarative types it as any FromClause): insert() and update() take it.
    __table__: ClassVar[Table]
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy's declarative configuration, read once
        str: Text,
        int: Integer,
        bool: Boolean,
        datetime: DateTime(timezone=True),
        uuid.UUID: UUID(as_uuid=True),
    }


class Group(Base):
    """A recurring recovery group; its sessions are materialized as gatherings up to a horizon."""

    __tablename__ = "groups"
    __table_args__ = (
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint("child_care_seats >= 0", name="child_care_seats_not_negative"),
        CheckConstraint("duration_minutes > 0", name="duration_positive"),
        Index("ix_groups_site_id_name", "site_id", "name", "group_id"),
    )

    group_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    site_id: Mapped[str]
    # Not personal data, but free text: it is shown on the calendar and never put in an event.
    name: Mapped[str]
    focus_tags: Mapped[list[str]] = mapped_column(ARRAY(Text))
    support_type: Mapped[str]
    facilitator_member_id: Mapped[uuid.UUID]
    capacity: Mapped[int]
    child_care_seats: Mapped[int]
    room: Mapped[str | None]
    # The zone the rule is read in (the site's, when the group was created).
    timezone: Mapped[str]
    first_start_local: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    duration_minutes: Mapped[int]
    rrule: Mapped[str]
    # Local dates ("2026-12-29") or local start times ("2026-12-29T18:00:00") that do not happen (EXDATE).
    exceptions: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # Sessions exist as rows up to here; the horizon task rolls it forward.
    scheduled_until: Mapped[datetime]
    created_at: Mapped[datetime]


class Gathering(Base):
    """A group session or a sober event: capacity, child-care seats, a registration window, cancellable."""

    __tablename__ = "gatherings"
    __table_args__ = (
        CheckConstraint("gathering_type IN ('session', 'event')", name="gathering_type_known"),
        CheckConstraint("(gathering_type = 'session') = (group_id IS NOT NULL)", name="sessions_have_a_group"),
        CheckConstraint(
            "gathering_type = 'session' OR (title IS NOT NULL AND kind IS NOT NULL)", name="events_have_title_kind"
        ),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint("child_care_seats >= 0", name="child_care_seats_not_negative"),
        # The guarantee behind "capacity can never be exceeded": whatever the code does, the database refuses it.
        CheckConstraint(
            "taken_adults BETWEEN 0 AND capacity AND taken_children BETWEEN 0 AND child_care_seats",
            name="seats_within_capacity",
        ),
        UniqueConstraint("group_id", "occurrence_start"),
        Index("ix_gatherings_site_id_starts_at", "site_id", "starts_at", "gathering_id"),
        Index("ix_gatherings_group_id_starts_at", "group_id", "starts_at", "gathering_id"),
    )

    gathering_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    site_id: Mapped[str]
    gathering_type: Mapped[str]
    group_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(Group.group_id))
    # A session's occurrence in its group's rule (local wall clock): stays when the session is moved.
    occurrence_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    title: Mapped[str | None]
    kind: Mapped[str | None]
    support_type: Mapped[str]
    family_friendly: Mapped[bool] = mapped_column(server_default=false())
    room: Mapped[str | None]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    capacity: Mapped[int]
    child_care_seats: Mapped[int]
    taken_adults: Mapped[int] = mapped_column(server_default=text("0"))
    taken_children: Mapped[int] = mapped_column(server_default=text("0"))
    registration_opens_at: Mapped[datetime | None]
    # None: registration closes when the gathering starts.
    registration_closes_at: Mapped[datetime | None]
    # iCalendar SEQUENCE and LAST-MODIFIED: bumped when the time, the seats or the status change.
    revision: Mapped[int] = mapped_column(server_default=text("0"))
    updated_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Registration(Base):
    __tablename__ = "registrations"
    __table_args__ = (
        CheckConstraint("status IN ('confirmed', 'waitlisted', 'cancelled')", name="status_known"),
        CheckConstraint("adults >= 1 AND children >= 0", name="party_size"),
        # One active registration per member and gathering, under any concurrency.
        Index(
            "uq_registrations_active_member",
            "gathering_id",
            "member_id",
            unique=True,
            postgresql_where=text("status <> 'cancelled'"),
        ),
        Index("ix_registrations_gathering_id_status_seq", "gathering_id", "status", "seq"),
        Index("ix_registrations_member_id", "member_id"),
    )

    registration_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Arrival order (first come, first served): taken while the gathering's row is locked, so it is the order in
    # which registrations were decided.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    gathering_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(Gathering.gathering_id))
    site_id: Mapped[str]
    member_id: Mapped[uuid.UUID]
    adults: Mapped[int]
    children: Mapped[int]
    status: Mapped[str]
    registered_by: Mapped[str]
    registered_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    promoted_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None]


class Attendance(Base):
    __tablename__ = "attendance"
    __table_args__ = (
        CheckConstraint("source IN ('checkin', 'roster')", name="source_known"),
        CheckConstraint("member_id IS NOT NULL OR visit_id IS NOT NULL", name="someone"),
        # A member attends a gathering once; an anonymous walk-in once per visit. A redelivered check-in adds nothing.
        Index(
            "uq_attendance_member",
            "gathering_id",
            "member_id",
            unique=True,
            postgresql_where=text("member_id IS NOT NULL"),
        ),
        Index("uq_attendance_visit", "visit_id", unique=True, postgresql_where=text("visit_id IS NOT NULL")),
        Index("ix_attendance_gathering_id", "gathering_id"),
    )

    attendance_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    gathering_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(Gathering.gathering_id))
    site_id: Mapped[str]
    member_id: Mapped[uuid.UUID | None]
    visit_id: Mapped[uuid.UUID | None]
    registration_id: Mapped[uuid.UUID | None]
    registered: Mapped[bool]
    adults: Mapped[int]
    children: Mapped[int]
    source: Mapped[str]
    attended_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())


class KnownMember(Base):
    """The members check-in registered, and at which site: this service's own view, fed by ``checkin.member_*``
    events, so naming a member costs no call to check-in. An erased member stays (pseudonymous history keeps its
    meaning) with ``erased_at`` set, and is not given new registrations or groups."""

    __tablename__ = "known_members"

    member_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    site_id: Mapped[str]
    registered_at: Mapped[datetime]
    erased_at: Mapped[datetime | None]


groups = Group.__table__
gatherings = Gathering.__table__
known_members = KnownMember.__table__
registrations = Registration.__table__
attendance = Attendance.__table__


RegistrationState = Literal["confirmed", "waitlisted", "cancelled"]


def _revised(at: datetime) -> dict[str, Any]:
    """What a change a calendar shows (time, seats, status) writes: the next iCalendar SEQUENCE, LAST-MODIFIED."""
    return {"revision": gatherings.c.revision + 1, "updated_at": at}


# Rows the handlers write and read (``queries`` reads some too). A "sober event" is the gathering; an "event" in
# this service's code is a domain event (``shared.events.Event``), as everywhere in the house. The tables and the
# API keep the word the center uses: ``gathering_type = 'event'``, ``/events``, ``event_id``.


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """A recurring group as stored: what the horizon task needs to plan its next sessions."""

    group_id: uuid.UUID
    site_id: str
    name: str
    focus_tags: list[str]
    support_type: SupportType
    facilitator_member_id: uuid.UUID
    capacity: int
    child_care_seats: int
    room: str | None
    timezone: str
    first_start_local: datetime
    duration_minutes: int
    rrule: str
    exceptions: list[str]
    scheduled_until: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewSession:
    session_id: uuid.UUID
    site_id: str
    group_id: uuid.UUID
    occurrence_start: datetime
    support_type: SupportType
    room: str | None
    starts_at: datetime
    ends_at: datetime
    capacity: int
    child_care_seats: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewSoberEvent:
    sober_event_id: uuid.UUID
    site_id: str
    title: str
    kind: EventKind
    support_type: SupportType
    family_friendly: bool
    room: str | None
    starts_at: datetime
    ends_at: datetime
    capacity: int
    child_care_seats: int
    registration_opens_at: datetime | None
    registration_closes_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class GatheringRow:
    """A gathering as the write side reads it; its fields name the columns read, in order."""

    gathering_id: uuid.UUID
    site_id: str
    gathering_type: GatheringType
    group_id: uuid.UUID | None
    kind: EventKind | None
    support_type: SupportType
    family_friendly: bool
    starts_at: datetime
    ends_at: datetime
    capacity: int
    child_care_seats: int
    taken_adults: int
    taken_children: int
    registration_opens_at: datetime | None
    registration_closes_at: datetime | None
    cancelled_at: datetime | None

    @property
    def session_id(self) -> uuid.UUID | None:
        return self.gathering_id if self.gathering_type == "session" else None

    @property
    def sober_event_id(self) -> uuid.UUID | None:
        return self.gathering_id if self.gathering_type == "event" else None

    @property
    def room_left(self) -> Room:
        return room_left(self.capacity, self.child_care_seats, self.taken_adults, self.taken_children)


def gathering_columns() -> tuple[Column[Any], ...]:
    return tuple(gatherings.c[f.name] for f in fields(GatheringRow))


@dataclass(frozen=True, slots=True)
class NewRegistration:
    registration_id: uuid.UUID
    gathering_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    party: Party
    registered_by: RegisteredBy
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class RegistrationRow:
    """Its fields name the columns read, in order."""

    registration_id: uuid.UUID
    seq: int
    gathering_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    adults: int
    children: int
    status: RegistrationState
    registered_at: datetime

    @property
    def party(self) -> Party:
        return Party(self.adults, self.children)


def registration_columns() -> tuple[Column[Any], ...]:
    return tuple(registrations.c[f.name] for f in fields(RegistrationRow))


@dataclass(frozen=True, slots=True)
class SeatsHeld:
    """What a run of registrations must know besides the gathering: who is registered already, how many wait."""

    registration_of: dict[uuid.UUID, uuid.UUID]  # member → their active registration
    waiting: int


@dataclass(frozen=True, slots=True)
class CancelledRegistration:
    """A registration that ended with its gathering, and what it was before."""

    member_id: uuid.UUID
    previous_status: RegistrationState


@dataclass(frozen=True, slots=True)
class NewAttendance:
    attendance_id: uuid.UUID
    gathering_id: uuid.UUID
    site_id: str
    # None with a visit: an anonymous walk-in.
    member_id: uuid.UUID | None
    visit_id: uuid.UUID | None
    registration_id: uuid.UUID | None
    party: Party
    source: AttendanceSource
    attended_at: datetime


class GatheringsRepository(KnownMembersRepository):
    """The write side handlers use: typed rows in and out, Core statements, prepared statements on the
    registration path. The list and calendar reads of the views are in ``queries.py``."""

    known_members = known_members

    def __init__(self, session: AsyncConnection, driver: asyncpg.Connection) -> None:
        self.session = session
        # The raw connection, for the statements of the registration path: sign-ups for one gathering run one
        # after another under its row lock, so they skip SQLAlchemy's per-statement work (prepared once per
        # connection by asyncpg's statement cache).
        self.driver = driver

    # Groups and their sessions

    async def add_group(self, group: GroupRecord) -> None:
        await self.session.execute(insert(groups).values(**{f.name: getattr(group, f.name) for f in fields(group)}))

    async def add_sessions(self, sessions: list[NewSession]) -> list[uuid.UUID]:
        """Insert sessions; an occurrence that exists already (another horizon pass got there) is skipped."""
        if not sessions:
            return []
        result = await self.session.execute(
            insert(gatherings)
            .values(
                [
                    {
                        "gathering_id": s.session_id,
                        "site_id": s.site_id,
                        "gathering_type": "session",
                        "group_id": s.group_id,
                        "occurrence_start": s.occurrence_start,
                        "title": None,
                        "kind": None,
                        "support_type": s.support_type,
                        "family_friendly": False,
                        "room": s.room,
                        "starts_at": s.starts_at,
                        "ends_at": s.ends_at,
                        "capacity": s.capacity,
                        "child_care_seats": s.child_care_seats,
                        "registration_opens_at": None,
                        "registration_closes_at": None,
                        "created_at": s.created_at,
                        "updated_at": s.created_at,
                    }
                    for s in sessions
                ]
            )
            .on_conflict_do_nothing(index_elements=["group_id", "occurrence_start"])
            .returning(gatherings.c.gathering_id)
        )
        return list(result.scalars())

    async def groups_to_extend(self, target: datetime) -> list[GroupRecord]:
        """Groups whose sessions stop short of ``target``, locked; a group another process is extending is skipped."""
        result = await self.session.execute(
            select(*group_columns()).where(groups.c.scheduled_until < target).with_for_update(skip_locked=True)
        )
        return [GroupRecord(*row) for row in result]

    async def set_scheduled_until(self, group_id: uuid.UUID, until: datetime) -> None:
        await self.session.execute(update(groups).where(groups.c.group_id == group_id).values(scheduled_until=until))

    # Sober events

    async def add_sober_event(self, sober_event: NewSoberEvent) -> None:
        e = sober_event
        await self.session.execute(
            insert(gatherings).values(
                gathering_id=e.sober_event_id,
                site_id=e.site_id,
                gathering_type="event",
                group_id=None,
                occurrence_start=None,
                title=e.title,
                kind=e.kind,
                support_type=e.support_type,
                family_friendly=e.family_friendly,
                room=e.room,
                starts_at=e.starts_at,
                ends_at=e.ends_at,
                capacity=e.capacity,
                child_care_seats=e.child_care_seats,
                registration_opens_at=e.registration_opens_at,
                registration_closes_at=e.registration_closes_at,
                created_at=e.created_at,
                updated_at=e.created_at,
            )
        )

    # Both kinds of gathering

    async def lock_gathering(
        self, gathering_id: uuid.UUID, gathering_type: GatheringType | None, site_id: str | None
    ) -> GatheringRow | None:
        """The gathering's row, locked until commit: every change of seats goes through here first, so they are
        decided one after another, each from the latest committed seats (a locking read returns the newest row
        version). ``site_id`` None: any site (an admin)."""
        row = (
            await self.session.execute(find_gathering(gathering_id, gathering_type, site_id).with_for_update())
        ).first()
        return None if row is None else GatheringRow(*row)

    async def lock_for_run(
        self, gathering_id: uuid.UUID, members: list[uuid.UUID]
    ) -> tuple[GatheringRow, dict[uuid.UUID, MemberStanding]] | None:
        """Lock the gathering for a run of registrations (``handlers.registrations``), with the standing at its site
        of each member named in the run: one prepared statement on the raw connection."""
        row = await self.driver.fetchrow(_LOCK_FOR_RUN, gathering_id, [str(m) for m in members])
        if row is None:
            return None
        standings: dict[uuid.UUID, MemberStanding] = dict.fromkeys(map(uuid.UUID, row["known"]), "known")
        standings.update(dict.fromkeys(map(uuid.UUID, row["erased"]), "erased"))
        return GatheringRow(*row[:-2]), standings

    async def seats_held(self, gathering_id: uuid.UUID, members: list[uuid.UUID]) -> SeatsHeld:
        """Under the gathering's lock, in a statement after the lock's (whose snapshot may predate its wait): the
        active registrations of these members, and how many parties wait."""
        row = await self.driver.fetchrow(_SEATS_HELD, gathering_id, [str(m) for m in members])
        assert row is not None  # aggregates answer one row
        held = zip(map(uuid.UUID, row["member_ids"]), map(uuid.UUID, row["registration_ids"]), strict=True)
        return SeatsHeld(dict(held), row["waiting"])

    async def place_run(self, gathering_id: uuid.UUID, placed: list[NewRegistration], confirmed: list[bool]) -> None:
        """Insert a run's registrations in arrival order (``seq``, the waitlist's order, follows it) and take the
        confirmed ones' seats, in one statement. The caller decided each under the gathering's lock."""
        seated = [r.party for r, seat in zip(placed, confirmed, strict=True) if seat]
        await self.driver.execute(
            _PLACE_RUN,
            gathering_id,
            placed[0].site_id,
            [str(r.registration_id) for r in placed],
            [str(r.member_id) for r in placed],
            [str(r.party.adults) for r in placed],
            [str(r.party.children) for r in placed],
            ["confirmed" if seat else "waitlisted" for seat in confirmed],
            [r.registered_by for r in placed],
            [r.registered_at.isoformat() for r in placed],
            sum(p.adults for p in seated),
            sum(p.children for p in seated),
        )

    async def find_gathering(
        self, gathering_id: uuid.UUID, site_id: str | None, gathering_type: GatheringType | None
    ) -> GatheringRow | None:
        row = (await self.session.execute(find_gathering(gathering_id, gathering_type, site_id))).first()
        return None if row is None else GatheringRow(*row)

    async def set_taken(self, gathering_id: uuid.UUID, adults: int, children: int) -> None:
        await self.session.execute(
            update(gatherings)
            .where(gatherings.c.gathering_id == gathering_id)
            .values(taken_adults=adults, taken_children=children)
        )

    async def set_capacity(self, gathering_id: uuid.UUID, capacity: int, child_care_seats: int, at: datetime) -> None:
        await self.session.execute(
            update(gatherings)
            .where(gatherings.c.gathering_id == gathering_id)
            .values(capacity=capacity, child_care_seats=child_care_seats, **_revised(at))
        )

    async def move(self, gathering_id: uuid.UUID, starts_at: datetime, ends_at: datetime, at: datetime) -> None:
        await self.session.execute(
            update(gatherings)
            .where(gatherings.c.gathering_id == gathering_id)
            .values(starts_at=starts_at, ends_at=ends_at, **_revised(at))
        )

    async def cancel_gathering(self, gathering_id: uuid.UUID, at: datetime, by: str) -> list[CancelledRegistration]:
        """Cancel the gathering and every active registration with it; returns those registrations, in arrival
        order."""
        await self.session.execute(
            update(gatherings)
            .where(gatherings.c.gathering_id == gathering_id)
            .values(cancelled_at=at, taken_adults=0, taken_children=0, **_revised(at))
        )
        r = registrations.c
        active = (
            select(r.registration_id, r.member_id, r.status, r.seq)
            .where(r.gathering_id == gathering_id, r.status != "cancelled")
            .cte("active")
        )
        rows = await self.session.execute(
            update(registrations)
            .where(r.registration_id == active.c.registration_id)
            .values(status="cancelled", cancelled_at=at, cancelled_by=by)
            .returning(active.c.member_id, active.c.status, active.c.seq)
        )
        return [CancelledRegistration(row.member_id, row.status) for row in sorted(rows, key=lambda row: row.seq)]

    # Registrations

    async def active_registration_of(self, gathering_id: uuid.UUID, member_id: uuid.UUID) -> RegistrationRow | None:
        r = registrations.c
        row = (
            await self.session.execute(
                select(*registration_columns()).where(
                    r.gathering_id == gathering_id, r.member_id == member_id, r.status != "cancelled"
                )
            )
        ).first()
        return None if row is None else RegistrationRow(*row)

    async def get_registration(self, registration_id: uuid.UUID) -> RegistrationRow | None:
        row = (
            await self.session.execute(
                select(*registration_columns()).where(registrations.c.registration_id == registration_id)
            )
        ).first()
        return None if row is None else RegistrationRow(*row)

    async def mark_cancelled(self, registration_id: uuid.UUID, at: datetime, by: str) -> None:
        await self.session.execute(
            update(registrations)
            .where(registrations.c.registration_id == registration_id)
            .values(status="cancelled", cancelled_at=at, cancelled_by=by)
        )

    async def waiting(self, gathering_id: uuid.UUID) -> list[RegistrationRow]:
        r = registrations.c
        rows = await self.session.execute(
            select(*registration_columns())
            .where(r.gathering_id == gathering_id, r.status == "waitlisted")
            .order_by(r.seq)
        )
        return [RegistrationRow(*row) for row in rows]

    async def confirm(self, registration_ids: list[uuid.UUID], at: datetime) -> None:
        if registration_ids:
            await self.session.execute(
                update(registrations)
                .where(registrations.c.registration_id.in_(registration_ids))
                .values(status="confirmed", confirmed_at=at, promoted_at=at)
            )

    # Attendance

    async def add_attendance(self, mark: NewAttendance) -> bool:
        """False when this member (or this anonymous visit) is recorded at the gathering already."""
        result = await self.session.execute(
            insert(attendance)
            .values(
                attendance_id=mark.attendance_id,
                gathering_id=mark.gathering_id,
                site_id=mark.site_id,
                member_id=mark.member_id,
                visit_id=mark.visit_id,
                registration_id=mark.registration_id,
                registered=mark.registration_id is not None,
                adults=mark.party.adults,
                children=mark.party.children,
                source=mark.source,
                attended_at=mark.attended_at,
            )
            .on_conflict_do_nothing()
            .returning(attendance.c.attendance_id)
        )
        return result.first() is not None

    async def attendance_of(self, gathering_id: uuid.UUID, member_id: uuid.UUID) -> uuid.UUID | None:
        return await self.session.scalar(
            select(attendance.c.attendance_id).where(
                attendance.c.gathering_id == gathering_id, attendance.c.member_id == member_id
            )
        )


def group_columns() -> tuple[Column[Any], ...]:
    return tuple(groups.c[f.name] for f in fields(GroupRecord))


_GATHERING_COLUMNS = ", ".join(f.name for f in fields(GatheringRow))
# A run's arrays go as text[] and are cast in the statement: asyncpg introspects any other array type once per pooled
# connection (~7 ms each), which a fresh process's first bursts paid for every connection of the pool.
_LOCK_FOR_RUN = f"""
    SELECT {_GATHERING_COLUMNS},
        ARRAY(
            SELECT k.member_id::text FROM "{SCHEMA}".known_members AS k
            WHERE k.member_id = ANY($2::text[]::uuid[]) AND k.site_id = g.site_id AND k.erased_at IS NULL
        ) AS known,
        ARRAY(
            SELECT k.member_id::text FROM "{SCHEMA}".known_members AS k
            WHERE k.member_id = ANY($2::text[]::uuid[]) AND k.site_id = g.site_id AND k.erased_at IS NOT NULL
        ) AS erased
    FROM "{SCHEMA}".gatherings AS g
    WHERE gathering_id = $1
    FOR UPDATE OF g
"""
_SEATS_HELD = f"""
    WITH active AS (
        SELECT member_id, registration_id FROM "{SCHEMA}".registrations
        WHERE gathering_id = $1 AND member_id = ANY($2::text[]::uuid[]) AND status <> 'cancelled'
    )
    SELECT
        ARRAY(SELECT member_id::text FROM active ORDER BY member_id) AS member_ids,
        ARRAY(SELECT registration_id::text FROM active ORDER BY member_id) AS registration_ids,
        (SELECT count(*) FROM "{SCHEMA}".registrations WHERE gathering_id = $1 AND status = 'waitlisted') AS waiting
"""
# The registrations in the arrays' order: unnest keeps it and the insert takes ``seq`` from its sequence row by row.
_PLACE_RUN = f"""
    WITH inserted AS (
        INSERT INTO "{SCHEMA}".registrations (
            registration_id, gathering_id, site_id, member_id, adults, children, status, registered_by,
            registered_at, confirmed_at
        )
        SELECT r.registration_id, $1, $2, r.member_id, r.adults, r.children, r.status, r.registered_by,
            r.registered_at, CASE WHEN r.status = 'confirmed' THEN r.registered_at END
        FROM unnest(
            $3::text[]::uuid[], $4::text[]::uuid[], $5::text[]::int[], $6::text[]::int[], $7::text[], $8::text[],
            $9::text[]::timestamptz[]
        )
            WITH ORDINALITY AS r(registration_id, member_id, adults, children, status, registered_by, registered_at, n)
        ORDER BY r.n
        RETURNING 1
    )
    UPDATE "{SCHEMA}".gatherings SET taken_adults = taken_adults + $10, taken_children = taken_children + $11
    WHERE gathering_id = $1 AND ($10 > 0 OR $11 > 0)
"""


def find_gathering(
    gathering_id: uuid.UUID, gathering_type: GatheringType | None, site_id: str | None
) -> Select[*tuple[Any, ...]]:
    stmt = select(*gathering_columns()).where(gatherings.c.gathering_id == gathering_id)
    if gathering_type is not None:
        stmt = stmt.where(gatherings.c.gathering_type == gathering_type)
    if site_id is not None:
        stmt = stmt.where(gatherings.c.site_id == site_id)
    return stmt


class GatheringsUnitOfWork(UnitOfWork):
    source = "/rcc/gatherings"

    def start(self) -> None:
        self.gatherings = GatheringsRepository(self.session, self.driver)
