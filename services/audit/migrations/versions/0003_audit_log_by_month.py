"""the audit log partitioned by month (of the event's time), with a default partition

Keys include the partition column, as PostgreSQL requires of a partitioned table's unique constraints:
- (event_id, time) keeps the log its own inbox: a redelivered event carries the same time as its first delivery,
  so it meets the first copy in the same partition and is refused there, as before.
- (sequence, time) and (prev_hash, time) are unique within a month. Across months the chain stays one line because
  appends are serialised by the chain's advisory lock (services/audit/models.py), which was always what assigned
  the next sequence and prev_hash; the constraints are a backstop, and ``rcc audit verify`` (which walks every
  partition in sequence order) finds any fork as a broken link.
The log stays append-only: the row triggers are defined on the parent, so every partition (those made later too)
has them; the writer role has privileges on the parent only.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from shared.partitions import MonthlyTable, repartition_by_month, unpartition

revision = "0003"
down_revision = "0002"
SCHEMA = "audit"
ROLE = "rcc_audit_writer"
AUDIT_LOG = MonthlyTable(SCHEMA, "audit_log", "time")


def _keys_triggers_grants(*, partitioned: bool) -> None:
    table, and_time = AUDIT_LOG.qualified, ", time" if partitioned else ""
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT audit_log_pkey PRIMARY KEY (sequence{and_time})")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT audit_log_event_id_key UNIQUE (event_id{and_time})")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT audit_log_prev_hash_key UNIQUE (prev_hash{and_time})")
    op.create_index("ix_audit_log_site_time", "audit_log", ["site_id", "time"], schema=SCHEMA)
    op.create_index("ix_audit_log_type_time", "audit_log", ["type", "time"], schema=SCHEMA)
    op.create_index("ix_audit_log_subject", "audit_log", ["subject"], schema=SCHEMA)
    op.execute(
        f"CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_change()"
    )
    op.execute(
        f"CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_change()"
    )
    op.execute(f"GRANT SELECT, INSERT ON {table} TO {ROLE}")


def upgrade() -> None:
    repartition_by_month(AUDIT_LOG)
    _keys_triggers_grants(partitioned=True)


def downgrade() -> None:
    unpartition(AUDIT_LOG)
    _keys_triggers_grants(partitioned=False)
