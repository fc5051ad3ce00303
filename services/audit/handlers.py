"""Audit handlers: append a batch of events to the chain (idempotently) and project exactly those into the report
tables, verify the chain, answer report requests (each one recorded as an event), rebuild the report projections
from the log."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from datetime import date

from services.audit import queries
from services.audit.commands import (
    AppendResult,
    AppendToAuditLog,
    DailyReport,
    DailyRow,
    RebuildResult,
    RefuseReport,
    RequestReport,
    SummaryReport,
    VerifyResult,
    VisitsByPurpose,
    VisitsBySupportType,
)
from services.audit.domain import ChainCheck, canonicalize, chain_hash
from services.audit.models import AuditUnitOfWork, NewEntry
from services.audit.reports import queries as report_queries
from services.audit.reports.facts import LoggedEvent
from services.audit.reports.projector import Projector
from services.audit.reports.rules import NETWORK, PURPOSES, SUPPORT_TYPES, days_of, hours_text
from services.audit.reports.suppression import (
    ADDITIVE,
    DAILY_ADDITIVE,
    Cell,
    Suppressor,
    daily_cell,
    report_family,
    summary_cell,
    withheld_cells,
)
from services.audit.reports.tables import PROJECTION_TABLES
from shared.clock import Clock
from shared.contracts.audit import ReportRefused, ReportRequested
from shared.errors import InvalidInput


async def append_to_audit_log(cmd: AppendToAuditLog, *, uow: AuditUnitOfWork, clock: Clock) -> AppendResult:
    sequence, head = await uow.audit.lock_chain_and_read_head()
    already = await uow.audit.recorded_ids([event.id for event in cmd.events])
    entries: list[NewEntry] = []
    appended = []
    seen = set(already)
    now = clock.now()
    for event in cmd.events:
        if event.id in seen:
            continue
        seen.add(event.id)
        appended.append(event)
        body = canonicalize(event.attributes)
        sequence += 1
        link = chain_hash(head, body)
        entries.append(
            NewEntry(
                sequence=sequence,
                event_id=event.id,
                type=event.type,
                source=event.source,
                site_id=event.site_id,
                subject=event.subject,
                time=event.time,
                recorded_at=now,
                body=body.decode(),
                prev_hash=head,
                hash=link,
            )
        )
        head = link
    if entries:
        await uow.audit.append(entries)
        # In the append's transaction, exactly the events appended: an event counts in the reports if and only if it
        # is in the log, once. Each is read from the body the consumer parsed on arrival.
        await uow.projector.apply([LoggedEvent.of(event) for event in appended])
    return AppendResult(appended=len(entries), duplicates=len(cmd.events) - len(entries), head_sequence=sequence)


async def verify_audit_log(uow: AuditUnitOfWork, chunk_rows: int) -> VerifyResult:
    check = ChainCheck()
    async for links in uow.audit.links(chunk_rows):
        check.feed(links)
    return VerifyResult(
        ok=check.ok, entries=check.entries, head_hash=check.head_hash, first_bad_sequence=check.first_bad_sequence
    )


async def request_summary(
    cmd: RequestReport, *, uow: AuditUnitOfWork, clock: Clock, withholder: Withholder | None = None
) -> SummaryReport:
    await queries.begin_consistent_read(uow.driver)
    figures = await report_queries.summary_figures(uow.session, cmd.scope, cmd.first, cmd.last)
    daily = figures.daily
    unduplicated, new = figures.unduplicated_members, daily["new_members"]
    count = Suppressor(cmd.min_cell, await _withheld(cmd, uow, unduplicated, withholder))
    key = cmd.scope.key

    def cell(name: str) -> Cell:
        return summary_cell(key, name)

    gatherings = figures.gatherings
    report = SummaryReport(
        site=cmd.scope.label,
        timezone=cmd.scope.timezone,
        from_=cmd.first,
        to=cmd.last,
        min_cell=cmd.min_cell,
        suppressed=False,
        unduplicated_members=count(unduplicated, cell("unduplicated_members")),
        visits=count(daily["visits"], cell("visits")),
        anonymous_visits=count(daily["anonymous_visits"], cell("anonymous_visits")),
        new_members=count(new, cell("new_members")),
        returning_members=count(unduplicated - new, cell("returning_members")),
        visits_by_purpose=VisitsByPurpose(**{p: count(daily[f"purpose_{p}"], cell(f"purpose_{p}")) for p in PURPOSES}),
        visits_by_support_type=VisitsBySupportType(
            **{t: count(daily[f"support_{t}"], cell(f"support_{t}")) for t in SUPPORT_TYPES}
        ),
        peak_occupancy=count(figures.peak_occupancy),
        volunteer_hours_approved=hours_text(daily["volunteer_minutes"]),
        volunteer_hours_by_role={role: hours_text(minutes) for role, minutes in figures.minutes_by_role.items()},
        volunteers_active=count(figures.volunteers_active),
        shifts_filled=count(daily["shifts_filled"], cell("shifts_filled")),
        shifts_missed=count(daily["shifts_missed"], cell("shifts_missed")),
        stipends_accrued_cents=daily["stipends_accrued_cents"],
        stipends_paid_cents=daily["stipends_paid_cents"],
        group_sessions_held=count(gatherings["session"]["held"], cell("session_held")),
        group_attendance=count(gatherings["session"]["attendance"], cell("session_attendance")),
        events_held=count(gatherings["event"]["held"], cell("event_held")),
        event_registrations=count(gatherings["event"]["registrations"], cell("event_registrations")),
        event_attendance=count(gatherings["event"]["attendance"], cell("event_attendance")),
        waitlist_promotions=count(daily["waitlist_promotions"], cell("waitlist_promotions")),
    )
    report.suppressed = count.any
    _record_request(cmd, uow, clock)
    return report


async def request_daily(
    cmd: RequestReport, *, uow: AuditUnitOfWork, clock: Clock, withholder: Withholder | None = None
) -> DailyReport:
    await queries.begin_consistent_read(uow.driver)
    withheld = set()
    if cmd.min_cell is not None:
        unduplicated = await report_queries.unduplicated_members(uow.session, cmd.scope, cmd.first, cmd.last)
        withheld = await _withheld(cmd, uow, unduplicated, withholder)
    count = Suppressor(cmd.min_cell, withheld)
    key = cmd.scope.key
    days = [
        DailyRow(
            date=day.day,
            visits=count(day.visits, daily_cell(key, "visits", day.day)),
            unduplicated_members=count(day.unduplicated_members),
            new_members=count(day.new_members, daily_cell(key, "new_members", day.day)),
            volunteer_hours=hours_text(day.volunteer_minutes),
            attendance=count(day.attendance, daily_cell(key, "attendance", day.day)),
        )
        for day in await report_queries.daily_figures(uow.session, cmd.scope, cmd.first, cmd.last)
    ]
    report = DailyReport(
        site=cmd.scope.label,
        timezone=cmd.scope.timezone,
        from_=cmd.first,
        to=cmd.last,
        min_cell=cmd.min_cell,
        suppressed=count.any,
        days=days,
    )
    _record_request(cmd, uow, clock)
    return report


class Withholder:
    """Chooses the withheld cells of a report (services/audit/reports/suppression.py) off the event loop, and refuses
    a family of reports too large to choose for in bounded time.

    The choice is pure-Python CPU work: on the loop it would stall every other request for its duration. It runs in
    ``executor`` (the app's, one thread: the work holds the GIL, so more threads would only interleave requests
    and make each slower; without one, as where a handler is called outside the app, the loop's default). Its time
    grows with the cells of every report of the range (each site's and the network's), so beyond ``max_cells`` the
    request is refused with a code instead of holding that thread."""

    def __init__(self, executor: Executor | None = None, max_cells: int = 40_000) -> None:
        self.executor = executor
        self.max_cells = max_cells

    async def __call__(
        self,
        summaries: dict[str, dict[str, int]],
        daily: dict[str, dict[date, dict[str, int]]],
        members: dict[str, int],
        days: list[date],
        own: str,
        min_cell: int,
    ) -> set[Cell]:
        scopes = len(set(summaries) | set(daily) | {NETWORK, own})
        cells = scopes * (len(ADDITIVE) + len(DAILY_ADDITIVE) * len(days))
        if cells > self.max_cells:
            raise InvalidInput(
                f"Suppressing small cells over {cells} counts of this range is more than this service does at once "
                f"({self.max_cells}); ask for a shorter range.",
                code="suppression_too_large",
                cells=cells,
                max_cells=self.max_cells,
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, _choose_withheld, summaries, daily, members, days, own, min_cell
        )


def _choose_withheld(
    summaries: dict[str, dict[str, int]],
    daily: dict[str, dict[date, dict[str, int]]],
    members: dict[str, int],
    days: list[date],
    own: str,
    min_cell: int,
) -> set[Cell]:
    values, identities = report_family(summaries, daily, members, days, own)
    return withheld_cells(values, identities, min_cell)


async def _withheld(
    cmd: RequestReport, uow: AuditUnitOfWork, unduplicated: int, withholder: Withholder | None
) -> set[Cell]:
    """The cells withheld in every report of this range and min_cell (services/audit/reports/suppression.py): the
    small ones and their complements, over the summaries and daily series of every site and of the network."""
    if cmd.min_cell is None:
        return set()
    summaries, daily = await report_queries.family_counts(uow.session, cmd.first, cmd.last)
    own = cmd.scope.key
    new = sum(counts["new_members"] for counts in daily.get(own, {}).values())
    members = {"unduplicated_members": unduplicated, "new_members": new}
    return await (withholder or Withholder())(
        summaries, daily, members, days_of(cmd.first, cmd.last), own, cmd.min_cell
    )


def _record_request(cmd: RequestReport, uow: AuditUnitOfWork, clock: Clock) -> None:
    """A report is a disclosure: who read which figures, when, goes into the log like any other fact."""
    now = clock.now()
    uow.emit(
        ReportRequested(
            report=cmd.report,
            site_id=cmd.scope.label,
            from_=cmd.first,
            to=cmd.last,
            format=cmd.format,
            min_cell=cmd.min_cell,
            requested_at=now,
        ),
        subject=f"report:{cmd.report}",
        site_id=cmd.actor_site_id if cmd.scope.is_network else cmd.scope.label,
        actor_id=cmd.actor_id,
        at=now,
    )


async def record_refused_report(cmd: RefuseReport, *, uow: AuditUnitOfWork, clock: Clock) -> ReportRefused:
    """An access-control failure is logged like an answered read, through the same outbox into the same chain:
    who (the actor's id) tried which site's figures, on which route, and the code they got."""
    now = clock.now()
    refusal = ReportRefused(
        report=cmd.report, site_id=cmd.site_id, route=cmd.route, code=cmd.code, status=cmd.status, refused_at=now
    )
    uow.emit(refusal, subject=f"report:{cmd.report}", site_id=cmd.actor_site_id, actor_id=cmd.actor_id, at=now)
    return refusal


async def rebuild_reports(uow: AuditUnitOfWork, chunk_rows: int) -> RebuildResult:
    """Empty the projections and replay the whole log through the same projection code, in one transaction that
    holds the chain lock (appends wait; readers keep seeing the old projections until it commits)."""
    await uow.audit.lock_chain_and_read_head()
    projector = Projector(uow.session, cache_zones=False)  # every site's zone as it is now
    await projector.clear()
    events = projected = skipped = 0
    async for links in uow.audit.links(chunk_rows):
        stats = await projector.apply([LoggedEvent.from_body(link.body) for link in links])
        events += len(links)
        projected += stats.projected
        skipped += stats.skipped
    rows = {table.name: await queries.count_rows(uow.session, table) for table in PROJECTION_TABLES}
    return RebuildResult(events=events, projected=projected, skipped=skipped, rows=rows)
