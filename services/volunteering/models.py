"""Tables of the ``volunteering`` schema and the repositories handlers use.

Capacity is guarded three ways: every change to who holds a seat first locks the shift row (``FOR UPDATE``),
the seat counter ``shifts.confirmed`` only moves by guarded updates (``confirmed < capacity``), and a CHECK
constraint refuses a counter above capacity whatever the code does. Sign-ups of one member are serialised by a
transaction-level advisory lock (always taken after the shift lock), so two overlapping shifts cannot both be
confirmed for them by concurrent requests."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    Text,
    and_,
    case,
    exists,
    func,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from services.volunteering import SCHEMA
from services.volunteering.base import Base
from services.volunteering.domain import ACTIVE_SIGNUP, Profile, TrainingRecord
from services.volunteering.stipends.models import PayableHours, StipendRepository, held
from services.volunteering.stipends.queries import StipendQueries
from shared.events import Event
from shared.members import KnownMembersRepository, MemberStanding
from shared.uow import OUTBOX_COLUMNS, UnitOfWork, outbox_args, outbox_insert

# Advisory lock namespace (first key of the two-key form) for "one member's sign-ups".
MEMBER_LOCK_SPACE = zlib.crc32(b"rcc-volunteering-member") - 2**31


class VolunteerRole(Base):
    __tablename__ = "roles"

    site_id: Mapped[str] = mapped_column(Text, primary_key=True)
    role_id: Mapped[str] = mapped_column(Text, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    required_trainings: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # A supervisor role's confirmed volunteers count as "supervisor on duty" for overlapping shifts.
    supervisor: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Volunteer(Base):
    """A peer leader's profile, keyed by the pseudonymous member id from check-in. No names here."""

    __tablename__ = "volunteers"
    __table_args__ = (
        CheckConstraint("monthly_hours_goal BETWEEN 0 AND 744", name="goal_in_range"),
        Index("ix_volunteers_site_id", "site_id"),
    )

    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[str] = mapped_column(Text)
    roles: Mapped[list[str]] = mapped_column(ARRAY(Text))
    monthly_hours_goal: Mapped[int | None] = mapped_column(Integer)
    stipend_eligible: Mapped[bool] = mapped_column(Boolean)
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Training(Base):
    """One completed training or certification; renewals are new records, so the history stays."""

    __tablename__ = "trainings"
    __table_args__ = (
        CheckConstraint("expires_on IS NULL OR expires_on >= completed_on", name="expires_after_completion"),
        Index("ix_trainings_member_id_training_id", "member_id", "training_id"),
    )

    record_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[str] = mapped_column(Text)
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey(Volunteer.member_id))
    training_id: Mapped[str] = mapped_column(Text)
    completed_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date | None] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_by: Mapped[str] = mapped_column(Text)


class KnownMember(Base):
    """The members check-in registered, and at which site: this service's own view, fed by ``checkin.member_*``
    events, so naming a member costs no call to check-in. An erased member stays (their pseudonymous hours and
    stipends keep their meaning) with ``erased_at`` set, and is given no new profile or sign-up."""

    __tablename__ = "known_members"

    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CalendarFeed(Base):
    """A volunteer's private iCalendar feed: only the secret's SHA-256 is kept; a new secret replaces the old."""

    __tablename__ = "calendar_feeds"

    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[str] = mapped_column(Text)
    secret_hash: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Series(Base):
    """A recurring shift (RRULE on the site's wall clock); its occurrences are rows in ``shifts``."""

    __tablename__ = "series"
    __table_args__ = (
        ForeignKeyConstraint(["site_id", "role_id"], [VolunteerRole.site_id, VolunteerRole.role_id]),
        Index("ix_series_materialized_until", "materialized_until"),
    )

    series_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[str] = mapped_column(Text)
    role_id: Mapped[str] = mapped_column(Text)
    rrule: Mapped[str] = mapped_column(Text)
    first_local_start: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    # ISO local datetimes ("2026-12-24T18:00:00") or dates ("2026-12-25") that do not happen.
    exceptions: Mapped[list[str]] = mapped_column(JSONB)
    timezone: Mapped[str] = mapped_column(Text)
    capacity: Mapped[int] = mapped_column(Integer)
    needs_supervisor: Mapped[bool] = mapped_column(Boolean)
    # Every occurrence starting up to here exists as a shift (or was already past when materialized).
    materialized_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(Text)


class Shift(Base):
    __tablename__ = "shifts"
    __table_args__ = (
        ForeignKeyConstraint(["site_id", "role_id"], [VolunteerRole.site_id, VolunteerRole.role_id]),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint("confirmed >= 0 AND confirmed <= capacity", name="confirmed_within_capacity"),
        CheckConstraint("status IN ('scheduled', 'cancelled')", name="status_known"),
        Index("uq_shifts_series_occurrence", "series_id", "occurrence_start", unique=True),
        Index("ix_shifts_site_id_starts_at", "site_id", "starts_at"),
        Index("ix_shifts_ends_at_scheduled", "ends_at", postgresql_where=text("status = 'scheduled'")),
    )

    shift_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[str] = mapped_column(Text)
    role_id: Mapped[str] = mapped_column(Text)
    series_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey(Series.series_id))
    # The series' wall-clock start of this occurrence (stays put when the shift itself is moved).
    occurrence_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The site's zone when the shift was made: its local date decides training validity.
    timezone: Mapped[str] = mapped_column(Text)
    capacity: Mapped[int] = mapped_column(Integer)
    confirmed: Mapped[int] = mapped_column(Integer)
    needs_supervisor: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(Text)
    # iCalendar SEQUENCE of the shift in volunteers' feeds: raised when its time or status changes.
    revision: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Signup(Base):
    __tablename__ = "signups"
    __table_args__ = (
        CheckConstraint("status IN ('confirmed', 'waitlisted', 'dropped', 'cancelled')", name="status_known"),
        # One active sign-up per member and shift, whatever the concurrency.
        Index(
            "uq_signups_active_shift_member",
            "shift_id",
            "member_id",
            unique=True,
            postgresql_where=text("status IN ('confirmed', 'waitlisted')"),
        ),
        Index("ix_signups_shift_id_status_seq", "shift_id", "status", "seq"),
        Index("ix_signups_member_id_status", "member_id", "status"),
    )

    signup_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # The waitlist is first come, first served in this order (assigned under the shift's lock).
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    shift_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey(Shift.shift_id))
    site_id: Mapped[str] = mapped_column(Text)
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(Text)
    signed_up_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    signed_up_by: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[str | None] = mapped_column(Text)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    promoted: Mapped[bool] = mapped_column(Boolean)
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dropped_by: Mapped[str | None] = mapped_column(Text)
    missed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Attendance(Base):
    """A kiosk visit for a shift, keyed by the check-in service's visit id (so redeliveries never double count)."""

    __tablename__ = "attendance"
    __table_args__ = (Index("ix_attendance_shift_id_member_id", "shift_id", "member_id"),)

    visit_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[str] = mapped_column(Text)
    shift_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey(Shift.shift_id))
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    checked_in_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    checked_out_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(Text)
    signed_up: Mapped[bool] = mapped_column(Boolean)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class HoursRecord(Base):
    """Hours worked on one shift. Minutes are integers; the role and the shift's start are copied here so approved
    hours sum per volunteer, role and month without a join."""

    __tablename__ = "hours"
    __table_args__ = (
        CheckConstraint("minutes BETWEEN 0 AND 1440", name="minutes_in_range"),
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status_known"),
        CheckConstraint("source IN ('check_in', 'coordinator')", name="source_known"),
        Index("ix_hours_site_id_status_created_at", "site_id", "status", "created_at"),
        Index("ix_hours_member_id_shift_starts_at", "member_id", "shift_starts_at"),
        Index("ix_hours_shift_id", "shift_id"),
    )

    hours_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[str] = mapped_column(Text)
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    shift_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey(Shift.shift_id))
    role_id: Mapped[str] = mapped_column(Text)
    shift_starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    minutes: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    visit_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), unique=True)
    signed_up: Mapped[bool] = mapped_column(Boolean)
    review_codes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    status: Mapped[str] = mapped_column(Text)
    # A coordinator's reason for adding or correcting: free text, stays here, never in an event.
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(Text)
    corrected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(Text)
    decision_reason: Mapped[str | None] = mapped_column(Text)


roles = VolunteerRole.__table__
volunteers = Volunteer.__table__
trainings = Training.__table__
calendar_feeds = CalendarFeed.__table__
known_members = KnownMember.__table__
series = Series.__table__
shifts = Shift.__table__
signups = Signup.__table__
attendance = Attendance.__table__
hours = HoursRecord.__table__


# What repositories hand back


@dataclass(frozen=True, slots=True)
class RoleRecord:
    site_id: str
    role_id: str
    title: str
    required_trainings: tuple[str, ...]
    supervisor: bool


@dataclass(frozen=True, slots=True)
class ShiftRecord:
    shift_id: uuid.UUID
    site_id: str
    role_id: str
    series_id: uuid.UUID | None
    starts_at: datetime
    ends_at: datetime
    timezone: str
    capacity: int
    confirmed: int
    needs_supervisor: bool
    status: str
    required_trainings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ActiveSignup:
    signup_id: uuid.UUID
    member_id: uuid.UUID
    status: str
    seq: int


@dataclass(frozen=True, slots=True)
class SignUpOutcome:
    existing: str | None  # the member's active sign-up status here: nothing was written
    clash: uuid.UUID | None  # a confirmed shift of theirs that overlaps: nothing was written
    status: str | None  # "confirmed" or "waitlisted" when signed up
    position: int  # on the waitlist, 1-based, when waitlisted


@dataclass(frozen=True, slots=True)
class MissedSignup:
    signup_id: uuid.UUID
    shift_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    role_id: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class HoursRow:
    hours_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    shift_id: uuid.UUID
    role_id: str
    shift_starts_at: datetime
    minutes: int
    source: str
    visit_id: uuid.UUID | None
    signed_up: bool
    review_codes: tuple[str, ...]
    status: str


def _site_filter(column: Any, site_id: str | None) -> Any:
    """``None`` is an admin's scope: every site."""
    return literal(True) if site_id is None else column == site_id


class PeopleRepository(KnownMembersRepository):
    """Roles, volunteer profiles, trainings and calendar feeds, and the members check-in registered."""

    known_members = known_members

    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

    async def add_role(self, values: dict[str, Any]) -> bool:
        result = await self.session.execute(
            insert(roles).values(**values).on_conflict_do_nothing().returning(roles.c.role_id)
        )
        return result.first() is not None

    async def update_role(self, site_id: str, role_id: str, values: dict[str, Any]) -> bool:
        result = await self.session.execute(
            update(roles)
            .where(roles.c.site_id == site_id, roles.c.role_id == role_id)
            .values(**values)
            .returning(roles.c.role_id)
        )
        return result.first() is not None

    async def get_role(self, site_id: str, role_id: str) -> RoleRecord | None:
        row = (
            await self.session.execute(
                select(
                    roles.c.site_id, roles.c.role_id, roles.c.title, roles.c.required_trainings, roles.c.supervisor
                ).where(roles.c.site_id == site_id, roles.c.role_id == role_id)
            )
        ).first()
        return None if row is None else RoleRecord(row[0], row[1], row[2], tuple(row[3]), row[4])

    async def known_role_ids(self, site_id: str, role_ids: Sequence[str]) -> set[str]:
        rows = await self.session.scalars(
            select(roles.c.role_id).where(roles.c.site_id == site_id, roles.c.role_id.in_(list(role_ids)))
        )
        return set(rows)

    async def get_profile(self, member_id: uuid.UUID) -> Profile | None:
        row = (
            await self.session.execute(
                select(volunteers.c.member_id, volunteers.c.site_id, volunteers.c.roles, volunteers.c.active).where(
                    volunteers.c.member_id == member_id
                )
            )
        ).first()
        return None if row is None else Profile(row[0], row[1], tuple(row[2]), row[3])

    async def upsert_profile(self, values: dict[str, Any]) -> None:
        changing = {k: v for k, v in values.items() if k not in ("member_id", "site_id", "created_at")}
        await self.session.execute(
            insert(volunteers)
            .values(**values)
            .on_conflict_do_update(index_elements=[volunteers.c.member_id], set_=changing)
        )

    async def add_training(self, values: dict[str, Any]) -> None:
        await self.session.execute(insert(trainings).values(**values))

    async def qualification_facts(self, member_id: uuid.UUID) -> tuple[Profile | None, list[TrainingRecord]]:
        """The profile and training records of a member, in one round trip."""
        rows = (
            await self.session.execute(
                select(
                    volunteers.c.member_id,
                    volunteers.c.site_id,
                    volunteers.c.roles,
                    volunteers.c.active,
                    trainings.c.training_id,
                    trainings.c.completed_on,
                    trainings.c.expires_on,
                )
                .outerjoin(trainings, trainings.c.member_id == volunteers.c.member_id)
                .where(volunteers.c.member_id == member_id)
            )
        ).all()
        if not rows:
            return None, []
        first = rows[0]
        profile = Profile(first.member_id, first.site_id, tuple(first.roles), first.active)
        return profile, [TrainingRecord(r.training_id, r.completed_on, r.expires_on) for r in rows if r.training_id]

    async def set_calendar_feed(self, member_id: uuid.UUID, site_id: str, secret_hash: str, at: datetime) -> None:
        await self.session.execute(
            insert(calendar_feeds)
            .values(member_id=member_id, site_id=site_id, secret_hash=secret_hash, created_at=at)
            .on_conflict_do_update(
                index_elements=[calendar_feeds.c.member_id], set_={"secret_hash": secret_hash, "created_at": at}
            )
        )


class ShiftRepository:
    """Series, shifts and sign-ups: the capacity aggregate."""

    def __init__(self, session: AsyncConnection, driver: asyncpg.Connection) -> None:
        self.session = session
        self.driver = driver

    async def add_series(self, values: dict[str, Any]) -> None:
        await self.session.execute(insert(series).values(**values))

    async def add_shifts(self, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
        """Insert shifts; an occurrence of a series that already exists is left alone. Returns the ids added."""
        if not rows:
            return set()
        result = await self.session.execute(
            insert(shifts)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[shifts.c.series_id, shifts.c.occurrence_start])
            .returning(shifts.c.shift_id)
        )
        return set(result.scalars())

    async def series_due(self, horizon: datetime, limit: int = 100) -> list[Any]:
        """Series whose materialized horizon lags behind ``horizon`` (locked, skipping ones another process has)."""
        rows = await self.session.execute(
            select(series)
            .where(series.c.materialized_until < horizon)
            .order_by(series.c.materialized_until)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(rows)

    async def set_materialized_until(self, series_id: uuid.UUID, until: datetime) -> None:
        await self.session.execute(
            update(series).where(series.c.series_id == series_id).values(materialized_until=until)
        )

    def _shift_select(self) -> Any:
        return select(
            shifts.c.shift_id,
            shifts.c.site_id,
            shifts.c.role_id,
            shifts.c.series_id,
            shifts.c.starts_at,
            shifts.c.ends_at,
            shifts.c.timezone,
            shifts.c.capacity,
            shifts.c.confirmed,
            shifts.c.needs_supervisor,
            shifts.c.status,
            roles.c.required_trainings,
        ).join(roles, and_(roles.c.site_id == shifts.c.site_id, roles.c.role_id == shifts.c.role_id))

    async def lock(self, shift_id: uuid.UUID, site_id: str | None) -> ShiftRecord | None:
        """The shift, locked until the transaction ends: every seat change goes through here first."""
        row = (
            await self.session.execute(
                self._shift_select()
                .where(shifts.c.shift_id == shift_id, _site_filter(shifts.c.site_id, site_id))
                .with_for_update(of=shifts)
            )
        ).first()
        return None if row is None else ShiftRecord(*row[:-1], tuple(row[-1]))

    async def get(self, shift_id: uuid.UUID, site_id: str | None) -> ShiftRecord | None:
        row = (
            await self.session.execute(
                self._shift_select().where(shifts.c.shift_id == shift_id, _site_filter(shifts.c.site_id, site_id))
            )
        ).first()
        return None if row is None else ShiftRecord(*row[:-1], tuple(row[-1]))

    async def lock_member(self, member_id: uuid.UUID) -> None:
        """Serialise one member's sign-ups and promotions (taken after the shift lock, never before)."""
        key = zlib.crc32(member_id.bytes) - 2**31
        await self.session.execute(select(func.pg_advisory_xact_lock(MEMBER_LOCK_SPACE, key)))

    async def active_signup(self, shift_id: uuid.UUID, member_id: uuid.UUID) -> ActiveSignup | None:
        row = (
            await self.session.execute(
                select(signups.c.signup_id, signups.c.member_id, signups.c.status, signups.c.seq).where(
                    signups.c.shift_id == shift_id,
                    signups.c.member_id == member_id,
                    signups.c.status.in_(ACTIVE_SIGNUP),
                )
            )
        ).first()
        return None if row is None else ActiveSignup(*row)

    async def lock_for_sign_up(
        self, shift_id: uuid.UUID, site_id: str | None, member_id: uuid.UUID
    ) -> tuple[ShiftRecord, MemberStanding, Profile | None, list[TrainingRecord]] | None:
        """Lock the shift, then the member's sign-ups, and read the member's standing at the shift's site and
        qualification facts: one round trip. None when there is no such shift here."""
        key = zlib.crc32(member_id.bytes) - 2**31
        row = await self.driver.fetchrow(_LOCK_FOR_SIGN_UP, shift_id, site_id, MEMBER_LOCK_SPACE, key, member_id)
        if row is None:
            return None
        shift = ShiftRecord(*row[:11], tuple(row[11]))
        standing = row["member_standing"]
        if row["member_site"] is None:
            return shift, standing, None, []
        profile = Profile(member_id, row["member_site"], tuple(row["roles"]), row["active"])
        held = zip(row["training_ids"] or (), row["completed_on"] or (), row["expires_on"] or (), strict=True)
        return shift, standing, profile, [TrainingRecord(*record) for record in held]

    async def sign_up(
        self, values: dict[str, Any], starts_at: datetime, ends_at: datetime, seated: Event, waiting: Event
    ) -> SignUpOutcome:
        """Under the shift's and the member's locks, in one statement: refuse a second sign-up or an overlap, else
        take a seat if one is left or join the waitlist, and write the matching event (``seated``, or ``waiting``
        with its real position) to the outbox."""
        row = await self.driver.fetchrow(
            _SIGN_UP,
            values["shift_id"],
            values["member_id"],
            starts_at,
            ends_at,
            values["signup_id"],
            values["site_id"],
            values["signed_up_at"],
            values["signed_up_by"],
            values["actor_id"],
            *outbox_args(seated),
            *outbox_args(waiting),
        )
        return SignUpOutcome(*row)

    @staticmethod
    def _overlapping(member_id: uuid.UUID, starts_at: datetime, ends_at: datetime, *, besides: uuid.UUID) -> Any:
        return (
            select(shifts.c.shift_id)
            .join(signups, signups.c.shift_id == shifts.c.shift_id)
            .where(
                signups.c.member_id == member_id,
                signups.c.status == "confirmed",
                shifts.c.status == "scheduled",
                shifts.c.shift_id != besides,
                shifts.c.starts_at < ends_at,
                shifts.c.ends_at > starts_at,
            )
            .limit(1)
        )

    async def overlapping_confirmed(
        self, member_id: uuid.UUID, starts_at: datetime, ends_at: datetime, *, besides: uuid.UUID
    ) -> uuid.UUID | None:
        """One of the member's confirmed shifts that overlaps ``[starts_at, ends_at)``, if any."""
        return await self.session.scalar(self._overlapping(member_id, starts_at, ends_at, besides=besides))

    async def leave(self, signup_id: uuid.UUID, *, status: str, at: datetime, by: str | None) -> None:
        await self.session.execute(
            update(signups).where(signups.c.signup_id == signup_id).values(status=status, left_at=at, dropped_by=by)
        )

    async def release_seat(self, shift_id: uuid.UUID) -> None:
        await self.session.execute(
            update(shifts).where(shifts.c.shift_id == shift_id).values(confirmed=shifts.c.confirmed - 1)
        )

    async def waitlist(self, shift_id: uuid.UUID, *, after_seq: int = 0, limit: int = 50) -> list[ActiveSignup]:
        rows = await self.session.execute(
            select(signups.c.signup_id, signups.c.member_id, signups.c.status, signups.c.seq)
            .where(signups.c.shift_id == shift_id, signups.c.status == "waitlisted", signups.c.seq > after_seq)
            .order_by(signups.c.seq)
            .limit(limit)
        )
        return [ActiveSignup(*row) for row in rows]

    async def promote(self, shift_id: uuid.UUID, signup_id: uuid.UUID, at: datetime) -> bool:
        """Give a waitlisted sign-up a seat, counting it, in one statement; False when no seat was left."""
        seat = (
            update(shifts)
            .where(shifts.c.shift_id == shift_id, shifts.c.confirmed < shifts.c.capacity)
            .values(confirmed=shifts.c.confirmed + 1)
            .returning(shifts.c.shift_id)
            .cte("seat")
        )
        result = await self.session.execute(
            update(signups)
            .where(
                signups.c.signup_id == signup_id,
                signups.c.status == "waitlisted",
                exists(select(seat.c.shift_id)),
            )
            .values(status="confirmed", confirmed_at=at, promoted=True)
            .returning(signups.c.signup_id)
            .add_cte(seat)
        )
        return result.first() is not None

    async def active_members(self, shift_id: uuid.UUID) -> tuple[list[uuid.UUID], int, int]:
        """(member ids signed up, confirmed count, waitlisted count), in sign-up order."""
        rows = (
            await self.session.execute(
                select(signups.c.member_id, signups.c.status)
                .where(signups.c.shift_id == shift_id, signups.c.status.in_(ACTIVE_SIGNUP))
                .order_by(signups.c.seq)
            )
        ).all()
        confirmed = sum(1 for r in rows if r.status == "confirmed")
        return [r.member_id for r in rows], confirmed, len(rows) - confirmed

    async def update_shift(self, shift_id: uuid.UUID, values: dict[str, Any], *, revised: bool = False) -> None:
        """``revised``: the time or the status changed, which volunteers' calendars must pick up (SEQUENCE)."""
        if revised:
            values = {**values, "revision": shifts.c.revision + 1}
        await self.session.execute(update(shifts).where(shifts.c.shift_id == shift_id).values(**values))

    async def cancel_signups(self, shift_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            update(signups)
            .where(signups.c.shift_id == shift_id, signups.c.status.in_(ACTIVE_SIGNUP))
            .values(status="cancelled", left_at=at)
        )

    async def has_confirmed(self, shift_id: uuid.UUID, member_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            select(signups.c.signup_id).where(
                signups.c.shift_id == shift_id, signups.c.member_id == member_id, signups.c.status == "confirmed"
            )
        )
        return found is not None

    async def clear_missed(self, shift_id: uuid.UUID, member_id: uuid.UUID) -> None:
        """A check-in that arrives late (the broker was down) undoes the missed flag."""
        await self.session.execute(
            update(signups)
            .where(signups.c.shift_id == shift_id, signups.c.member_id == member_id, signups.c.missed_at.is_not(None))
            .values(missed_at=None)
        )

    async def mark_missed(self, site_id: str, ended_before: datetime, at: datetime, limit: int) -> list[MissedSignup]:
        """Confirmed sign-ups of the site's scheduled shifts that ended before ``ended_before`` with no check-in:
        mark them missed (once) and return them."""
        no_check_in = ~exists(
            select(attendance.c.visit_id).where(
                attendance.c.shift_id == signups.c.shift_id, attendance.c.member_id == signups.c.member_id
            )
        )
        no_hours = ~exists(
            select(hours.c.hours_id).where(
                hours.c.shift_id == signups.c.shift_id,
                hours.c.member_id == signups.c.member_id,
                hours.c.status != "rejected",
            )
        )
        due = (
            select(signups.c.signup_id)
            .join(shifts, shifts.c.shift_id == signups.c.shift_id)
            .where(
                shifts.c.site_id == site_id,
                shifts.c.status == "scheduled",
                shifts.c.ends_at < ended_before,
                signups.c.status == "confirmed",
                signups.c.missed_at.is_(None),
                no_check_in,
                no_hours,
            )
            .order_by(shifts.c.ends_at)
            .limit(limit)
            .with_for_update(of=signups, skip_locked=True)
            .cte("due")
        )
        rows = await self.session.execute(
            update(signups)
            .where(signups.c.signup_id.in_(select(due.c.signup_id)), shifts.c.shift_id == signups.c.shift_id)
            .values(missed_at=at)
            .returning(
                signups.c.signup_id,
                signups.c.shift_id,
                signups.c.site_id,
                signups.c.member_id,
                shifts.c.role_id,
                shifts.c.starts_at,
                shifts.c.ends_at,
            )
        )
        return [MissedSignup(*row) for row in rows]


_HOURS_COLUMNS = (
    hours.c.hours_id,
    hours.c.site_id,
    hours.c.member_id,
    hours.c.shift_id,
    hours.c.role_id,
    hours.c.shift_starts_at,
    hours.c.minutes,
    hours.c.source,
    hours.c.visit_id,
    hours.c.signed_up,
    hours.c.review_codes,
    hours.c.status,
)


def _hours_row(row: Any) -> HoursRow:
    return HoursRow(*row[:10], tuple(row[10]), row[11])


class HoursRepository:
    """Attendance (from check-in events) and hours records."""

    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

    async def start_attendance(self, values: dict[str, Any]) -> bool:
        """False when this visit was already recorded (a redelivery, or its check-out came first)."""
        result = await self.session.execute(
            insert(attendance).values(**values).on_conflict_do_nothing().returning(attendance.c.visit_id)
        )
        return result.first() is not None

    async def close_attendance(self, values: dict[str, Any]) -> bool:
        """Record the check-out (creating the attendance if its check-in never arrived). True only the first
        time, so a visit yields hours once."""
        result = await self.session.execute(
            insert(attendance)
            .values(**values)
            .on_conflict_do_update(
                index_elements=[attendance.c.visit_id],
                set_={"checked_out_at": values["checked_out_at"], "closed_by": values["closed_by"]},
                where=attendance.c.checked_out_at.is_(None),
            )
            .returning(attendance.c.visit_id)
        )
        return result.first() is not None

    async def add(self, values: dict[str, Any]) -> None:
        await self.session.execute(insert(hours).values(**values))

    async def lock(self, hours_id: uuid.UUID, site_id: str | None) -> HoursRow | None:
        row = (
            await self.session.execute(
                select(*_HOURS_COLUMNS)
                .where(hours.c.hours_id == hours_id, _site_filter(hours.c.site_id, site_id))
                .with_for_update()
            )
        ).first()
        return None if row is None else _hours_row(row)

    async def update(self, hours_id: uuid.UUID, values: dict[str, Any]) -> None:
        await self.session.execute(update(hours).where(hours.c.hours_id == hours_id).values(**values))

    async def unbooked_approved(self, site_id: str, *, since: datetime, before: datetime) -> list[PayableHours]:
        """For the stipends: approved hours of the site whose shift started in ``[since, before)`` and that no
        ledger entry holds, with the volunteer's eligibility. Locked for share: a correction or decision racing
        with a period's close waits for it (and then finds the hours booked), or goes first (and the close no
        longer sees them approved)."""
        rows = await self.session.execute(
            select(
                hours.c.hours_id,
                hours.c.member_id,
                hours.c.shift_id,
                hours.c.role_id,
                hours.c.shift_starts_at,
                hours.c.minutes,
                func.coalesce(
                    and_(volunteers.c.stipend_eligible, volunteers.c.site_id == hours.c.site_id), False
                ).label("eligible"),
            )
            .outerjoin(volunteers, volunteers.c.member_id == hours.c.member_id)
            .where(
                hours.c.site_id == site_id,
                hours.c.status == "approved",
                hours.c.shift_starts_at >= since,
                hours.c.shift_starts_at < before,
                ~held(hours.c.hours_id),
            )
            .order_by(hours.c.member_id, hours.c.shift_starts_at, hours.c.hours_id)
            .with_for_update(of=hours, read=True)
        )
        return [PayableHours(*row) for row in rows]


class ReadRepository:
    """Queries behind the GET endpoints (no locks, no changes)."""

    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

    async def roles(self, site_id: str) -> list[RoleRecord]:
        rows = await self.session.execute(
            select(roles.c.site_id, roles.c.role_id, roles.c.title, roles.c.required_trainings, roles.c.supervisor)
            .where(roles.c.site_id == site_id)
            .order_by(roles.c.role_id)
        )
        return [RoleRecord(r[0], r[1], r[2], tuple(r[3]), r[4]) for r in rows]

    async def volunteer(self, member_id: uuid.UUID) -> Any:
        return (await self.session.execute(select(volunteers).where(volunteers.c.member_id == member_id))).first()

    async def training_records(self, member_id: uuid.UUID) -> list[Any]:
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

    def _shift_listing(self) -> Any:
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

    async def shift(self, shift_id: uuid.UUID, site_id: str | None) -> Any:
        return (
            await self.session.execute(
                self._shift_listing().where(shifts.c.shift_id == shift_id, _site_filter(shifts.c.site_id, site_id))
            )
        ).first()

    async def shifts(
        self,
        site_id: str,
        *,
        start: datetime,
        end: datetime,
        after: tuple[datetime, uuid.UUID] | None,
        role_ids: Sequence[str] | None,
        open_after: datetime | None,
        include_cancelled: bool,
        limit: int,
    ) -> list[Any]:
        stmt = self._shift_listing().where(
            shifts.c.site_id == site_id, shifts.c.starts_at >= start, shifts.c.starts_at < end
        )
        if role_ids is not None:
            stmt = stmt.where(shifts.c.role_id.in_(list(role_ids)))
        if open_after is not None:
            stmt = stmt.where(shifts.c.confirmed < shifts.c.capacity, shifts.c.starts_at > open_after)
        if not include_cancelled or open_after is not None:
            stmt = stmt.where(shifts.c.status == "scheduled")
        if after is not None:
            stmt = stmt.where(tuple_(shifts.c.starts_at, shifts.c.shift_id) > tuple_(*after))
        stmt = stmt.order_by(shifts.c.starts_at, shifts.c.shift_id).limit(limit)
        return list(await self.session.execute(stmt))

    @staticmethod
    def _position() -> Any:
        """1-based place of a waitlisted sign-up (rank among the shift's waitlisted by arrival); else null."""
        ahead = signups.alias("ahead")
        rank = (
            select(func.count())
            .where(ahead.c.shift_id == signups.c.shift_id, ahead.c.status == "waitlisted", ahead.c.seq <= signups.c.seq)
            .correlate(signups)
            .scalar_subquery()
        )
        return case((signups.c.status == "waitlisted", rank), else_=None)

    async def my_active_signups(self, member_id: uuid.UUID, shift_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Any]:
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

    async def signups_of(self, shift_id: uuid.UUID) -> list[Any]:
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

    async def my_shifts(self, member_id: uuid.UUID, *, now: datetime, upcoming: bool, limit: int) -> list[Any]:
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
    ) -> list[Any]:
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

    async def hours_record(self, hours_id: uuid.UUID, site_id: str | None) -> Any:
        return (
            await self.session.execute(
                select(hours).where(hours.c.hours_id == hours_id, _site_filter(hours.c.site_id, site_id))
            )
        ).first()

    async def feed_owner(self, secret_hash: str) -> uuid.UUID | None:
        return await self.session.scalar(
            select(calendar_feeds.c.member_id).where(calendar_feeds.c.secret_hash == secret_hash)
        )

    async def calendar_entries(self, member_id: uuid.UUID, since: datetime) -> list[Any]:
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


_LOCK_FOR_SIGN_UP = f"""
    WITH shift AS MATERIALIZED (
        SELECT s.shift_id, s.site_id, s.role_id, s.series_id, s.starts_at, s.ends_at, s.timezone, s.capacity,
               s.confirmed, s.needs_supervisor, s.status, r.required_trainings
        FROM "{SCHEMA}".shifts s JOIN "{SCHEMA}".roles r ON r.site_id = s.site_id AND r.role_id = s.role_id
        WHERE s.shift_id = $1 AND ($2::text IS NULL OR s.site_id = $2::text)
        FOR UPDATE OF s
    ),
    -- Taken from the locked row, so always after the shift's lock (the order every other path takes them in).
    member_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock($3::int, $4::int) FROM shift)
    SELECT shift.*, v.site_id AS member_site, v.roles, v.active, t.training_ids, t.completed_on, t.expires_on,
           CASE WHEN k.member_id IS NULL THEN NULL WHEN k.erased_at IS NULL THEN 'known' ELSE 'erased' END
               AS member_standing
    FROM shift CROSS JOIN member_lock
    LEFT JOIN "{SCHEMA}".known_members k ON k.member_id = $5 AND k.site_id = shift.site_id
    LEFT JOIN "{SCHEMA}".volunteers v ON v.member_id = $5
    LEFT JOIN LATERAL (
        SELECT array_agg(training_id) AS training_ids, array_agg(completed_on) AS completed_on,
               array_agg(expires_on) AS expires_on
        FROM "{SCHEMA}".trainings WHERE member_id = v.member_id
    ) t ON true
"""


def _sign_up_sql() -> str:
    """Runs after ``_LOCK_FOR_SIGN_UP`` in the same transaction: its snapshot then sees every sign-up committed
    before the locks were granted. Rows inserted here are invisible to the statement's own reads, so the waitlist
    count is of those already waiting."""
    seated = outbox_insert(SCHEMA, first_param=10, rows="signup WHERE status = 'confirmed'")
    waiting = outbox_insert(
        SCHEMA,
        first_param=10 + len(OUTBOX_COLUMNS),
        rows="signup CROSS JOIN line WHERE signup.status = 'waitlisted'",
        merge_into_data="jsonb_build_object('position', line.position)",
    )
    return f"""
        WITH standing AS (
            SELECT
                (SELECT status FROM "{SCHEMA}".signups
                 WHERE shift_id = $1 AND member_id = $2 AND status IN ('confirmed', 'waitlisted') LIMIT 1)
                    AS existing,
                (SELECT s.shift_id FROM "{SCHEMA}".shifts s JOIN "{SCHEMA}".signups g ON g.shift_id = s.shift_id
                 WHERE g.member_id = $2 AND g.status = 'confirmed' AND s.status = 'scheduled' AND s.shift_id <> $1
                   AND s.starts_at < $4 AND s.ends_at > $3 LIMIT 1) AS clash
        ),
        free AS (SELECT existing IS NULL AND clash IS NULL AS ok FROM standing),
        seat AS (
            UPDATE "{SCHEMA}".shifts SET confirmed = confirmed + 1
            WHERE shift_id = $1 AND confirmed < capacity AND (SELECT ok FROM free)
            RETURNING shift_id
        ),
        signup AS (
            INSERT INTO "{SCHEMA}".signups (signup_id, shift_id, site_id, member_id, status, signed_up_at,
                                            signed_up_by, actor_id, confirmed_at, promoted)
            SELECT $5, $1, $6, $2, CASE WHEN seat.shift_id IS NULL THEN 'waitlisted' ELSE 'confirmed' END, $7,
                   $8, $9, CASE WHEN seat.shift_id IS NULL THEN NULL ELSE $7::timestamptz END, false
            FROM free LEFT JOIN seat ON true
            WHERE free.ok
            RETURNING status
        ),
        line AS (
            SELECT count(*) + 1 AS position FROM "{SCHEMA}".signups WHERE shift_id = $1 AND status = 'waitlisted'
        ),
        seated_event AS ({seated}),
        waiting_event AS ({waiting})
        SELECT standing.existing, standing.clash, signup.status, line.position
        FROM standing CROSS JOIN line LEFT JOIN signup ON true
    """


_SIGN_UP = _sign_up_sql()


class VolunteeringUnitOfWork(UnitOfWork):
    source = "/rcc/volunteering"

    def start(self) -> None:
        self.people = PeopleRepository(self.session)
        self.shifts = ShiftRepository(self.session, self.driver)
        self.hours = HoursRepository(self.session)
        self.read = ReadRepository(self.session)
        self.stipends = StipendRepository(self.session)
        self.stipend_read = StipendQueries(self.session)
