"""Reports: summary and daily over a year of a 10-site network, time per request (p50, p95, max).

Data: one year (--days 365) of 10 centers in 10 time zones (two with half-hour offsets), about 137 visits per
site and day (~500,000 visits: regulars and occasional members, a quarter anonymous, a few staying past midnight
or still here at the end), 3 volunteer shifts a day with hours approved, rejected or corrected, missed shifts,
waitlist promotions, weekly recovery groups and two sober events a month with registrations and attendance, and
stipend events. The events go straight through the projection code (``Projector.apply``, the code the audit
append and ``rcc reports rebuild`` run) in large transactions; they are not hash-chained into the audit log, which
the reports never read. Build time and projection sizes are printed as context.

Then the audit service runs as its own process and is asked, over HTTP with an admin token, for
``/reports/summary`` and ``/reports/daily`` of one site and of ``site=all`` for random ranges of 1, 7, 31, 92 and
366 days (``--requests`` per report and scope, sequentially, after a warm-up). Each request is what a director's
is: token check, the projection queries in one snapshot, and its ``audit.report_requested`` event through the
outbox. Then the same mix with ``min_cell=5`` (small cells and their complements withheld over every report of the
range). **Goal:** p95 < 100 ms per report and scope.

Run: ``python -m bench.run reports`` (with the harness) or ``python -m bench.reports`` (the same, standalone)."""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import Figure, Goal, Outcome, Stack, benchmark, say
from services.audit.reports.facts import LoggedEvent
from services.audit.reports.projector import Projector
from services.audit.reports.tables import PROJECTION_TABLES
from shared import access

P95_GOAL_MS = Goal("<", 100.0)
ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Adelaide",
    "America/Puerto_Rico",
)
PURPOSES = (
    ("drop_in", "affiliational", 40),
    ("peer_mentoring", "emotional", 15),
    ("recovery_group", "emotional", 12),
    ("sober_event", "affiliational", 5),
    ("resource_connecting", "instrumental", 10),
    ("education", "informational", 8),
    ("volunteer_shift", None, 10),
)
RANGE_DAYS = (1, 7, 31, 92, 366)
MIN_CELL = 5  # the smallest count a published report shows
BUILD_CHUNK = 25_000


def add_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--sites", type=int, default=10, help="centers in the network (10)")
    group.add_argument("--days", type=int, default=365, help="days of activity (365)")
    group.add_argument("--visits-per-day", type=int, default=137, help="visits per site and day, on average (137)")
    group.add_argument("--requests", type=int, default=60, help="timed requests per report and scope (60)")


# --- a year of a network, as logged events ---------------------------------------------------------------------


class Network:
    def __init__(self, sites: list[tuple[str, str]], first: date, days: int, visits_per_day: int, seed: int) -> None:
        self.sites = sites
        self.first = first
        self.days = days
        self.visits_per_day = visits_per_day
        self.rng = random.Random(seed)
        self.visits = 0

    def new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def event(self, type_: str, site_id: str, at: datetime, **data: Any) -> LoggedEvent:
        return LoggedEvent(self.new_id(), type_, site_id, at, data)

    def events(self) -> Iterator[LoggedEvent]:
        """Day by day, every site: the order the log would see them in (roughly; order does not matter)."""
        import zoneinfo

        rng = self.rng
        members = {site_id: self._members(site_id) for site_id, _ in self.sites}
        groups = {
            site_id: [
                (self.new_id(), weekday, rng.choice(("emotional", "informational")))
                for weekday in rng.sample(range(7), 3)
            ]
            for site_id, _ in self.sites
        }
        for offset in range(self.days):
            day = self.first + timedelta(days=offset)
            for site_id, zone_name in self.sites:
                zone = zoneinfo.ZoneInfo(zone_name)
                yield from self._visits(site_id, zone, day, members[site_id])
                yield from self._shifts(site_id, zone, day, members[site_id])
                yield from self._gatherings(site_id, zone, day, members[site_id], groups[site_id])
                if day.day == 1:
                    yield from self._stipends(site_id, zone, day, members[site_id])

    def _members(self, site_id: str) -> list[tuple[uuid.UUID, float]]:
        # A few regulars come most days; most members come now and then.
        weights = [self.rng.paretovariate(1.2) for _ in range(2_500)]
        return [(self.new_id(), weight) for weight in weights]

    def _visits(
        self, site_id: str, zone: Any, day: date, members: list[tuple[uuid.UUID, float]]
    ) -> Iterator[LoggedEvent]:
        rng = self.rng
        opens = datetime.combine(day, clock(9), tzinfo=zone).astimezone(UTC)
        count = max(0, int(rng.gauss(self.visits_per_day, self.visits_per_day * 0.15)))
        who = rng.choices([m for m, _ in members], weights=[w for _, w in members], k=count)
        seen: set[uuid.UUID] = set()
        last_day = day == self.first + timedelta(days=self.days - 1)
        for member in who:
            anonymous = rng.random() < 0.25 or member in seen
            seen.add(member)
            purpose, support, _ = rng.choices(PURPOSES, weights=[w for *_, w in PURPOSES])[0]
            checked_in_at = opens + timedelta(minutes=rng.randrange(0, 12 * 60))
            roll = rng.random()
            if last_day and roll < 0.05:
                checked_out_at = None  # still here when the year ends (auto-close has closed every other visit)
            elif roll < 0.008:
                checked_out_at = checked_in_at + timedelta(minutes=rng.randint(12 * 60, 16 * 60))  # past midnight
            else:
                checked_out_at = checked_in_at + timedelta(minutes=rng.randint(5, 180))
            visit_id = str(self.new_id())
            member_id = None if anonymous else str(member)
            self.visits += 1
            yield self.event(
                "checkin.visitor_checked_in",
                site_id,
                checked_in_at,
                visit_id=visit_id,
                member_id=member_id,
                anonymous=anonymous,
                purpose=purpose,
                support_type=support,
                ref=None,
                checked_in_at=checked_in_at.isoformat(),
            )
            if checked_out_at is not None:
                yield self.event(
                    "checkin.visitor_checked_out",
                    site_id,
                    checked_out_at,
                    visit_id=visit_id,
                    member_id=member_id,
                    purpose=purpose,
                    ref=None,
                    checked_in_at=checked_in_at.isoformat(),
                    checked_out_at=checked_out_at.isoformat(),
                    minutes=int((checked_out_at - checked_in_at).total_seconds() // 60),
                    closed_by="kiosk",
                )

    def _shifts(
        self, site_id: str, zone: Any, day: date, members: list[tuple[uuid.UUID, float]]
    ) -> Iterator[LoggedEvent]:
        rng = self.rng
        volunteers = [m for m, _ in members[:40]]
        for role_id, start in (("front_desk", clock(9)), ("peer_mentor", clock(13)), ("facilitator", clock(17))):
            starts_at = datetime.combine(day, start, tzinfo=zone).astimezone(UTC)
            ends_at = starts_at + timedelta(hours=4)
            for member in rng.sample(volunteers, 2):
                signup_id, hours_id = str(self.new_id()), str(self.new_id())
                common = {"shift_id": str(self.new_id()), "member_id": str(member), "role_id": role_id}
                if rng.random() < 0.05:
                    yield self.event(
                        "volunteering.promoted_from_waitlist",
                        site_id,
                        starts_at - timedelta(days=1),
                        signup_id=signup_id,
                        starts_at=starts_at.isoformat(),
                        **common,
                    )
                if rng.random() < 0.1:
                    yield self.event(
                        "volunteering.shift_missed",
                        site_id,
                        ends_at,
                        signup_id=signup_id,
                        starts_at=starts_at.isoformat(),
                        ends_at=ends_at.isoformat(),
                        **common,
                    )
                    continue
                minutes = 240 + rng.randint(-30, 20)
                yield self.event(
                    "volunteering.shift_worked",
                    site_id,
                    ends_at,
                    hours_id=hours_id,
                    shift_starts_at=starts_at.isoformat(),
                    minutes=minutes,
                    **common,
                )
                decided = ends_at + timedelta(days=rng.randint(0, 3))
                approved = rng.random() < 0.9
                yield self.event(
                    "volunteering.hours_approved" if approved else "volunteering.hours_rejected",
                    site_id,
                    decided,
                    hours_id=hours_id,
                    shift_starts_at=starts_at.isoformat(),
                    minutes=minutes,
                    **common,
                )
                if approved and rng.random() < 0.05:  # corrected and approved again
                    yield self.event(
                        "volunteering.hours_approved",
                        site_id,
                        decided + timedelta(days=1),
                        hours_id=hours_id,
                        shift_starts_at=starts_at.isoformat(),
                        minutes=minutes - 15,
                        **common,
                    )

    def _gatherings(
        self,
        site_id: str,
        zone: Any,
        day: date,
        members: list[tuple[uuid.UUID, float]],
        groups: list[tuple[uuid.UUID, int, str]],
    ) -> Iterator[LoggedEvent]:
        rng = self.rng
        todays = [
            (self.new_id(), "session", group_id, support, clock(18))
            for group_id, weekday, support in groups
            if day.weekday() == weekday
        ]
        if day.day in (10, 24):
            todays.append((self.new_id(), "event", None, "affiliational", clock(19)))
        for gathering_id, kind, group_id, support, start in todays:
            starts_at = datetime.combine(day, start, tzinfo=zone).astimezone(UTC)
            ids = {
                "session_id": str(gathering_id) if kind == "session" else None,
                "group_id": str(group_id) if group_id else None,
                "event_id": str(gathering_id) if kind == "event" else None,
            }
            yield self.event(
                f"gatherings.{kind}_scheduled",
                site_id,
                starts_at - timedelta(days=14),
                starts_at=starts_at.isoformat(),
                **ids,
            )
            for member, _ in rng.sample(members, rng.randint(5, 14)):
                registration_id = str(self.new_id())
                seat = {
                    "registration_id": registration_id,
                    "member_id": str(member),
                    "support_type": support,
                    "starts_at": starts_at.isoformat(),
                    "adults": 1,
                    "children": 0,
                    **ids,
                }
                yield self.event(
                    "gatherings.registered", site_id, starts_at - timedelta(days=rng.randint(1, 10)), **seat
                )
                if rng.random() < 0.1:
                    yield self.event(
                        "gatherings.registration_cancelled",
                        site_id,
                        starts_at - timedelta(hours=5),
                        previous_status="confirmed",
                        **seat,
                    )
                    yield self.event(
                        "gatherings.promoted_from_waitlist",
                        site_id,
                        starts_at - timedelta(hours=5),
                        **{**seat, "registration_id": str(self.new_id())},
                    )
                elif rng.random() < 0.8:
                    yield self.event(
                        "gatherings.attended",
                        site_id,
                        starts_at,
                        attendance_id=str(self.new_id()),
                        member_id=str(member),
                        anonymous=False,
                        support_type=support,
                        starts_at=starts_at.isoformat(),
                        **ids,
                    )

    def _stipends(
        self, site_id: str, zone: Any, day: date, members: list[tuple[uuid.UUID, float]]
    ) -> Iterator[LoggedEvent]:
        at = datetime.combine(day, clock(0, 30), tzinfo=zone).astimezone(UTC)
        for member, _ in members[:6]:
            amount = self.rng.randint(20, 120) * 100
            yield self.event(
                "volunteering.stipend_accrued",
                site_id,
                at,
                entry_id=str(self.new_id()),
                member_id=str(member),
                period=f"{day:%Y-%m}",
                amount_cents=amount,
            )
            yield self.event(
                "volunteering.stipend_paid",
                site_id,
                at + timedelta(days=5),
                payout_id=str(self.new_id()),
                member_id=str(member),
                period=f"{day:%Y-%m}",
                amount_cents=amount,
            )


# --- the benchmark -----------------------------------------------------------------------------------------------


async def _create_sites(stack: Stack, count: int) -> tuple[list[tuple[str, str]], str]:
    engine = create_async_engine(stack.settings.database_url)
    sites = [(f"bench-{n:02d}-{uuid.uuid4().hex[:4]}", ZONES[n % len(ZONES)]) for n in range(count)]
    try:
        async with engine.begin() as conn:
            for site_id, zone in sites:
                await access.create_site(
                    conn,
                    site_id,
                    name="Benchmark center",
                    capacity=60,
                    timezone=zone,
                    closes_at=access.parse_closes_at("21:00"),
                )
            _, admin = await access.issue_token(conn, role=access.Role.ADMIN, site_id=sites[0][0], label="bench")
    finally:
        await engine.dispose()
    return sites, admin


async def _build(stack: Stack, network: Network) -> tuple[int, float]:
    """Every event through the projector, a large transaction at a time (as ``rcc reports rebuild`` does)."""
    engine = create_async_engine(stack.settings.database_url)
    started = time.monotonic()
    count = 0
    try:
        chunk: list[LoggedEvent] = []

        async def flush() -> None:
            async with engine.begin() as conn:
                await Projector(conn).apply(chunk)

        for event in network.events():
            chunk.append(event)
            if len(chunk) == BUILD_CHUNK:
                await flush()
                count += len(chunk)
                chunk = []
                if count % 250_000 == 0:
                    say(f"projected {count:,} events ({network.visits:,} visits) in {time.monotonic() - started:.0f}s")
        if chunk:
            await flush()
            count += len(chunk)
    finally:
        await engine.dispose()
    # What autovacuum would have done to a year of history: statistics, and the visibility map index-only scans use.
    for table in PROJECTION_TABLES:
        await stack.db.execute(f"VACUUM (ANALYZE) {table.schema}.{table.name}")
    return count, time.monotonic() - started


def _ranges(rng: random.Random, first: date, days: int, count: int) -> list[tuple[date, date]]:
    chosen = []
    for n in range(count):
        length = min(RANGE_DAYS[n % len(RANGE_DAYS)], days)
        start = first + timedelta(days=rng.randrange(0, days - length + 1))
        chosen.append((start, start + timedelta(days=length - 1)))
    return chosen


async def _time_requests(
    url: str, token: str, path: str, scope: str, ranges: list[tuple[date, date]], min_cell: int | None = None
) -> list[float]:
    timings = []
    headers = {"Authorization": f"Bearer {token}"}
    suppression = f"&min_cell={min_cell}" if min_cell is not None else ""
    async with aiohttp.ClientSession(headers=headers) as http:
        for first, last in ranges[:5]:  # warm-up: connections, prepared statements, caches
            async with http.get(f"{url}{path}?site={scope}&from={first}&to={last}{suppression}") as response:
                await response.read()
        for first, last in ranges:
            started = time.perf_counter()
            async with http.get(f"{url}{path}?site={scope}&from={first}&to={last}{suppression}") as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{path} {scope} {first}..{last}: {response.status} {await response.text()}")
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]


async def run(options: argparse.Namespace, stack: Stack) -> Outcome:
    outcome = Outcome()
    sites, admin = await _create_sites(stack, options.sites)
    first = date(2025, 1, 1)
    network = Network(sites, first, options.days, options.visits_per_day, seed=2025)
    say(f"building {options.days} days of {options.sites} sites through the projector")
    events, seconds = await _build(stack, network)
    sizes = {
        table.name: await stack.db.fetchval(f"SELECT count(*) FROM {table.schema}.{table.name}")
        for table in PROJECTION_TABLES
    }
    say(f"{events:,} events ({network.visits:,} visits) projected in {seconds:.0f}s; rows: {sizes}")
    outcome.figures += [
        Figure("visits", network.visits),
        Figure("events projected", events),
        Figure("projection build", events / seconds, "events/s"),
        Figure("rp_visit rows", sizes["rp_visit"]),
        Figure("rp_daily rows", sizes["rp_daily"]),
        Figure("rp_member_days rows", sizes["rp_member_days"]),
        Figure("rp_peak_hour rows", sizes["rp_peak_hour"]),
    ]

    audit = await stack.start_service("audit")
    rng = random.Random(7)
    one_site = sites[1][0]
    # The same mix again with min_cell=5, the suppression a published report uses: it adds the counts of every
    # scope of the range and the choice of withheld cells (complementary suppression) to each request.
    for min_cell in (None, MIN_CELL):
        for path in ("/reports/summary", "/reports/daily"):
            for scope, label in ((one_site, "site"), ("all", "all")):
                ranges = _ranges(rng, first, options.days, options.requests)
                timings = await _time_requests(audit.url, admin, path, scope, ranges, min_cell)
                name = f"{path.rsplit('/', 1)[1]} {label}" + (f" min_cell={min_cell}" if min_cell else "")
                say(
                    f"{name}: p50 {statistics.median(timings):.1f} ms, p95 {_p95(timings):.1f} ms, "
                    f"max {max(timings):.1f} ms over {len(timings)} requests"
                )
                outcome.figures += [
                    Figure(f"{name} p50", statistics.median(timings), "ms"),
                    Figure(f"{name} p95", _p95(timings), "ms", P95_GOAL_MS),
                    Figure(f"{name} max", max(timings), "ms"),
                ]
    outcome.notes.append(
        f"ranges of {', '.join(map(str, RANGE_DAYS))} days at random over {options.days} days; one request at a "
        f"time over HTTP, admin token, each logging its audit.report_requested event; then the same mix with "
        f"min_cell={MIN_CELL}"
    )
    return outcome


if __name__ == "__main__":
    # Standalone: ``python -m bench.reports [options]`` runs this benchmark through the harness. The harness
    # registers it from this module's import name, so nothing is registered twice when run.py lists it too.
    import importlib

    from bench import run as harness

    importlib.import_module("bench.reports")
    harness.main(["reports", *sys.argv[1:]])
else:
    benchmark(
        "reports",
        "summary and daily reports over a year of a 10-site network: time per request",
        options=add_options,
        parameters=("sites", "days", "visits_per_day", "requests"),
    )(run)
