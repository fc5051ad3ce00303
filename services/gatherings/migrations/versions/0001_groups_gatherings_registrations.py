"""groups, gatherings (sessions and events), registrations, attendance, outbox, inbox, idempotency keys

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from shared.migrate import create_messaging_tables

revision = "0001"
down_revision = None
SCHEMA = "gatherings"


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("group_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("focus_tags", ARRAY(sa.Text), nullable=False),
        sa.Column("support_type", sa.Text, nullable=False),
        sa.Column("facilitator_member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("child_care_seats", sa.Integer, nullable=False),
        sa.Column("room", sa.Text),
        sa.Column("timezone", sa.Text, nullable=False),
        sa.Column("first_start_local", sa.DateTime(timezone=False), nullable=False),
        sa.Column("duration_minutes", sa.Integer, nullable=False),
        sa.Column("rrule", sa.Text, nullable=False),
        sa.Column("exceptions", ARRAY(sa.Text), nullable=False),
        sa.Column("scheduled_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("group_id", name="pk_groups"),
        sa.CheckConstraint("capacity > 0", name="ck_groups_capacity_positive"),
        sa.CheckConstraint("child_care_seats >= 0", name="ck_groups_child_care_seats_not_negative"),
        sa.CheckConstraint("duration_minutes > 0", name="ck_groups_duration_positive"),
        schema=SCHEMA,
    )
    op.create_index("ix_groups_site_id_name", "groups", ["site_id", "name", "group_id"], schema=SCHEMA)

    op.create_table(
        "gatherings",
        sa.Column("gathering_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("gathering_type", sa.Text, nullable=False),
        sa.Column("group_id", UUID(as_uuid=True)),
        sa.Column("occurrence_start", sa.DateTime(timezone=False)),
        sa.Column("title", sa.Text),
        sa.Column("kind", sa.Text),
        sa.Column("support_type", sa.Text, nullable=False),
        sa.Column("family_friendly", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("room", sa.Text),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("child_care_seats", sa.Integer, nullable=False),
        sa.Column("taken_adults", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("taken_children", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("registration_opens_at", sa.DateTime(timezone=True)),
        sa.Column("registration_closes_at", sa.DateTime(timezone=True)),
        sa.Column("revision", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gathering_id", name="pk_gatherings"),
        sa.ForeignKeyConstraint(["group_id"], [f"{SCHEMA}.groups.group_id"], name="fk_gatherings_group_id_groups"),
        sa.UniqueConstraint("group_id", "occurrence_start", name="uq_gatherings_group_id_occurrence_start"),
        sa.CheckConstraint("gathering_type IN ('session', 'event')", name="ck_gatherings_gathering_type_known"),
        sa.CheckConstraint(
            "(gathering_type = 'session') = (group_id IS NOT NULL)", name="ck_gatherings_sessions_have_a_group"
        ),
        sa.CheckConstraint(
            "gathering_type = 'session' OR (title IS NOT NULL AND kind IS NOT NULL)",
            name="ck_gatherings_events_have_title_kind",
        ),
        sa.CheckConstraint("ends_at > starts_at", name="ck_gatherings_ends_after_start"),
        sa.CheckConstraint("capacity > 0", name="ck_gatherings_capacity_positive"),
        sa.CheckConstraint("child_care_seats >= 0", name="ck_gatherings_child_care_seats_not_negative"),
        # Overbooking is impossible whatever the code does: the database refuses it.
        sa.CheckConstraint(
            "taken_adults BETWEEN 0 AND capacity AND taken_children BETWEEN 0 AND child_care_seats",
            name="ck_gatherings_seats_within_capacity",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_gatherings_site_id_starts_at", "gatherings", ["site_id", "starts_at", "gathering_id"], schema=SCHEMA
    )
    op.create_index(
        "ix_gatherings_group_id_starts_at", "gatherings", ["group_id", "starts_at", "gathering_id"], schema=SCHEMA
    )

    op.create_table(
        "registrations",
        sa.Column("registration_id", UUID(as_uuid=True), nullable=False),
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("gathering_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("adults", sa.Integer, nullable=False),
        sa.Column("children", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("registered_by", sa.Text, nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True)),
        sa.Column("promoted_at", sa.DateTime(timezone=True)),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
        sa.Column("cancelled_by", sa.Text),
        sa.PrimaryKeyConstraint("registration_id", name="pk_registrations"),
        sa.ForeignKeyConstraint(
            ["gathering_id"], [f"{SCHEMA}.gatherings.gathering_id"], name="fk_registrations_gathering_id_gatherings"
        ),
        sa.CheckConstraint("status IN ('confirmed', 'waitlisted', 'cancelled')", name="ck_registrations_status_known"),
        sa.CheckConstraint("adults >= 1 AND children >= 0", name="ck_registrations_party_size"),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_registrations_active_member",
        "registrations",
        ["gathering_id", "member_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("status <> 'cancelled'"),
    )
    op.create_index(
        "ix_registrations_gathering_id_status_seq",
        "registrations",
        ["gathering_id", "status", "seq"],
        schema=SCHEMA,
    )
    op.create_index("ix_registrations_member_id", "registrations", ["member_id"], schema=SCHEMA)

    op.create_table(
        "attendance",
        sa.Column("attendance_id", UUID(as_uuid=True), nullable=False),
        sa.Column("gathering_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True)),
        sa.Column("visit_id", UUID(as_uuid=True)),
        sa.Column("registration_id", UUID(as_uuid=True)),
        sa.Column("registered", sa.Boolean, nullable=False),
        sa.Column("adults", sa.Integer, nullable=False),
        sa.Column("children", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("attended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("attendance_id", name="pk_attendance"),
        sa.ForeignKeyConstraint(
            ["gathering_id"], [f"{SCHEMA}.gatherings.gathering_id"], name="fk_attendance_gathering_id_gatherings"
        ),
        sa.CheckConstraint("source IN ('checkin', 'roster')", name="ck_attendance_source_known"),
        sa.CheckConstraint("member_id IS NOT NULL OR visit_id IS NOT NULL", name="ck_attendance_someone"),
        schema=SCHEMA,
    )
    # A member attends a gathering once; an anonymous walk-in once per visit: a redelivered check-in adds nothing.
    op.create_index(
        "uq_attendance_member",
        "attendance",
        ["gathering_id", "member_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("member_id IS NOT NULL"),
    )
    op.create_index(
        "uq_attendance_visit",
        "attendance",
        ["visit_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("visit_id IS NOT NULL"),
    )
    op.create_index("ix_attendance_gathering_id", "attendance", ["gathering_id"], schema=SCHEMA)

    create_messaging_tables(SCHEMA)


def downgrade() -> None:
    op.execute(f'DROP SCHEMA "{SCHEMA}" CASCADE')
