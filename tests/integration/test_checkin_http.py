"""The check-in service over HTTP against the real database: idempotency, concurrency, reads, erasure; the audit
log's database protections; migrations that can be repeated."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from services.audit import DB_ROLE
from services.audit.commands import AppendToAuditLog
from services.audit.handlers import append_to_audit_log
from services.audit.models import AuditUnitOfWork
from services.audit.models import Base as AuditBase
from services.cli import migrate
from services.registry import ROOT, SCHEMAS
from shared.clock import SystemClock
from shared.db import asyncpg_dsn, create_engine, make_connector
from shared.events import ReceivedEvent, canonical_json
from shared.settings import Settings
from shared.uow import execute
from tests.integration.helpers import cloud_event
from tests.support.databases import create_database, database_url, drop_database
from tests.support.stack import Client, Reply, SiteUnderTest, make_site

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(asyncpg_dsn(settings.database_url), min_size=1, max_size=4)
    yield pool
    await pool.close()


async def register(stack: Client, site: SiteUnderTest, nickname: str | None = None, **kw: Any) -> Reply:
    body = {} if nickname is None else {"nickname": nickname}
    reply = await stack.call("checkin", "POST", "/members", token=site.tokens["kiosk"], json=body, **kw)
    assert reply.status == 201, reply.body
    return reply


async def check_in(stack: Client, site: SiteUnderTest, body: dict[str, Any], **kw: Any) -> Reply:
    return await stack.call("checkin", "POST", "/visits", token=site.tokens["kiosk"], json=body, **kw)


async def outbox_rows(db: asyncpg.Pool, event_type: str, subject: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM checkin.outbox WHERE type = $1 AND subject = $2 ORDER BY sequence", event_type, subject
    )


# Idempotency-Key


async def test_a_replayed_check_in_returns_the_first_visit_and_writes_nothing(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    member = await register(stack, site)
    body = {"kiosk_code": member.body["kiosk_code"], "purpose": "drop_in"}
    key = {"Idempotency-Key": f"visit-{uuid.uuid4()}"}

    first = await check_in(stack, site, body, headers=key)
    again = await check_in(stack, site, body, headers=key)

    assert first.status == again.status == 201, (first.body, again.body)
    assert again.body == first.body
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers.get("Idempotent-Replayed") == "true"
    visit_id = first.body["visit_id"]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM checkin.visits WHERE member_id = $1", uuid.UUID(member.body["member_id"])
        )
        == 1
    )
    assert len(await outbox_rows(db, "checkin.visitor_checked_in", visit_id)) == 1

    reused = await check_in(stack, site, {**body, "purpose": "education"}, headers=key)
    assert reused.status == 422, reused.body
    assert reused.body["code"] == "idempotency_key_reused"
    assert await db.fetchval("SELECT count(*) FROM checkin.visits WHERE site_id = $1", site.site_id) == 1


async def test_a_replayed_registration_returns_the_first_member(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    key = {"Idempotency-Key": f"member-{uuid.uuid4()}"}
    first = await register(stack, site, "Robin", headers=key)
    again = await register(stack, site, "Robin", headers=key)

    assert again.body == first.body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await db.fetchval("SELECT count(*) FROM checkin.members WHERE site_id = $1", site.site_id) == 1
    assert len(await outbox_rows(db, "checkin.member_registered", first.body["member_id"])) == 1

    reused = await stack.call(
        "checkin", "POST", "/members", token=site.tokens["kiosk"], json={"nickname": "Kim"}, headers=key
    )
    assert reused.status == 422
    assert reused.body["code"] == "idempotency_key_reused"
    assert await db.fetchval("SELECT count(*) FROM checkin.members WHERE site_id = $1", site.site_id) == 1


# Concurrency


async def test_concurrent_check_ins_of_one_member_open_exactly_one_visit(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    member = await register(stack, site)
    body = {"kiosk_code": member.body["kiosk_code"], "purpose": "recovery_group"}

    replies = await asyncio.gather(*(check_in(stack, site, body) for _ in range(20)))

    created = [r for r in replies if r.status == 201]
    refused = [r for r in replies if r.status != 201]
    assert len(created) == 1, [r.status for r in replies]
    visit_id = created[0].body["visit_id"]
    assert {r.status for r in refused} == {409}
    assert {r.body["code"] for r in refused} == {"already_checked_in"}
    assert {r.body["visit_id"] for r in refused} == {visit_id}
    assert (
        await db.fetchval(
            "SELECT count(*) FROM checkin.visits WHERE member_id = $1", uuid.UUID(member.body["member_id"])
        )
        == 1
    )
    assert len(await outbox_rows(db, "checkin.visitor_checked_in", visit_id)) == 1


async def test_concurrent_requests_with_one_idempotency_key_all_get_the_one_visit(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    member = await register(stack, site)
    body = {"kiosk_code": member.body["kiosk_code"], "purpose": "drop_in"}
    key = {"Idempotency-Key": f"burst-{uuid.uuid4()}"}

    replies = await asyncio.gather(*(check_in(stack, site, body, headers=key) for _ in range(20)))

    assert [r.status for r in replies] == [201] * 20, [(r.status, r.body) for r in replies if r.status != 201]
    assert len({r.body["visit_id"] for r in replies}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in replies) == 19
    assert await db.fetchval("SELECT count(*) FROM checkin.visits WHERE site_id = $1", site.site_id) == 1
    assert len(await outbox_rows(db, "checkin.visitor_checked_in", replies[0].body["visit_id"])) == 1


# Check-out, occupancy, listing


async def test_checking_out_twice_is_a_conflict(stack: Client, site: SiteUnderTest, db: asyncpg.Pool) -> None:
    member = await register(stack, site)
    visit = await check_in(stack, site, {"kiosk_code": member.body["kiosk_code"], "purpose": "education"})
    path = f"/visits/{visit.body['visit_id']}/checkout"

    out = await stack.call("checkin", "POST", path, token=site.tokens["kiosk"])
    again = await stack.call("checkin", "POST", path, token=site.tokens["kiosk"])

    assert out.status == 200, out.body
    assert out.body["visit_id"] == visit.body["visit_id"]
    assert out.body["minutes"] == 0
    assert again.status == 409
    assert again.body["code"] == "already_checked_out"
    assert len(await outbox_rows(db, "checkin.visitor_checked_out", visit.body["visit_id"])) == 1

    elsewhere = await stack.call("checkin", "POST", f"/visits/{uuid.uuid4()}/checkout", token=site.tokens["kiosk"])
    assert elsewhere.status == 404
    assert elsewhere.body["code"] == "visit_not_found"


async def test_a_retried_check_out_with_its_idempotency_key_replays_the_first_answer(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    visit = await check_in(stack, site, {"anonymous": True, "purpose": "drop_in"})
    path = f"/visits/{visit.body['visit_id']}/checkout"
    key = {"Idempotency-Key": f"out-{uuid.uuid4()}"}

    out = await stack.call("checkin", "POST", path, token=site.tokens["kiosk"], headers=key)
    retry = await stack.call("checkin", "POST", path, token=site.tokens["kiosk"], headers=key)

    assert out.status == retry.status == 200, (out.body, retry.body)
    assert retry.body == out.body
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert len(await outbox_rows(db, "checkin.visitor_checked_out", visit.body["visit_id"])) == 1


async def test_check_out_by_kiosk_code_closes_the_open_visit(stack: Client, site: SiteUnderTest) -> None:
    member = await register(stack, site)
    code = member.body["kiosk_code"]
    visit = await check_in(stack, site, {"kiosk_code": code, "purpose": "peer_mentoring"})
    assert visit.status == 201

    # Typed the way people type it: lower case, with a dash.
    typed = f"{code[:3].lower()}-{code[3:]}"
    out = await stack.call("checkin", "POST", "/checkouts", token=site.tokens["kiosk"], json={"kiosk_code": typed})
    assert out.status == 200, out.body
    assert out.body["visit_id"] == visit.body["visit_id"]

    again = await stack.call("checkin", "POST", "/checkouts", token=site.tokens["kiosk"], json={"kiosk_code": code})
    assert again.status == 409
    assert again.body["code"] == "not_checked_in"
    # And a new visit can begin.
    assert (await check_in(stack, site, {"kiosk_code": code, "purpose": "drop_in"})).status == 201


async def test_occupancy_counts_who_is_present_against_capacity(
    settings: Settings, stack: Client, other_site: SiteUnderTest
) -> None:
    site = await make_site(settings, capacity=7)  # near at 0.85 * 7 = 5.95, i.e. from 6 people

    async def occupancy() -> dict[str, Any]:
        reply = await stack.call("checkin", "GET", "/occupancy", token=site.tokens["kiosk"])
        assert reply.status == 200, reply.body
        return reply.body

    assert await occupancy() == {"site_id": site.site_id, "present": 0, "capacity": 7, "status": "ok"}
    members = [await register(stack, site) for _ in range(3)]
    visits = [await check_in(stack, site, {"kiosk_code": m.body["kiosk_code"], "purpose": "drop_in"}) for m in members]
    for _ in range(2):
        assert (await check_in(stack, site, {"anonymous": True, "purpose": "sober_event"})).status == 201
    # Someone at another site does not count here.
    assert (await check_in(stack, other_site, {"anonymous": True, "purpose": "drop_in"})).status == 201
    assert await occupancy() == {"site_id": site.site_id, "present": 5, "capacity": 7, "status": "ok"}

    assert (await check_in(stack, site, {"anonymous": True, "purpose": "drop_in"})).status == 201
    assert (await occupancy())["status"] == "near"
    assert (await check_in(stack, site, {"anonymous": True, "purpose": "drop_in"})).status == 201
    assert await occupancy() == {"site_id": site.site_id, "present": 7, "capacity": 7, "status": "full"}

    out = await stack.call(
        "checkin", "POST", f"/visits/{visits[0].body['visit_id']}/checkout", token=site.tokens["kiosk"]
    )
    assert out.status == 200
    assert await occupancy() == {"site_id": site.site_id, "present": 6, "capacity": 7, "status": "near"}
    coordinator_view = await stack.call("checkin", "GET", "/occupancy", token=site.tokens["coordinator"])
    assert coordinator_view.body["present"] == 6


async def test_listing_visits_pages_through_every_visit_once(stack: Client, site: SiteUnderTest) -> None:
    created = []
    for purpose in ("drop_in", "education", "sober_event", "peer_mentoring", "resource_connecting"):
        reply = await check_in(stack, site, {"anonymous": True, "purpose": purpose})
        assert reply.status == 201
        created.append(reply.body["visit_id"])

    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        reply = await stack.call("checkin", "GET", f"/visits?{urlencode(query)}", token=site.tokens["coordinator"])
        assert reply.status == 200, reply.body
        pages.append(reply.body["items"])
        cursor = reply.body["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 5, "pagination does not end"

    assert [len(p) for p in pages] == [2, 2, 1]
    seen = [item["visit_id"] for page in pages for item in page]
    assert len(seen) == len(set(seen)) == 5
    assert seen == list(reversed(created))  # newest first
    assert all(item["anonymous"] and item["member_id"] is None for page in pages for item in page)
    times = [item["checked_in_at"] for page in pages for item in page]
    assert times == sorted(times, reverse=True)

    kiosk = await stack.call("checkin", "GET", "/visits", token=site.tokens["kiosk"])
    assert kiosk.status == 403


# Members: reading and erasing


async def test_a_coordinator_sees_a_member_of_their_site_only(
    stack: Client, site: SiteUnderTest, other_site: SiteUnderTest
) -> None:
    member = await register(stack, site, "Sam")
    member_id = member.body["member_id"]
    first = await check_in(stack, site, {"kiosk_code": member.body["kiosk_code"], "purpose": "drop_in"})
    await stack.call("checkin", "POST", f"/visits/{first.body['visit_id']}/checkout", token=site.tokens["kiosk"])
    await check_in(stack, site, {"member_id": member_id, "purpose": "education"})

    seen = await stack.call("checkin", "GET", f"/members/{member_id}", token=site.tokens["coordinator"])
    assert seen.status == 200, seen.body
    assert seen.body["nickname"] == "Sam"
    assert seen.body["kiosk_code"] == member.body["kiosk_code"]
    assert seen.body["site_id"] == site.site_id
    assert seen.body["visits"] == 2
    assert seen.body["present"] is True
    assert seen.body["erased_at"] is None

    hidden = await stack.call("checkin", "GET", f"/members/{member_id}", token=other_site.tokens["coordinator"])
    assert hidden.status == 404
    assert hidden.body["code"] == "member_not_found"
    assert "Sam" not in str(hidden.body)
    unknown = await stack.call("checkin", "GET", f"/members/{uuid.uuid4()}", token=site.tokens["coordinator"])
    assert unknown.status == 404
    # An admin works on any site.
    admin = await stack.call("checkin", "GET", f"/members/{member_id}", token=other_site.tokens["admin"])
    assert admin.status == 200
    assert admin.body["nickname"] == "Sam"


async def test_erasing_a_member_removes_nickname_and_code_everywhere(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    member = await register(stack, site, "Alexandria")
    member_id, code = member.body["member_id"], member.body["kiosk_code"]
    assert (await check_in(stack, site, {"kiosk_code": code, "purpose": "drop_in"})).status == 201
    assert (
        await stack.call("checkin", "POST", "/checkouts", token=site.tokens["kiosk"], json={"kiosk_code": code})
    ).status == 200

    refused = await stack.call("checkin", "POST", f"/members/{member_id}/erase", token=site.tokens["coordinator"])
    assert refused.status == 403
    erased = await stack.call("checkin", "POST", f"/members/{member_id}/erase", token=site.tokens["admin"])
    assert erased.status == 200, erased.body
    assert erased.body["member_id"] == member_id

    seen = await stack.call("checkin", "GET", f"/members/{member_id}", token=site.tokens["coordinator"])
    assert seen.status == 200
    assert seen.body["nickname"] is None
    assert seen.body["kiosk_code"] is None
    assert seen.body["erased_at"] is not None
    assert seen.body["visits"] == 1  # the pseudonymous history stays
    row = await db.fetchrow(
        "SELECT nickname, kiosk_code FROM checkin.members WHERE member_id = $1", uuid.UUID(member_id)
    )
    assert tuple(row) == (None, None)

    by_code = await check_in(stack, site, {"kiosk_code": code, "purpose": "drop_in"})
    assert by_code.status == 404
    assert by_code.body["code"] == "member_not_found"
    by_id = await check_in(stack, site, {"member_id": member_id, "purpose": "drop_in"})
    assert by_id.status == 404

    [event] = await outbox_rows(db, "checkin.member_erased", member_id)
    data = event["data"] if isinstance(event["data"], dict) else json.loads(event["data"])
    assert data["member_id"] == member_id
    assert "nickname" not in data
    assert "Alexandria" not in str(dict(event))
    for row in await db.fetch("SELECT data::text AS data FROM checkin.outbox WHERE subject = $1", member_id):
        assert "Alexandria" not in row["data"]

    twice = await stack.call("checkin", "POST", f"/members/{member_id}/erase", token=site.tokens["admin"])
    assert twice.status == 409
    assert twice.body["code"] == "already_erased"


# The audit log in the database


async def append_one_entry(settings: Settings) -> str:
    """One properly chained entry, written the way the audit service writes (as its role)."""
    engine = create_engine(settings, service="it-audit", role=DB_ROLE)
    try:
        ce = cloud_event("checkin.member_registered", site_id="site-append-only", member_id=str(uuid.uuid4()))
        event = ReceivedEvent.from_body(canonical_json(ce))
        outcome = await execute(
            append_to_audit_log,
            AppendToAuditLog([event]),
            uow=AuditUnitOfWork(make_connector(engine), AuditBase.metadata),
            clock=SystemClock(),
        )
        assert outcome.body["appended"] == 1
        return ce["id"]
    finally:
        await engine.dispose()


async def refused(conn: asyncpg.Connection, statement: str, *args: Any) -> asyncpg.PostgresError:
    """Run a statement in a transaction that is always rolled back; return the error it raised."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError) as caught:
            await conn.execute(statement, *args)
        return caught.value
    finally:
        await transaction.rollback()


async def test_the_audit_log_cannot_be_changed_by_its_writer_role_nor_by_a_superuser(settings: Settings) -> None:
    event_id = uuid.UUID(await append_one_entry(settings))
    dsn = asyncpg_dsn(settings.database_url)

    writer = await asyncpg.connect(dsn, server_settings={"role": DB_ROLE})
    try:
        assert await writer.fetchval("SELECT current_user") == DB_ROLE
        assert await writer.fetchval("SELECT count(*) FROM audit.audit_log WHERE event_id = $1", event_id) == 1
        for statement in (
            "UPDATE audit.audit_log SET site_id = 'forged' WHERE event_id = $1",
            "DELETE FROM audit.audit_log WHERE event_id = $1",
        ):
            error = await refused(writer, statement, event_id)
            assert "permission denied" in str(error)
        error = await refused(writer, "TRUNCATE audit.audit_log")
        assert "permission denied" in str(error)
    finally:
        await writer.close()

    owner = await asyncpg.connect(dsn)
    try:
        assert await owner.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is True
        for statement, operation in (
            ("UPDATE audit.audit_log SET site_id = 'forged' WHERE event_id = $1", "UPDATE"),
            ("DELETE FROM audit.audit_log WHERE event_id = $1", "DELETE"),
        ):
            error = await refused(owner, statement, event_id)
            assert f"append-only: {operation} refused" in str(error)
        error = await refused(owner, "TRUNCATE audit.audit_log")
        assert "append-only: TRUNCATE refused" in str(error)
        assert await owner.fetchval("SELECT site_id FROM audit.audit_log WHERE event_id = $1", event_id) == (
            "site-append-only"
        )
    finally:
        await owner.close()


# Migrations


SCHEMA_NAMES = [schema.name for schema in SCHEMAS]
SNAPSHOT_QUERIES = {
    "columns": """
        SELECT table_schema, table_name, column_name, data_type, is_nullable, column_default, is_identity
        FROM information_schema.columns WHERE table_schema = ANY($1::text[]) ORDER BY 1, 2, 3""",
    "indexes": """
        SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = ANY($1::text[]) ORDER BY 1, 2, 3""",
    "constraints": """
        SELECT n.nspname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
        JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = ANY($1::text[]) ORDER BY 1, 2""",
    "triggers": """
        SELECT event_object_schema, event_object_table, trigger_name, event_manipulation, action_statement
        FROM information_schema.triggers WHERE trigger_schema = ANY($1::text[]) ORDER BY 1, 2, 3, 4""",
    "functions": """
        SELECT n.nspname, p.proname, md5(p.prosrc) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = ANY($1::text[]) ORDER BY 1, 2""",
    "grants": """
        SELECT table_schema, table_name, privilege_type FROM information_schema.role_table_grants
        WHERE grantee = 'rcc_audit_writer' AND table_schema = ANY($1::text[]) ORDER BY 1, 2, 3""",
    "rows": """
        SELECT $1::text[] IS NOT NULL,
               (SELECT count(*) FROM access.sites), (SELECT count(*) FROM access.tokens),
               (SELECT count(*) FROM checkin.members), (SELECT count(*) FROM checkin.visits),
               (SELECT count(*) FROM checkin.outbox), (SELECT count(*) FROM audit.audit_log)""",
}


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    state = {
        name: [tuple(r) for r in await conn.fetch(query, SCHEMA_NAMES)] for name, query in SNAPSHOT_QUERIES.items()
    }
    state["versions"] = [
        (
            schema,
            tuple(sorted(await conn.fetchval(f'SELECT array_agg(version_num) FROM "{schema}".alembic_version') or [])),
        )
        for schema in SCHEMA_NAMES
    ]
    return state


async def test_migrating_again_changes_nothing(settings: Settings) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        before = await snapshot(conn)
        versions = dict(before["versions"])
        for schema in SCHEMAS:  # every schema is at the head of its own migration history
            head = ScriptDirectory.from_config(_alembic_config(schema.migrations)).get_current_head()
            assert versions[schema.name] == (head,), schema.name
        await asyncio.to_thread(migrate, settings)
        await asyncio.to_thread(migrate, settings)
        assert await snapshot(conn) == before
    finally:
        await conn.close()


def _alembic_config(location: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(location))
    return config


async def rcc_migrate(database: str) -> tuple[int, str]:
    """``rcc migrate`` in a process of its own."""
    env = {**os.environ, "RCC_DATABASE_URL": database, "RCC_LOG_JSON": "true"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "migrate",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode(errors="replace")


async def test_two_migrations_at_once_on_a_new_database_both_succeed(settings: Settings) -> None:
    name = await create_database("rcc_it_migrate")
    fresh = settings.model_copy(update={"database_url": database_url(name)})
    try:
        results = await asyncio.gather(rcc_migrate(fresh.database_url), rcc_migrate(fresh.database_url))
        assert [code for code, _ in results] == [0, 0], results
        conn = await asyncpg.connect(asyncpg_dsn(fresh.database_url))
        try:
            state = await snapshot(conn)
            main = await asyncpg.connect(asyncpg_dsn(settings.database_url))
            try:
                reference = await snapshot(main)
            finally:
                await main.close()
        finally:
            await conn.close()
        for part in ("columns", "indexes", "constraints", "triggers", "functions", "versions"):
            assert state[part] == reference[part], part
    finally:
        await drop_database(name)


# Text PostgreSQL cannot store


async def test_a_nul_character_anywhere_in_the_input_is_422_and_stores_nothing(
    stack: Client, site: SiteUnderTest, db: asyncpg.Pool
) -> None:
    before = await db.fetchval("SELECT count(*) FROM checkin.members")
    for body in ({"nickname": "Sam\u0000"}, {"nickname": "Sam", "\u0000": 1}):
        reply = await stack.call("checkin", "POST", "/members", token=site.tokens["kiosk"], json=body)
        assert reply.status == 422, reply.body
        assert reply.body["code"] == "invalid_character"
    listed = await stack.call("checkin", "GET", "/visits?cursor=%00", token=site.tokens["coordinator"])
    assert (listed.status, listed.body["code"]) == (422, "invalid_character")
    assert await db.fetchval("SELECT count(*) FROM checkin.members") == before


@pytest.mark.parametrize(
    "query",
    [
        "from=2027-01-10&to=2027-01-01",
        "from=2027-01-02&to=2027-01-01",
        "from=2027-01-10T00:00:00Z&to=2027-01-01T00:00:00Z",
    ],
)
async def test_a_reversed_range_of_visits_is_422_range_reversed(stack: Client, site: SiteUnderTest, query: str) -> None:
    reply = await stack.call("checkin", "GET", f"/visits?{query}", token=site.tokens["coordinator"])
    assert (reply.status, reply.body["code"]) == (422, "range_reversed")
