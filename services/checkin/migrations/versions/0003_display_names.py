"""display names: the name a volunteer chose for staff of their site to see

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0003"
down_revision = "0002"
SCHEMA = "checkin"


def upgrade() -> None:
    op.create_table(
        "display_names",
        sa.Column(
            "member_id",
            UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.members.member_id", ondelete="CASCADE", name="fk_display_names_member_id_members"),
            nullable=False,
        ),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("member_id", name="pk_display_names"),
        sa.CheckConstraint("char_length(display_name) BETWEEN 1 AND 60", name="ck_display_names_display_name_length"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("display_names", schema=SCHEMA)
