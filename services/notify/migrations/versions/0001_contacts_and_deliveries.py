"""known_members, contacts (with consent), verifications, deliveries, outbox, inbox, idempotency keys

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from shared.migrate import create_messaging_tables

revision = "0001"
down_revision = None
SCHEMA = "notify"


def upgrade() -> None:
    op.create_table(
        "known_members",
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("member_id", name="pk_known_members"),
        schema=SCHEMA,
    )
    op.create_table(
        "contacts",
        sa.Column("contact_id", UUID(as_uuid=True), nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("address", sa.Text),
        sa.Column("locale", sa.Text, nullable=False),
        sa.Column("quiet_start", sa.Time),
        sa.Column("quiet_end", sa.Time),
        sa.Column("kinds", ARRAY(sa.Text), nullable=False),
        sa.Column("consent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consent_by", sa.Text, nullable=False),
        sa.Column("consent_source", sa.Text, nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True)),
        sa.Column("verified_at", sa.DateTime(timezone=True)),
        sa.Column("bounces", sa.Integer, nullable=False, server_default="0"),
        sa.Column("unsubscribe_hash", sa.Text),
        sa.PrimaryKeyConstraint("contact_id", name="pk_contacts"),
        sa.UniqueConstraint("unsubscribe_hash", name="uq_contacts_unsubscribe_hash"),
        sa.CheckConstraint("channel IN ('email', 'sms', 'push')", name="ck_contacts_channel_known"),
        sa.CheckConstraint("locale IN ('en', 'es')", name="ck_contacts_locale_known"),
        sa.CheckConstraint("(quiet_start IS NULL) = (quiet_end IS NULL)", name="ck_contacts_quiet_hours_whole"),
        sa.CheckConstraint("withdrawn_at IS NULL OR address IS NULL", name="ck_contacts_withdrawn_has_no_address"),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_contacts_member_address",
        "contacts",
        ["member_id", "channel", "address"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("withdrawn_at IS NULL"),
    )
    op.create_index("ix_contacts_member", "contacts", ["member_id"], schema=SCHEMA)
    op.create_table(
        "verifications",
        sa.Column("token_hash", sa.Text, nullable=False),
        sa.Column("contact_id", UUID(as_uuid=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("token_hash", name="pk_verifications"),
        sa.ForeignKeyConstraint(
            ["contact_id"], [f"{SCHEMA}.contacts.contact_id"], name="fk_verifications_contact_id_contacts"
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", UUID(as_uuid=True), nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("contact_id", UUID(as_uuid=True), nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("links", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_deliveries"),
        sa.UniqueConstraint("message_id", name="uq_deliveries_message_id"),
        sa.ForeignKeyConstraint(
            ["contact_id"], [f"{SCHEMA}.contacts.contact_id"], name="fk_deliveries_contact_id_contacts"
        ),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name="ck_deliveries_status_known"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    create_messaging_tables(SCHEMA)


def downgrade() -> None:
    op.execute(f'DROP SCHEMA "{SCHEMA}" CASCADE')
