"""Commands, query parameters and results of the audit service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.audit.reports.queries import ReportScope
from shared.access import SITE_ID_PATTERN
from shared.events import ReceivedEvent


@dataclass(frozen=True, slots=True)
class AppendToAuditLog:
    events: list[ReceivedEvent]


class AppendResult(BaseModel):
    appended: int
    duplicates: int
    head_sequence: int


SITE_PATTERN = SITE_ID_PATTERN.pattern

# The log's sequence is a PostgreSQL bigint; a larger cursor is bad input, not a database error.
MAX_SEQUENCE = 2**63 - 1


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, max_length=200)
    site: str | None = Field(default=None, pattern=SITE_PATTERN, description='A site id, or "all"')
    subject: str | None = Field(default=None, max_length=200)
    from_: datetime | None = Field(default=None, alias="from", description="Times need an offset, e.g. ...Z")
    to: datetime | None = None
    after: int | None = Field(
        default=None, ge=0, le=MAX_SEQUENCE, description="Cursor: the last sequence of the previous page"
    )
    limit: int = Field(default=100, ge=1, le=500)


class AuditEntryOut(BaseModel):
    sequence: int
    event_id: uuid.UUID
    type: str
    source: str
    site_id: str
    subject: str | None
    time: datetime
    recorded_at: datetime
    event: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_after: int | None


class VerifyResult(BaseModel):
    ok: bool
    entries: int
    head_hash: str
    first_bad_sequence: int | None


# --- reports ---------------------------------------------------------------------------------------------------

ReportName = Literal["summary", "daily", "daily_chart"]
ReportFormat = Literal["json", "csv", "svg"]


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    site: str | None = Field(
        default=None,
        pattern=SITE_PATTERN,
        description='A site id, or "all" for the network (admin). Default: the token\'s own site.',
    )
    from_: date = Field(alias="from", description="First local date, inclusive (YYYY-MM-DD), 1900 to 2999")
    to: date = Field(description="Last local date, inclusive; at most 366 days after from")
    min_cell: int | None = Field(
        default=None, ge=1, le=100, description="Withhold counts above 0 and below this (small-cell suppression)"
    )
    format: Literal["json", "csv"] | None = Field(default=None, description="Instead of the Accept header: json or csv")


@dataclass(frozen=True, slots=True)
class RequestReport:
    report: ReportName
    scope: ReportScope
    first: date
    last: date
    format: ReportFormat
    min_cell: int | None
    actor_id: str
    actor_site_id: str


@dataclass(frozen=True, slots=True)
class RefuseReport:
    """A report read that was refused (403): recorded like an answered one."""

    report: ReportName
    site_id: str  # the site whose figures were asked for, or "all"
    route: str
    code: str
    status: int
    actor_id: str
    actor_site_id: str


class _Report(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    site: str = Field(description='The site id, or "all"')
    timezone: str | None = Field(description="The site's time zone the dates are in; null for all (each its own)")
    from_: date = Field(alias="from")
    to: date
    min_cell: int | None
    suppressed: bool = Field(description="Some counts were withheld (null) because they were below min_cell")


class VisitsByPurpose(BaseModel):
    drop_in: int | None
    peer_mentoring: int | None
    recovery_group: int | None
    sober_event: int | None
    resource_connecting: int | None
    education: int | None
    volunteer_shift: int | None


class VisitsBySupportType(BaseModel):
    emotional: int | None
    informational: int | None
    instrumental: int | None
    affiliational: int | None


class SummaryReport(_Report):
    unduplicated_members: int | None
    visits: int | None
    anonymous_visits: int | None
    new_members: int | None
    returning_members: int | None
    visits_by_purpose: VisitsByPurpose
    visits_by_support_type: VisitsBySupportType
    peak_occupancy: int | None
    volunteer_hours_approved: str = Field(description='Hours with two decimals, exact, e.g. "12.50"')
    volunteer_hours_by_role: dict[str, str]
    volunteers_active: int | None
    shifts_filled: int | None
    shifts_missed: int | None
    stipends_accrued_cents: int
    stipends_paid_cents: int
    group_sessions_held: int | None
    group_attendance: int | None
    events_held: int | None
    event_registrations: int | None
    event_attendance: int | None
    waitlist_promotions: int | None


class DailyRow(BaseModel):
    date: date
    visits: int | None
    unduplicated_members: int | None
    new_members: int | None
    volunteer_hours: str
    attendance: int | None


class DailyReport(_Report):
    days: list[DailyRow]


class RebuildResult(BaseModel):
    events: int
    projected: int
    skipped: int
    rows: dict[str, int]
