"""deliveries get ``handed_at``: when the sender began handing the message to the relay (just before SMTP DATA), so
that a sender killed mid-send leaves a mark and the message is never sent a second time

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
SCHEMA = "notify"


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("handed_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    # Only the messages on their way to the relay: a handful, looked at every round for a dead sender's.
    op.create_index(
        "ix_deliveries_handed",
        "deliveries",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending' AND handed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_handed", "deliveries", schema=SCHEMA)
    op.drop_column("deliveries", "handed_at", schema=SCHEMA)
