"""messages: per-site settings, coordinators, reminders; deliveries get a channel (in-app), kind, cause, values,
not_after, a coalescing key and a dropped status with its reason

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0002"
down_revision = "0001"
SCHEMA = "notify"


def add(column: sa.Column[object]) -> None:
    op.add_column("deliveries", column, schema=SCHEMA)


def upgrade() -> None:
    add(sa.Column("channel", sa.Text, nullable=False, server_default="email"))
    add(sa.Column("kind", sa.Text, nullable=False, server_default="verification"))
    add(sa.Column("cause_id", UUID(as_uuid=True)))
    add(sa.Column("template_values", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")))
    add(sa.Column("not_after", sa.DateTime(timezone=True)))
    add(sa.Column("coalesce_key", sa.Text))
    add(sa.Column("drop_reason", sa.Text))
    add(sa.Column("unsubscribe_hash", sa.Text))
    op.create_unique_constraint("uq_deliveries_unsubscribe_hash", "deliveries", ["unsubscribe_hash"], schema=SCHEMA)
    op.alter_column("deliveries", "contact_id", nullable=True, schema=SCHEMA)
    op.drop_constraint("ck_deliveries_status_known", "deliveries", schema=SCHEMA)
    op.create_check_constraint(
        "ck_deliveries_status_known",
        "deliveries",
        "status IN ('pending', 'sent', 'failed', 'dropped')",
        schema=SCHEMA,
    )
    op.create_check_constraint(
        "ck_deliveries_channel_known", "deliveries", "channel IN ('email', 'sms', 'push', 'inapp')", schema=SCHEMA
    )
    op.create_check_constraint(
        "ck_deliveries_inapp_has_no_contact", "deliveries", "(channel = 'inapp') = (contact_id IS NULL)", schema=SCHEMA
    )
    op.create_check_constraint(
        "ck_deliveries_drop_reason_known",
        "deliveries",
        "drop_reason IS NULL OR drop_reason IN ('quiet_hours', 'too_late', 'daily_cap', 'unsubscribed', 'withdrawn')",
        schema=SCHEMA,
    )
    op.create_check_constraint(
        "ck_deliveries_dropped_has_reason",
        "deliveries",
        "(status = 'dropped') = (drop_reason IS NOT NULL)",
        schema=SCHEMA,
    )
    op.create_index("ix_deliveries_member", "deliveries", ["member_id", "created_at"], schema=SCHEMA)
    op.create_index("ix_deliveries_contact", "deliveries", ["contact_id", "created_at"], schema=SCHEMA)
    op.create_index(
        "ix_deliveries_coalesce",
        "deliveries",
        ["contact_id", "coalesce_key"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending' AND coalesce_key IS NOT NULL"),
    )
    op.create_table(
        "site_settings",
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("message_name", sa.Text),
        sa.Column("reminder_offsets", ARRAY(sa.Integer), nullable=False),
        sa.Column("daily_cap", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("site_id", name="pk_site_settings"),
        sa.CheckConstraint("daily_cap > 0", name="ck_site_settings_daily_cap_positive"),
        schema=SCHEMA,
    )
    op.create_table(
        "site_coordinators",
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("site_id", "member_id", name="pk_site_coordinators"),
        schema=SCHEMA,
    )
    op.create_table(
        "reminders",
        sa.Column("reminder_id", UUID(as_uuid=True), nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("subject_id", UUID(as_uuid=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offset_minutes", sa.Integer, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("cause_id", UUID(as_uuid=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("reminder_id", name="pk_reminders"),
        sa.CheckConstraint("subject IN ('shift', 'session', 'event')", name="ck_reminders_subject_known"),
        sa.CheckConstraint("status IN ('scheduled', 'sent', 'skipped')", name="ck_reminders_status_known"),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_reminders_member_subject_offset",
        "reminders",
        ["member_id", "subject_id", "offset_minutes"],
        unique=True,
        schema=SCHEMA,
    )
    op.create_index(
        "ix_reminders_due", "reminders", ["due_at"], schema=SCHEMA, postgresql_where=sa.text("status = 'scheduled'")
    )
    op.create_index("ix_reminders_subject", "reminders", ["subject_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("reminders", schema=SCHEMA)
    op.drop_table("site_coordinators", schema=SCHEMA)
    op.drop_table("site_settings", schema=SCHEMA)
    op.execute(f"DELETE FROM \"{SCHEMA}\".deliveries WHERE channel = 'inapp' OR status = 'dropped'")
    for index in ("ix_deliveries_coalesce", "ix_deliveries_contact", "ix_deliveries_member"):
        op.drop_index(index, "deliveries", schema=SCHEMA)
    for name in ("dropped_has_reason", "drop_reason_known", "inapp_has_no_contact", "channel_known", "status_known"):
        op.drop_constraint(f"ck_deliveries_{name}", "deliveries", schema=SCHEMA)
    op.create_check_constraint(
        "ck_deliveries_status_known", "deliveries", "status IN ('pending', 'sent', 'failed')", schema=SCHEMA
    )
    op.alter_column("deliveries", "contact_id", nullable=False, schema=SCHEMA)
    op.drop_constraint("uq_deliveries_unsubscribe_hash", "deliveries", schema=SCHEMA)
    for column in (
        "unsubscribe_hash",
        "drop_reason",
        "coalesce_key",
        "not_after",
        "template_values",
        "cause_id",
        "kind",
        "channel",
    ):
        op.drop_column("deliveries", column, schema=SCHEMA)
