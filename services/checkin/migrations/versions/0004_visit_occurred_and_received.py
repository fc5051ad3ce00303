"""visits: when the server received a check-in and check-out, and whether a kiosk recorded it offline

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
SCHEMA = "checkin"


def upgrade() -> None:
    # Existing visits were all recorded online, at their receive time: received_at stays null (unknown, same).
    op.add_column("visits", sa.Column("checked_in_received_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.add_column("visits", sa.Column("checked_out_received_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    for column in ("checked_in_offline", "checked_out_offline"):
        op.add_column(
            "visits",
            sa.Column(column, sa.Boolean, nullable=False, server_default=sa.text("false")),
            schema=SCHEMA,
        )


def downgrade() -> None:
    for column in ("checked_out_offline", "checked_in_offline", "checked_out_received_at", "checked_in_received_at"):
        op.drop_column("visits", column, schema=SCHEMA)
