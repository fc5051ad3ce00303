"""stipends: policy versions, periods, payouts, the append-only ledger, and the hours each entry booked

Revision ID: 0002
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0002"
down_revision = "0001"
SCHEMA = "volunteering"
PERIOD_FORMAT = "period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'"


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "stipend_policies",
        sa.Column("policy_id", UUID(as_uuid=True), nullable=False),
        sa.Column("version", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("hourly_rate_cents", sa.Integer, nullable=False),
        sa.Column("per_shift_cents", sa.Integer, nullable=False),
        sa.Column("role_rates", JSONB, nullable=False),
        sa.Column("monthly_cap_cents", sa.Integer, nullable=False),
        sa.Column("yearly_cap_cents", sa.Integer),
        sa.Column("tax_threshold_cents", sa.Integer, nullable=False),
        sa.Column("org_monthly_cap_cents", sa.Integer),
        _ts("created_at"),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("policy_id", name="pk_stipend_policies"),
        sa.CheckConstraint(
            "hourly_rate_cents >= 0 AND per_shift_cents >= 0 AND monthly_cap_cents >= 0 AND tax_threshold_cents >= 0 "
            "AND coalesce(yearly_cap_cents, 0) >= 0 AND coalesce(org_monthly_cap_cents, 0) >= 0",
            name="ck_stipend_policies_amounts_not_negative",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_stipend_policies_site_id_effective_from", "stipend_policies", ["site_id", "effective_from"], schema=SCHEMA
    )
    op.create_table(
        "stipend_periods",
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("period", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("cap_policy_id", UUID(as_uuid=True)),
        sa.Column("volunteers", sa.Integer, nullable=False),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("adjustments", sa.Integer, nullable=False),
        sa.Column("accrued_cents", sa.BigInteger, nullable=False),
        sa.Column("over_cap_cents", sa.BigInteger, nullable=False),
        _ts("created_at"),
        _ts("closed_at", nullable=True),
        sa.Column("closed_by", sa.Text),
        sa.PrimaryKeyConstraint("site_id", "period", name="pk_stipend_periods"),
        sa.ForeignKeyConstraint(
            ["cap_policy_id"],
            [f"{SCHEMA}.stipend_policies.policy_id"],
            name="fk_stipend_periods_cap_policy_id_stipend_policies",
        ),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_stipend_periods_status_known"),
        sa.CheckConstraint(PERIOD_FORMAT, name="ck_stipend_periods_period_format"),
        sa.CheckConstraint(
            "status = 'open' OR (closed_at IS NOT NULL AND cap_policy_id IS NOT NULL)",
            name="ck_stipend_periods_closed_has_totals",
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "stipend_payouts",
        sa.Column("payout_id", UUID(as_uuid=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("period", sa.Text, nullable=False),
        sa.Column("minutes", sa.Integer, nullable=False),
        sa.Column("shifts", sa.Integer, nullable=False),
        sa.Column("accrued_cents", sa.Integer, nullable=False),
        sa.Column("over_cap_cents", sa.Integer, nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("payout_id", name="pk_stipend_payouts"),
        sa.UniqueConstraint("site_id", "period", "member_id", name="uq_stipend_payouts_site_id_period_member_id"),
        sa.CheckConstraint(
            "accrued_cents >= 0 AND over_cap_cents >= 0 AND minutes >= 0 AND shifts >= 0",
            name="ck_stipend_payouts_amounts_not_negative",
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_stipend_payouts_member_id_period", "stipend_payouts", ["member_id", "period"], schema=SCHEMA)
    op.create_table(
        "stipend_ledger",
        sa.Column("entry_id", UUID(as_uuid=True), nullable=False),
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("period", sa.Text, nullable=False),
        sa.Column("entry_type", sa.Text, nullable=False),
        sa.Column("kind", sa.Text),
        sa.Column("payout_id", UUID(as_uuid=True), nullable=False),
        sa.Column("amount_cents", sa.Integer, nullable=False),
        sa.Column("over_cap_cents", sa.Integer, nullable=False),
        sa.Column("capped_by", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("minutes", sa.Integer, nullable=False),
        sa.Column("shifts", sa.Integer, nullable=False),
        sa.Column("lines", JSONB, nullable=False),
        sa.Column("rate_policy_ids", sa.ARRAY(UUID(as_uuid=True)), nullable=False),
        sa.Column("cap_policy_id", UUID(as_uuid=True)),
        sa.Column("shift_id", UUID(as_uuid=True)),
        sa.Column("original_period", sa.Text),
        sa.Column("reverses_entry_id", UUID(as_uuid=True)),
        sa.Column("method", sa.Text),
        sa.Column("reference", sa.Text),
        sa.Column("reason", sa.Text),
        _ts("created_at"),
        sa.Column("created_by", sa.Text),
        sa.PrimaryKeyConstraint("entry_id", name="pk_stipend_ledger"),
        sa.UniqueConstraint("reverses_entry_id", name="uq_stipend_ledger_reverses_entry_id"),
        sa.ForeignKeyConstraint(
            ["payout_id"], [f"{SCHEMA}.stipend_payouts.payout_id"], name="fk_stipend_ledger_payout_id_stipend_payouts"
        ),
        sa.ForeignKeyConstraint(
            ["cap_policy_id"],
            [f"{SCHEMA}.stipend_policies.policy_id"],
            name="fk_stipend_ledger_cap_policy_id_stipend_policies",
        ),
        sa.ForeignKeyConstraint(["shift_id"], [f"{SCHEMA}.shifts.shift_id"], name="fk_stipend_ledger_shift_id_shifts"),
        sa.ForeignKeyConstraint(
            ["reverses_entry_id"],
            [f"{SCHEMA}.stipend_ledger.entry_id"],
            name="fk_stipend_ledger_reverses_entry_id_stipend_ledger",
        ),
        sa.CheckConstraint("entry_type IN ('accrued', 'paid', 'reversed')", name="ck_stipend_ledger_entry_type_known"),
        sa.CheckConstraint("kind IN ('accrual', 'adjustment')", name="ck_stipend_ledger_kind_known"),
        sa.CheckConstraint("(entry_type = 'accrued') = (kind IS NOT NULL)", name="ck_stipend_ledger_kind_of_accrued"),
        sa.CheckConstraint(
            "(entry_type = 'reversed') = (reverses_entry_id IS NOT NULL)", name="ck_stipend_ledger_reversal_names_entry"
        ),
        sa.CheckConstraint("(entry_type = 'paid') = (method IS NOT NULL)", name="ck_stipend_ledger_payment_has_method"),
        sa.CheckConstraint(
            "(kind = 'adjustment') = (shift_id IS NOT NULL)", name="ck_stipend_ledger_adjustment_names_shift"
        ),
        sa.CheckConstraint(
            "amount_cents >= 0 AND over_cap_cents >= 0 AND minutes >= 0 AND shifts >= 0",
            name="ck_stipend_ledger_amounts_not_negative",
        ),
        sa.CheckConstraint(PERIOD_FORMAT, name="ck_stipend_ledger_period_format"),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_stipend_ledger_accrual",
        "stipend_ledger",
        ["site_id", "member_id", "period"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("kind = 'accrual'"),
    )
    op.create_index(
        "uq_stipend_ledger_payment",
        "stipend_ledger",
        ["payout_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("entry_type = 'paid'"),
    )
    op.create_index("ix_stipend_ledger_payout_id", "stipend_ledger", ["payout_id"], schema=SCHEMA)
    op.create_index("ix_stipend_ledger_site_id_period", "stipend_ledger", ["site_id", "period"], schema=SCHEMA)
    op.create_index("ix_stipend_ledger_member_id_period", "stipend_ledger", ["member_id", "period"], schema=SCHEMA)
    op.create_table(
        "stipend_hours",
        sa.Column("claim_id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("hours_id", UUID(as_uuid=True), nullable=False),
        sa.Column("entry_id", UUID(as_uuid=True)),
        sa.Column("site_id", sa.Text, nullable=False),
        sa.Column("member_id", UUID(as_uuid=True), nullable=False),
        sa.Column("period", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("shift_id", UUID(as_uuid=True), nullable=False),
        sa.Column("role_id", sa.Text, nullable=False),
        sa.Column("local_date", sa.Date, nullable=False),
        sa.Column("minutes", sa.Integer, nullable=False),
        sa.Column("shifts", sa.Integer, nullable=False),
        sa.Column("cents", sa.Integer, nullable=False),
        sa.Column("policy_id", UUID(as_uuid=True)),
        _ts("booked_at"),
        sa.Column("released_by", UUID(as_uuid=True)),
        sa.PrimaryKeyConstraint("claim_id", name="pk_stipend_hours"),
        sa.ForeignKeyConstraint(["hours_id"], [f"{SCHEMA}.hours.hours_id"], name="fk_stipend_hours_hours_id_hours"),
        sa.ForeignKeyConstraint(
            ["entry_id"], [f"{SCHEMA}.stipend_ledger.entry_id"], name="fk_stipend_hours_entry_id_stipend_ledger"
        ),
        sa.ForeignKeyConstraint(
            ["released_by"], [f"{SCHEMA}.stipend_ledger.entry_id"], name="fk_stipend_hours_released_by_stipend_ledger"
        ),
        sa.CheckConstraint("outcome IN ('accrued', 'ineligible')", name="ck_stipend_hours_outcome_known"),
        sa.CheckConstraint("(outcome = 'accrued') = (entry_id IS NOT NULL)", name="ck_stipend_hours_accrued_has_entry"),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_stipend_hours_booked",
        "stipend_hours",
        ["hours_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("released_by IS NULL"),
    )
    op.create_index("ix_stipend_hours_entry_id", "stipend_hours", ["entry_id"], schema=SCHEMA)
    # Policy versions, payouts and the ledger are append-only for everyone, owners included: a correction is a new
    # version or a reversing entry, never an edit.
    op.execute(
        f"""
        CREATE FUNCTION "{SCHEMA}".refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '%.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    for table in ("stipend_policies", "stipend_payouts", "stipend_ledger"):
        op.execute(
            f"""
            CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON "{SCHEMA}".{table}
                FOR EACH ROW EXECUTE FUNCTION "{SCHEMA}".refuse_change()
            """
        )
        op.execute(
            f"""
            CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON "{SCHEMA}".{table}
                FOR EACH STATEMENT EXECUTE FUNCTION "{SCHEMA}".refuse_change()
            """
        )


def downgrade() -> None:
    for table in ("stipend_hours", "stipend_ledger", "stipend_payouts", "stipend_periods", "stipend_policies"):
        op.execute(f'DROP TABLE "{SCHEMA}".{table}')
    op.execute(f'DROP FUNCTION "{SCHEMA}".refuse_change()')
