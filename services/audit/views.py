"""HTTP adapters of the audit service: the log (admin only) and the reports (coordinators for their site, admins
for any site or the whole network)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from services.audit import handlers, queries
from services.audit.commands import (
    AuditPage,
    AuditQuery,
    DailyReport,
    RefuseReport,
    ReportFormat,
    ReportName,
    ReportQuery,
    RequestReport,
    SummaryReport,
    VerifyResult,
)
from services.audit.models import AuditUnitOfWork
from services.audit.reports import exports
from services.audit.reports.queries import ReportScope
from services.audit.reports.rules import ALL_SITES, MAX_RANGE_DAYS
from services.audit.settings import AuditSettings
from shared import paging
from shared.access import STAFF, Role
from shared.clock import Clock
from shared.errors import Forbidden
from shared.uow import Outcome, execute
from shared.web import SITES, Api, Call

UOW: web.AppKey[Callable[[], AuditUnitOfWork]] = web.AppKey("audit_uow")
CLOCK = web.AppKey("audit_clock", Clock)
SETTINGS = web.AppKey("audit_settings", AuditSettings)
WITHHOLDER = web.AppKey("audit_withholder", handlers.Withholder)

api = Api(service="audit", title="Recovery community center: audit log")


@api.get(
    "/audit",
    summary="Audit log entries, oldest first, filtered by type, site, subject and time",
    roles=(Role.ADMIN,),
    query=AuditQuery,
    response=AuditPage,
)
async def list_entries(call: Call) -> AuditPage:
    async with call.request.app[UOW]() as uow:
        return await queries.entries_page(uow.session, call.query)


@api.get(
    "/audit/verify",
    summary="Recompute the hash chain; name the first entry that does not hold",
    roles=(Role.ADMIN,),
    response=VerifyResult,
)
async def verify(call: Call) -> VerifyResult:
    async with call.request.app[UOW]() as uow:
        return await handlers.verify_audit_log(uow, call.request.app[SETTINGS].verify_chunk_rows)


# --- reports -------------------------------------------------------------------------------------------------------

CSV = "text/csv"
SVG = "image/svg+xml"
JSON = "application/json"


async def _report_scope(call: Call, site: str | None) -> ReportScope:
    """Coordinators see their own site; admins any site, or "all" (the network)."""
    who = call.who
    requested = site or who.site_id
    if requested == ALL_SITES:
        if who.role is not Role.ADMIN:
            raise Forbidden("Only an admin may read the network's reports.", code="wrong_site")
        # Uncached: every site's zone bounds the network's window (services/audit/reports/queries.py, peak occupancy).
        return ReportScope.network(await call.request.app[SITES].all())
    who.require_site(requested)
    return ReportScope.of_site(await call.request.app[SITES].get(requested))


def _negotiate(request: web.Request, explicit: ReportFormat | None, offered: dict[str, ReportFormat]) -> ReportFormat:
    """``format=`` wins; otherwise the offered media type the Accept header ranks highest (JSON by default)."""
    if explicit is not None:
        return explicit
    best: tuple[float, int, ReportFormat] = (0.0, 0, "json")
    for position, part in enumerate(request.headers.get("Accept", "").split(",")):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media.lower() in offered and quality > 0 and (quality, -position) > best[:2]:
            best = (quality, -position, offered[media.lower()])
    return best[2]


async def _request(call: Call, report: ReportName, format_: ReportFormat, handler: Callable[..., Any]) -> Outcome[Any]:
    query: ReportQuery = call.query
    paging.local_dates(query.from_, query.to, max_days=MAX_RANGE_DAYS)
    try:
        scope = await _report_scope(call, query.site)
    except Forbidden as refused:
        await _record_refusal(call, report, query.site or call.who.site_id, refused)
        raise
    cmd = RequestReport(
        report=report,
        scope=scope,
        first=query.from_,
        last=query.to,
        format=format_,
        min_cell=query.min_cell,
        actor_id=call.who.actor_id,
        actor_site_id=call.who.site_id,
    )
    answer = functools.partial(handler, withholder=call.request.app[WITHHOLDER])
    return await execute(answer, cmd, uow=call.request.app[UOW](), clock=call.request.app[CLOCK])


async def _record_refusal(call: Call, report: ReportName, site_id: str, refused: Forbidden) -> None:
    cmd = RefuseReport(
        report=report,
        site_id=site_id,
        route=call.request.path,
        code=refused.code,
        status=refused.status,
        actor_id=call.who.actor_id,
        actor_site_id=call.who.site_id,
    )
    await execute(handlers.record_refused_report, cmd, uow=call.request.app[UOW](), clock=call.request.app[CLOCK])


AnyResponse = TypeVar("AnyResponse", bound=web.StreamResponse)


def _file(body: dict[str, Any], text: str, content_type: str, report: str, extension: str) -> web.Response:
    response = web.Response(text=text, content_type=content_type, charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{exports.filename(report, body, extension)}"'
    return _flag_suppression(response, body)


def _flag_suppression(response: AnyResponse, body: dict[str, Any]) -> AnyResponse:
    # Said in headers too, so a CSV consumer that only sees cells still learns that some were withheld.
    response.headers["X-RCC-Suppressed"] = "true" if body["suppressed"] else "false"
    if body["min_cell"] is not None:
        response.headers["X-RCC-Min-Cell"] = str(body["min_cell"])
    return response


@api.get(
    "/reports/summary",
    summary="Funder summary for a site or the network over inclusive local dates (JSON, or CSV by Accept: text/csv)",
    roles=STAFF,
    query=ReportQuery,
    response=SummaryReport,
    errors=(404,),
    content_types=(CSV,),
)
async def summary_report(call: Call) -> web.StreamResponse:
    format_ = _negotiate(call.request, call.query.format, {JSON: "json", CSV: "csv"})
    outcome = await _request(call, "summary", format_, handlers.request_summary)
    if format_ == "csv":
        return _file(outcome.body, exports.summary_csv(outcome.body), CSV, "summary", "csv")
    return _flag_suppression(web.json_response(outcome.body), outcome.body)


@api.get(
    "/reports/daily",
    summary="One row per local date: visits, unduplicated and new members, volunteer hours, attendance "
    "(JSON, CSV by Accept: text/csv, or an SVG chart by Accept: image/svg+xml)",
    roles=STAFF,
    query=ReportQuery,
    response=DailyReport,
    errors=(404,),
    content_types=(CSV, SVG),
)
async def daily_report(call: Call) -> web.StreamResponse:
    format_ = _negotiate(call.request, call.query.format, {JSON: "json", CSV: "csv", SVG: "svg"})
    if format_ == "svg":
        return await _chart(call)
    outcome = await _request(call, "daily", format_, handlers.request_daily)
    if format_ == "csv":
        return _file(outcome.body, exports.daily_csv(outcome.body), CSV, "daily", "csv")
    return _flag_suppression(web.json_response(outcome.body), outcome.body)


@api.get(
    "/reports/daily.svg",
    summary="The daily series as a chart (SVG) to drop into a grant report: visits and unduplicated members per day",
    roles=STAFF,
    query=ReportQuery,
    errors=(404,),
    content_types=(SVG,),
)
async def daily_chart(call: Call) -> web.StreamResponse:
    return await _chart(call)


async def _chart(call: Call) -> web.StreamResponse:
    outcome = await _request(call, "daily_chart", "svg", handlers.request_daily)
    response = web.Response(text=exports.daily_svg(outcome.body), content_type=SVG, charset="utf-8")
    response.headers["Content-Disposition"] = f'inline; filename="{exports.filename("daily", outcome.body, "svg")}"'
    return _flag_suppression(response, outcome.body)
