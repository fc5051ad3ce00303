"""Events published by the audit service (source ``/rcc/audit``).

The audit service records every event; it publishes only facts about itself, such as who read a report. A report
request is a disclosure of aggregate figures, so it is accountable like any other fact: it goes through the
audit service's outbox, is published, and comes back into the hash-chained log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import ConfigDict, Field

from shared.contracts import EventData, register

ReportName = Literal["summary", "daily", "daily_chart"]
ReportFormat = Literal["json", "csv", "svg"]


@register
class ReportRequested(EventData):
    event_type = "audit.report_requested"
    classification = "internal"
    summary = (
        "Someone (a coordinator's or admin's token, the actor) read a report: which report, for which site (or "
        "all of them), which dates, in which format and with which small-cell suppression."
    )
    # "from" is a Python keyword: the field is from_ in code and "from" on the wire.
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    report: ReportName
    site_id: str = Field(description='The site the report covers, or "all" for the network roll-up')
    from_: date = Field(alias="from", description="First local date of the range (inclusive)")
    to: date = Field(description="Last local date of the range (inclusive)")
    format: ReportFormat
    min_cell: int | None = Field(description="Counts below this were suppressed; null when not asked")
    requested_at: datetime


@register
class ReportRefused(EventData):
    event_type = "audit.report_refused"
    classification = "internal"
    summary = (
        "Someone (the actor's token) asked for a report's figures they may not read and was refused: which "
        "report, which site's figures (or all of them), the route and the refusal's code. An access-control "
        "failure is logged like an answered read (ASVS V7/V16), with ids only."
    )

    report: ReportName
    site_id: str = Field(description='The site whose figures were asked for, or "all" for the network roll-up')
    route: str = Field(description="The route that refused, e.g. /reports/summary")
    code: str = Field(description="The refusal's machine code, e.g. wrong_site")
    status: int = Field(description="The HTTP status answered, e.g. 403")
    refused_at: datetime
