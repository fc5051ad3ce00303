"""The repositories volunteering's handlers change state through, what they take and what they hand back, and the
unit of work that holds them. The tables are in ``tables``; the views' queries in ``queries``.

Capacity is guarded three ways: every change to who holds a seat first locks the shift row (``FOR UPDATE``),
the seat counter ``shifts.confirmed`` only moves by guarded updates (``confirmed < capacity``), and a CHECK
constraint refuses a counter above capacity whatever the code does. Sign-ups of one member are serialised by a
transaction-level advisory lock (always taken after the shift lock), so two overlapping shifts cannot both be
confirmed for them by concurrent requests."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import ColumnElement, Select, and_, exists, func, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.volunteering import SCHEMA
from services.volunteering.base import Base as Base
from services.volunteering.domain import ACTIVE_SIGNUP, Profile, ReviewCode, TrainingRecord
from services.volunteering.records import (
    ActiveSignup,
    ActiveStatus,
    HoursRow,
    MissedSignup,
    NewHours,
    NewShift,
    NewSignup,
    NewTraining,
    RoleRecord,
    SeriesRecord,
    ShiftRecord,
    ShiftTerms,
    SignedUpAlready,
    SignUpFacts,
    VisitAttendance,
    VolunteerProfile,
    shift_record,
)
from services.volunteering.stipends.models import PayableHours, StipendRepository, held
from services.volunteering.tables import (
    attendance,
    calendar_feeds,
    hours,
    known_members,
    roles,
    series,
    shifts,
    signups,
    trainings,
    volunteers,
)
from shared.contracts.volunteering import ActingAs
from shared.db import column_values
from shared.members import KnownMembersRepository
from shared.uow import UnitOfWork

if TYPE_CHECKING:
    pass

# Advisory lock namespace (first key of the two-key form) for "one member's sign-ups".
MEMBER_LOCK_SPACE = zlib.crc32(b"rcc-volunteering-member") - 2**31


def site_filter(column: ColumnElement[str], site_id: str | None) -> ColumnElement[bool]:
    """``None`` is an admin's scope: every site."""
    return true() if site_id is None else column == site_id


class PeopleRepository(KnownMembersRepository):
    """Roles, volunteer profiles, trainings and calendar feeds, and the members check-in registered."""

    known_members = known_members

    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

    async def add_role(self, role: RoleRecord, at: datetime) -> bool:
        """False when the site has a role of this id already."""
        values = {**column_values(role), "required_trainings": list(role.required_trainings)}
        result = await self.session.execute(
            insert(roles)
            .values(**values, created_at=at, updated_at=at)
            .on_conflict_do_nothing()
            .returning(roles.c.role_id)
        )
        return result.first() is not None

    async def update_role(self, role: RoleRecord, at: datetime) -> bool:
        """False when the site has no role of this id."""
        result = await self.session.execute(
            update(roles)
            .where(roles.c.site_id == role.site_id, roles.c.role_id == role.role_id)
            .values(
                title=role.title,
                required_trainings=list(role.required_trainings),
                supervisor=role.supervisor,
                updated_at=at,
            )
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

    async def upsert_profile(self, profile: VolunteerProfile, at: datetime) -> None:
        """Create the profile, or replace all but its member, site and creation time."""
        changing = {
            "roles": list(profile.roles),
            "monthly_hours_goal": profile.monthly_hours_goal,
            "stipend_eligible": profile.stipend_eligible,
            "active": profile.active,
            "updated_at": at,
        }
        await self.session.execute(
            insert(volunteers)
            .values(member_id=profile.member_id, site_id=profile.site_id, created_at=at, **changing)
            .on_conflict_do_update(index_elements=[volunteers.c.member_id], set_=changing)
        )

    async def add_training(self, record: NewTraining) -> None:
        await self.session.execute(insert(trainings).values(**column_values(record)))

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

    async def add_series(self, new: SeriesRecord, at: datetime, by: str) -> None:
        values = {**column_values(new), "exceptions": list(new.exceptions)}
        await self.session.execute(insert(series).values(**values, created_at=at, created_by=by))

    async def add_shifts(self, new: Sequence[NewShift]) -> set[uuid.UUID]:
        """Insert scheduled shifts with no one signed up; an occurrence of a series that already exists is left
        alone. Returns the ids added."""
        if not new:
            return set()
        rows = [
            {
                **column_values(s),
                "confirmed": 0,
                "status": "scheduled",
                "updated_at": s.created_at,
                "cancelled_at": None,
            }
            for s in new
        ]
        result = await self.session.execute(
            insert(shifts)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[shifts.c.series_id, shifts.c.occurrence_start])
            .returning(shifts.c.shift_id)
        )
        return set(result.scalars())

    async def series_due(self, horizon: datetime, limit: int = 100) -> list[SeriesRecord]:
        """Series whose materialized horizon lags behind ``horizon`` (locked, skipping ones another process has)."""
        s = series.c
        rows = await self.session.execute(
            select(
                s.series_id,
                s.site_id,
                s.role_id,
                s.rrule,
                s.first_local_start,
                s.duration_minutes,
                s.exceptions,
                s.timezone,
                s.capacity,
                s.needs_supervisor,
                s.materialized_until,
            )
            .where(s.materialized_until < horizon)
            .order_by(s.materialized_until)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [SeriesRecord(*r[:6], tuple(r[6]), *r[7:]) for r in rows]

    async def set_materialized_until(self, series_id: uuid.UUID, until: datetime) -> None:
        await self.session.execute(
            update(series).where(series.c.series_id == series_id).values(materialized_until=until)
        )

    @staticmethod
    def _shift_select() -> Select[Any]:
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
                .where(shifts.c.shift_id == shift_id, site_filter(shifts.c.site_id, site_id))
                .with_for_update(of=shifts)
            )
        ).first()
        return None if row is None else shift_record(row)

    async def get(self, shift_id: uuid.UUID, site_id: str | None) -> ShiftRecord | None:
        row = (
            await self.session.execute(
                self._shift_select().where(shifts.c.shift_id == shift_id, site_filter(shifts.c.site_id, site_id))
            )
        ).first()
        return None if row is None else shift_record(row)

    async def change_terms(self, shift_id: uuid.UUID, terms: ShiftTerms, at: datetime, *, revised: bool) -> None:
        """``revised``: the time changed, which volunteers' calendars must pick up (their SEQUENCE)."""
        values: dict[str, object] = {**column_values(terms), "updated_at": at}
        if revised:
            values["revision"] = shifts.c.revision + 1
        await self.session.execute(update(shifts).where(shifts.c.shift_id == shift_id).values(**values))

    async def cancel(self, shift_id: uuid.UUID, at: datetime) -> None:
        """Cancel the shift and every active sign-up of it, freeing its seats."""
        await self.session.execute(
            update(signups)
            .where(signups.c.shift_id == shift_id, signups.c.status.in_(ACTIVE_SIGNUP))
            .values(status="cancelled", left_at=at)
        )
        await self.session.execute(
            update(shifts)
            .where(shifts.c.shift_id == shift_id)
            .values(status="cancelled", cancelled_at=at, updated_at=at, confirmed=0, revision=shifts.c.revision + 1)
        )

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
        return None if row is None else ActiveSignup(row[0], row[1], row[2], row[3])

    async def lock_for_sign_ups(self, shift_id: uuid.UUID, members: list[uuid.UUID]) -> SignUpFacts | None:
        """Lock the shift, then these members' sign-ups (in key order, so that two runs never deadlock on them),
        and read each member's standing at the shift's site and qualification facts: one round trip. None when
        there is no such shift."""
        keys = sorted({zlib.crc32(m.bytes) - 2**31 for m in members})
        rows = await self.driver.fetch(
            _LOCK_FOR_SIGN_UPS, shift_id, MEMBER_LOCK_SPACE, [str(k) for k in keys], [str(m) for m in members]
        )
        if not rows:
            return None
        facts = SignUpFacts(shift_record(tuple(rows[0])), {}, {}, {})
        for row in rows:
            member_id = row["member_id"]
            if member_id is None:
                continue  # no members: the shift alone
            facts.standings[member_id] = row["member_standing"]
            if row["member_site"] is not None:
                facts.profiles[member_id] = Profile(member_id, row["member_site"], tuple(row["roles"]), row["active"])
                held = zip(row["training_ids"] or (), row["completed_on"] or (), row["expires_on"] or (), strict=True)
                facts.trainings[member_id] = [
                    TrainingRecord(training, date.fromisoformat(done), date.fromisoformat(ends) if ends else None)
                    for training, done, ends in held
                ]
        return facts

    async def signed_up(self, shift: ShiftRecord, members: list[uuid.UUID]) -> SignedUpAlready:
        """Under the shift's and the members' locks, in a statement after theirs (whose snapshot may predate the
        waits): each member's active sign-up here, a confirmed shift of theirs overlapping this one, and how many
        wait here."""
        rows = await self.driver.fetch(
            _SIGNED_UP, shift.shift_id, [str(m) for m in members], shift.starts_at, shift.ends_at
        )
        waiting = rows[0]["waiting"] if rows else 0
        return SignedUpAlready(
            {row["member_id"]: row["existing"] for row in rows if row["existing"] is not None},
            {row["member_id"]: row["clash"] for row in rows if row["clash"] is not None},
            waiting,
        )

    async def add_sign_ups(self, shift: ShiftRecord, placed: list[NewSignup], statuses: list[ActiveStatus]) -> None:
        """Insert a run's sign-ups in arrival order (``seq``, the waitlist's order, follows it) and count the
        confirmed ones' seats, in one statement. The caller decided each under the locks."""
        await self.driver.execute(
            _ADD_SIGN_UPS,
            shift.shift_id,
            shift.site_id,
            [str(g.signup_id) for g in placed],
            [str(g.member_id) for g in placed],
            statuses,
            [g.signed_up_at.isoformat() for g in placed],
            [g.signed_up_by for g in placed],
            [g.actor_id for g in placed],
            statuses.count("confirmed"),
        )

    async def overlapping_confirmed(
        self, member_id: uuid.UUID, starts_at: datetime, ends_at: datetime, *, besides: uuid.UUID
    ) -> uuid.UUID | None:
        """One of the member's confirmed shifts that overlaps ``[starts_at, ends_at)``, if any."""
        found: uuid.UUID | None = await self.session.scalar(
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
        return found

    async def drop(self, signup_id: uuid.UUID, at: datetime, by: ActingAs) -> None:
        await self.session.execute(
            update(signups).where(signups.c.signup_id == signup_id).values(status="dropped", left_at=at, dropped_by=by)
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
        return [ActiveSignup(r[0], r[1], r[2], r[3]) for r in rows]

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


def _hours_columns() -> tuple[ColumnElement[Any], ...]:
    """``HoursRow``'s columns, in its order."""
    c = hours.c
    return (
        c.hours_id,
        c.site_id,
        c.member_id,
        c.shift_id,
        c.role_id,
        c.shift_starts_at,
        c.minutes,
        c.source,
        c.visit_id,
        c.signed_up,
        c.review_codes,
        c.status,
    )


class HoursRepository:
    """Attendance (from check-in events) and hours records."""

    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

    async def start_attendance(self, visit: VisitAttendance) -> bool:
        """False when this visit was already recorded (a redelivery, or its check-out came first)."""
        result = await self.session.execute(
            insert(attendance).values(**column_values(visit)).on_conflict_do_nothing().returning(attendance.c.visit_id)
        )
        return result.first() is not None

    async def close_attendance(self, visit: VisitAttendance) -> bool:
        """Record the check-out (creating the attendance if its check-in never arrived). True only the first
        time, so a visit yields hours once."""
        result = await self.session.execute(
            insert(attendance)
            .values(**column_values(visit))
            .on_conflict_do_update(
                index_elements=[attendance.c.visit_id],
                set_={"checked_out_at": visit.checked_out_at, "closed_by": visit.closed_by},
                where=attendance.c.checked_out_at.is_(None),
            )
            .returning(attendance.c.visit_id)
        )
        return result.first() is not None

    async def add(self, new: NewHours) -> None:
        values = {**column_values(new), "review_codes": list(new.review_codes)}
        await self.session.execute(insert(hours).values(**values, status="pending"))

    async def lock(self, hours_id: uuid.UUID, site_id: str | None) -> HoursRow | None:
        row = (
            await self.session.execute(
                select(*_hours_columns())
                .where(hours.c.hours_id == hours_id, site_filter(hours.c.site_id, site_id))
                .with_for_update()
            )
        ).first()
        if row is None:
            return None
        r = row
        return HoursRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], tuple(r[10]), r[11])

    async def correct(
        self, hours_id: uuid.UUID, minutes: int, reason: str, review_codes: Sequence[ReviewCode], at: datetime
    ) -> None:
        """New minutes, and back to pending: an earlier decision no longer stands."""
        await self.session.execute(
            update(hours)
            .where(hours.c.hours_id == hours_id)
            .values(
                minutes=minutes,
                reason=reason,
                status="pending",
                corrected_at=at,
                review_codes=list(review_codes),
                decided_at=None,
                decided_by=None,
                decision_reason=None,
            )
        )

    async def approve(self, hours_id: uuid.UUID, at: datetime, by: str) -> None:
        await self.session.execute(
            update(hours).where(hours.c.hours_id == hours_id).values(status="approved", decided_at=at, decided_by=by)
        )

    async def reject(self, hours_id: uuid.UUID, at: datetime, by: str, reason: str) -> None:
        await self.session.execute(
            update(hours)
            .where(hours.c.hours_id == hours_id)
            .values(status="rejected", decided_at=at, decided_by=by, decision_reason=reason)
        )

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


# A run's arrays go as text[] and are cast in the statement: asyncpg introspects any other array type once per pooled
# connection (~7 ms each), which a fresh process's first bursts paid for every connection of the pool.
_LOCK_FOR_SIGN_UPS = f"""
    WITH shift AS MATERIALIZED (
        SELECT s.shift_id, s.site_id, s.role_id, s.series_id, s.starts_at, s.ends_at, s.timezone, s.capacity,
               s.confirmed, s.needs_supervisor, s.status, r.required_trainings
        FROM "{SCHEMA}".shifts s JOIN "{SCHEMA}".roles r ON r.site_id = s.site_id AND r.role_id = s.role_id
        WHERE s.shift_id = $1
        FOR UPDATE OF s
    ),
    -- Taken from the locked row, so always after the shift's lock (the order every other path takes them in), and
    -- in the keys' order.
    member_locks AS MATERIALIZED (
        SELECT count(pg_advisory_xact_lock($2::int, keys.key)) AS taken
        FROM shift CROSS JOIN (SELECT key FROM unnest($3::text[]::int[]) AS key ORDER BY key) AS keys
    )
    SELECT shift.*, m.member_id, v.site_id AS member_site, v.roles, v.active, t.training_ids, t.completed_on,
           t.expires_on,
           CASE WHEN k.member_id IS NULL THEN NULL WHEN k.erased_at IS NULL THEN 'known' ELSE 'erased' END
               AS member_standing
    FROM shift CROSS JOIN member_locks
    LEFT JOIN unnest($4::text[]::uuid[]) AS m(member_id) ON true
    LEFT JOIN "{SCHEMA}".known_members k ON k.member_id = m.member_id AND k.site_id = shift.site_id
    LEFT JOIN "{SCHEMA}".volunteers v ON v.member_id = m.member_id
    LEFT JOIN LATERAL (
        SELECT array_agg(training_id) AS training_ids, array_agg(completed_on::text) AS completed_on,
               array_agg(expires_on::text) AS expires_on
        FROM "{SCHEMA}".trainings WHERE member_id = v.member_id
    ) t ON true
"""
_SIGNED_UP = f"""
    SELECT m.member_id,
        (SELECT status FROM "{SCHEMA}".signups
         WHERE shift_id = $1 AND member_id = m.member_id AND status IN ('confirmed', 'waitlisted') LIMIT 1) AS existing,
        (SELECT s.shift_id FROM "{SCHEMA}".shifts s JOIN "{SCHEMA}".signups g ON g.shift_id = s.shift_id
         WHERE g.member_id = m.member_id AND g.status = 'confirmed' AND s.status = 'scheduled' AND s.shift_id <> $1
           AND s.starts_at < $4 AND s.ends_at > $3 LIMIT 1) AS clash,
        (SELECT count(*) FROM "{SCHEMA}".signups WHERE shift_id = $1 AND status = 'waitlisted') AS waiting
    FROM unnest($2::text[]::uuid[]) AS m(member_id)
"""
# The sign-ups in the arrays' order: unnest keeps it and the insert takes ``seq`` from its sequence row by row.
_ADD_SIGN_UPS = f"""
    WITH inserted AS (
        INSERT INTO "{SCHEMA}".signups (signup_id, shift_id, site_id, member_id, status, signed_up_at, signed_up_by,
                                        actor_id, confirmed_at, promoted)
        SELECT g.signup_id, $1, $2, g.member_id, g.status, g.signed_up_at, g.signed_up_by, g.actor_id,
               CASE WHEN g.status = 'confirmed' THEN g.signed_up_at END, false
        FROM unnest(
            $3::text[]::uuid[], $4::text[]::uuid[], $5::text[], $6::text[]::timestamptz[], $7::text[], $8::text[]
        )
            WITH ORDINALITY AS g(signup_id, member_id, status, signed_up_at, signed_up_by, actor_id, n)
        ORDER BY g.n
        RETURNING 1
    )
    UPDATE "{SCHEMA}".shifts SET confirmed = confirmed + $9 WHERE shift_id = $1 AND $9 > 0
"""


class VolunteeringUnitOfWork(UnitOfWork):
    source = "/rcc/volunteering"

    def start(self) -> None:
        self.people = PeopleRepository(self.session)
        self.shifts = ShiftRepository(self.session, self.driver)
        self.hours = HoursRepository(self.session)
        self.stipends = StipendRepository(self.session)
