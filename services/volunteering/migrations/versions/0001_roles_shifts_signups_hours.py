"""roles, volunteers, trainings, calendar feeds, series, shifts, sign-ups, attendance, hours, outbox, inbox,
idempotency keys

Revision ID: 0001
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from shared.migrate import create_messaging_tables

revision = "0001"
down_revision = None
SCHEMA = "volunteering"


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "roles",
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("role_id", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("required_trainings", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("supervisor", sa.Boolean, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("site_id", "role_id", name="pk_roles"),
        schema=SCHEMA,
    )
    op.create_table(
        "volunteers",
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("roles", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("monthly_hours_goal", sa.Integer),
        sa.Column("stipend_eligible", sa.Boolean, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("member_id", name="pk_volunteers"),
        sa.CheckConstraint("monthly_hours_goal BETWEEN 0 AND 744", name="ck_volunteers_goal_in_range"),
        schema=SCHEMA,
    )
    op.create_index("ix_volunteers_site_id", "volunteers", ["site_id"], schema=SCHEMA)
    op.create_table(
        "trainings",
        sa.Column("record_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("training_id", sa.Text, nullable=False),
        sa.Column("completed_on", sa.Date, nullable=False),
        sa.Column("expires_on", sa.Date),
        _ts("recorded_at"),
        sa.Column("recorded_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("record_id", name="pk_trainings"),
        sa.ForeignKeyConstraint(
            ["member_id"], [f"{SCHEMA}.volunteers.member_id"], name="fk_trainings_member_id_volunteers"
        ),
        sa.CheckConstraint(
            "expires_on IS NULL OR expires_on >= completed_on", name="ck_trainings_expires_after_completion"
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_trainings_member_id_training_id", "trainings", ["member_id", "training_id"], schema=SCHEMA)
    op.create_table(
        "calendar_feeds",
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.Text, nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("member_id", name="pk_calendar_feeds"),
        sa.UniqueConstraint("secret_hash", name="uq_calendar_feeds_secret_hash"),
        schema=SCHEMA,
    )
    op.create_table(
        "series",
        sa.Column("series_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("role_id", sa.Text, nullable=False),
        sa.Column("rrule", sa.Text, nullable=False),
        sa.Column("first_local_start", sa.DateTime(timezone=False), nullable=False),
        sa.Column("duration_minutes", sa.Integer, nullable=False),
        sa.Column("exceptions", JSONB, nullable=False),
        sa.Column("timezone", sa.Text, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("needs_supervisor", sa.Boolean, nullable=False),
        _ts("materialized_until"),
        _ts("created_at"),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("series_id", name="pk_series"),
        sa.ForeignKeyConstraint(
            ["site_id", "role_id"],
            [f"{SCHEMA}.roles.site_id", f"{SCHEMA}.roles.role_id"],
            name="fk_series_site_id_roles",
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_series_materialized_until", "series", ["materialized_until"], schema=SCHEMA)
    op.create_table(
        "shifts",
        sa.Column("shift_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("role_id", sa.Text, nullable=False),
        sa.Column("series_id", UUID(as_uuid=True)),
        sa.Column("occurrence_start", sa.DateTime(timezone=False)),
        _ts("starts_at"),
        _ts("ends_at"),
        sa.Column("timezone", sa.Text, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("confirmed", sa.Integer, nullable=False),
        sa.Column("needs_supervisor", sa.Boolean, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("cancelled_at", nullable=True),
        sa.PrimaryKeyConstraint("shift_id", name="pk_shifts"),
        sa.ForeignKeyConstraint(
            ["site_id", "role_id"],
            [f"{SCHEMA}.roles.site_id", f"{SCHEMA}.roles.role_id"],
            name="fk_shifts_site_id_roles",
        ),
        sa.ForeignKeyConstraint(["series_id"], [f"{SCHEMA}.series.series_id"], name="fk_shifts_series_id_series"),
        sa.CheckConstraint("ends_at > starts_at", name="ck_shifts_ends_after_start"),
        sa.CheckConstraint("capacity > 0", name="ck_shifts_capacity_positive"),
        sa.CheckConstraint("confirmed >= 0 AND confirmed <= capacity", name="ck_shifts_confirmed_within_capacity"),
        sa.CheckConstraint("status IN ('scheduled', 'cancelled')", name="ck_shifts_status_known"),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_shifts_series_occurrence", "shifts", ["series_id", "occurrence_start"], unique=True, schema=SCHEMA
    )
    op.create_index("ix_shifts_site_id_starts_at", "shifts", ["site_id", "starts_at"], schema=SCHEMA)
    op.create_index(
        "ix_shifts_ends_at_scheduled",
        "shifts",
        ["ends_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'scheduled'"),
    )
    op.create_table(
        "signups",
        sa.Column("signup_id", UUID(as_uuid=True), nullable=False),
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("shift_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        _ts("signed_up_at"),
        sa.Column("signed_up_by", sa.Text, nullable=False),
        sa.Column("actor_id", sa.Text),
        _ts("confirmed_at", nullable=True),
        sa.Column("promoted", sa.Boolean, nullable=False),
        _ts("left_at", nullable=True),
        sa.Column("dropped_by", sa.Text),
        _ts("missed_at", nullable=True),
        sa.PrimaryKeyConstraint("signup_id", name="pk_signups"),
        sa.ForeignKeyConstraint(["shift_id"], [f"{SCHEMA}.shifts.shift_id"], name="fk_signups_shift_id_shifts"),
        sa.CheckConstraint(
            "status IN ('confirmed', 'waitlisted', 'dropped', 'cancelled')", name="ck_signups_status_known"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_signups_active_shift_member",
        "signups",
        ["shift_id", "member_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("status IN ('confirmed', 'waitlisted')"),
    )
    op.create_index("ix_signups_shift_id_status_seq", "signups", ["shift_id", "status", "seq"], schema=SCHEMA)
    op.create_index("ix_signups_member_id_status", "signups", ["member_id", "status"], schema=SCHEMA)
    op.create_table(
        "attendance",
        sa.Column("visit_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("shift_id", UUID(as_uuid=True), nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        _ts("checked_in_at"),
        _ts("checked_out_at", nullable=True),
        sa.Column("closed_by", sa.Text),
        sa.Column("signed_up", sa.Boolean, nullable=False),
        _ts("recorded_at"),
        sa.PrimaryKeyConstraint("visit_id", name="pk_attendance"),
        sa.ForeignKeyConstraint(["shift_id"], [f"{SCHEMA}.shifts.shift_id"], name="fk_attendance_shift_id_shifts"),
        schema=SCHEMA,
    )
    op.create_index("ix_attendance_shift_id_member_id", "attendance", ["shift_id", "member_id"], schema=SCHEMA)
    op.create_table(
        "hours",
        sa.Column("hours_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("shift_id", UUID(as_uuid=True), nullable=False),
        sa.Column("role_id", sa.Text, nullable=False),
        _ts("shift_starts_at"),
        sa.Column("minutes", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("visit_id", UUID(as_uuid=True)),
        sa.Column("signed_up", sa.Boolean, nullable=False),
        sa.Column("review_codes", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        _ts("created_at"),
        sa.Column("created_by", sa.Text),
        _ts("corrected_at", nullable=True),
        _ts("decided_at", nullable=True),
        sa.Column("decided_by", sa.Text),
        sa.Column("decision_reason", sa.Text),
        sa.PrimaryKeyConstraint("hours_id", name="pk_hours"),
        sa.UniqueConstraint("visit_id", name="uq_hours_visit_id"),
        sa.ForeignKeyConstraint(["shift_id"], [f"{SCHEMA}.shifts.shift_id"], name="fk_hours_shift_id_shifts"),
        sa.CheckConstraint("minutes BETWEEN 0 AND 1440", name="ck_hours_minutes_in_range"),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="ck_hours_status_known"),
        sa.CheckConstraint("source IN ('check_in', 'coordinator')", name="ck_hours_source_known"),
        schema=SCHEMA,
    )
    op.create_index("ix_hours_site_id_status_created_at", "hours", ["site_id", "status", "created_at"], schema=SCHEMA)
    op.create_index("ix_hours_member_id_shift_starts_at", "hours", ["member_id", "shift_starts_at"], schema=SCHEMA)
    op.create_index("ix_hours_shift_id", "hours", ["shift_id"], schema=SCHEMA)
    create_messaging_tables(SCHEMA)


def downgrade() -> None:
    op.execute(f'DROP SCHEMA "{SCHEMA}" CASCADE')
