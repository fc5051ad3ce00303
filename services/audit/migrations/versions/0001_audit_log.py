"""append-only, hash-chained audit log; the INSERT/SELECT-only role the service runs as

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from shared.migrate import create_messaging_tables

revision = "0001"
down_revision = None
SCHEMA = "audit"
ROLE = "rcc_audit_writer"


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("subject", sa.Text),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.Text, nullable=False, unique=True),
        sa.Column("hash", sa.Text, nullable=False),
        sa.CheckConstraint("sequence > 0", name="ck_audit_log_sequence_positive"),
        schema=SCHEMA,
    )
    op.create_index("ix_audit_log_site_time", "audit_log", ["site_id", "time"], schema=SCHEMA)
    op.create_index("ix_audit_log_type_time", "audit_log", ["type", "time"], schema=SCHEMA)
    op.create_index("ix_audit_log_subject", "audit_log", ["subject"], schema=SCHEMA)
    # Append-only for everyone, owners included: a correction is a new event, never an edit.
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON {SCHEMA}.audit_log
            FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_change()
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON {SCHEMA}.audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_change()
        """
    )
    create_messaging_tables(SCHEMA)
    # Roles are cluster-wide: another database (a test run) may have created it already.
    op.execute(
        f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                CREATE ROLE {ROLE} NOLOGIN;
            END IF;
        EXCEPTION WHEN duplicate_object THEN NULL;
        END $$
        """
    )
    for grant in (
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO {ROLE}",
        f"GRANT SELECT, INSERT ON {SCHEMA}.audit_log TO {ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {SCHEMA}.outbox, {SCHEMA}.inbox, {SCHEMA}.idempotency_keys TO {ROLE}",
        f"GRANT USAGE ON SCHEMA access TO {ROLE}",
        f"GRANT SELECT ON access.sites, access.tokens TO {ROLE}",
    ):
        op.execute(grant)


def downgrade() -> None:
    op.execute(f'DROP SCHEMA "{SCHEMA}" CASCADE')
