"""PostgreSQL goes away (every connection dropped and new ones refused; or a network partition where nothing answers
at all): every request of every service is answered quickly with 503 problem+json ``database_unavailable`` — no
hang, no 500 —, /readyz says it is the database, /healthz stays up, and the services recover by themselves when the
database returns. The database is taken away with a proxy in front of it, never by stopping the shared server."""

from __future__ import annotations

import asyncio
import importlib
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import create_async_engine

from services.registry import SERVICES
from shared import access
from shared.web import Operation
from tests.support.pgproxy import PostgresProxy
from tests.support.processes import ServiceProcess
from tests.support.report import report
from tests.support.samples import body_for, path_for
from tests.support.stack import Client, SiteUnderTest, eventually, make_site, services

pytestmark = pytest.mark.e2e

# The database settings of the services under test, and the slowest answer they allow: a request may wait for a
# pooled connection (3 s), for a connection attempt (2 s), and for a statement on a connection that went silent (the
# client-side command timeout: statement timeout 2 s + connect timeout 2 s) and its rollback as long; every one of
# them configured, none open-ended. 2 s more for a busy machine.
OUTAGE_SETTINGS = {"db_connect_timeout_s": 2.0, "db_pool_timeout_s": 3.0, "db_statement_timeout_ms": 2_000}
COMMAND_TIMEOUT_S = 2.0 + 2.0
SLOWEST_ALLOWED_S = 3.0 + 2.0 + 2 * COMMAND_TIMEOUT_S + 2.0
ANSWER_BOUND_S = 30.0  # no answer within this is a hang
PREFERENCE = ("coordinator", "admin", "kiosk", "volunteer")


def operations() -> list[tuple[str, Operation]]:
    """Every authenticated route of every service, from the same declarations that serve them."""
    found = []
    for name, service in SERVICES.items():
        for op in importlib.import_module(f"{service.package}.views").api.operations:
            if op.roles is not None:
                found.append((name, op))
    return found


async def fresh_tokens(settings: Any, site: SiteUnderTest) -> dict[str, str]:
    """Tokens never used yet, so no service has them cached: authenticating them needs the database."""
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            tokens = {}
            for role in PREFERENCE:
                _, tokens[role] = await access.issue_token(
                    conn,
                    role=access.Role(role),
                    site_id=site.site_id,
                    member_id=uuid.uuid4() if role == "volunteer" else None,
                )
            return tokens
    finally:
        await engine.dispose()


@pytest.mark.parametrize("failure", ["refused", "silent"])
async def test_without_the_database_every_request_is_a_quick_503_and_service_comes_back(
    isolate: Any, failure: str
) -> None:
    name, direct = await isolate(rate_limit_per_minute=0)
    proxy = PostgresProxy()
    await proxy.start()
    settings = direct.model_copy(update={"database_url": proxy.url(name), "token_cache_ttl_s": 5.0, **OUTAGE_SETTINGS})
    site = await make_site(direct)
    tokens = site.tokens
    db = await asyncpg.connect(direct.database_url.replace("+asyncpg", ""))
    try:
        async with services(settings, list(SERVICES)) as stack:
            for service in SERVICES:
                await eventually(lambda s=service: _status(stack, s, "/readyz", 200), timeout=60)
            assert (await _check_in(stack, tokens["kiosk"])) == 201
            unused = await fresh_tokens(direct, site)
            visits_before = await db.fetchval("SELECT count(*) FROM checkin.visits")

            proxy.cut() if failure == "refused" else proxy.blackhole()
            # Once with the tokens the services have cached (the handler meets the missing database), once with
            # tokens they have never seen (authentication itself needs it).
            answers = []
            for token_set in (tokens, unused):
                answers += await asyncio.gather(*(_call(stack, s, op, token_set) for s, op in operations()))
            ready = {s: await _reply(stack, s, "GET", "/readyz") for s in SERVICES}
            healthy = {s: await _reply(stack, s, "GET", "/healthz") for s in SERVICES}
            proxy.restore()

            async def recovered() -> bool:
                return await _check_in(stack, tokens["kiosk"]) == 201

            await eventually(recovered, timeout=60, interval=0.5)
            for service in SERVICES:
                await eventually(lambda s=service: _status(stack, s, "/readyz", 200), timeout=60, interval=0.5)
            visits_after = await db.fetchval("SELECT count(*) FROM checkin.visits")

            # The relay and the audit consumer came back too: both check-ins (before and after) reach the audit log.
            async def audited() -> bool:
                return (
                    await db.fetchval(
                        "SELECT count(*) FROM audit.audit_log WHERE type = $1 AND site_id = $2",
                        "checkin.visitor_checked_in",
                        site.site_id,
                    )
                    == 2
                )

            await eventually(audited, timeout=60, interval=0.5)
    finally:
        await db.close()
        await proxy.close()

    hung = [a for a in answers if a[2] == "no answer"]
    slow = [a for a in answers if a[2] != "no answer" and a[5] > SLOWEST_ALLOWED_S]
    server_errors = [a for a in answers if a[2] == 500]
    wrong = [a for a in answers if a[2] not in ("no answer", 500) and (a[2], a[3]) != (503, "database_unavailable")]
    not_problem = [a for a in answers if a[2] == 503 and not a[4].startswith("application/problem+json")]
    readiness = [s for s, (status, body, _) in ready.items() if status != 503 or "database" not in str(body)]
    for answer in hung + slow + server_errors + wrong:
        print("not a quick database_unavailable:", answer)
    report(
        f"database unavailable ({failure})",
        {
            "hung": len(hung),
            "slower_than_timeouts": len(slow),
            "server_errors": len(server_errors),
            "not_database_unavailable": len(wrong),
            "not_problem_json": len(not_problem),
            "readyz_not_naming_database": len(readiness),
            "healthz_down": sum(1 for status, _, _ in healthy.values() if status != 200),
            "writes_during_outage": visits_after - visits_before - 1,
        },
        requests=len(answers),
        slowest_s=round(max(a[5] for a in answers), 2),
        allowed_s=SLOWEST_ALLOWED_S,
    )


async def _call(stack: Client, service: str, op: Operation, tokens: dict[str, str]) -> tuple[Any, ...]:
    role = next(r for r in PREFERENCE if r in {x.value for x in op.roles or ()})
    started = asyncio.get_running_loop().time()
    try:
        async with asyncio.timeout(ANSWER_BOUND_S):
            status, payload, content_type = await _reply(
                stack, service, op.method, path_for(op), tokens[role], body_for(op)
            )
    except TimeoutError:
        return service, f"{op.method} {op.path}", "no answer", None, "", ANSWER_BOUND_S
    code = payload.get("code") if isinstance(payload, dict) else None
    elapsed = asyncio.get_running_loop().time() - started
    return service, f"{op.method} {op.path}", status, code, content_type, elapsed


async def _reply(
    stack: Client, service: str, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=ANSWER_BOUND_S + 5)
    async with stack.http.request(
        method, stack.urls[service] + path, json=body, headers=headers, timeout=timeout
    ) as response:
        text = await response.text()
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text
        return response.status, payload, response.headers.get("Content-Type", "")


async def _status(stack: Client, service: str, path: str, expected: int) -> bool:
    try:
        return (await _reply(stack, service, "GET", path))[0] == expected
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _check_in(stack: Client, token: str) -> int:
    try:
        status, _, _ = await _reply(
            stack, "checkin", "POST", "/visits", token, {"anonymous": True, "purpose": "drop_in"}
        )
        return status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def test_a_kiosk_that_hangs_up_mid_request_is_not_reported_as_a_database_outage(isolated: Any) -> None:
    """A tablet losing its connection while it sends a check-in is not the database failing: no 503 (which would
    page someone about the database)."""
    site = await make_site(isolated)

    def count(status: str) -> float:
        return (
            REGISTRY.get_sample_value(
                "rcc_http_requests_total",
                {"service": "checkin", "method": "POST", "route": "/visits", "status": status},
            )
            or 0.0
        )

    before = count("503"), count("499")
    async with services(isolated, ["checkin"]) as stack:
        host, port = stack.urls["checkin"].removeprefix("http://").split(":")
        for _ in range(3):
            _, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                f"POST /visits HTTP/1.1\r\nHost: kiosk\r\nAuthorization: Bearer {site.tokens['kiosk']}\r\n"
                'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"anonymous": true,'.encode()
            )
            await writer.drain()
            writer.transport.abort()  # gone before the body is complete

        async def answered() -> bool:
            return count("499") - before[1] + count("503") - before[0] >= 3

        await eventually(answered, timeout=20)
    report(
        "client hang-ups",
        {"reported_as_503": int(count("503") - before[0])},
        recorded_as_499=int(count("499") - before[1]),
    )


STOP_BOUND_S = 20.0  # SIGTERM to exit; the failure this guards against is "never" (then SIGKILL)


@pytest.mark.parametrize("failure", ["refused", "silent"])
async def test_a_process_stopped_while_the_database_is_away_stops_promptly(
    isolate: Any, tmp_path: Path, failure: str
) -> None:
    """A deploy or a restart often comes exactly when the database is in trouble: SIGTERM must stop the process
    while its consumers, relays and requests are all waiting on a database that is gone — each cancelled
    mid-query, none retrying the error its cancellation turned into."""
    name, direct = await isolate(rate_limit_per_minute=0)
    proxy = PostgresProxy()
    await proxy.start()
    settings = direct.model_copy(update={"database_url": proxy.url(name), **OUTAGE_SETTINGS})
    site = await make_site(direct)
    process = ServiceProcess("all", settings, tmp_path)
    in_flight: list[asyncio.Task[int]] = []
    try:
        await process.start()
        async with aiohttp.ClientSession() as http:
            stack = Client(http, process.urls)
            for _ in range(20):  # events on their way to the consumers when the database goes
                assert await _check_in(stack, site.tokens["kiosk"]) == 201
            proxy.cut() if failure == "refused" else proxy.blackhole()
            in_flight = [asyncio.create_task(_check_in(stack, site.tokens["kiosk"])) for _ in range(10)]
            await asyncio.sleep(1.0)  # requests, relays and consumers are now waiting on the database
            started = asyncio.get_running_loop().time()
            await process.stop(timeout=STOP_BOUND_S)
            stop_s = asyncio.get_running_loop().time() - started
            await asyncio.gather(*in_flight)
    finally:
        await process.stop()
        await proxy.close()
    assert process.process is not None
    report(
        f"stopped while the database is away ({failure})",
        {
            "needed_sigkill": int(process.process.returncode == -signal.SIGKILL),
            "exit_code_not_zero": int(process.process.returncode not in (0, -signal.SIGKILL)),
        },
        stop_s=round(stop_s, 2),
        bound_s=STOP_BOUND_S,
    )
