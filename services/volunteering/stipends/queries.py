"""The stipends' read side: the queries behind their GET endpoints (no locks, no changes)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.volunteering.stipends.domain import Policy, year_periods
from services.volunteering.stipends.models import (
    ledger,
    net_booked,
    payout_summary,
    policies_of,
    stipend_hours,
    stipend_payouts,
    stipend_periods,
)


class StipendQueries:
    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

    async def stipend_policies(self, site_id: str) -> list[Policy]:
        return await policies_of(self.session, site_id)

    async def closed_periods(self, site_id: str, first: str, last: str) -> list[Any]:
        rows = await self.session.execute(
            select(stipend_periods)
            .where(
                stipend_periods.c.site_id == site_id,
                stipend_periods.c.status == "closed",
                stipend_periods.c.period >= first,
                stipend_periods.c.period <= last,
            )
            .order_by(stipend_periods.c.period)
        )
        return list(rows)

    async def last_closed_period(self, site_id: str) -> str | None:
        period: str | None = await self.session.scalar(
            select(func.max(stipend_periods.c.period)).where(
                stipend_periods.c.site_id == site_id, stipend_periods.c.status == "closed"
            )
        )
        return period

    async def stipend_period(self, site_id: str, period: str) -> Any:
        return (
            await self.session.execute(
                select(stipend_periods).where(stipend_periods.c.site_id == site_id, stipend_periods.c.period == period)
            )
        ).first()

    async def payouts(
        self,
        *,
        site_id: str | None = None,
        period: str | None = None,
        member_id: uuid.UUID | None = None,
        first: str | None = None,
        last: str | None = None,
        after_member: uuid.UUID | None = None,
        limit: int | None = None,
    ) -> list[Any]:
        stmt = payout_summary()
        if site_id is not None:
            stmt = stmt.where(stipend_payouts.c.site_id == site_id)
        if period is not None:
            stmt = stmt.where(stipend_payouts.c.period == period)
        if member_id is not None:
            stmt = stmt.where(stipend_payouts.c.member_id == member_id)
        if first is not None:
            stmt = stmt.where(stipend_payouts.c.period >= first)
        if last is not None:
            stmt = stmt.where(stipend_payouts.c.period <= last)
        if after_member is not None:
            stmt = stmt.where(stipend_payouts.c.member_id > after_member)
        stmt = stmt.order_by(stipend_payouts.c.period, stipend_payouts.c.member_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list(await self.session.execute(stmt))

    async def stipend_entries(self, member_id: uuid.UUID, first: str, last: str) -> list[Any]:
        rows = await self.session.execute(
            select(ledger)
            .where(ledger.c.member_id == member_id, ledger.c.period >= first, ledger.c.period <= last)
            .order_by(ledger.c.period, ledger.c.seq)
        )
        return list(rows)

    async def booked_hours(self, entry_ids: Sequence[uuid.UUID]) -> list[Any]:
        """The hours records behind accrued entries (released ones included: their entry was reversed)."""
        if not entry_ids:
            return []
        rows = await self.session.execute(
            select(stipend_hours)
            .where(stipend_hours.c.entry_id.in_(list(entry_ids)))
            .order_by(stipend_hours.c.local_date, stipend_hours.c.shift_id, stipend_hours.c.hours_id)
        )
        return list(rows)

    async def year_totals(
        self,
        year: int,
        *,
        site_id: str | None = None,
        member_id: uuid.UUID | None = None,
        after_member: uuid.UUID | None = None,
        limit: int | None = None,
    ) -> list[Any]:
        """Per site and volunteer, in the year's periods: booked (accrued − reversed), paid, and held back by caps."""
        first, last = year_periods(year)
        stmt = (
            select(
                ledger.c.site_id,
                ledger.c.member_id,
                func.sum(net_booked()).label("total_cents"),
                func.sum(case((ledger.c.entry_type == "paid", ledger.c.amount_cents), else_=0)).label("paid_cents"),
                func.sum(ledger.c.over_cap_cents).label("over_cap_cents"),
                func.sum(
                    case(
                        (ledger.c.entry_type == "accrued", ledger.c.minutes),
                        (ledger.c.entry_type == "reversed", -ledger.c.minutes),
                        else_=0,
                    )
                ).label("minutes"),
            )
            .where(ledger.c.period >= first, ledger.c.period <= last)
            .group_by(ledger.c.site_id, ledger.c.member_id)
            .order_by(ledger.c.site_id, ledger.c.member_id)
        )
        if site_id is not None:
            stmt = stmt.where(ledger.c.site_id == site_id)
        if member_id is not None:
            stmt = stmt.where(ledger.c.member_id == member_id)
        if after_member is not None:
            stmt = stmt.where(ledger.c.member_id > after_member)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list(await self.session.execute(stmt))
