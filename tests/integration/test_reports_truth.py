"""Reports against the truth: two months of generated activity at three centers (tests/support/activity.py) go
into the audit service, most through the append handler in shuffled batches with redeliveries (order must not
matter), the rest through the real broker; then every summary and daily figure, for each site and the network and
for ranges from one day to 366, must equal the truth computed independently, before and after
``rcc reports rebuild``, byte for byte the same."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import aio_pika
import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.audit import DB_ROLE
from services.audit import handlers as audit_handlers
from services.audit.commands import AppendToAuditLog
from services.audit.models import AuditUnitOfWork, Base
from services.registry import ROOT
from shared import access
from shared.clock import SystemClock
from shared.db import asyncpg_dsn, create_engine, make_connector
from shared.events import CONTENT_TYPE, ReceivedEvent, canonical_json
from shared.settings import Settings
from tests.support import adversary
from tests.support.activity import Activity, generate, suppress
from tests.support.broker import delete_prefixed
from tests.support.databases import drop_database, migrated_settings
from tests.support.stack import Client, eventually, services

pytestmark = pytest.mark.integration

RANGES = [
    (date(2026, 3, 1), date(2026, 3, 31)),  # the month
    (date(2026, 3, 8), date(2026, 3, 8)),  # one day: clocks go forward in Chicago
    (date(2026, 3, 29), date(2026, 3, 29)),  # one day: clocks go forward in London (night owls cross it)
    (date(2026, 3, 14), date(2026, 3, 14)),  # a Saturday: Kolkata's after-midnight phone line
    (date(2026, 2, 25), date(2026, 3, 5)),  # across February into March
    (date(2026, 3, 28), date(2026, 4, 3)),  # across March into April (a session moved into April)
    (date(2026, 1, 1), date(2026, 4, 30)),  # everything there is
    (date(2025, 12, 30), date(2026, 1, 2)),  # nothing happened, across a new year
    (date(2025, 3, 2), date(2026, 3, 2)),  # the longest range (366 days), across a new year
]
DAILY_MAX_DAYS = 70  # the truth's daily series is slow to compute; the long ranges are checked as summaries


@dataclass
class World:
    activity: Activity
    client: Client
    settings: Settings
    admin: str
    coordinators: dict[str, str]

    def scopes(self) -> list[str]:
        return [site.site_id for site in self.activity.sites] + ["all"]

    def token_for(self, scope: str) -> str:
        return self.admin if scope == "all" else self.coordinators[scope]

    async def get(self, path: str, scope: str, first: date, last: date, **extra: Any) -> dict[str, Any]:
        query = "&".join(f"{k}={v}" for k, v in {"site": scope, "from": first, "to": last, **extra}.items())
        reply = await self.client.call("audit", "GET", f"{path}?{query}", token=self.token_for(scope))
        assert reply.status == 200, reply.body
        return reply.body


async def _append_directly(settings: Settings, events: list[dict[str, Any]], rng: random.Random) -> None:
    """Through the append handler, as the consumer calls it: shuffled, in batches of random size, and a few
    events delivered again in later batches (the log and the reports must take each once)."""
    received = [ReceivedEvent.from_body(canonical_json(event)) for event in events]
    rng.shuffle(received)
    again = rng.sample(received, len(received) // 20)
    engine = create_engine(settings, service="audit", role=DB_ROLE)
    try:
        position = 0
        while position < len(received):
            size = rng.randint(1, 400)
            batch = received[position : position + size]
            batch += [again.pop() for _ in range(min(len(again), rng.randint(0, 8)))]
            position += size
            async with AuditUnitOfWork(make_connector(engine), Base.metadata) as uow:
                await audit_handlers.append_to_audit_log(AppendToAuditLog(batch), uow=uow, clock=SystemClock())
                await uow.commit()
    finally:
        await engine.dispose()


async def _publish(settings: Settings, events: list[dict[str, Any]]) -> None:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(settings.exchange_name)
        for event in events:
            await exchange.publish(
                aio_pika.Message(
                    canonical_json(event),
                    content_type=CONTENT_TYPE,
                    message_id=event["id"],
                    type=event["type"],
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=event["type"],
            )
    finally:
        await connection.close()


async def _logged(settings: Settings, event_ids: list[str]) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        return await conn.fetchval("SELECT count(*) FROM audit.audit_log WHERE event_id = ANY($1::uuid[])", event_ids)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[World]:
    name, settings = await migrated_settings(rate_limit_per_minute=0)
    activity = generate(seed=20260301)
    try:
        engine = create_async_engine(settings.database_url)
        coordinators = {}
        async with engine.begin() as conn:
            for site in activity.sites:
                await access.create_site(
                    conn, site.site_id, name="Center", capacity=40, timezone=site.timezone, closes_at=site.closes
                )
                _, coordinators[site.site_id] = await access.issue_token(
                    conn, role=access.Role.COORDINATOR, site_id=site.site_id
                )
            _, admin = await access.issue_token(conn, role=access.Role.ADMIN, site_id=activity.sites[0].site_id)
        await engine.dispose()

        rng = random.Random(7)
        by_broker = [event for index, event in enumerate(activity.events) if index % 10 == 3]
        directly = [event for index, event in enumerate(activity.events) if index % 10 != 3]
        await _append_directly(settings, directly, rng)
        rng.shuffle(by_broker)
        await _publish(settings, by_broker)
        async with services(settings, ["audit"]) as client:
            every_id = [event["id"] for event in activity.events]

            async def all_logged() -> bool:
                return await _logged(settings, every_id) == len(every_id)

            await eventually(all_logged, timeout=120)
            yield World(activity, client, settings, admin, coordinators)
    finally:
        await delete_prefixed(settings, ["audit"])
        await drop_database(name)


def _differences(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    return [f"{key}: got {got.get(key)!r}, want {value!r}" for key, value in want.items() if got.get(key) != value]


async def _check_all(world: World) -> dict[tuple[str, str, date, date], Any]:
    """Every report of every scope and range, compared with the truth; returns the bodies for later comparison."""
    bodies: dict[tuple[str, str, date, date], Any] = {}
    problems = []
    for scope in world.scopes():
        for first, last in RANGES:
            summary = await world.get("/reports/summary", scope, first, last)
            bodies[("summary", scope, first, last)] = summary
            problems += [
                f"{scope} {first}..{last} {d}"
                for d in _differences(summary, world.activity.summary(scope, first, last))
            ]
            assert summary["site"] == scope and summary["from"] == str(first) and summary["to"] == str(last)
            assert summary["suppressed"] is False and summary["min_cell"] is None
            daily = await world.get("/reports/daily", scope, first, last)
            bodies[("daily", scope, first, last)] = daily
            assert len(daily["days"]) == (last - first).days + 1
            if (last - first).days < DAILY_MAX_DAYS:
                for got, want in zip(daily["days"], world.activity.daily(scope, first, last), strict=True):
                    problems += [f"{scope} daily {want['date']} {d}" for d in _differences(got, want)]
            else:  # the series still adds up to the summary's additive figures
                assert sum(day["visits"] for day in daily["days"]) == summary["visits"]
    assert not problems, "\n".join(problems[:40])
    return bodies


async def test_every_summary_and_daily_figure_equals_the_truth(world: World) -> None:
    await _check_all(world)


async def test_the_truth_is_not_trivial(world: World) -> None:
    """The generated month exercises what the definitions single out (so the comparison above means something)."""
    truth = world.activity.summary("all", date(2026, 3, 1), date(2026, 3, 31))
    assert truth["new_members"] > 0 and truth["returning_members"] > 0
    assert truth["anonymous_visits"] > 0 and truth["peak_occupancy"] > 1
    assert truth["shifts_missed"] > 0 and truth["waitlist_promotions"] > 0
    assert truth["stipends_accrued_cents"] > 0 and truth["stipends_paid_cents"] > 0
    assert truth["group_sessions_held"] > 0 and truth["events_held"] > 0 and truth["event_registrations"] > 0
    never_closed = [v for v in world.activity.visits if v.checked_out_at is None]
    past_midnight = [
        v
        for v in world.activity.visits
        if v.checked_out_at
        and world.activity.local(v.site_id, v.checked_out_at) != world.activity.local(v.site_id, v.checked_in_at)
    ]
    assert never_closed and past_midnight
    network = sum(
        world.activity.summary(site.site_id, date(2026, 3, 1), date(2026, 3, 31))["unduplicated_members"]
        for site in world.activity.sites
    )
    assert truth["unduplicated_members"] < network  # members who use two centers count once


async def test_min_cell_withholds_small_counts_in_json_and_csv(world: World) -> None:
    """Every small count is withheld; a shown count is the truth; a count that is not small may be withheld too
    (a complement, so that the small ones cannot be worked out: see the adversary test below)."""
    site = world.activity.sites[0].site_id
    first, last = date(2026, 3, 1), date(2026, 3, 31)
    truth = world.activity.summary(site, first, last)
    min_cell = 20

    def shown_right(got: Any, want: int) -> bool:
        return got is None if suppress(want, min_cell) is None else got in (want, None)

    body = await world.get("/reports/summary", site, first, last, min_cell=min_cell)
    assert body["min_cell"] == min_cell and body["suppressed"] is True
    for key in (
        "visits",
        "anonymous_visits",
        "unduplicated_members",
        "peak_occupancy",
        "volunteers_active",
        "shifts_filled",
        "shifts_missed",
        "group_sessions_held",
        "event_registrations",
        "new_members",
        "returning_members",
    ):
        assert shown_right(body[key], truth[key]), key
    for purpose, count in truth["visits_by_purpose"].items():
        assert shown_right(body["visits_by_purpose"][purpose], count), purpose
    # hours and money are not counts of people
    assert body["volunteer_hours_approved"] == truth["volunteer_hours_approved"]
    assert body["stipends_accrued_cents"] == truth["stipends_accrued_cents"]

    daily = await world.get("/reports/daily", site, first, last, min_cell=min_cell)
    for got, want in zip(daily["days"], world.activity.daily(site, first, last), strict=True):
        for key in ("visits", "unduplicated_members", "new_members", "attendance"):
            assert shown_right(got[key], want[key]), (got["date"], key)
        assert got["volunteer_hours"] == want["volunteer_hours"]

    async with world.client.http.get(
        f"{world.client.urls['audit']}/reports/daily?site={site}&from={first}&to={last}&min_cell={min_cell}",
        headers={"Authorization": f"Bearer {world.admin}", "Accept": "text/csv"},
    ) as response:
        assert response.status == 200
        assert response.headers["X-RCC-Suppressed"] == "true" and response.headers["X-RCC-Min-Cell"] == "20"
        rows = (await response.text()).splitlines()
    withheld_visits = [row for row in rows[1:] if row.split(",")[1] == ""]
    assert len(withheld_visits) == sum(1 for day in daily["days"] if day["visits"] is None) > 0


@pytest.mark.parametrize(
    ("first", "last", "min_cell"),
    [
        (date(2026, 3, 1), date(2026, 3, 31), 20),
        (date(2026, 3, 8), date(2026, 3, 14), 5),
        (date(2026, 3, 10), date(2026, 3, 10), 5),
        (date(2026, 3, 1), date(2026, 3, 7), 11),
    ],
)
async def test_no_withheld_count_is_recovered_by_subtraction_across_every_report(
    world: World, first: date, last: date, min_cell: int
) -> None:
    """Every site's summary and daily report and the network roll-up of one range, as JSON and as CSV, side by
    side: every subtraction the documented identities allow (tests/support/adversary.py) recovers nothing."""
    summaries: dict[str, Any] = {}
    dailies: dict[str, Any] = {}
    csv_summaries: dict[str, Any] = {}
    csv_dailies: dict[str, Any] = {}
    for scope in world.scopes():
        summaries[scope] = await world.get("/reports/summary", scope, first, last, min_cell=min_cell)
        dailies[scope] = await world.get("/reports/daily", scope, first, last, min_cell=min_cell)
        for path, into, read in (
            ("/reports/summary", csv_summaries, adversary.csv_summary),
            ("/reports/daily", csv_dailies, adversary.csv_daily),
        ):
            async with world.client.http.get(
                f"{world.client.urls['audit']}{path}?site={scope}&from={first}&to={last}&min_cell={min_cell}",
                headers={"Authorization": f"Bearer {world.token_for(scope)}", "Accept": "text/csv"},
            ) as response:
                assert response.status == 200
                into[scope] = read(await response.text())
    assert any(body["suppressed"] for body in summaries.values())
    assert adversary.recovered(summaries, dailies) == {}
    assert adversary.recovered(csv_summaries, csv_dailies) == {}
    for scope in world.scopes():  # the CSV says the same as the JSON
        assert csv_summaries[scope]["visits_by_purpose"] == summaries[scope]["visits_by_purpose"]
        assert [row["visits"] for row in csv_dailies[scope]["days"]] == [
            row["visits"] for row in dailies[scope]["days"]
        ]


async def test_rebuild_replays_the_log_into_identical_reports(world: World) -> None:
    before = await _check_all(world)
    env = {**os.environ, "RCC_DATABASE_URL": world.settings.database_url, "RCC_LOG_LEVEL": "WARNING"}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "reports", "rebuild"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert '"skipped":0' in done.stdout and "replayed" in done.stderr
    after = await _check_all(world)
    assert after == before
