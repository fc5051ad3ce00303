"""sites and tokens

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0001"
down_revision = None
SCHEMA = "access"


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("site_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("timezone", sa.Text, nullable=False),
        sa.Column("closes_at", sa.Time, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("capacity > 0", name="ck_sites_capacity_positive"),
        schema=SCHEMA,
    )
    op.create_table(
        "tokens",
        sa.Column("token_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("token_hash", sa.Text, nullable=False, unique=True),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, sa.ForeignKey(f"{SCHEMA}.sites.site_id"), nullable=False),
        sa.Column("member_id", UUID(as_uuid=True)),
        sa.Column("label", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("role IN ('kiosk', 'volunteer', 'coordinator', 'admin')", name="ck_tokens_role_known"),
        sa.CheckConstraint("role <> 'volunteer' OR member_id IS NOT NULL", name="ck_tokens_volunteer_has_member"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("tokens", schema=SCHEMA)
    op.drop_table("sites", schema=SCHEMA)
