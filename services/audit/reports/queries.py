"""The report figures: SQL over the report projections (the ``rp_*`` tables), read in one snapshot per request.

What each figure means is defined in services/audit/reports/__init__.py; these queries compute exactly that."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    distinct,
    func,
    literal,
    not_,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import JSON, DateTime

from services.audit.reports.rules import (
    ALL_SITES,
    HOUR,
    NETWORK,
    PURPOSES,
    SUPPORT_TYPES,
    contiguous_runs,
    day_start,
    days_of,
    floor_hour,
    hours_overlapping,
    overlapping,
    range_masks,
    window,
    zone_named,
)
from services.audit.reports.suppression import ADDITIVE
from services.audit.reports.tables import (
    DAILY_COUNTERS,
    DAY_BITS,
    Bits,
    rp_daily,
    rp_daily_role,
    rp_gathering,
    rp_member_days,
    rp_peak_hour,
    rp_visit,
    rp_volunteer_year,
)
from shared.access import Site

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # date_bin's origin: hours are UTC hours whatever the session's TimeZone


@dataclass(frozen=True)
class ReportScope:
    """What a report covers: one site (in its zone) or the network (every site in its own zone)."""

    label: str  # the site id, or "all"
    key: str  # the projection scope: the site id, or NETWORK
    zones: dict[str, zoneinfo.ZoneInfo]  # site id -> zone; for the network also "" -> UTC (sites not in access)
    timezone: str | None  # the site's zone name; None for the network

    @classmethod
    def of_site(cls, site: Site) -> ReportScope:
        return cls(site.site_id, site.site_id, {site.site_id: zone_named(site.timezone)}, site.timezone)

    @classmethod
    def network(cls, sites: list[Site]) -> ReportScope:
        zones = {site.site_id: zone_named(site.timezone) for site in sites}
        zones[""] = zone_named(None)
        return cls(ALL_SITES, NETWORK, zones, None)

    @property
    def is_network(self) -> bool:
        return self.key == NETWORK

    def zone_of(self, site_id: str) -> zoneinfo.ZoneInfo:
        return self.zones.get(site_id) or zone_named(None)


@dataclass
class SummaryFigures:
    """Raw figures (no suppression) of a summary."""

    daily: dict[str, int]
    minutes_by_role: dict[str, int]
    unduplicated_members: int
    volunteers_active: int
    peak_occupancy: int
    gatherings: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, name: str) -> int:
        return self.daily[name]


@dataclass(frozen=True)
class DailyFigures:
    day: date
    visits: int
    unduplicated_members: int
    new_members: int
    volunteer_minutes: int
    attendance: int


# --- summary ---------------------------------------------------------------------------------------------------


async def summary_figures(conn: Any, scope: ReportScope, first: date, last: date) -> SummaryFigures:
    """Everything but the peak in one statement (each part a subquery over its projection), then the peak."""
    d = rp_daily.c
    sums = (
        select(*(func.coalesce(func.sum(d[c]), 0).label(c) for c in DAILY_COUNTERS))
        .where(d.scope == scope.key, d.local_date.between(first, last))
        .subquery("sums")
    )
    r = rp_daily_role.c
    by_role = (
        select(r.role_id, func.sum(r.minutes).label("minutes"))
        .where(r.scope == scope.key, r.local_date.between(first, last))
        .group_by(r.role_id)
        .having(func.sum(r.minutes) > 0)
        .subquery("by_role")
    )
    g = rp_gathering.c
    of_scope = [] if scope.is_network else [g.site_id == scope.key]
    by_kind = (
        select(
            g.kind,
            func.count().filter(and_(g.attendance > 0, not_(g.cancelled))).label("held"),
            func.sum(g.attendance).label("attendance"),
            func.coalesce(func.sum(g.registrations).filter(not_(g.cancelled)), 0).label("registrations"),
        )
        .where(g.local_date.between(first, last), *of_scope)
        .group_by(g.kind)
        .subquery("by_kind")
    )
    row = (
        await conn.execute(
            select(
                sums,
                _unduplicated(scope.key, first, last).label("members"),
                _volunteers(scope.key, first, last).label("volunteers"),
                select(func.json_object_agg(by_role.c.role_id, by_role.c.minutes, type_=JSON))
                .scalar_subquery()
                .label("roles"),
                select(
                    func.json_agg(
                        func.json_build_array(
                            by_kind.c.kind, by_kind.c.held, by_kind.c.attendance, by_kind.c.registrations
                        ),
                        type_=JSON,
                    )
                )
                .scalar_subquery()
                .label("gatherings"),
            )
        )
    ).one()
    gatherings = {kind: {"held": 0, "attendance": 0, "registrations": 0} for kind in ("session", "event")}
    for kind, held, attendance, registrations in row.gatherings or []:
        gatherings[kind] = {"held": int(held), "attendance": int(attendance), "registrations": int(registrations)}
    return SummaryFigures(
        daily={c: int(getattr(row, c)) for c in DAILY_COUNTERS},
        minutes_by_role={role_id: int(minutes) for role_id, minutes in sorted((row.roles or {}).items())},
        unduplicated_members=int(row.members),
        volunteers_active=int(row.volunteers),
        peak_occupancy=await peak_occupancy(conn, scope, first, last),
        gatherings=gatherings,
    )


def _unduplicated(scope_key: str, first: date, last: date) -> Any:
    """Members with a visit in [first, last]: the bits set in the OR of the range's daily member bitmaps."""
    m = rp_member_days.c
    per_block = (
        select(func.bit_count(func.bit_or(m.members)).label("members"))
        .where(m.scope == scope_key, m.local_date.between(first, last))
        .group_by(m.block)
        .subquery("per_block")
    )
    return select(func.coalesce(func.sum(per_block.c.members), 0)).scalar_subquery()


def _volunteers(scope_key: str, first: date, last: date) -> Any:
    """Volunteers with approved hours on a day in [first, last] (one day bitmap per volunteer and year)."""
    t = rp_volunteer_year.c
    matches = [
        and_(t.year == year, func.bit_count(t.days.op("&")(bindparam(f"days_{year}", mask, type_=Bits(DAY_BITS)))) > 0)
        for year, mask in range_masks(first, last).items()
    ]
    counted = func.count(distinct(t.member_id)) if len(matches) > 1 else func.count()
    return select(counted).where(t.scope == scope_key, or_(*matches)).scalar_subquery()


# --- peak occupancy ----------------------------------------------------------------------------------------------


async def peak_occupancy(conn: Any, scope: ReportScope, first: date, last: date) -> int:
    """The definition's sweep, without reading every visit of the range.

    ``rp_peak_hour`` holds, per scope and UTC hour, the peak of *all* closed, checked-in visits. In an hour that
    lies inside every site's window, no visit from outside the range overlaps unless it crosses the range's first
    local midnight (found below: it "spills"), so the hour's stored peak plus the visits of the range that never
    closed is exact. The remaining ("dirty") hours, at the window's edges, around crossing visits and where a
    never-closed visit starts, are swept exactly from the range's own visits."""
    windows = {window(first, last, zone) for zone in scope.zones.values()}
    min_start = min(start for start, _ in windows)
    max_start = max(start for start, _ in windows)
    min_end = min(end for _, end in windows)
    max_end = max(end for _, end in windows)
    v = rp_visit.c
    of_scope = [] if scope.is_network else [v.site_id == scope.key]

    dirty: set[datetime] = set(hours_overlapping(min_start, max_start)) | set(hours_overlapping(min_end, max_end))
    dirty |= {floor_hour(instant) for instant in (max_start, min_end) if floor_hour(instant) != instant}
    # Long visits that matter: from before the range and still open in it (they cross its first midnight), and
    # the range's own that never closed.
    crossing = select(literal(True).label("crossing"), v.site_id, v.checked_out_at.label("at")).where(
        v.spills,
        v.checked_in,
        v.checked_out_at > min_start,
        v.checked_in_at < max_end,
        v.local_date < first,
        *of_scope,
    )
    unclosed = select(literal(False), v.site_id, v.checked_in_at).where(
        v.spills, v.checked_out_at.is_(None), v.checked_in, v.local_date.between(first, last), *of_scope
    )
    never_closed = []
    for is_crossing, site_id, at in (await conn.execute(union_all(crossing, unclosed))).all():
        if is_crossing:
            range_start = day_start(first, scope.zone_of(site_id))
            dirty.update(hours_overlapping(range_start, min(at, max_end)))
        else:
            never_closed.append(at)
    never_closed.sort()
    dirty.update(floor_hour(instant) for instant in never_closed)

    best = await _clean_hours_peak(conn, scope.key, max_start, min_end, sorted(dirty), never_closed)
    if dirty:
        best = max(best, await _dirty_hours_peak(conn, of_scope, first, last, sorted(dirty)))
    return best


async def _clean_hours_peak(
    conn: Any,
    scope_key: str,
    max_start: datetime,
    min_end: datetime,
    dirty: list[datetime],
    never_closed: list[datetime],
) -> int:
    h = rp_peak_hour.c
    tz_array = ARRAY(DateTime(timezone=True))
    where = [
        h.scope == scope_key,
        h.hour >= max_start,
        h.hour <= min_end - HOUR,
        not_(h.hour == func.any(bindparam("dirty", dirty, type_=tz_array))),
    ]
    if not never_closed:
        return int(await conn.scalar(select(func.max(h.peak)).where(*where)) or 0)
    # Visits that never closed are open from their check-in on: in a clean hour, as many as checked in before it.
    opened_before = func.width_bucket(h.hour, bindparam("never_closed", never_closed, type_=tz_array))
    rows = await conn.execute(select(opened_before, func.max(h.peak)).where(*where).group_by(opened_before))
    return max((int(peak) + int(opened) for opened, peak in rows), default=0)


async def _dirty_hours_peak(conn: Any, of_scope: list[Any], first: date, last: date, dirty: list[datetime]) -> int:
    """The sweep of the definition over the dirty hours, done by the database over the range's visits open in them:
    +1 at each check-in, -1 at each check-out (applied first at a tie), a marker at each dirty hour's start (after
    every change at that instant); the peak is the largest running count at an instant of a dirty hour. The
    candidates are disjoint (short or long, closed or not), so each visit counts once."""
    v = rp_visit.c
    runs = contiguous_runs(dirty)
    of_range = and_(v.checked_in, v.local_date.between(first, last), *of_scope)
    columns = (v.checked_in_at.label("i"), v.checked_out_at.label("o"))
    candidates = union_all(
        select(*columns).where(
            overlapping(v.checked_in_at, v.checked_out_at, runs, short=True), of_range, not_(v.spills)
        ),
        select(*columns).where(v.spills, overlapping(v.checked_in_at, v.checked_out_at, runs, short=False), of_range),
        select(*columns).where(v.spills, v.checked_out_at.is_(None), v.checked_in_at < runs[-1][1], of_range),
    ).cte("candidates")
    i, o = candidates.c.i, candidates.c.o
    hours = bindparam("dirty", dirty, type_=ARRAY(DateTime(timezone=True)))
    marks = func.unnest(hours).table_valued("h").render_derived(name="marks")
    changes = union_all(  # (instant, change, order at a tie)
        select(i.label("t"), literal(1).label("d"), literal(1).label("k")).where(or_(o.is_(None), o > i)),
        select(o, literal(-1), literal(0)).where(o > i),
        select(marks.c.h, literal(0), literal(2)),
    ).cte("changes")
    running = select(
        changes.c.t,
        func.sum(changes.c.d).over(order_by=(changes.c.t, changes.c.k), rows=(None, 0)).label("open"),
    ).cte("running")
    dirty_hour = func.unnest(hours).table_valued("h").render_derived(name="dirty_hour")
    utc_hour = func.date_bin(text("interval '1 hour'"), running.c.t, literal(EPOCH, DateTime(timezone=True)))
    peak = await conn.scalar(
        select(func.max(running.c.open)).select_from(running.join(dirty_hour, utc_hour == dirty_hour.c.h))
    )
    return int(peak or 0)


# --- what every report of the range shows, for complementary suppression -------------------------------------------


async def family_counts(
    conn: Any, first: date, last: date
) -> tuple[dict[str, dict[str, int]], dict[str, dict[date, dict[str, int]]]]:
    """The additive counts (suppression.ADDITIVE, per day suppression.DAILY_ADDITIVE and new members) of every scope in
    [first, last]: what the summary and daily reports of each site and of the network show, side by side."""
    d = rp_daily.c
    columns = [c for c in DAILY_COUNTERS if c in ADDITIVE or c == "new_members"]
    summaries: dict[str, dict[str, int]] = {}
    daily: dict[str, dict[date, dict[str, int]]] = {}
    rows = await conn.execute(
        select(d.scope, d.local_date, *(d[c] for c in columns)).where(d.local_date.between(first, last))
    )
    for row in rows:
        totals = summaries.setdefault(row.scope, {})
        for column in columns:
            totals[column] = totals.get(column, 0) + int(row._mapping[column])
        daily.setdefault(row.scope, {})[row.local_date] = {
            "visits": int(row.visits),
            "new_members": int(row.new_members),
        }
    g = rp_gathering.c
    gatherings = await conn.execute(
        select(
            g.site_id,
            g.kind,
            g.local_date,
            func.count().filter(and_(g.attendance > 0, not_(g.cancelled))).label("held"),
            func.sum(g.attendance).label("attendance"),
            func.coalesce(func.sum(g.registrations).filter(not_(g.cancelled)), 0).label("registrations"),
        )
        .where(g.local_date.between(first, last))
        .group_by(g.site_id, g.kind, g.local_date)
    )
    for site_id, kind, day, held, attendance, registrations in gatherings:
        for scope in (site_id, NETWORK):
            totals = summaries.setdefault(scope, {})
            for name, value in (("held", held), ("attendance", attendance), ("registrations", registrations)):
                if name == "registrations" and kind != "event":
                    continue
                totals[f"{kind}_{name}"] = totals.get(f"{kind}_{name}", 0) + int(value)
            counts = daily.setdefault(scope, {}).setdefault(day, {"visits": 0, "new_members": 0})
            counts["attendance"] = counts.get("attendance", 0) + int(attendance)
    for scope_days in daily.values():
        for counts in scope_days.values():
            counts.setdefault("attendance", 0)
    return summaries, daily


async def unduplicated_members(conn: Any, scope: ReportScope, first: date, last: date) -> int:
    return int(await conn.scalar(select(_unduplicated(scope.key, first, last))))


# --- daily -------------------------------------------------------------------------------------------------------


async def daily_figures(conn: Any, scope: ReportScope, first: date, last: date) -> list[DailyFigures]:
    d = rp_daily.c
    m = rp_member_days.c
    g = rp_gathering.c
    of_scope = [] if scope.is_network else [g.site_id == scope.key]
    members = (
        select(m.local_date, func.sum(func.bit_count(m.members)).label("n"))
        .where(m.scope == scope.key, m.local_date.between(first, last))
        .group_by(m.local_date)
    )
    attendance = (
        select(g.local_date, func.sum(g.attendance).label("n"))
        .where(g.local_date.between(first, last), *of_scope)
        .group_by(g.local_date)
    )
    counters = select(d.local_date, d.visits, d.new_members, d.volunteer_minutes).where(
        d.scope == scope.key, d.local_date.between(first, last)
    )
    rows = {row.local_date: row for row in await conn.execute(counters)}
    unduplicated = {day: int(n) for day, n in await conn.execute(members)}
    attended = {day: int(n) for day, n in await conn.execute(attendance)}
    figures = []
    for day in days_of(first, last):
        row = rows.get(day)
        figures.append(
            DailyFigures(
                day=day,
                visits=row.visits if row else 0,
                unduplicated_members=unduplicated.get(day, 0),
                new_members=row.new_members if row else 0,
                volunteer_minutes=int(row.volunteer_minutes) if row else 0,
                attendance=attended.get(day, 0),
            )
        )
    return figures


__all__ = [
    "PURPOSES",
    "SUPPORT_TYPES",
    "DailyFigures",
    "ReportScope",
    "SummaryFigures",
    "daily_figures",
    "family_counts",
    "peak_occupancy",
    "summary_figures",
    "unduplicated_members",
]
