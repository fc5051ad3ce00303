"""The report projections (``rp_*`` tables of the ``audit`` schema, migration 0002).

They are derived from the audit log and can be rebuilt from it at any time (``rcc reports rebuild``):
services/audit/reports/projector.py keeps them, services/audit/reports/queries.py reads them (every figure is
defined in services/audit/reports/__init__.py). They live on a MetaData of their own (same schema) so the
projection code does not import the repository of the log.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    cast,
    text,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import BIT, UUID
from sqlalchemy.types import TypeDecorator

from services.audit import SCHEMA
from shared.db import NAMING_CONVENTION

metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)

DAY_BITS = 366  # a year of days: bit i = day i of the year (January 1 is 0)
MEMBER_BLOCK = 8192  # members per row of rp_member_days: bit i = the member with ordinal block * 8192 + i


class Bits(TypeDecorator[int]):
    """A ``bit(n)`` column read and written as a Python int (bit i of the int = character i of the bit string).

    Sent and read as text ('0101…', cast in SQL), so the value does not depend on how a driver or SQLAlchemy
    version represents bit strings."""

    impl = Text
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__()
        self.length = length

    def bind_expression(self, bindvalue: Any) -> Any:
        return cast(bindvalue, BIT(self.length))

    def column_expression(self, column: Any) -> Any:
        return type_coerce(cast(column, Text), self)

    def process_bind_param(self, value: int | None, dialect: Any) -> str | None:
        return None if value is None else bits_text(value, self.length)

    def process_result_value(self, value: str | None, dialect: Any) -> int | None:
        return None if value is None else bits_value(value)


def bits_text(bits: int, length: int) -> str:
    """'1' at character i (0-based, left to right; SQL's get_bit/set_bit position) for bit i of the int."""
    return format(bits, f"0{length}b")[::-1]


def bits_value(text: str) -> int:
    return int(text[::-1], 2)


# One row per visit: check-in and check-out facts merge here, in whichever order they arrive.
rp_visit = Table(
    "rp_visit",
    metadata,
    Column("visit_id", UUID(as_uuid=True), primary_key=True),
    Column("site_id", Text, nullable=False),
    Column("member_id", UUID(as_uuid=True)),
    Column("anonymous", Boolean, nullable=False),
    Column("purpose", Text),
    Column("support_type", Text),
    Column("checked_in", Boolean, nullable=False),  # false while only the check-out is known
    Column("checked_in_at", DateTime(timezone=True), nullable=False),
    Column("checked_out_at", DateTime(timezone=True)),
    Column("local_date", Date, nullable=False),  # of the check-in, in the site's zone
    # Not a short same-day visit: still open at the next local midnight, longer than LONG_VISIT, or never closed.
    Column("spills", Boolean, nullable=False),
    Column("in_fact_time", DateTime(timezone=True)),
    Column("in_fact_id", UUID(as_uuid=True)),
    Index("ix_rp_visit_checked_in_at", "checked_in_at"),
    Index(
        "ix_rp_visit_spills",
        "checked_out_at",
        "checked_in_at",
        postgresql_where=text("spills"),
        postgresql_include=["visit_id", "site_id", "local_date", "checked_in"],
    ),
)

# Additive daily figures per scope (a site id, or "*" for the whole network), kept by deltas.
DAILY_COUNTERS = (
    "visits",
    "anonymous_visits",
    "purpose_drop_in",
    "purpose_peer_mentoring",
    "purpose_recovery_group",
    "purpose_sober_event",
    "purpose_resource_connecting",
    "purpose_education",
    "purpose_volunteer_shift",
    "support_emotional",
    "support_informational",
    "support_instrumental",
    "support_affiliational",
    "new_members",
    "volunteer_minutes",
    "shifts_filled",
    "shifts_missed",
    "stipends_accrued_cents",
    "stipends_paid_cents",
    "waitlist_promotions",
)
_BIG_COUNTERS = {"volunteer_minutes", "stipends_accrued_cents", "stipends_paid_cents"}

rp_daily = Table(
    "rp_daily",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("local_date", Date, primary_key=True),
    *(
        Column(name, BigInteger if name in _BIG_COUNTERS else Integer, nullable=False, server_default="0")
        for name in DAILY_COUNTERS
    ),
)

rp_daily_role = Table(
    "rp_daily_role",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("local_date", Date, primary_key=True),
    Column("role_id", Text, primary_key=True),
    Column("minutes", BigInteger, nullable=False),
)

# Per scope and local date, who visited: one bit per member (by ordinal), in blocks of MEMBER_BLOCK members.
# Unduplicated members over any range = bits set in the OR of its days' rows: at most 366 rows per block.
rp_member_days = Table(
    "rp_member_days",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("local_date", Date, primary_key=True),
    Column("block", SmallInteger, primary_key=True),
    Column("members", Bits(MEMBER_BLOCK), nullable=False),
)

# Per scope, each member's first visit date and ordinal (their bit in rp_member_days).
rp_member_first = Table(
    "rp_member_first",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    Column("first_date", Date, nullable=False),
    Column("ordinal", Integer, nullable=False),
    Index("uq_rp_member_first_scope_ordinal", "scope", "ordinal", unique=True),
)

# The latest decision (approved or rejected) per hours record.
rp_hours = Table(
    "rp_hours",
    metadata,
    Column("hours_id", UUID(as_uuid=True), primary_key=True),
    Column("site_id", Text, nullable=False),
    Column("member_id", UUID(as_uuid=True), nullable=False),
    Column("role_id", Text, nullable=False),
    Column("shift_date", Date, nullable=False),
    Column("minutes", Integer, nullable=False),
    Column("approved", Boolean, nullable=False),
    Column("fact_time", DateTime(timezone=True), nullable=False),
    Column("fact_id", UUID(as_uuid=True), nullable=False),
    Index("ix_rp_hours_member_id", "member_id"),
)

# The days of a year on which a volunteer has approved hours (in the scope).
rp_volunteer_year = Table(
    "rp_volunteer_year",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("year", SmallInteger, primary_key=True),
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    Column("days", Bits(DAY_BITS), nullable=False),
    Index("ix_rp_volunteer_year_member_id", "member_id"),
)

# Shifts worked (key: hours_id) and missed (key: signup_id), each counted once on its shift's local date.
rp_shift_fact = Table(
    "rp_shift_fact",
    metadata,
    Column("kind", Text, primary_key=True),
    Column("key", UUID(as_uuid=True), primary_key=True),
    Column("site_id", Text, nullable=False),
    Column("local_date", Date, nullable=False),
    Column("fact_time", DateTime(timezone=True), nullable=False),
    Column("fact_id", UUID(as_uuid=True), nullable=False),
)

# One row per group session or sober event: when it is (latest fact wins), whether cancelled, its counts.
rp_gathering = Table(
    "rp_gathering",
    metadata,
    Column("gathering_id", UUID(as_uuid=True), primary_key=True),
    Column("kind", Text, nullable=False),  # session | event
    Column("site_id", Text, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("local_date", Date, nullable=False),
    Column("fact_time", DateTime(timezone=True), nullable=False),
    Column("fact_id", UUID(as_uuid=True), nullable=False),
    Column("cancelled", Boolean, nullable=False),
    Column("attendance", Integer, nullable=False),
    Column("registrations", Integer, nullable=False),
    Index("ix_rp_gathering_site_date", "site_id", "local_date"),
    Index("ix_rp_gathering_date", "local_date"),
)

rp_attendance = Table(
    "rp_attendance",
    metadata,
    Column("attendance_id", UUID(as_uuid=True), primary_key=True),
    Column("gathering_id", UUID(as_uuid=True), nullable=False),
)

# Per scope and UTC hour: the most visits open at once in that hour, counting every closed, checked-in visit.
rp_peak_hour = Table(
    "rp_peak_hour",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("hour", DateTime(timezone=True), primary_key=True),
    Column("peak", Integer, nullable=False),
)

PROJECTION_TABLES = (
    rp_visit,
    rp_daily,
    rp_daily_role,
    rp_member_days,
    rp_member_first,
    rp_hours,
    rp_volunteer_year,
    rp_shift_fact,
    rp_gathering,
    rp_attendance,
    rp_peak_hour,
)
