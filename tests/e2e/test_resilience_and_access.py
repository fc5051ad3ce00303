"""End to end over the real servers: broker outages, the CloudEvents wire format, tampering, bad input, access."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest
from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_rabbitmq
from cloudevents.core.formats.json import JSONFormat

from shared.settings import Settings
from tests.support.broker import delete_prefixed
from tests.support.databases import drop_database, migrated_settings
from tests.support.proxy import TcpProxy
from tests.support.stack import Client, SiteUnderTest, eventually, make_site, services

pytestmark = pytest.mark.e2e


async def audit_count(settings: Settings, event_ids: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        rows = await conn.fetch(
            "SELECT event_id::text AS id, count(*) AS n FROM audit.audit_log WHERE event_id = ANY($1::uuid[]) "
            "GROUP BY event_id",
            event_ids,
        )
    finally:
        await conn.close()
    return {row["id"]: row["n"] for row in rows}


async def outbox_event_ids(settings: Settings, visit_ids: list[str]) -> list[str]:
    conn = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        rows = await conn.fetch(
            "SELECT event_id::text AS id FROM checkin.outbox WHERE subject = ANY($1::text[])", visit_ids
        )
    finally:
        await conn.close()
    return [row["id"] for row in rows]


async def unpublished_count(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        return await conn.fetchval("SELECT count(*) FROM checkin.outbox WHERE published_at IS NULL")
    finally:
        await conn.close()


@pytest.fixture
async def isolated() -> AsyncIterator[Settings]:
    """A database and broker prefix of this test's own, for tests that cut connections or tamper."""
    name, settings = await migrated_settings()
    yield settings
    await delete_prefixed(settings, ["audit"])
    await drop_database(name)


async def test_check_ins_succeed_while_the_broker_is_cut_and_every_event_arrives_once(isolated: Settings) -> None:
    proxy = TcpProxy()
    await proxy.start()
    settings = isolated.model_copy(update={"amqp_url": proxy.url})
    site = await make_site(settings)
    try:
        async with services(settings, ["checkin", "audit"]) as stack:
            members = [
                (await stack.call("checkin", "POST", "/members", token=site.tokens["kiosk"], json={})).body
                for _ in range(30)
            ]
            await eventually(lambda: _connected(stack))
            visit_ids = []
            for index, member in enumerate(members):
                if index == 10:
                    proxy.cut()
                if index == 20:
                    await asyncio.sleep(2)  # the outage lasts a while: these wait in the outbox
                reply = await stack.call(
                    "checkin",
                    "POST",
                    "/visits",
                    token=site.tokens["kiosk"],
                    json={"member_id": member["member_id"], "purpose": "drop_in"},
                )
                assert reply.status == 201, reply.body
                visit_ids.append(reply.body["visit_id"])
            waiting = await unpublished_count(settings)
            assert waiting >= 10, "the cut should have left check-ins waiting in the outbox"
            proxy.restore()
            event_ids = await outbox_event_ids(settings, visit_ids)
            assert len(event_ids) == 30

            async def all_arrived() -> bool:
                return len(await audit_count(settings, event_ids)) == 30

            await eventually(all_arrived, timeout=60)
            counts = await audit_count(settings, event_ids)
            assert set(counts.values()) == {1}, "an event reached the audit log twice"
            verdict = await stack.call("audit", "GET", "/audit/verify", token=site.tokens["admin"])
            assert verdict.body["ok"] is True
            assert proxy.connections_made >= 2, "the services should have reconnected through the proxy"
            assert await unpublished_count(settings) == 0
    finally:
        await proxy.close()


async def _connected(stack: Client) -> bool:
    ready = await stack.call("checkin", "GET", "/readyz")
    return ready.status == 200


async def test_every_message_on_the_exchange_parses_with_the_cloudevents_sdk(
    settings: Settings, stack: Client, site: SiteUnderTest
) -> None:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(settings.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        tap = await channel.declare_queue(exclusive=True)
        await tap.bind(exchange, "#")
        member = await stack.call("checkin", "POST", "/members", token=site.tokens["kiosk"], json={})
        visit = await stack.call(
            "checkin",
            "POST",
            "/visits",
            token=site.tokens["kiosk"],
            json={"kiosk_code": member.body["kiosk_code"], "purpose": "education"},
        )
        await stack.call("checkin", "POST", f"/visits/{visit.body['visit_id']}/checkout", token=site.tokens["kiosk"])
        anonymous = await stack.call(
            "checkin", "POST", "/visits", token=site.tokens["kiosk"], json={"anonymous": True, "purpose": "drop_in"}
        )
        assert anonymous.status == 201
        seen: dict[str, object] = {}
        async with tap.iterator(timeout=20) as messages:
            async for message in messages:
                async with message.process():
                    event = from_rabbitmq(
                        RabbitMQMessage(
                            headers={k: str(v) for k, v in (message.headers or {}).items()},
                            content_type=message.content_type,
                            body=message.body,
                        ),
                        JSONFormat(),
                    )
                    attributes = event.get_attributes()
                    assert attributes["id"] == message.message_id
                    assert attributes["type"] == message.routing_key
                    assert attributes["source"] == "/rcc/checkin"
                    assert attributes["specversion"] == "1.0"
                    assert attributes["sequence"].isdigit()  # the sequence extension is a String
                    if attributes["siteid"] == site.site_id:
                        seen[attributes["type"]] = event.get_data()
                if len(seen) == 3:
                    break
        assert set(seen) == {"checkin.member_registered", "checkin.visitor_checked_in", "checkin.visitor_checked_out"}
    finally:
        await connection.close()


async def test_tampering_with_one_audit_row_is_found_at_its_sequence(isolated: Settings) -> None:
    site = await make_site(isolated)
    async with services(isolated, ["checkin", "audit"]) as stack:
        for _ in range(5):
            assert (await stack.call("checkin", "POST", "/members", token=site.tokens["kiosk"], json={})).status == 201

        async def five_recorded() -> bool:
            reply = await stack.call("audit", "GET", "/audit/verify", token=site.tokens["admin"])
            return reply.body["entries"] == 5

        await eventually(five_recorded)
        conn = await asyncpg.connect(isolated.database_url.replace("+asyncpg", ""))
        try:
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute("UPDATE audit.audit_log SET site_id = 'elsewhere' WHERE sequence = 3")
            # Someone with the power to switch the triggers off edits one entry's body:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute(
                    "UPDATE audit.audit_log SET body = replace(body, '\"kiosk\"', '\"admin\"') WHERE sequence = 3"
                )
        finally:
            await conn.close()
        verdict = await stack.call("audit", "GET", "/audit/verify", token=site.tokens["admin"])
        assert verdict.body == {
            "ok": False,
            "entries": 5,
            "head_hash": verdict.body["head_hash"],
            "first_bad_sequence": 3,
        }
    proc = await asyncio.create_subprocess_exec(
        "rcc",
        "audit",
        "verify",
        env={"RCC_DATABASE_URL": isolated.database_url, "PATH": _path()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 1
    assert b'"first_bad_sequence":3' in out


def _path() -> str:
    import os
    import sys

    return os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed_json"),
        (b'{"purpose": "drop_in"}', "application/json", 422, "invalid_request"),
        (b'{"anonymous": true, "purpose": "shopping"}', "application/json", 422, "invalid_request"),
        (b'{"anonymous": true, "purpose": "drop_in", "nickname": "x"}', "application/json", 422, "invalid_request"),
        (
            b'{"anonymous": true, "kiosk_code": "ABCDEF", "purpose": "drop_in"}',
            "application/json",
            422,
            "invalid_request",
        ),
        (
            b'{"anonymous": true, "purpose": "drop_in", "ref": "call me at 555 0100"}',
            "application/json",
            422,
            "invalid_request",
        ),
        (b'{"member_id": "not-a-uuid", "purpose": "drop_in"}', "application/json", 422, "invalid_request"),
        (b'{"kiosk_code": "ZZZZZZ", "purpose": "drop_in"}', "application/json", 404, "member_not_found"),
        (b"[]", "application/json", 422, "invalid_request"),
        (b"purpose=drop_in", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (
            b'{"anonymous": true, "purpose": "drop_in", "ref": "' + b"x" * 70_000 + b'"}',
            "application/json",
            413,
            "body_too_large",
        ),
    ],
)
async def test_bad_input_gets_a_problem_with_a_code_and_changes_nothing(
    stack: Client, site: SiteUnderTest, body: bytes, content_type: str, status: int, code: str
) -> None:
    before = await stack.call("checkin", "GET", "/occupancy", token=site.tokens["kiosk"])
    reply = await stack.call(
        "checkin", "POST", "/visits", token=site.tokens["kiosk"], data=body, headers={"Content-Type": content_type}
    )
    assert reply.status == status
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert reply.body["code"] == code
    assert reply.body["status"] == status
    assert "Traceback" not in str(reply.body)
    after = await stack.call("checkin", "GET", "/occupancy", token=site.tokens["kiosk"])
    assert after.body["present"] == before.body["present"]


async def test_unknown_routes_and_methods_are_problems_too(stack: Client, site: SiteUnderTest) -> None:
    missing = await stack.call("checkin", "GET", "/nothing-here")
    assert (missing.status, missing.body["code"]) == (404, "not_found")
    wrong_method = await stack.call("checkin", "PUT", "/visits", token=site.tokens["kiosk"])
    assert (wrong_method.status, wrong_method.body["code"]) == (405, "method_not_allowed")
    bad_id = await stack.call("checkin", "POST", "/visits/not-a-uuid/checkout", token=site.tokens["kiosk"])
    assert (bad_id.status, bad_id.body["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/visits", {"kiosk"}),
        ("GET", "/occupancy", {"kiosk", "coordinator", "admin"}),
        ("GET", "/visits", {"coordinator", "admin"}),
        ("POST", "/members", {"kiosk", "coordinator", "admin"}),
    ],
)
async def test_tokens_need_the_right_role(
    stack: Client, site: SiteUnderTest, method: str, path: str, allowed: set[str]
) -> None:
    body = {"anonymous": True, "purpose": "drop_in"} if path == "/visits" and method == "POST" else {}
    no_token = await stack.call("checkin", method, path, json=body)
    assert (no_token.status, no_token.body["code"]) == (401, "missing_token")
    forged = await stack.call("checkin", method, path, json=body, token="rcc_" + "x" * 43)
    assert (forged.status, forged.body["code"]) == (401, "invalid_token")
    for role in ("kiosk", "volunteer", "coordinator", "admin"):
        reply = await stack.call("checkin", method, path, json=body, token=site.tokens[role])
        if role in allowed:
            assert reply.status < 400, (role, reply.body)
        else:
            assert (reply.status, reply.body["code"]) == (403, "wrong_role"), role


async def test_audit_endpoints_are_for_admins(stack: Client, site: SiteUnderTest) -> None:
    for role in ("kiosk", "volunteer", "coordinator"):
        assert (await stack.call("audit", "GET", "/audit/verify", token=site.tokens[role])).status == 403
    assert (await stack.call("audit", "GET", "/audit/verify")).status == 401
    assert (await stack.call("audit", "GET", "/audit/verify", token=site.tokens["admin"])).status == 200


async def test_a_revoked_token_stops_working(settings: Settings, stack: Client, site: SiteUnderTest) -> None:
    assert (await stack.call("checkin", "GET", "/occupancy", token=site.tokens["kiosk"])).status == 200
    proc = await asyncio.create_subprocess_exec(
        "rcc",
        "token",
        "revoke",
        str(site.token_ids["kiosk"]),
        env={"RCC_DATABASE_URL": settings.database_url, "PATH": _path()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await proc.communicate()
    assert proc.returncode == 0
    reply = await stack.call("checkin", "GET", "/occupancy", token=site.tokens["kiosk"])
    assert (reply.status, reply.body["code"]) == (401, "invalid_token")


async def test_a_kiosk_of_one_site_cannot_touch_another(
    stack: Client, site: SiteUnderTest, other_site: SiteUnderTest
) -> None:
    member = await stack.call("checkin", "POST", "/members", token=other_site.tokens["kiosk"], json={})
    by_code = await stack.call(
        "checkin",
        "POST",
        "/visits",
        token=site.tokens["kiosk"],
        json={"kiosk_code": member.body["kiosk_code"], "purpose": "drop_in"},
    )
    assert (by_code.status, by_code.body["code"]) == (404, "member_not_found")
    by_id = await stack.call(
        "checkin",
        "POST",
        "/visits",
        token=site.tokens["kiosk"],
        json={"member_id": member.body["member_id"], "purpose": "drop_in"},
    )
    assert (by_id.status, by_id.body["code"]) == (404, "member_not_found")
    visit = await stack.call(
        "checkin",
        "POST",
        "/visits",
        token=other_site.tokens["kiosk"],
        json={"member_id": member.body["member_id"], "purpose": "drop_in"},
    )
    checkout = await stack.call(
        "checkin", "POST", f"/visits/{visit.body['visit_id']}/checkout", token=site.tokens["kiosk"]
    )
    assert (checkout.status, checkout.body["code"]) == (404, "visit_not_found")
    looked_up = await stack.call(
        "checkin", "GET", f"/members/{member.body['member_id']}", token=site.tokens["coordinator"]
    )
    assert looked_up.status == 404
    occupancy = await stack.call("checkin", "GET", "/occupancy", token=site.tokens["kiosk"])
    assert occupancy.body["site_id"] == site.site_id


async def test_health_readiness_metrics_and_openapi(stack: Client) -> None:
    for service in ("checkin", "audit"):
        # Liveness never waits for a dependency: the broker may still be connecting.
        health = (await stack.call(service, "GET", "/healthz")).body
        assert (health["status"], health["role"]) == ("ok", "all")
        assert health["broker"] in ("connected", "disconnected")
        await eventually(lambda s=service: _ready(stack, s))
        assert (await stack.call(service, "GET", "/healthz")).body["broker"] == "connected"
        spec = await stack.call(service, "GET", "/openapi.json")
        assert spec.body["openapi"] == "3.1.0"
    async with stack.http.get(stack.urls["checkin"] + "/metrics") as response:
        text = await response.text()
    assert "rcc_http_requests_total" in text


async def _ready(stack: Client, service: str) -> bool:
    return (await stack.call(service, "GET", "/readyz")).status == 200
