"""known_members (the members check-in registered, per site); gatherings.updated_at for iCalendar LAST-MODIFIED

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0002"
down_revision = "0001"
SCHEMA = "gatherings"


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
    # Members this service already holds records of were registered at check-in before it listened for
    # registrations: they stay usable (their registration time is the first trace they left here).
    op.execute(
        f"""
        INSERT INTO "{SCHEMA}".known_members (member_id, site_id, registered_at)
        SELECT DISTINCT ON (member_id) member_id, site_id, at FROM (
            SELECT member_id, site_id, registered_at AS at FROM "{SCHEMA}".registrations
            UNION ALL
            SELECT member_id, site_id, attended_at FROM "{SCHEMA}".attendance WHERE member_id IS NOT NULL
            UNION ALL
            SELECT facilitator_member_id, site_id, created_at FROM "{SCHEMA}".groups
        ) AS seen
        ORDER BY member_id, at
        """
    )
    op.add_column("gatherings", sa.Column("updated_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.execute(f'UPDATE "{SCHEMA}".gatherings SET updated_at = coalesce(cancelled_at, created_at)')
    op.alter_column("gatherings", "updated_at", nullable=False, schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("gatherings", "updated_at", schema=SCHEMA)
    op.drop_table("known_members", schema=SCHEMA)
