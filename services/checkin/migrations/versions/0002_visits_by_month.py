"""visits partitioned by month (of checked_in_at), with a default partition; one open visit per member kept by
``open_visits``

A partitioned table's unique indexes must include the partition column, so the partial unique index that allowed
one open visit per member (member_id WHERE checked_out_at IS NULL) could only hold within a month, and a visit
opened on the evening of the 31st would not stop a second one on the 1st. The guarantee moves to a small plain
table, ``open_visits`` (member_id primary key), kept by row triggers on visits in the same statement: a visit with a
member that starts open claims the member's row there (INSERT … ON CONFLICT DO NOTHING, which waits for a
concurrent claim to commit or roll back), and when the claim is taken the visit is not inserted (the trigger
returns NULL), exactly as ON CONFLICT DO NOTHING on the old index did: the check-in statement returns no row. The
visit's check-out (or deletion) releases the claim. Anonymous walk-ins (no member) claim nothing, as before.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from shared.partitions import MonthlyTable, repartition_by_month, unpartition

revision = "0002"
down_revision = "0001"
SCHEMA = "checkin"
VISITS = MonthlyTable(SCHEMA, "visits", "checked_in_at")

_INDEXES = (
    ("ix_visits_open_site", ["site_id"], "checked_out_at IS NULL"),
    ("ix_visits_site_checked_in", ["site_id", "checked_in_at", "visit_id"], None),
    ("ix_visits_member", ["member_id", "checked_in_at"], None),
)


def _indexes() -> None:
    import sqlalchemy as sa

    for name, columns, where in _INDEXES:
        op.create_index(
            name, "visits", columns, schema=SCHEMA, postgresql_where=sa.text(where) if where is not None else None
        )


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {SCHEMA}.open_visits (
            member_id uuid PRIMARY KEY,
            visit_id uuid NOT NULL
        )
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.claim_open_visit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.member_id IS NOT NULL AND NEW.checked_out_at IS NULL THEN
                INSERT INTO {SCHEMA}.open_visits (member_id, visit_id) VALUES (NEW.member_id, NEW.visit_id)
                    ON CONFLICT (member_id) DO NOTHING;
                IF NOT FOUND THEN
                    RETURN NULL;  -- the member has an open visit: this one is not started
                END IF;
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.release_open_visit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM {SCHEMA}.open_visits WHERE member_id = OLD.member_id AND visit_id = OLD.visit_id;
            RETURN NULL;
        END $$
        """
    )
    repartition_by_month(VISITS)
    # The copy above ran before the triggers: the open visits it kept claim their members here.
    op.execute(
        f"INSERT INTO {SCHEMA}.open_visits (member_id, visit_id) SELECT member_id, visit_id FROM {VISITS.qualified} "
        "WHERE member_id IS NOT NULL AND checked_out_at IS NULL"
    )
    op.execute(f"ALTER TABLE {VISITS.qualified} ADD CONSTRAINT visits_pkey PRIMARY KEY (visit_id, checked_in_at)")
    _indexes()
    op.execute(
        f"CREATE TRIGGER visits_claim_open BEFORE INSERT ON {VISITS.qualified} "
        f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.claim_open_visit()"
    )
    op.execute(
        f"CREATE TRIGGER visits_release_open AFTER UPDATE OF checked_out_at ON {VISITS.qualified} FOR EACH ROW "
        "WHEN (OLD.checked_out_at IS NULL AND NEW.checked_out_at IS NOT NULL AND OLD.member_id IS NOT NULL) "
        f"EXECUTE FUNCTION {SCHEMA}.release_open_visit()"
    )
    op.execute(
        f"CREATE TRIGGER visits_release_deleted AFTER DELETE ON {VISITS.qualified} FOR EACH ROW "
        "WHEN (OLD.member_id IS NOT NULL AND OLD.checked_out_at IS NULL) "
        f"EXECUTE FUNCTION {SCHEMA}.release_open_visit()"
    )


def downgrade() -> None:
    unpartition(VISITS)
    op.execute(f"DROP TABLE {SCHEMA}.open_visits")
    op.execute(f"DROP FUNCTION {SCHEMA}.claim_open_visit(), {SCHEMA}.release_open_visit()")
    op.execute(f"ALTER TABLE {VISITS.qualified} ADD CONSTRAINT visits_pkey PRIMARY KEY (visit_id)")
    op.execute(
        f"CREATE UNIQUE INDEX uq_visits_open_member ON {VISITS.qualified} (member_id) WHERE checked_out_at IS NULL"
    )
    _indexes()
