"""Scale-out of the kiosk check-in on one machine: two ``--role web`` replicas of check-in against one, same run.

One relay replica and the audit service run throughout (the events go where they go in production). First one web
replica takes wrk's load for the measured time; then a second replica starts and each replica takes half the
connections (wrk against each, as a load balancer would spread them), for the same time. The ratio of the
throughputs is printed: on 2 cores, shared with PostgreSQL, RabbitMQ, the relay and wrk itself, expect little more
than 1; the point is that replicas are correct and the figure measured, not that this machine gets faster."""

from __future__ import annotations

import argparse
import asyncio
import math
from pathlib import Path

from bench.checkin import check_in_body
from bench.common import Figure, Outcome, Process, SeededSite, Stack, benchmark, ratio, say, write_lines
from bench.load import LoadResult, wrk_post_lines


def add_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--scaleout-duration", type=int, default=20, help="seconds of measured load per setup (20)")
    group.add_argument("--scaleout-connections", type=int, default=32, help="connections in all (32)")
    group.add_argument(
        "--scaleout-members-per-second",
        type=int,
        default=4_000,
        help="distinct members seeded per second of load and setup; more than the servers can check in (4000)",
    )


@benchmark(
    "scaleout",
    "two check-in web replicas vs one",
    options=add_options,
    parameters=("scaleout_duration", "scaleout_connections"),
)
async def run(options: argparse.Namespace, stack: Stack) -> Outcome:
    site = await stack.seed_site()
    await stack.start_service("audit")
    await stack.start_service("checkin", role="relay")
    per_setup = math.ceil(options.scaleout_members_per_second * options.scaleout_duration)
    say(f"seeding {2 * per_setup:,} members")
    members = iter(await stack.seed_members(site.site_id, 2 * per_setup))
    bodies = {
        setup: [
            write_lines(
                stack.workdir / f"scaleout-{setup}-{n}.jsonl",
                (check_in_body(next(members)) for _ in range(per_setup // replicas)),
            )
            for n in range(replicas)
        ]
        for setup, replicas in (("one", 1), ("two", 2))
    }

    first = await stack.start_service("checkin", role="web")
    one, one_cpu = await _load(stack, [first], bodies["one"], site, options)
    second = await stack.start_service("checkin", role="web")
    two, two_cpu = await _load(stack, [first, second], bodies["two"], site, options)

    one_rps = sum(r.requests_per_s for r in one)
    two_rps = sum(r.requests_per_s for r in two)
    errors = sum(r.errors for r in one + two)
    say(f"one web replica {one_rps:,.0f} requests/s; two {two_rps:,.0f} requests/s; ratio {two_rps / one_rps:.2f}")
    outcome = Outcome(
        figures=[
            Figure("one web replica requests/s", one_rps, "req/s"),
            Figure("two web replicas requests/s", two_rps, "req/s"),
            Figure("two / one requests/s", ratio(two_rps, one_rps), ""),
            Figure("one replica p99 latency", max(r.p99_ms for r in one), "ms"),
            Figure("two replicas p99 latency (the worse replica)", max(r.p99_ms for r in two), "ms"),
            Figure("one replica CPU per request", one_cpu, "ms"),
            Figure("two replicas CPU per request", two_cpu, "ms"),
            Figure("errors (non-2xx + socket)", errors, f"of {sum(r.requests for r in one + two):,}"),
        ]
    )
    return outcome


async def _load(
    stack: Stack, replicas: list[Process], bodies: list[Path], site: SeededSite, options: argparse.Namespace
) -> tuple[list[LoadResult], float | None]:
    """Each replica's load, and the web replicas' CPU milliseconds per request together: on a shared machine the
    steadier figure (throughput also depends on how much of the CPUs the processes got)."""
    connections = options.scaleout_connections // len(replicas)
    say(f"{len(replicas)} web replica(s): {connections} connections each for {options.scaleout_duration}s")
    before = [replica.cpu_seconds() for replica in replicas]
    results = list(
        await asyncio.gather(
            *(
                wrk_post_lines(
                    replica.url + "/visits",
                    body,
                    token=site.kiosk_token,
                    seconds=options.scaleout_duration,
                    connections=connections,
                    threads=1,
                    log=stack.workdir / f"wrk-scaleout-{len(replicas)}-{n}.log",
                )
                for n, (replica, body) in enumerate(zip(replicas, bodies, strict=True))
            )
        )
    )
    after = [replica.cpu_seconds() for replica in replicas]
    requests = sum(r.requests for r in results)
    if None in before or None in after or not requests:
        return results, None
    used = sum(a - b for a, b in zip(after, before, strict=True) if a is not None and b is not None)
    return results, used * 1000 / requests
