"""report projections (rp_*): derived from the audit log, rebuilt from it by ``rcc reports rebuild``

The audit role may change these tables (they are projections, not the record); the audit_log itself stays
INSERT/SELECT only. Existing log entries are not projected here: run ``rcc reports rebuild`` once after upgrading
a database that already holds events.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import BIT, UUID

revision = "0002"
down_revision = "0001"
SCHEMA = "audit"
ROLE = "rcc_audit_writer"

DAILY_COUNTERS = (
    "visits",
    "anonymous_visits",
    "purpose_drop_in",
    "purpose_peer_mentoring",
    "purpose_recovery_group",
    "purpose_sober_event",
    "purpose_resource_connecting",
    "purpose_education",
    "purpose_volunteer_shift",
    "support_emotional",
    "support_informational",
    "support_instrumental",
    "support_affiliational",
    "new_members",
    "volunteer_minutes",
    "shifts_filled",
    "shifts_missed",
    "stipends_accrued_cents",
    "stipends_paid_cents",
    "waitlist_promotions",
)
BIG_COUNTERS = {"volunteer_minutes", "stipends_accrued_cents", "stipends_paid_cents"}
TABLES = (
    "rp_visit",
    "rp_daily",
    "rp_daily_role",
    "rp_member_days",
    "rp_member_first",
    "rp_hours",
    "rp_volunteer_year",
    "rp_shift_fact",
    "rp_gathering",
    "rp_attendance",
    "rp_peak_hour",
)


def tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rp_visit",
        sa.Column("visit_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True)),
        sa.Column("anonymous", sa.Boolean, nullable=False),
        sa.Column("purpose", sa.Text),
        sa.Column("support_type", sa.Text),
        sa.Column("checked_in", sa.Boolean, nullable=False),
        sa.Column("checked_in_at", tz(), nullable=False),
        sa.Column("checked_out_at", tz()),
        sa.Column("local_date", sa.Date, nullable=False),
        sa.Column("spills", sa.Boolean, nullable=False),
        sa.Column("in_fact_time", tz()),
        sa.Column("in_fact_id", UUID(as_uuid=True)),
        sa.PrimaryKeyConstraint("visit_id", name="pk_rp_visit"),
        schema=SCHEMA,
    )
    op.create_index("ix_rp_visit_checked_in_at", "rp_visit", ["checked_in_at"], schema=SCHEMA)
    # The few visits that are not short same-day ones, with what the report queries filter on (index-only scans).
    op.create_index(
        "ix_rp_visit_spills",
        "rp_visit",
        ["checked_out_at", "checked_in_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("spills"),
        postgresql_include=["visit_id", "site_id", "local_date", "checked_in"],
    )

    op.create_table(
        "rp_daily",
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("local_date", sa.Date, nullable=False),
        *(
            sa.Column(name, sa.BigInteger if name in BIG_COUNTERS else sa.Integer, nullable=False, server_default="0")
            for name in DAILY_COUNTERS
        ),
        sa.PrimaryKeyConstraint("scope", "local_date", name="pk_rp_daily"),
        schema=SCHEMA,
    )
    op.create_table(
        "rp_daily_role",
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("local_date", sa.Date, nullable=False),
        sa.Column("role_id", sa.Text, nullable=False),
        sa.Column("minutes", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("scope", "local_date", "role_id", name="pk_rp_daily_role"),
        schema=SCHEMA,
    )
    op.create_table(
        "rp_member_days",
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("local_date", sa.Date, nullable=False),
        sa.Column("block", sa.SmallInteger, nullable=False),
        sa.Column("members", BIT(8192), nullable=False),
        sa.PrimaryKeyConstraint("scope", "local_date", "block", name="pk_rp_member_days"),
        schema=SCHEMA,
    )
    op.create_table(
        "rp_member_first",
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("first_date", sa.Date, nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("scope", "member_id", name="pk_rp_member_first"),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_rp_member_first_scope_ordinal", "rp_member_first", ["scope", "ordinal"], unique=True, schema=SCHEMA
    )
    op.create_table(
        "rp_volunteer_year",
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("year", sa.SmallInteger, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("days", BIT(366), nullable=False),
        sa.PrimaryKeyConstraint("scope", "year", "member_id", name="pk_rp_volunteer_year"),
        schema=SCHEMA,
    )
    op.create_index("ix_rp_volunteer_year_member_id", "rp_volunteer_year", ["member_id"], schema=SCHEMA)
    op.create_table(
        "rp_hours",
        sa.Column("hours_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("role_id", sa.Text, nullable=False),
        sa.Column("shift_date", sa.Date, nullable=False),
        sa.Column("minutes", sa.Integer, nullable=False),
        sa.Column("approved", sa.Boolean, nullable=False),
        sa.Column("fact_time", tz(), nullable=False),
        sa.Column("fact_id", UUID(as_uuid=True), nullable=False),
        sa.PrimaryKeyConstraint("hours_id", name="pk_rp_hours"),
        schema=SCHEMA,
    )
    op.create_index("ix_rp_hours_member_id", "rp_hours", ["member_id"], schema=SCHEMA)
    op.create_table(
        "rp_shift_fact",
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("key", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("local_date", sa.Date, nullable=False),
        sa.Column("fact_time", tz(), nullable=False),
        sa.Column("fact_id", UUID(as_uuid=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name="pk_rp_shift_fact"),
        schema=SCHEMA,
    )
    op.create_table(
        "rp_gathering",
        sa.Column("gathering_id", UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("starts_at", tz(), nullable=False),
        sa.Column("local_date", sa.Date, nullable=False),
        sa.Column("fact_time", tz(), nullable=False),
        sa.Column("fact_id", UUID(as_uuid=True), nullable=False),
        sa.Column("cancelled", sa.Boolean, nullable=False),
        sa.Column("attendance", sa.Integer, nullable=False),
        sa.Column("registrations", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("gathering_id", name="pk_rp_gathering"),
        schema=SCHEMA,
    )
    op.create_index("ix_rp_gathering_site_date", "rp_gathering", ["site_id", "local_date"], schema=SCHEMA)
    op.create_index("ix_rp_gathering_date", "rp_gathering", ["local_date"], schema=SCHEMA)
    op.create_table(
        "rp_attendance",
        sa.Column("attendance_id", UUID(as_uuid=True), nullable=False),
        sa.Column("gathering_id", UUID(as_uuid=True), nullable=False),
        sa.PrimaryKeyConstraint("attendance_id", name="pk_rp_attendance"),
        schema=SCHEMA,
    )
    op.create_table(
        "rp_peak_hour",
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("hour", tz(), nullable=False),
        sa.Column("peak", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("scope", "hour", name="pk_rp_peak_hour"),
        schema=SCHEMA,
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(f'{SCHEMA}.{t}' for t in TABLES)} TO {ROLE}")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table, schema=SCHEMA)
