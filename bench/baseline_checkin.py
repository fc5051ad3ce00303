"""The floor for ``POST /visits``: a bare aiohttp handler doing the minimum a check-in must do, one transaction
inserting a visit row and an outbox row with raw asyncpg. No auth, no validation beyond JSON, no idempotency.

    python -m bench.baseline_checkin --port P --dsn postgresql://... --site SITE_ID

It writes the real tables (``checkin.visits``, ``checkin.outbox``) with rows of the real shape, so PostgreSQL does
the same work for both; the benchmark runs it while the real check-in service (whose relay would publish these
outbox rows) is stopped."""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from services.checkin.domain import support_type_of
from shared import eventloop
from shared.contracts.checkin import VisitorCheckedIn
from shared.events import format_time

POOL = web.AppKey("pool", asyncpg.Pool)
SITE = web.AppKey("site", str)

INSERT_VISIT = """
    INSERT INTO checkin.visits (visit_id, site_id, member_id, purpose, support_type, ref, checked_in_at)
    VALUES ($1, $2, $3, $4, $5, NULL, $6)
"""
INSERT_OUTBOX = """
    INSERT INTO checkin.outbox (event_id, type, subject, site_id, actor_id, time, data, dataschema, classification)
    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)
"""
EVENT_TYPE = VisitorCheckedIn.event_type
DATASCHEMA = VisitorCheckedIn.dataschema()
CLASSIFICATION = VisitorCheckedIn.classification
ACTOR = f"token:{uuid.UUID(int=0)}"  # the real rows carry the kiosk token's id: same width


async def check_in(request: web.Request) -> web.Response:
    body = await request.json()
    member_id = uuid.UUID(body["member_id"])
    purpose = body["purpose"]
    support_type = support_type_of(purpose)
    site_id = request.app[SITE]
    visit_id, event_id, now = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
    data = {
        "visit_id": str(visit_id),
        "member_id": str(member_id),
        "anonymous": False,
        "purpose": purpose,
        "support_type": support_type,
        "ref": None,
        "checked_in_at": format_time(now),
    }
    try:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            await conn.execute(INSERT_VISIT, visit_id, site_id, member_id, purpose, support_type, now)
            await conn.execute(
                INSERT_OUTBOX,
                event_id,
                EVENT_TYPE,
                str(visit_id),
                site_id,
                ACTOR,
                now,
                json.dumps(data),
                DATASCHEMA,
                CLASSIFICATION,
            )
    except asyncpg.UniqueViolationError:
        return web.json_response({"code": "already_checked_in"}, status=409)
    return web.json_response(
        {"visit_id": str(visit_id), "member_id": str(member_id), "checked_in_at": format_time(now)}, status=201
    )


async def ready(_request: web.Request) -> web.Response:
    # The pool opens before the server listens: answering at all means ready.
    return web.json_response({"status": "ready"})


def create_app(dsn: str, site_id: str, pool_size: int) -> web.Application:
    app = web.Application()
    app[SITE] = site_id

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
    app.router.add_post("/visits", check_in)
    app.router.add_get("/readyz", ready)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True, help="postgresql://… of the benchmark's database")
    parser.add_argument("--site", required=True, help="the site every visit is recorded at")
    parser.add_argument("--pool-size", type=int, default=10, help="asyncpg pool size (min = max)")
    args = parser.parse_args()
    # Like the services: one process, their event loop (shared.eventloop), no access log.
    web.run_app(
        create_app(args.dsn, args.site, args.pool_size),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=eventloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
