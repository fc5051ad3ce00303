"""HTTP adapters of the stipends, registered on the volunteering app's ``api`` (same paths, same app)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from services.volunteering import domain as volunteering_domain
from services.volunteering.stipends import domain, handlers
from services.volunteering.stipends.commands import (
    AdminPayoutOut,
    BookedHoursOut,
    CloseStipendPeriod,
    MarkPayoutPaid,
    PaidBody,
    PaymentOut,
    PayoutPage,
    PayoutsQuery,
    PeriodClosedOut,
    PeriodList,
    PeriodOut,
    ReversalOut,
    ReverseBody,
    ReverseStipendEntry,
    SetStipendPolicy,
    StatementPeriod,
    StipendEntryOut,
    StipendLineOut,
    StipendPolicies,
    StipendPolicyBody,
    StipendPolicyOut,
    StipendStatement,
    StipendYearQuery,
    YearlyPage,
    YearlyQuery,
    YearTotalOut,
)
from services.volunteering.stipends.queries import StipendQueries
from services.volunteering.views import (
    PEOPLE,
    actor_for,
    api,
    clock_for,
    own_member,
    queries_for,
    run_command,
    site_for,
    uow_for,
)
from shared import paging
from shared.access import STAFF, Role
from shared.errors import NotFound
from shared.events import format_time
from shared.web import Call

ADMIN = (Role.ADMIN,)
CSV_COLUMNS = (
    "period",
    "payout_id",
    "member_id",
    "minutes",
    "shifts",
    "accrued_cents",
    "over_cap_cents",
    "reversed_cents",
    "payable_cents",
    "paid_cents",
    "paid_at",
    "method",
    "year_total_cents",
    "tax_paperwork_needed",
)


def _period_param(call: Call) -> str:
    return str(domain.Period.parse(call.request.match_info["period"]))


async def _this_year(call: Call) -> int:
    return clock_for(call).now().astimezone((await site_for(call)).zone).year


@asynccontextmanager
async def _queries(call: Call) -> AsyncIterator[StipendQueries]:
    """A read, as volunteering's ``queries_for``: the unit of work's connection, nothing written."""
    async with uow_for(call) as uow:
        yield StipendQueries(uow.session)


@api.route(
    "PUT",
    "/stipend-policy",
    summary="Make a new version of this site's stipend policy, in effect from a local date after the last "
    "closed period: rates per approved hour and per completed shift (per role where set), caps, "
    "the yearly tax-paperwork threshold. Integer cents.",
    roles=ADMIN,
    body=StipendPolicyBody,
    response=StipendPolicyOut,
    errors=(409,),
    idempotent=True,
)
async def set_stipend_policy(call: Call) -> object:
    body: StipendPolicyBody = call.body
    site = await site_for(call)
    cmd = SetStipendPolicy(
        actor_for(call),
        site.timezone,
        body.effective_from,
        body.hourly_rate_cents,
        body.per_shift_cents,
        tuple((r.role_id, r.hourly_rate_cents, r.per_shift_cents) for r in body.role_rates),
        body.monthly_cap_cents,
        body.yearly_cap_cents,
        body.tax_threshold_cents,
        body.org_monthly_cap_cents,
    )
    return await run_command(call, handlers.set_stipend_policy, cmd, idempotent=True)


@api.get(
    "/stipend-policy",
    summary="This site's stipend policy in effect today, and the versions to come",
    roles=STAFF,
    response=StipendPolicies,
)
async def get_stipend_policy(call: Call) -> StipendPolicies:
    site = await site_for(call)
    async with _queries(call) as queries:
        policies = await queries.stipend_policies(site.site_id)
    current, upcoming = domain.current_and_upcoming(policies, clock_for(call).now().astimezone(site.zone).date())
    return StipendPolicies(
        current=StipendPolicyOut.of(current) if current else None, upcoming=[StipendPolicyOut.of(p) for p in upcoming]
    )


@api.get(
    "/stipend-periods",
    summary="This site's closed stipend periods of a year, and the one to close next",
    roles=STAFF,
    query=StipendYearQuery,
    response=PeriodList,
)
async def list_stipend_periods(call: Call) -> PeriodList:
    query: StipendYearQuery = call.query
    site = await site_for(call)
    year = query.year or await _this_year(call)
    async with _queries(call) as queries:
        rows = await queries.closed_periods(site.site_id, *domain.year_periods(year))
        last_closed = await queries.last_closed_period(site.site_id)
        policies = await queries.stipend_policies(site.site_id)
    first = domain.first_period(policies)
    next_to_close = domain.Period.parse(last_closed).next() if last_closed else first
    return PeriodList(
        year=year,
        items=[PeriodOut.model_validate(r, from_attributes=True) for r in rows],
        next_to_close=str(next_to_close) if next_to_close else None,
    )


@api.post(
    "/stipend-periods/{period}/close",
    summary="Close a stipend period (YYYY-MM, once it is over on the site's clock; periods close in order): "
    "books each eligible volunteer's approved hours with the caps applied, late approvals of earlier "
    "periods as adjustments, and a payout per volunteer. Closing again returns the same totals.",
    roles=ADMIN,
    response=PeriodClosedOut,
    errors=(409,),
    idempotent=True,
)
async def close_stipend_period(call: Call) -> object:
    period = _period_param(call)
    site = await site_for(call)
    cmd = CloseStipendPeriod(actor_for(call), site.timezone, period)
    return await run_command(call, handlers.close_stipend_period, cmd, idempotent=True)


@api.get(
    "/stipend-periods/{period}/payouts",
    summary="A closed period's payouts, one per volunteer (member ids, no names). JSON pages by member id; "
    "CSV (Accept: text/csv or format=csv) is the whole period for the bookkeeper, columns: " + ",".join(CSV_COLUMNS),
    roles=ADMIN,
    query=PayoutsQuery,
    response=PayoutPage,
    errors=(422,),
    content_types=("text/csv",),
)
async def list_payouts(call: Call) -> object:
    query: PayoutsQuery = call.query
    period = _period_param(call)
    site = await site_for(call)
    year = int(period[:4])
    as_csv = query.format == "csv" or (query.format is None and "text/csv" in call.request.headers.get("Accept", ""))
    # Members are listed by id: the id is both the cursor's position and its key.
    after = None if as_csv or not query.cursor else paging.decode_cursor(query.cursor)[1]
    async with _queries(call) as queries:
        row = await queries.stipend_period(site.site_id, period)
        rows = await queries.payouts(
            site_id=site.site_id, period=period, after_member=after, limit=None if as_csv else query.limit + 1
        )
        totals = {t.member_id: t.total_cents for t in await queries.year_totals(year, site_id=site.site_id)}
        threshold = domain.tax_threshold(await queries.stipend_policies(site.site_id), year)
    more = not as_csv and len(rows) > query.limit
    items = [_admin_payout(r, totals.get(r.member_id, 0), threshold) for r in rows[: None if as_csv else query.limit]]
    if as_csv:
        return _payouts_csv(site.site_id, period, items)
    closed = row is not None and row.status == "closed"
    return PayoutPage(
        period=period,
        status="closed" if closed else "open",
        closed_at=row.closed_at if closed else None,
        items=items,
        next_cursor=_member_cursor(items[-1].member_id) if more else None,
    )


@api.post(
    "/payouts/{payout_id}/paid",
    summary="Record that a payout was paid (what is payable now: accrued minus reversed). Once: again → 409 "
    "already_paid, unless retried with the same Idempotency-Key.",
    roles=ADMIN,
    body=PaidBody,
    response=PaymentOut,
    errors=(404, 409),
    idempotent=True,
)
async def mark_payout_paid(call: Call) -> object:
    body: PaidBody = call.body
    cmd = MarkPayoutPaid(actor_for(call), call.uuid_param("payout_id"), body.method, body.reference)
    return await run_command(call, handlers.mark_payout_paid, cmd, idempotent=True)


@api.post(
    "/ledger/{entry_id}/reverse",
    summary="Reverse an accrued stipend entry with a reversing entry (never an edit), with a reason; its hours "
    "are booked again at the next close if still approved. Once per entry.",
    roles=ADMIN,
    body=ReverseBody,
    response=ReversalOut,
    errors=(404, 409),
    idempotent=True,
)
async def reverse_stipend_entry(call: Call) -> object:
    body: ReverseBody = call.body
    cmd = ReverseStipendEntry(actor_for(call), call.uuid_param("entry_id"), body.reason)
    return await run_command(call, handlers.reverse_stipend_entry, cmd, idempotent=True)


@api.get(
    "/me/stipends",
    summary="My stipends of a year by period: each entry with the hours and rates behind it, payments, and "
    "the year's total with whether it needs tax paperwork",
    roles=(Role.VOLUNTEER,),
    query=StipendYearQuery,
    response=StipendStatement,
)
async def my_stipends(call: Call) -> StipendStatement:
    query: StipendYearQuery = call.query
    return await _statement(call, own_member(call), query.year or await _this_year(call))


@api.get(
    "/volunteers/{member_id}/stipends",
    summary="A volunteer's stipend statement (coordinators and admins, or the volunteer themself)",
    roles=PEOPLE,
    query=StipendYearQuery,
    response=StipendStatement,
    errors=(404,),
)
async def volunteer_stipends(call: Call) -> StipendStatement:
    query: StipendYearQuery = call.query
    member_id = call.uuid_param("member_id")
    actor = actor_for(call)
    volunteering_domain.member_acted_on(is_staff=actor.is_staff, own_member_id=actor.member_id, requested=member_id)
    if actor.is_staff:
        async with queries_for(call) as queries:
            row = await queries.volunteer(member_id)
        if row is None or (actor.scope is not None and row.site_id != actor.scope):
            raise NotFound("No such volunteer here.", code="volunteer_not_found")
    return await _statement(call, member_id, query.year or await _this_year(call))


@api.get(
    "/stipends/yearly",
    summary="Each volunteer's stipend total of a year at this site (accrued minus reversed, and paid), flagged "
    "when it reaches the tax-paperwork threshold",
    roles=ADMIN,
    query=YearlyQuery,
    response=YearlyPage,
)
async def yearly_stipends(call: Call) -> YearlyPage:
    query: YearlyQuery = call.query
    site = await site_for(call)
    year = query.year or await _this_year(call)
    after = paging.decode_cursor(query.cursor)[1] if query.cursor else None  # by member id, as in list_payouts
    async with _queries(call) as queries:
        rows = await queries.year_totals(year, site_id=site.site_id, after_member=after, limit=query.limit + 1)
        threshold = domain.tax_threshold(await queries.stipend_policies(site.site_id), year)
    items = [_year_total(year, r, threshold) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    return YearlyPage(
        year=year,
        tax_threshold_cents=threshold,
        items=items,
        next_cursor=_member_cursor(items[-1].member_id) if more else None,
    )


async def _statement(call: Call, member_id: uuid.UUID, year: int) -> StipendStatement:
    first, last = domain.year_periods(year)
    async with _queries(call) as queries:
        payouts = await queries.payouts(member_id=member_id, first=first, last=last)
        entries = await queries.stipend_entries(member_id, first, last)
        behind = await queries.booked_hours([e.entry_id for e in entries if e.entry_type == "accrued"])
        totals = await queries.year_totals(year, member_id=member_id)
        thresholds = {
            site_id: domain.tax_threshold(await queries.stipend_policies(site_id), year)
            for site_id in {t.site_id for t in totals}
        }
    reversed_by = {e.reverses_entry_id: e.entry_id for e in entries if e.reverses_entry_id is not None}
    hours_of: dict[uuid.UUID, list[BookedHoursOut]] = {}
    for h in behind:
        hours_of.setdefault(h.entry_id, []).append(
            BookedHoursOut(
                hours_id=h.hours_id,
                shift_id=h.shift_id,
                role_id=h.role_id,
                local_date=h.local_date,
                minutes=h.minutes,
                cents=h.cents,
                released=h.released_by is not None,
            )
        )
    entries_of: dict[uuid.UUID, list[StipendEntryOut]] = {}
    for e in entries:
        entries_of.setdefault(e.payout_id, []).append(
            StipendEntryOut(
                entry_id=e.entry_id,
                entry_type=e.entry_type,
                kind=e.kind,
                period=e.period,
                amount_cents=e.amount_cents,
                over_cap_cents=e.over_cap_cents,
                capped_by=list(e.capped_by),
                minutes=e.minutes,
                shifts=e.shifts,
                shift_id=e.shift_id,
                original_period=e.original_period,
                reverses_entry_id=e.reverses_entry_id,
                reversed_by=reversed_by.get(e.entry_id),
                method=e.method,
                created_at=e.created_at,
                lines=[StipendLineOut.model_validate(line) for line in e.lines],
                hours=hours_of.get(e.entry_id, []),
            )
        )
    return StipendStatement(
        member_id=member_id,
        year=year,
        periods=[StatementPeriod(**_payout_fields(p), entries=entries_of.get(p.payout_id, [])) for p in payouts],
        years=[_year_total(year, t, thresholds[t.site_id]) for t in totals],
    )


def _payout_fields(row: Any) -> dict[str, Any]:
    payable = domain.payable_cents(row.accrued_cents, row.reversed_cents)
    paid = row.paid_cents or 0
    return {
        "payout_id": row.payout_id,
        "member_id": row.member_id,
        "period": row.period,
        "minutes": row.minutes,
        "shifts": row.shifts,
        "accrued_cents": row.accrued_cents,
        "over_cap_cents": row.over_cap_cents,
        "reversed_cents": row.reversed_cents,
        "payable_cents": payable,
        "paid_cents": paid,
        "balance_cents": payable - paid,
        "paid_at": row.paid_at,
        "method": row.method,
    }


def _admin_payout(row: Any, year_total: int, threshold: int) -> AdminPayoutOut:
    return AdminPayoutOut(
        **_payout_fields(row),
        reference=row.reference,
        year_total_cents=year_total,
        tax_paperwork_needed=domain.tax_paperwork_needed(year_total, threshold),
    )


def _year_total(year: int, row: Any, threshold: int) -> YearTotalOut:
    return YearTotalOut(
        year=year,
        site_id=row.site_id,
        member_id=row.member_id,
        minutes=row.minutes,
        total_cents=row.total_cents,
        paid_cents=row.paid_cents,
        over_cap_cents=row.over_cap_cents,
        tax_threshold_cents=threshold,
        tax_paperwork_needed=domain.tax_paperwork_needed(row.total_cents, threshold),
    )


def _payouts_csv(site_id: str, period: str, items: list[AdminPayoutOut]) -> web.Response:
    """RFC 4180 (CRLF, a header row). Ids, numbers and codes only: nothing a spreadsheet could read as a formula."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in items:
        writer.writerow(
            [
                item.period,
                item.payout_id,
                item.member_id,
                item.minutes,
                item.shifts,
                item.accrued_cents,
                item.over_cap_cents,
                item.reversed_cents,
                item.payable_cents,
                item.paid_cents,
                format_time(item.paid_at) if item.paid_at else "",
                item.method or "",
                item.year_total_cents,
                "true" if item.tax_paperwork_needed else "false",
            ]
        )
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="stipends-{site_id}-{period}.csv"'},
    )


def _member_cursor(member_id: uuid.UUID) -> str:
    return paging.encode_cursor(str(member_id), member_id)
