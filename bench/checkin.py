"""1. Kiosk check-in throughput and latency.

wrk loads ``POST /visits`` (a kiosk token, a distinct member per request, 32 connections) for a fixed time after
a short warm-up, first against the baseline (bench/baseline_checkin.py: one raw asyncpg transaction of the two
inserts), then against the check-in service. The audit service runs throughout, as in production.

Check-in runs as production scales it out: a ``--role web`` process answers the load and a ``--role relay``
process publishes its outbox, so the web process's CPU per request (the ratio's figure) counts what a request
costs, and the relay's CPU per event and the backlog it left when the load stopped say whether it keeps up.

Order: the baseline goes first, while the check-in service (and so its outbox relay) is not running; its outbox
rows are then marked published and its visits closed, so the real run starts from a table state a center could
have, and the relay publishes only the real run's events."""

from __future__ import annotations

import argparse
import math
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    Figure,
    Goal,
    Outcome,
    Process,
    SeededSite,
    Stack,
    benchmark,
    free_port,
    ratio,
    say,
    write_lines,
)
from bench.load import LoadResult, wrk_post_lines

# Issue #19: both ratios at least 0.6, and a p99 within 1.5 times the baseline's at the same concurrency.
RATIO_GOAL = Goal(">=", 0.6)
P99_RATIO_GOAL = Goal("<=", 1.5)
# The relay keeps up when what it left unsent at the end is less than a second of the load.
BACKLOG_GOAL_S = Goal("<", 1.0)
# Each phase of a target's load, with the option that says how long it lasts.
PHASES = {"warmup": "warmup", "measured": "duration"}


def add_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--duration", type=int, default=30, help="seconds of measured load per target (30)")
    group.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load before it (2)")
    group.add_argument("--connections", type=int, default=32, help="concurrent connections (32)")
    group.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    group.add_argument(
        "--members-per-second",
        type=int,
        default=6_000,
        help="distinct members seeded per second of load and target; more than the server can check in (6000)",
    )


@benchmark(
    "checkin",
    "kiosk POST /visits vs a raw asyncpg handler",
    options=add_options,
    parameters=("duration", "warmup", "connections", "threads"),
)
async def run(options: argparse.Namespace, stack: Stack) -> Outcome:
    site = await stack.seed_site()
    await stack.start_service("audit")  # events are routable and consumed while we load, as in production
    bodies = await _seed_bodies(stack, site, options)

    baseline_port = free_port()
    baseline = await stack.start(
        "baseline-checkin",
        [
            sys.executable,
            "-m",
            "bench.baseline_checkin",
            "--port",
            str(baseline_port),
            "--dsn",
            stack.dsn,
            "--site",
            site.site_id,
            "--pool-size",
            str(stack.settings.db_pool_size),
        ],
        baseline_port,
    )
    floor = await _warm_and_measure(stack, "baseline", baseline, bodies["baseline"], site, options)
    await stack.stop(baseline)
    await _retire_baseline_rows(stack)

    relay_started = await stack.db.fetchval("SELECT clock_timestamp()")
    relay = await stack.start_service("checkin", role="relay")
    checkin = await stack.start_service("checkin", role="web")
    real = await _warm_and_measure(stack, "checkin", checkin, bodies["checkin"], site, options, relay=relay)
    backlog = await stack.db.fetchval("SELECT count(*) FROM checkin.outbox WHERE published_at IS NULL")
    rate = real.load.requests_per_s
    # A pass marks its rows with its transaction's now(): distinct times are passes.
    per_pass = await stack.db.fetchval(
        "SELECT count(*)::float8 / nullif(count(DISTINCT published_at), 0) FROM checkin.outbox WHERE published_at > $1",
        relay_started,
    )

    outcome = Outcome(
        figures=[
            *_load_figures("check-in", real.load),
            *_load_figures("baseline", floor.load),
            Figure("check-in / baseline requests/s", ratio(rate, floor.load.requests_per_s), "", RATIO_GOAL),
            Figure("check-in web process CPU per request", real.cpu_ms, "ms"),
            Figure("baseline process CPU per request", floor.cpu_ms, "ms"),
            Figure("baseline / check-in CPU per request", ratio(floor.cpu_ms, real.cpu_ms), "", RATIO_GOAL),
            Figure("check-in p99 / baseline p99", ratio(real.load.p99_ms, floor.load.p99_ms), "", P99_RATIO_GOAL),
            Figure("check-in relay process CPU per event", real.relay_cpu_us, "µs"),
            Figure("events per relay pass", per_pass, "events"),
            Figure("outbox backlog when the load stopped", backlog, "events"),
            Figure("the backlog in seconds of load", backlog / rate if rate else None, "s", BACKLOG_GOAL_S),
        ]
    )
    for name, result in (("check-in", real.load), ("baseline", floor.load)):
        if result.reused:
            outcome.notes.append(
                f"{name}: {result.reused} requests reused a member (409s among the errors); raise --members-per-second"
            )
        elif result.errors:
            outcome.notes.append(f"{name}: {result.errors} errors (--keep-workdir keeps the service logs)")
    return outcome


async def _seed_bodies(stack: Stack, site: SeededSite, options: argparse.Namespace) -> dict[str, dict[str, Path]]:
    """One file of request bodies per target and phase, each member in exactly one of them."""
    sizes = {phase: math.ceil(options.members_per_second * getattr(options, o)) for phase, o in PHASES.items()}
    total = 2 * sum(sizes.values())
    say(f"seeding {total:,} members")
    members = iter(await stack.seed_members(site.site_id, total))
    files: dict[str, dict[str, Path]] = {}
    for target in ("baseline", "checkin"):
        files[target] = {
            phase: write_lines(
                stack.workdir / f"{target}-{phase}.jsonl",
                (check_in_body(next(members)) for _ in range(size)),
            )
            for phase, size in sizes.items()
        }
    return files


def check_in_body(member_id: uuid.UUID) -> str:
    """A kiosk's check-in by member id, as the kiosk sends it."""
    return f'{{"member_id": "{member_id}", "purpose": "drop_in"}}'


@dataclass(frozen=True)
class Measured:
    load: LoadResult
    cpu_ms: float | None  # the server process's CPU per request
    relay_cpu_us: float | None = None  # the relay process's CPU per event it published meanwhile


async def _warm_and_measure(
    stack: Stack,
    target: str,
    server: Process,
    bodies: dict[str, Path],
    site: SeededSite,
    options: argparse.Namespace,
    *,
    relay: Process | None = None,
) -> Measured:
    """The measured load, and the server process's CPU milliseconds per request during it (and the relay's per event
    it published meanwhile). On a shared machine the CPU cost is the steadier figure: throughput also depends on
    how much of the CPUs the process got."""
    results, cpu = {}, {}
    relay_before, published_before = None, 0
    for phase, option in PHASES.items():
        seconds = getattr(options, option)
        say(f"{target}: {phase} for {seconds:g}s")
        cpu[phase] = server.cpu_seconds()
        if phase == "measured" and relay is not None:
            relay_before, published_before = relay.cpu_seconds(), await _published(stack)
        results[phase] = await wrk_post_lines(
            server.url + "/visits",
            bodies[phase],
            token=site.kiosk_token,
            seconds=seconds,
            connections=options.connections,
            threads=options.threads,
            log=stack.workdir / f"wrk-{target}.log",
        )
    measured = results["measured"]
    cpu_ms = _per(cpu["measured"], server.cpu_seconds(), measured.requests, 1000)
    relay_cpu_us = None
    if relay is not None:
        published = await _published(stack) - published_before
        relay_cpu_us = _per(relay_before, relay.cpu_seconds(), published, 1_000_000)
    say(
        f"{target}: {measured.requests_per_s:,.0f} requests/s, p50 {measured.p50_ms:.1f} ms, "
        f"p99 {measured.p99_ms:.1f} ms, {measured.errors} errors"
        + (f", {cpu_ms:.2f} ms CPU per request" if cpu_ms is not None else "")
        + (f", relay {relay_cpu_us:.0f} µs CPU per event" if relay_cpu_us is not None else "")
    )
    return Measured(measured, cpu_ms, relay_cpu_us)


def _per(before: float | None, after: float | None, count: int, unit: int) -> float | None:
    """CPU seconds between two readings, per item, in ``unit`` parts of a second."""
    if before is None or after is None or not count:
        return None
    return (after - before) * unit / count


async def _published(stack: Stack) -> int:
    count: int = await stack.db.fetchval("SELECT count(*) FROM checkin.outbox WHERE published_at IS NOT NULL")
    return count


async def _retire_baseline_rows(stack: Stack) -> None:
    """The baseline's outbox rows must not reach the relay, and its open visits are not part of the real run."""
    async with stack.db.transaction():
        await stack.db.execute("UPDATE checkin.outbox SET published_at = now() WHERE published_at IS NULL")
        await stack.db.execute(
            "UPDATE checkin.visits SET checked_out_at = now(), closed_by = 'kiosk' WHERE checked_out_at IS NULL"
        )
    await stack.db.execute("VACUUM ANALYZE checkin.visits, checkin.outbox")


def _load_figures(name: str, result: LoadResult) -> list[Figure]:
    return [
        Figure(f"{name} requests/s", result.requests_per_s, "req/s"),
        Figure(f"{name} p50 latency", result.p50_ms, "ms"),
        Figure(f"{name} p99 latency", result.p99_ms, "ms"),
        Figure(f"{name} errors (non-2xx + socket)", result.errors, f"of {result.requests:,}"),
    ]
