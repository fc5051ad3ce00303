"""Tables of the stipends (in the ``volunteering`` schema and its one migration history) and the typed
repository their handlers write through.

The boundary with volunteering proper is two explicit calls on the unit of work's repositories: a close takes the
approved hours it books from ``HoursRepository.unbooked_approved`` (volunteering's own query of its tables, which
leaves out what the ``held`` predicate from here says an entry holds), and a correction of hours asks
``StipendRepository.booking_entry``. Apart from that and the tables' foreign keys, neither side's code names the
other's tables."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    and_,
    case,
    exists,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from services.volunteering.base import Base
from services.volunteering.stipends.domain import ApprovedHours, Line, Period, Policy, RoleRate, StipendKind


class StipendPolicy(Base):
    """One version of a site's stipend policy, in effect from a local date. Never changed (a trigger refuses it):
    a change is a new version, so the ledger entries that name a version keep meaning what they meant."""

    __tablename__ = "stipend_policies"
    __table_args__ = (
        CheckConstraint(
            "hourly_rate_cents >= 0 AND per_shift_cents >= 0 AND monthly_cap_cents >= 0 AND tax_threshold_cents >= 0 "
            "AND coalesce(yearly_cap_cents, 0) >= 0 AND coalesce(org_monthly_cap_cents, 0) >= 0",
            name="amounts_not_negative",
        ),
        Index("ix_stipend_policies_site_id_effective_from", "site_id", "effective_from"),
    )

    policy_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # Creation order: of two versions from the same date, the later counts.
    version: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    site_id: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[date] = mapped_column(Date)
    hourly_rate_cents: Mapped[int] = mapped_column(Integer)
    per_shift_cents: Mapped[int] = mapped_column(Integer)
    # [{role_id, hourly_rate_cents, per_shift_cents}]: a role's rates replace the default ones.
    role_rates: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    monthly_cap_cents: Mapped[int] = mapped_column(Integer)
    yearly_cap_cents: Mapped[int | None] = mapped_column(Integer)
    tax_threshold_cents: Mapped[int] = mapped_column(Integer)
    org_monthly_cap_cents: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(Text)


class StipendPeriod(Base):
    """A site's month ("YYYY-MM"); its row is the lock that serialises closing it, and keeps the totals."""

    __tablename__ = "stipend_periods"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status_known"),
        CheckConstraint("period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'", name="period_format"),
        CheckConstraint(
            "status = 'open' OR (closed_at IS NOT NULL AND cap_policy_id IS NOT NULL)", name="closed_has_totals"
        ),
    )

    site_id: Mapped[str] = mapped_column(Text, primary_key=True)
    period: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(Text)
    cap_policy_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey(StipendPolicy.policy_id))
    volunteers: Mapped[int] = mapped_column(Integer)
    entries: Mapped[int] = mapped_column(Integer)
    adjustments: Mapped[int] = mapped_column(Integer)
    accrued_cents: Mapped[int] = mapped_column(BigInteger)
    over_cap_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(Text)


class StipendPayout(Base):
    """What one volunteer is paid for one closed period: its accrued entries (adjustments included), minus what
    was reversed of them. Written when the period closes and never changed; payment is a ledger entry."""

    __tablename__ = "stipend_payouts"
    __table_args__ = (
        UniqueConstraint("site_id", "period", "member_id"),
        Index("ix_stipend_payouts_member_id_period", "member_id", "period"),
        CheckConstraint(
            "accrued_cents >= 0 AND over_cap_cents >= 0 AND minutes >= 0 AND shifts >= 0", name="amounts_not_negative"
        ),
    )

    payout_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[str] = mapped_column(Text)
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    period: Mapped[str] = mapped_column(Text)
    minutes: Mapped[int] = mapped_column(Integer)
    shifts: Mapped[int] = mapped_column(Integer)
    accrued_cents: Mapped[int] = mapped_column(Integer)
    over_cap_cents: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StipendEntry(Base):
    """The append-only stipend ledger (a trigger refuses UPDATE, DELETE and TRUNCATE). ``accrued``: booked when a
    period closed (``kind`` accrual or adjustment); ``paid``: a payout was paid; ``reversed``: an accrued entry was
    taken back (``reverses_entry_id``; at most once). Amounts are non-negative cents; a reversal's amount is the
    positive amount taken back."""

    __tablename__ = "stipend_ledger"
    __table_args__ = (
        CheckConstraint("entry_type IN ('accrued', 'paid', 'reversed')", name="entry_type_known"),
        CheckConstraint("kind IN ('accrual', 'adjustment')", name="kind_known"),
        CheckConstraint("(entry_type = 'accrued') = (kind IS NOT NULL)", name="kind_of_accrued"),
        CheckConstraint("(entry_type = 'reversed') = (reverses_entry_id IS NOT NULL)", name="reversal_names_entry"),
        CheckConstraint("(entry_type = 'paid') = (method IS NOT NULL)", name="payment_has_method"),
        CheckConstraint("(kind = 'adjustment') = (shift_id IS NOT NULL)", name="adjustment_names_shift"),
        CheckConstraint(
            "amount_cents >= 0 AND over_cap_cents >= 0 AND minutes >= 0 AND shifts >= 0", name="amounts_not_negative"
        ),
        CheckConstraint("period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'", name="period_format"),
        UniqueConstraint("reverses_entry_id"),
        # One accrual per volunteer and period, and one payment per payout, whatever the concurrency.
        Index(
            "uq_stipend_ledger_accrual",
            "site_id",
            "member_id",
            "period",
            unique=True,
            postgresql_where=text("kind = 'accrual'"),
        ),
        Index("uq_stipend_ledger_payment", "payout_id", unique=True, postgresql_where=text("entry_type = 'paid'")),
        Index("ix_stipend_ledger_payout_id", "payout_id"),
        Index("ix_stipend_ledger_site_id_period", "site_id", "period"),
        Index("ix_stipend_ledger_member_id_period", "member_id", "period"),
    )

    entry_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    site_id: Mapped[str] = mapped_column(Text)
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    period: Mapped[str] = mapped_column(Text)
    entry_type: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(Text)
    payout_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey(StipendPayout.payout_id))
    amount_cents: Mapped[int] = mapped_column(Integer)
    over_cap_cents: Mapped[int] = mapped_column(Integer)
    capped_by: Mapped[list[str]] = mapped_column(ARRAY(Text))
    minutes: Mapped[int] = mapped_column(Integer)
    shifts: Mapped[int] = mapped_column(Integer)
    # The hours behind the amount by policy and role: [{policy_id, role_id, hourly_rate_cents, per_shift_cents,
    # minutes, shifts, cents}].
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    rate_policy_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)))
    cap_policy_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey(StipendPolicy.policy_id))
    shift_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("volunteering.shifts.shift_id"))
    original_period: Mapped[str | None] = mapped_column(Text)
    reverses_entry_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("volunteering.stipend_ledger.entry_id")
    )
    method: Mapped[str | None] = mapped_column(Text)
    # Free text an admin types (a check number, why an entry was reversed): stays here, never in an event.
    reference: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(Text)


class StipendHours(Base):
    """Which ledger entry booked each approved hours record, with what it came to: a record is booked at most once
    at a time (unique while not released), so it is never paid twice. A reversal releases the records of the entry
    it reverses; volunteers who were not eligible when the period closed have their records settled with no entry
    (outcome ``ineligible``), so they never accrue later."""

    __tablename__ = "stipend_hours"
    __table_args__ = (
        CheckConstraint("outcome IN ('accrued', 'ineligible')", name="outcome_known"),
        CheckConstraint("(outcome = 'accrued') = (entry_id IS NOT NULL)", name="accrued_has_entry"),
        Index("uq_stipend_hours_booked", "hours_id", unique=True, postgresql_where=text("released_by IS NULL")),
        Index("ix_stipend_hours_entry_id", "entry_id"),
    )

    claim_id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    hours_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("volunteering.hours.hours_id"))
    entry_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey(StipendEntry.entry_id))
    site_id: Mapped[str] = mapped_column(Text)
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    period: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
    shift_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    role_id: Mapped[str] = mapped_column(Text)
    local_date: Mapped[date] = mapped_column(Date)
    minutes: Mapped[int] = mapped_column(Integer)
    shifts: Mapped[int] = mapped_column(Integer)
    cents: Mapped[int] = mapped_column(Integer)
    policy_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    booked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    released_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey(StipendEntry.entry_id))


stipend_policies = StipendPolicy.__table__
stipend_periods = StipendPeriod.__table__
stipend_payouts = StipendPayout.__table__
ledger = StipendEntry.__table__
stipend_hours = StipendHours.__table__


# What the repository takes and hands back


@dataclass(frozen=True, slots=True)
class PayableHours:
    """An approved hours record no entry holds, with the volunteer's eligibility now (volunteering proper's
    answer to ``HoursRepository.unbooked_approved``)."""

    hours_id: uuid.UUID
    member_id: uuid.UUID
    shift_id: uuid.UUID
    role_id: str
    shift_starts_at: datetime
    minutes: int
    eligible: bool


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    cap_policy_id: uuid.UUID
    volunteers: int
    entries: int
    adjustments: int
    accrued_cents: int
    over_cap_cents: int


@dataclass(frozen=True, slots=True)
class PeriodRecord:
    site_id: str
    period: str
    status: str
    cap_policy_id: uuid.UUID | None
    volunteers: int
    entries: int
    adjustments: int
    accrued_cents: int
    over_cap_cents: int
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewPayout:
    payout_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    period: str
    minutes: int
    shifts: int
    accrued_cents: int
    over_cap_cents: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PayoutRecord:
    """A payout with what was reversed of its entries and its payment, if any."""

    payout_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    period: str
    accrued_cents: int
    reversed_cents: int
    payment_entry_id: uuid.UUID | None
    paid_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewEntry:
    """One ledger row; what does not apply to its type stays zero or empty (one statement inserts many)."""

    entry_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    period: str
    entry_type: str  # accrued, paid or reversed
    payout_id: uuid.UUID
    amount_cents: int
    created_at: datetime
    created_by: str | None
    kind: StipendKind | None = None
    over_cap_cents: int = 0
    capped_by: tuple[str, ...] = ()
    minutes: int = 0
    shifts: int = 0
    lines: tuple[Line, ...] = ()
    rate_policy_ids: tuple[uuid.UUID, ...] = ()
    cap_policy_id: uuid.UUID | None = None
    shift_id: uuid.UUID | None = None
    original_period: str | None = None
    reverses_entry_id: uuid.UUID | None = None
    method: str | None = None
    reference: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class EntryRecord:
    entry_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    period: str
    entry_type: str
    payout_id: uuid.UUID
    amount_cents: int
    minutes: int
    shifts: int


@dataclass(frozen=True, slots=True)
class BookedHours:
    """Which entry booked an hours record (``entry_id`` None: settled without one, the volunteer not eligible)."""

    hours: ApprovedHours
    site_id: str
    period: str
    booked_at: datetime
    entry_id: uuid.UUID | None
    shifts: int
    cents: int
    policy_id: uuid.UUID | None


def held(hours_id: Any) -> Any:
    """Whether a ledger entry holds the hours record now (booked and not released): then it is never booked again.
    For volunteering proper's query of payable hours (``hours_id`` is its column)."""
    return exists(
        select(stipend_hours.c.claim_id).where(
            stipend_hours.c.hours_id == hours_id, stipend_hours.c.released_by.is_(None)
        )
    )


def site_filter(column: Any, site_id: str | None) -> Any:
    """``None`` is an admin's scope: every site."""
    return literal(True) if site_id is None else column == site_id


# Advisory lock namespace for "one site's stipend periods": closes of one site run one at a time.
STIPEND_LOCK_SPACE = zlib.crc32(b"rcc-volunteering-stipends") - 2**31


def _policy(row: Any) -> Policy:
    return Policy(
        policy_id=row.policy_id,
        version=row.version,
        effective_from=row.effective_from,
        hourly_rate_cents=row.hourly_rate_cents,
        per_shift_cents=row.per_shift_cents,
        monthly_cap_cents=row.monthly_cap_cents,
        yearly_cap_cents=row.yearly_cap_cents,
        tax_threshold_cents=row.tax_threshold_cents,
        org_monthly_cap_cents=row.org_monthly_cap_cents,
        role_rates=tuple(RoleRate(r["role_id"], r["hourly_rate_cents"], r["per_shift_cents"]) for r in row.role_rates),
    )


async def policies_of(session: AsyncConnection, site_id: str) -> list[Policy]:
    rows = await session.execute(
        select(stipend_policies)
        .where(stipend_policies.c.site_id == site_id)
        .order_by(stipend_policies.c.effective_from, stipend_policies.c.version)
    )
    return [_policy(row) for row in rows]


def net_booked() -> Any:
    """Per ledger row: what it adds to a volunteer's booked total (accrued minus reversed; payments are part of it)."""
    return case(
        (ledger.c.entry_type == "accrued", ledger.c.amount_cents),
        (ledger.c.entry_type == "reversed", -ledger.c.amount_cents),
        else_=0,
    )


class StipendRepository:
    """Stipend policies, periods, payouts, the ledger and the hours each entry booked."""

    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

    async def lock_site(self, site_id: str) -> None:
        """Serialise closing and policy changes of one site (held until the transaction ends)."""
        key = zlib.crc32(site_id.encode()) - 2**31
        await self.session.execute(select(func.pg_advisory_xact_lock(STIPEND_LOCK_SPACE, key)))

    async def policies(self, site_id: str) -> list[Policy]:
        return await policies_of(self.session, site_id)

    async def add_policy(self, site_id: str, policy: Policy, at: datetime, by: str) -> int:
        """Store a new version (``policy.version`` is ignored: the database numbers versions); returns its number."""
        role_rates = [
            {"role_id": r.role_id, "hourly_rate_cents": r.hourly_rate_cents, "per_shift_cents": r.per_shift_cents}
            for r in policy.role_rates
        ]
        return int(
            (
                await self.session.execute(
                    insert(stipend_policies)
                    .values(
                        policy_id=policy.policy_id,
                        site_id=site_id,
                        effective_from=policy.effective_from,
                        hourly_rate_cents=policy.hourly_rate_cents,
                        per_shift_cents=policy.per_shift_cents,
                        role_rates=role_rates,
                        monthly_cap_cents=policy.monthly_cap_cents,
                        yearly_cap_cents=policy.yearly_cap_cents,
                        tax_threshold_cents=policy.tax_threshold_cents,
                        org_monthly_cap_cents=policy.org_monthly_cap_cents,
                        created_at=at,
                        created_by=by,
                    )
                    .returning(stipend_policies.c.version)
                )
            ).scalar_one()
        )

    async def last_closed(self, site_id: str) -> Period | None:
        latest = await self.session.scalar(
            select(func.max(stipend_periods.c.period)).where(
                stipend_periods.c.site_id == site_id, stipend_periods.c.status == "closed"
            )
        )
        return None if latest is None else Period.parse(latest)

    async def lock_period(self, site_id: str, period: str, at: datetime) -> PeriodRecord:
        """The period's row (made open on first use), locked until the transaction ends."""
        await self.session.execute(
            insert(stipend_periods)
            .values(
                site_id=site_id,
                period=period,
                status="open",
                volunteers=0,
                entries=0,
                adjustments=0,
                accrued_cents=0,
                over_cap_cents=0,
                created_at=at,
            )
            .on_conflict_do_nothing()
        )
        c = stipend_periods.c
        row = (
            await self.session.execute(
                select(
                    c.site_id,
                    c.period,
                    c.status,
                    c.cap_policy_id,
                    c.volunteers,
                    c.entries,
                    c.adjustments,
                    c.accrued_cents,
                    c.over_cap_cents,
                    c.closed_at,
                )
                .where(c.site_id == site_id, c.period == period)
                .with_for_update()
            )
        ).one()
        return PeriodRecord(**row._mapping)

    async def close_period(self, site_id: str, period: str, totals: PeriodTotals, at: datetime, by: str) -> None:
        await self.session.execute(
            update(stipend_periods)
            .where(stipend_periods.c.site_id == site_id, stipend_periods.c.period == period)
            .values(
                status="closed",
                closed_at=at,
                closed_by=by,
                cap_policy_id=totals.cap_policy_id,
                volunteers=totals.volunteers,
                entries=totals.entries,
                adjustments=totals.adjustments,
                accrued_cents=totals.accrued_cents,
                over_cap_cents=totals.over_cap_cents,
            )
        )

    async def booked_in_year(
        self, site_id: str, member_ids: Sequence[uuid.UUID], first: str, before: str
    ) -> dict[uuid.UUID, int]:
        """Per volunteer: what the ledger books for them in the periods ``[first, before)`` (accrued − reversed)."""
        if not member_ids:
            return {}
        rows = await self.session.execute(
            select(ledger.c.member_id, func.sum(net_booked()))
            .where(
                ledger.c.site_id == site_id,
                ledger.c.member_id.in_(list(member_ids)),
                ledger.c.period >= first,
                ledger.c.period < before,
            )
            .group_by(ledger.c.member_id)
        )
        return {member_id: int(total) for member_id, total in rows}

    async def add_payouts(self, payouts: Sequence[NewPayout]) -> None:
        if payouts:
            await self.session.execute(insert(stipend_payouts), [_columns(p) for p in payouts])

    async def add_entries(self, entries: Sequence[NewEntry]) -> None:
        if entries:
            await self.session.execute(insert(ledger), [_entry_row(e) for e in entries])

    async def book_hours(self, booked: Sequence[BookedHours]) -> None:
        if booked:
            await self.session.execute(insert(stipend_hours), [_booked_row(b) for b in booked])

    async def booking_entry(self, hours_id: uuid.UUID) -> uuid.UUID | None:
        """The ledger entry that holds an hours record, if one does."""
        return await self.session.scalar(
            select(stipend_hours.c.entry_id).where(
                stipend_hours.c.hours_id == hours_id,
                stipend_hours.c.released_by.is_(None),
                stipend_hours.c.entry_id.is_not(None),
            )
        )

    async def lock_payout(self, payout_id: uuid.UUID, site_id: str | None) -> PayoutRecord | None:
        """The payout, locked (payment and reversals of its entries go one at a time), with what was paid and
        reversed of it so far."""
        row = (
            await self.session.execute(
                select(stipend_payouts.c.payout_id)
                .where(stipend_payouts.c.payout_id == payout_id, site_filter(stipend_payouts.c.site_id, site_id))
                .with_for_update()
            )
        ).first()
        if row is None:
            return None
        summary = (await self.session.execute(payout_summary().where(stipend_payouts.c.payout_id == payout_id))).one()
        return PayoutRecord(
            summary.payout_id,
            summary.site_id,
            summary.member_id,
            summary.period,
            summary.accrued_cents,
            summary.reversed_cents,
            summary.payment_entry_id,
            summary.paid_at,
        )

    async def entry(self, entry_id: uuid.UUID, site_id: str | None) -> EntryRecord | None:
        c = ledger.c
        row = (
            await self.session.execute(
                select(
                    c.entry_id,
                    c.site_id,
                    c.member_id,
                    c.period,
                    c.entry_type,
                    c.payout_id,
                    c.amount_cents,
                    c.minutes,
                    c.shifts,
                ).where(c.entry_id == entry_id, site_filter(c.site_id, site_id))
            )
        ).first()
        return None if row is None else EntryRecord(*row)

    async def reversal_of(self, entry_id: uuid.UUID) -> uuid.UUID | None:
        return await self.session.scalar(select(ledger.c.entry_id).where(ledger.c.reverses_entry_id == entry_id))

    async def release_hours(self, entry_id: uuid.UUID, reversal_id: uuid.UUID) -> int:
        """Free the hours an entry booked (its reversal ``reversal_id`` took the amount back)."""
        result = await self.session.execute(
            update(stipend_hours)
            .where(stipend_hours.c.entry_id == entry_id, stipend_hours.c.released_by.is_(None))
            .values(released_by=reversal_id)
            .returning(stipend_hours.c.claim_id)
        )
        return len(result.all())


def _columns(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def _entry_row(entry: NewEntry) -> dict[str, Any]:
    row = _columns(entry)
    row["capped_by"] = list(entry.capped_by)
    row["rate_policy_ids"] = list(entry.rate_policy_ids)
    row["lines"] = [
        {
            "policy_id": str(line.policy_id),
            "role_id": line.role_id,
            "hourly_rate_cents": line.hourly_rate_cents,
            "per_shift_cents": line.per_shift_cents,
            "minutes": line.minutes,
            "shifts": line.shifts,
            "cents": line.cents,
        }
        for line in entry.lines
    ]
    return row


def _booked_row(booked: BookedHours) -> dict[str, Any]:
    hours = booked.hours
    return {
        "hours_id": hours.hours_id,
        "entry_id": booked.entry_id,
        "site_id": booked.site_id,
        "member_id": hours.member_id,
        "period": booked.period,
        "outcome": "accrued" if booked.entry_id is not None else "ineligible",
        "shift_id": hours.shift_id,
        "role_id": hours.role_id,
        "local_date": hours.local_date,
        "minutes": hours.minutes,
        "shifts": booked.shifts,
        "cents": booked.cents,
        "policy_id": booked.policy_id,
        "booked_at": booked.booked_at,
        "released_by": None,
    }


def payout_summary() -> Any:
    """Payouts with what was reversed of their entries and their payment, if any."""
    reversed_cents = (
        select(func.coalesce(func.sum(ledger.c.amount_cents), 0))
        .where(ledger.c.payout_id == stipend_payouts.c.payout_id, ledger.c.entry_type == "reversed")
        .correlate(stipend_payouts)
        .scalar_subquery()
    )
    paid = ledger.alias("paid")
    return select(
        stipend_payouts.c.payout_id,
        stipend_payouts.c.site_id,
        stipend_payouts.c.member_id,
        stipend_payouts.c.period,
        stipend_payouts.c.minutes,
        stipend_payouts.c.shifts,
        stipend_payouts.c.accrued_cents,
        stipend_payouts.c.over_cap_cents,
        reversed_cents.label("reversed_cents"),
        paid.c.entry_id.label("payment_entry_id"),
        paid.c.amount_cents.label("paid_cents"),
        paid.c.created_at.label("paid_at"),
        paid.c.method,
        paid.c.reference,
    ).outerjoin(paid, and_(paid.c.payout_id == stipend_payouts.c.payout_id, paid.c.entry_type == "paid"))
