"""known_members (the members check-in registered, per site); shifts.revision for iCalendar SEQUENCE

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0003"
down_revision = "0002"
SCHEMA = "volunteering"


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
            SELECT member_id, site_id, created_at AS at FROM "{SCHEMA}".volunteers
            UNION ALL
            SELECT member_id, site_id, signed_up_at FROM "{SCHEMA}".signups
            UNION ALL
            SELECT member_id, site_id, created_at FROM "{SCHEMA}".hours
        ) AS seen
        ORDER BY member_id, at
        """
    )
    op.add_column(
        "shifts", sa.Column("revision", sa.Integer, nullable=False, server_default=sa.text("0")), schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_column("shifts", "revision", schema=SCHEMA)
    op.drop_table("known_members", schema=SCHEMA)
