"""The tables of the ``volunteering`` schema (stipends' own tables are in ``stipends/models``). The repositories
that change them are in ``models``, the queries that list them in ``queries``."""

from __future__ import annotations

import uuid
from datetime import date, datetime

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
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.volunteering.base import Base


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
