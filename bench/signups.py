"""3. Sign-up contention: N people sign up at once for a few seats, first come first served.

500 concurrent registrations for a 20-seat sober event (gatherings, ``POST /events/{id}/registrations``) and 500
concurrent sign-ups for a 5-seat volunteer shift (volunteering, ``POST /shifts/{id}/signups``), each from its own
connection, sent together by a separate load process (bench/burst.py). Every request of a burst takes the same
row lock, so this measures how fast the services serialise on it. Printed per target: time to settle all, p50
and p99 per request, and the correctness check: exactly the capacity confirmed, everyone else waitlisted, in the
answers and in the database.

Baseline: bench/baseline_signups.py, a bare aiohttp handler doing the same capacity check in one raw asyncpg
transaction (``SELECT … FOR UPDATE``, insert the sign-up, bump the count, write an outbox row), loaded with the
same bursts before the services start.

The services run as production scales them out: a ``web`` process per service answers the burst and a ``relay``
process of its own publishes the sign-up events, so the CPU per request printed is the web process's alone (the
relay's publishing is not in it; before, with ``role=all``, it was)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import create_async_engine

from bench import baseline_signups
from bench.common import (
    Figure,
    Goal,
    Outcome,
    Process,
    Stack,
    benchmark,
    free_port,
    ratio,
    say,
    write_lines,
)
from bench.load import percentiles
from shared import access

# Issue #19: group commit beats one transaction per sign-up by half, and p99 under 250 ms.
P99_GOAL_MS = Goal("<", 250.0)
SETTLE_RATIO_GOAL = Goal(">=", 2.0)
RESULT_MARKER = "BENCH_RESULT "
SETUP_CONCURRENCY = 20


def add_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--signups", type=int, default=500, help="people signing up at once, per target (500)")
    group.add_argument("--event-seats", type=int, default=20, help="the sober event's capacity (20)")
    group.add_argument("--shift-seats", type=int, default=5, help="the volunteer shift's capacity (5)")


@dataclass(frozen=True)
class Burst:
    settle_ms: float
    p50_ms: float | None
    p99_ms: float | None
    statuses: dict[str, int]
    outcomes: dict[str, int]
    # The server process's CPU time over the burst per request, opening the connections included (both targets).
    cpu_ms: float | None = None

    @property
    def failed(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "201")


@benchmark(
    "signups",
    "500 concurrent sign-ups for a 20-seat event and a 5-seat shift vs raw asyncpg",
    options=add_options,
    parameters=("signups", "event_seats", "shift_seats"),
)
async def run(options: argparse.Namespace, stack: Stack) -> Outcome:
    site = await stack.seed_site()
    coordinator = await _coordinator_token(stack, site.site_id)
    members = [uuid.uuid4() for _ in range(options.signups)]
    targets = {"event": options.event_seats, "shift": options.shift_seats}

    floors = await _baseline(stack, members, targets)

    # As production scales out: the web process answers, a relay process of its own publishes the sign-up events.
    gatherings = await stack.start_service("gatherings", role="web")
    volunteering = await stack.start_service("volunteering", role="web")
    await stack.start_service("gatherings", role="relay")
    await stack.start_service("volunteering", role="relay")
    # Members check-in registered, as the two services know them once its events arrived (not timed).
    for schema in ("gatherings", "volunteering"):
        await stack.db.executemany(
            f"INSERT INTO {schema}.known_members (member_id, site_id, registered_at) VALUES ($1, $2, now())",
            [(m, site.site_id) for m in members],
        )
    say(
        f"setting up {len(members):,} volunteers, a {options.shift_seats}-seat shift and "
        f"a {options.event_seats}-seat event"
    )
    shift_id, event_id = await _set_up(volunteering.url, gatherings.url, coordinator, members, targets)
    urls = {
        "event": f"{gatherings.url}/events/{event_id}/registrations",
        "shift": f"{volunteering.url}/shifts/{shift_id}/signups",
    }
    bodies = {
        "event": [json.dumps({"member_id": str(m), "adults": 1}) for m in members],
        "shift": [json.dumps({"member_id": str(m)}) for m in members],
    }
    stored = {
        "event": (
            "SELECT status, count(*) FROM gatherings.registrations WHERE gathering_id = $1 GROUP BY status",
            event_id,
        ),
        "shift": ("SELECT status, count(*) FROM volunteering.signups WHERE shift_id = $1 GROUP BY status", shift_id),
    }
    outcome = Outcome()
    for target, seats in targets.items():
        server = gatherings if target == "event" else volunteering
        real = await _burst(stack, f"{target}", urls[target], bodies[target], coordinator, server)
        in_db = {row[0]: row[1] for row in await stack.db.fetch(stored[target][0], uuid.UUID(stored[target][1]))}
        verdict = _verdict(real, in_db, seats, len(members))
        floor = floors[target]
        name = f"{seats}-seat {target}"
        outcome.figures += [
            Figure(f"{name}: time to settle {len(members)}", real.settle_ms, "ms"),
            Figure(f"{name}: p50 per request", real.p50_ms, "ms"),
            Figure(f"{name}: p99 per request", real.p99_ms, "ms", P99_GOAL_MS),
            Figure(f"{name}: correct (confirmed = seats, rest waitlisted)", verdict),
            Figure(f"{name}: baseline time to settle", floor.settle_ms, "ms"),
            Figure(f"{name}: baseline p99 per request", floor.p99_ms, "ms"),
            Figure(
                f"{name}: baseline / service time to settle",
                ratio(floor.settle_ms, real.settle_ms),
                "",
                SETTLE_RATIO_GOAL,
            ),
            Figure(f"{name}: service process CPU per request", real.cpu_ms, "ms"),
            Figure(f"{name}: baseline process CPU per request", floor.cpu_ms, "ms"),
        ]
        if not verdict.startswith("yes"):
            outcome.notes.append(f"{name}: {verdict}; answers {real.statuses}, outcomes {real.outcomes}")
        if floor.failed or _verdict(floor, None, seats, len(members)) != "yes":
            outcome.notes.append(f"{name}: the baseline answered {floor.statuses}, outcomes {floor.outcomes}")
    return outcome


def _verdict(burst: Burst, in_db: dict[str, int] | None, seats: int, people: int) -> str:
    wanted = {"confirmed": seats, "waitlisted": people - seats}
    if burst.failed:
        return f"NO: {burst.failed} requests failed"
    if burst.outcomes != wanted:
        return f"NO: answers {burst.outcomes}"
    if in_db is not None and in_db != wanted:
        return f"NO: database {in_db}"
    return "yes"


async def _baseline(stack: Stack, members: list[uuid.UUID], targets: dict[str, int]) -> dict[str, Burst]:
    await stack.db.execute(baseline_signups.SCHEMA_SQL)
    port = free_port()
    server = await stack.start(
        "baseline-signups",
        [
            sys.executable,
            "-m",
            "bench.baseline_signups",
            "--port",
            str(port),
            "--dsn",
            stack.dsn,
            "--pool-size",
            str(stack.settings.db_pool_size),
        ],
        port,
    )
    floors = {}
    bodies = [json.dumps({"member_id": str(m)}) for m in members]
    for target, seats in targets.items():
        target_id = uuid.uuid4()
        await stack.db.execute(
            f"INSERT INTO {baseline_signups.TARGETS} (target_id, capacity) VALUES ($1, $2)", target_id, seats
        )
        floors[target] = await _burst(
            stack, f"baseline {target}", f"{server.url}/targets/{target_id}/signups", bodies, "", server
        )
    await stack.stop(server)
    await stack.db.execute(baseline_signups.DROP_SQL)
    return floors


async def _burst(stack: Stack, name: str, url: str, bodies: list[str], token: str, server: Process) -> Burst:
    """Run bench/burst.py as its own process, so the load generator does not share a CPU-bound event loop."""
    path = write_lines(stack.workdir / f"burst-{name.replace(' ', '-')}.jsonl", bodies)
    say(f"{name}: {len(bodies):,} sign-ups at once")
    cpu_before = server.cpu_seconds()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.burst",
        url,
        str(path),
        env={**os.environ, "BENCH_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 300)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    cpu_after = server.cpu_seconds()
    cpu_ms = (cpu_after - cpu_before) * 1000 / len(bodies) if cpu_after is not None and cpu_before is not None else None
    text = out.decode(errors="replace")
    line = next((line for line in text.splitlines() if line.startswith(RESULT_MARKER)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"bench.burst failed ({proc.returncode}):\n{text[-3000:]}")
    result = json.loads(line.removeprefix(RESULT_MARKER))
    p50, p99 = percentiles(result["latencies_ms"])
    burst = Burst(result["settle_ms"], p50, p99, result["statuses"], result["outcomes"], cpu_ms)
    say(
        f"{name}: settled in {burst.settle_ms:,.0f} ms, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"answers {burst.statuses}, {burst.outcomes}"
    )
    return burst


async def _coordinator_token(stack: Stack, site_id: str) -> str:
    engine = create_async_engine(stack.settings.database_url)
    try:
        async with engine.begin() as conn:
            _, token = await access.issue_token(conn, role=access.Role.COORDINATOR, site_id=site_id, label="bench")
    finally:
        await engine.dispose()
    return token


async def _set_up(
    volunteering: str, gatherings: str, token: str, members: list[uuid.UUID], targets: dict[str, int]
) -> tuple[str, str]:
    """A role, a volunteer profile holding it per member, the shift and the event, over HTTP (not timed)."""
    headers = {"Authorization": f"Bearer {token}"}
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    ends = starts + timedelta(hours=3)
    role_id = f"bench_{uuid.uuid4().hex[:8]}"
    limit = asyncio.Semaphore(SETUP_CONCURRENCY)
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def call(method: str, url: str, body: dict[str, Any], expected: int) -> Any:
            async with limit, http.request(method, url, json=body) as response:
                answer = await response.json(content_type=None)
                if response.status != expected:
                    raise RuntimeError(f"{method} {url}: {response.status} {answer}")
                return answer

        await call("POST", f"{volunteering}/roles", {"role_id": role_id, "title": "Benchmark desk"}, 201)
        await asyncio.gather(
            *(call("PUT", f"{volunteering}/volunteers/{m}", {"roles": [role_id]}, 200) for m in members)
        )
        shift = await call(
            "POST",
            f"{volunteering}/shifts",
            {
                "role_id": role_id,
                "starts_at": starts.isoformat(),
                "ends_at": ends.isoformat(),
                "capacity": targets["shift"],
            },
            201,
        )
        event = await call(
            "POST",
            f"{gatherings}/events",
            {
                "title": "Benchmark social",
                "kind": "sober_social",
                "starts_at": starts.isoformat(),
                "ends_at": ends.isoformat(),
                "capacity": targets["event"],
            },
            201,
        )
    return shift["shift_id"], event["event_id"]
