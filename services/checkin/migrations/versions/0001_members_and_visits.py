"""members, visits, outbox, inbox, idempotency keys

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from shared.migrate import create_messaging_tables

revision = "0001"
down_revision = None
SCHEMA = "checkin"


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("member_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("nickname", sa.Text),
        sa.Column("kiosk_code", sa.Text),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("site_id", "kiosk_code", name="uq_members_site_id_kiosk_code"),
        schema=SCHEMA,
    )
    op.create_table(
        "visits",
        sa.Column("visit_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True)),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("support_type", sa.Text),
        sa.Column("ref", sa.Text),
        sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_out_at", sa.DateTime(timezone=True)),
        sa.Column("closed_by", sa.Text),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_visits_open_member",
        "visits",
        ["member_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("checked_out_at IS NULL"),
    )
    op.create_index(
        "ix_visits_open_site",
        "visits",
        ["site_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("checked_out_at IS NULL"),
    )
    op.create_index("ix_visits_site_checked_in", "visits", ["site_id", "checked_in_at", "visit_id"], schema=SCHEMA)
    op.create_index("ix_visits_member", "visits", ["member_id", "checked_in_at"], schema=SCHEMA)
    create_messaging_tables(SCHEMA)


def downgrade() -> None:
    op.execute(f'DROP SCHEMA "{SCHEMA}" CASCADE')
