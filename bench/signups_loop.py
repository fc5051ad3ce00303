"""The sign-up bursts in one process, for measuring a change (bench/PROFILE.md §2): CPU time per sign-up request.

    python -m bench.signups_loop --rounds 5 [--signups 500] [--profile /tmp/signups.prof]

The gatherings and volunteering web apps (``role=web``: no relay, no consumers, no broker) run in this process on
uvloop against a fresh database (its schemas migrated); each round opens one connection per request (``GET
/healthz``, not measured), then sends every sign-up at once over raw sockets (a client that costs the same whatever
the services do) and reads the answers. Printed per target: this process's CPU time per request over the burst, per
round and the median, also with the opening of the connections, and the burst's time to settle. Run the old and the
new tree one after the other, several times (the machine's load still moves single rounds)."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from sqlalchemy.ext.asyncio import create_async_engine

from services.gatherings.app import create_app as gatherings_app
from services.registry import SCHEMAS
from services.volunteering.app import create_app as volunteering_app
from shared import access, eventloop
from shared.db import asyncpg_dsn
from shared.logging import configure_logging
from shared.migrate import upgrade
from shared.settings import Settings
from tests.support.databases import create_database, database_url, drop_database

# Per route ("events", "shifts"): wall-clock ms from the first request sent to the last answer read, per round.
settled: dict[str, list[float]] = {"events": [], "shifts": []}


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def _answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


async def _burst(port: int, path: str, token: str, bodies: list[bytes]) -> tuple[float, float, dict[str, int]]:
    opening = time.process_time()
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in bodies]
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    for _, writer in conns:
        writer.write(health)
    for reader, _ in conns:
        await _answer(reader)
    requests = [
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        for body in bodies
    ]
    began, began_wall = time.process_time(), time.perf_counter()
    for (_, writer), request in zip(conns, requests, strict=True):
        writer.write(request)
    answers = await asyncio.gather(*(_answer(reader) for reader, _ in conns))
    cpu = time.process_time() - began
    settled[path.split("/")[1]].append((time.perf_counter() - began_wall) * 1000)
    for _, writer in conns:
        writer.close()
    outcomes: dict[str, int] = {}
    for answer in answers:
        status = answer.split(b" ", 2)[1].decode()
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        key = f"{status} {body.get('status')}"
        outcomes[key] = outcomes.get(key, 0) + 1
    with_connections = time.process_time() - opening
    return cpu * 1000 / len(bodies), with_connections * 1000 / len(bodies), outcomes


async def _burst_process(port: int, path: str, token: str, bodies: list[bytes]) -> tuple[float, float, dict[str, int]]:
    """The benchmark's client, ``bench.burst``, in a process of its own: this process's CPU is then the servers'
    alone (connection opening included, as the benchmark counts it; the burst alone is not separable)."""
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl") as file:
        file.write(b"\n".join(bodies))
        file.flush()
        began = time.process_time()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.burst",
            f"http://127.0.0.1:{port}{path}",
            file.name,
            env={**os.environ, "BENCH_TOKEN": token},
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        cpu = time.process_time() - began
    result = json.loads(next(line for line in out.decode().splitlines() if line.startswith("BENCH_RESULT "))[13:])
    settled[path.split("/")[1]].append(result["settle_ms"])
    assert result["statuses"] == {"201": len(bodies)}, result["statuses"]
    outcomes = {f"201 {outcome}": count for outcome, count in result["outcomes"].items()}
    return math.nan, cpu * 1000 / len(bodies), outcomes


async def main(options: argparse.Namespace) -> None:
    configure_logging("WARNING", json=True)  # as the benchmark runs the services
    name = await create_database("rcc_loop")
    settings = Settings(
        database_url=database_url(name),
        role="web",
        log_level="WARNING",
        rate_limit_per_minute=1_000_000_000,
        rate_limit_burst=1_000_000_000,
    )
    # The schemas only: the web role uses no broker, so the loop runs whatever RabbitMQ is doing.
    for schema in SCHEMAS:
        await asyncio.to_thread(upgrade, settings.database_url, schema.name, schema.migrations)
    runners: list[web.AppRunner] = []
    try:
        gatherings_runner, gatherings = await _serve(gatherings_app(settings))
        volunteering_runner, volunteering = await _serve(volunteering_app(settings))
        runners = [gatherings_runner, volunteering_runner]
        gc.collect()  # as ``rcc serve`` does once its apps started
        gc.freeze()
        engine = create_async_engine(settings.database_url)
        site_id = f"loop-{uuid.uuid4().hex[:8]}"
        members = [uuid.uuid4() for _ in range(options.signups)]
        async with engine.begin() as conn:
            await access.create_site(
                conn,
                site_id,
                name="Loop",
                capacity=40,
                timezone="America/Chicago",
                closes_at=access.parse_closes_at("21:00"),
            )
            _, token = await access.issue_token(conn, role=access.Role.COORDINATOR, site_id=site_id, label="loop")
        await engine.dispose()
        db = await asyncpg.connect(asyncpg_dsn(settings.database_url))
        for schema in ("gatherings", "volunteering"):
            await db.executemany(
                f"INSERT INTO {schema}.known_members (member_id, site_id, registered_at) VALUES ($1, $2, now())",
                [(m, site_id) for m in members],
            )
        await db.close()
        role_id = f"loop_{uuid.uuid4().hex[:8]}"
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"}, timeout=aiohttp.ClientTimeout(total=120)
        ) as http:

            async def call(url: str, body: dict[str, Any], method: str = "POST") -> Any:
                async with http.request(method, url, json=body) as response:
                    assert response.status in (200, 201), (url, response.status, await response.text())
                    return await response.json()

            await call(f"http://127.0.0.1:{volunteering}/roles", {"role_id": role_id, "title": "Loop desk"})
            limit = asyncio.Semaphore(20)

            async def volunteer(m: uuid.UUID) -> None:
                async with limit:
                    await call(f"http://127.0.0.1:{volunteering}/volunteers/{m}", {"roles": [role_id]}, "PUT")

            await asyncio.gather(*(volunteer(m) for m in members))
            event_bodies = [json.dumps({"member_id": str(m), "adults": 1}).encode() for m in members]
            shift_bodies = [json.dumps({"member_id": str(m)}).encode() for m in members]
            cpu: dict[str, list[float]] = {"event": [], "shift": []}
            opening: dict[str, list[float]] = {"event": [], "shift": []}
            profile = cProfile.Profile() if options.profile else None
            for round_ in range(options.rounds):
                starts = (datetime.now(UTC) + timedelta(days=3, hours=4 * round_)).replace(microsecond=0)
                span = {"starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=3)).isoformat()}
                event = await call(
                    f"http://127.0.0.1:{gatherings}/events",
                    {"title": "Loop social", "kind": "sober_social", "capacity": options.event_seats, **span},
                )
                shift = await call(
                    f"http://127.0.0.1:{volunteering}/shifts",
                    {"role_id": role_id, "capacity": options.shift_seats, **span},
                )
                if profile:
                    profile.enable()
                for target, port, path, bodies, seats in (
                    (
                        "event",
                        gatherings,
                        f"/events/{event['event_id']}/registrations",
                        event_bodies,
                        options.event_seats,
                    ),
                    ("shift", volunteering, f"/shifts/{shift['shift_id']}/signups", shift_bodies, options.shift_seats),
                ):
                    burst = _burst_process if options.burst_process else _burst
                    per_request, with_connections, outcomes = await burst(port, path, token, bodies)
                    wanted = {"201 confirmed": seats, "201 waitlisted": len(bodies) - seats}
                    assert outcomes == wanted, (target, outcomes)
                    cpu[target].append(per_request)
                    opening[target].append(with_connections)
                if profile:
                    profile.disable()
                print(
                    f"round {round_ + 1}: event {cpu['event'][-1]:.3f} ms, shift {cpu['shift'][-1]:.3f} ms CPU/request",
                    flush=True,
                )
            if profile:
                profile.dump_stats(options.profile)
        print(
            f"median CPU/request: event {statistics.median(cpu['event']):.3f} ms, "
            f"shift {statistics.median(cpu['shift']):.3f} ms; with opening the connections: "
            f"event {statistics.median(opening['event']):.3f} ms, shift {statistics.median(opening['shift']):.3f} ms; "
            f"settled in: event {statistics.median(settled['events']):.0f} ms, "
            f"shift {statistics.median(settled['shifts']):.0f} ms"
        )
    finally:
        for runner in runners:
            await runner.cleanup()
        await drop_database(name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--signups", type=int, default=500)
    parser.add_argument("--event-seats", type=int, default=20)
    parser.add_argument("--shift-seats", type=int, default=5)
    parser.add_argument("--profile", help="write a cProfile of the bursts here")
    parser.add_argument(
        "--burst-process",
        action="store_true",
        help="send with bench.burst from its own process: the servers' CPU alone",
    )
    eventloop.run(main(parser.parse_args()))
