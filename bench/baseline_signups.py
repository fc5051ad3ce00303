"""The floor for a sign-up against a capacity: a bare aiohttp handler doing what any sign-up must do, in one raw
asyncpg transaction: lock the shift's (or event's) row, compare the confirmed count with the capacity, insert the
sign-up as confirmed or waitlisted (with its place in line), bump the count, and write the event's outbox row.
No auth, no validation beyond JSON, no qualification or overlap checks.

    python -m bench.baseline_signups --port P --dsn postgresql://... [--pool-size N]

    POST /targets/{target_id}/signups  {"member_id": "..."}  → 201 {"status": "confirmed" | "waitlisted", ...}

Its tables (``SCHEMA_SQL``) are scratch tables the benchmark creates in the ``public`` schema."""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from shared import eventloop
from shared.events import format_time

POOL = web.AppKey("pool", asyncpg.Pool)

TARGETS = "public.bench_baseline_targets"
SIGNUPS = "public.bench_baseline_signups"
OUTBOX = "public.bench_baseline_outbox"
SCHEMA_SQL = f"""
    CREATE TABLE {TARGETS} (
        target_id uuid PRIMARY KEY, capacity int NOT NULL, confirmed int NOT NULL DEFAULT 0,
        waitlisted int NOT NULL DEFAULT 0
    );
    CREATE TABLE {SIGNUPS} (
        signup_id uuid PRIMARY KEY, target_id uuid NOT NULL REFERENCES {TARGETS}, member_id uuid NOT NULL,
        status text NOT NULL, position int, signed_up_at timestamptz NOT NULL, UNIQUE (target_id, member_id)
    );
    -- Shaped like every service's outbox (columns, identity, indexes); no NOTIFY trigger, no relay.
    CREATE TABLE {OUTBOX} (LIKE volunteering.outbox INCLUDING ALL);
"""
DROP_SQL = f"DROP TABLE IF EXISTS {OUTBOX}, {SIGNUPS}, {TARGETS}"

LOCK_TARGET = f"SELECT capacity, confirmed, waitlisted FROM {TARGETS} WHERE target_id = $1 FOR UPDATE"
INSERT_SIGNUP = f"""
    INSERT INTO {SIGNUPS} (signup_id, target_id, member_id, status, position, signed_up_at)
    VALUES ($1, $2, $3, $4, $5, $6)
"""
COUNT_CONFIRMED = f"UPDATE {TARGETS} SET confirmed = confirmed + 1 WHERE target_id = $1"
COUNT_WAITLISTED = f"UPDATE {TARGETS} SET waitlisted = waitlisted + 1 WHERE target_id = $1"
INSERT_OUTBOX = f"""
    INSERT INTO {OUTBOX} (event_id, type, subject, site_id, actor_id, time, data, dataschema, classification)
    VALUES ($1, $2, $3, 'bench', $4, $5, $6::jsonb, 'bench', 'internal')
"""
ACTOR = f"token:{uuid.UUID(int=0)}"


async def sign_up(request: web.Request) -> web.Response:
    target_id = uuid.UUID(request.match_info["target_id"])
    member_id = uuid.UUID((await request.json())["member_id"])
    signup_id, now = uuid.uuid4(), datetime.now(UTC)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        target = await conn.fetchrow(LOCK_TARGET, target_id)
        if target is None:
            return web.json_response({"code": "not_found"}, status=404)
        if target["confirmed"] < target["capacity"]:
            status, position = "confirmed", None
            await conn.execute(COUNT_CONFIRMED, target_id)
        else:
            status, position = "waitlisted", target["waitlisted"] + 1
            await conn.execute(COUNT_WAITLISTED, target_id)
        await conn.execute(INSERT_SIGNUP, signup_id, target_id, member_id, status, position, now)
        data = {
            "signup_id": str(signup_id),
            "target_id": str(target_id),
            "member_id": str(member_id),
            "status": status,
            "position": position,
            "at": format_time(now),
        }
        await conn.execute(INSERT_OUTBOX, uuid.uuid4(), f"bench.{status}", str(target_id), ACTOR, now, json.dumps(data))
    return web.json_response(
        {"signup_id": str(signup_id), "member_id": str(member_id), "status": status, "position": position},
        status=201,
    )


async def ready(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def create_app(dsn: str, pool_size: int) -> web.Application:
    app = web.Application()

    async def pool(app: web.Application) -> AsyncIterator[None]:
        app[POOL] = await asyncpg.create_pool(
            dsn,
            min_size=pool_size,
            max_size=pool_size,
            server_settings={"application_name": "rcc-bench-baseline"},
        )
        yield
        await app[POOL].close()

    app.cleanup_ctx.append(pool)
    app.router.add_post("/targets/{target_id}/signups", sign_up)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/healthz", ready)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True, help="postgresql://… of the benchmark's database")
    parser.add_argument("--pool-size", type=int, default=10, help="asyncpg pool size (min = max)")
    args = parser.parse_args()
    # Like the services: one process, their event loop (shared.eventloop), no access log, the same listen backlog.
    web.run_app(
        create_app(args.dsn, args.pool_size),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=eventloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
