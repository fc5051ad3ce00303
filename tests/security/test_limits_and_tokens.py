"""Items 14 and 15: size, page and rate limits; tokens kept only as SHA-256 and refused soon after revocation."""

from __future__ import annotations

import asyncio
import hashlib

import asyncpg
import pytest

from shared import access
from shared.db import asyncpg_dsn
from shared.settings import Settings
from shared.web import Operation
from tests.security.conftest import SERVICES, operations
from tests.support.samples import path_for
from tests.support.stack import Client, SiteUnderTest, make_site, services

pytestmark = pytest.mark.e2e

LADDER = ("admin", "coordinator", "volunteer", "kiosk")


def _token_for(op: Operation, site: SiteUnderTest) -> str:
    return site.tokens[next(role for role in LADDER if role in (op.roles or ()))]


def _paged() -> list[tuple[str, Operation]]:
    return [
        (service, op)
        for service, op in operations()
        if op.query is not None and "limit" in op.query.model_fields and op.roles is not None
    ]


@pytest.mark.parametrize(
    "service",
    [service for service in SERVICES if any(op.body is not None for s, op in operations() if s == service)],
)
async def test_a_body_over_the_limit_is_413(
    service: str, settings: Settings, stack: Client, home: SiteUnderTest
) -> None:
    op = next(op for s, op in operations() if s == service and op.body is not None)
    padding = b" " * (settings.max_body_bytes + 1)
    reply = await stack.call(
        service,
        op.method,
        path_for(op),
        token=_token_for(op, home),
        data=b"{}" + padding,
        headers={"Content-Type": "application/json"},
    )
    assert (reply.status, reply.body["code"]) == (413, "body_too_large")
    assert reply.headers["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize("route", _paged(), ids=lambda r: f"{r[1].method} {r[1].path}")
async def test_a_page_size_over_the_maximum_is_422(
    route: tuple[str, Operation], stack: Client, home: SiteUnderTest
) -> None:
    service, op = route
    maximum = next(m.le for m in op.query.model_fields["limit"].metadata if hasattr(m, "le"))  # type: ignore[union-attr]
    path = path_for(op) + ("&" if "?" in path_for(op) else "?")
    required = {
        name: "2026-01-05"
        for name, field in op.query.model_fields.items()  # type: ignore[union-attr]
        if field.is_required()
    }
    query = "&".join(f"{(op.query.model_fields[k].alias or k)}={v}" for k, v in required.items())  # type: ignore[union-attr]
    token = _token_for(op, home)
    at_most = await stack.call(service, "GET", f"{path}{query}&limit={maximum}", token=token)
    assert at_most.status in (200, 404), at_most.body  # 404: the route's random id names nothing
    over = await stack.call(service, "GET", f"{path}{query}&limit={maximum + 1}", token=token)
    assert (over.status, over.body["code"]) == (422, "invalid_request"), over.body
    assert over.body["errors"][0]["loc"] == ["query", "limit"]


async def test_a_kiosk_far_above_its_rate_is_slowed_while_another_is_served(
    settings: Settings,
) -> None:
    limited = settings.model_copy(update={"rate_limit_per_minute": 60, "rate_limit_burst": 5})
    noisy, quiet = await make_site(limited), await make_site(limited)
    async with services(limited, ["checkin"]) as client:
        replies = [await client.call("checkin", "GET", "/occupancy", token=noisy.tokens["kiosk"]) for _ in range(20)]
        statuses = [reply.status for reply in replies]
        assert statuses[:5] == [200] * 5
        refused = [reply for reply in replies if reply.status == 429]
        assert len(refused) >= 14, statuses
        assert all(reply.body["code"] == "rate_limited" for reply in refused)
        assert all(int(reply.headers["Retry-After"]) >= 1 for reply in refused)
        served = await client.call("checkin", "GET", "/occupancy", token=quiet.tokens["kiosk"])
        assert served.status == 200
        member = await client.call("checkin", "POST", "/members", token=quiet.tokens["kiosk"], json={})
        assert member.status == 201


async def test_only_sha256_hashes_of_tokens_are_stored(settings: Settings, home: SiteUnderTest) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        rows = await conn.fetch("SELECT * FROM access.tokens WHERE site_id = $1", home.site_id)
        everything = " ".join(str(value) for row in rows for value in row.values())
    finally:
        await conn.close()
    assert len(rows) == len(home.tokens)
    stored = {row["token_id"]: row["token_hash"] for row in rows}
    for role, token in home.tokens.items():
        assert stored[home.token_ids[role]] == hashlib.sha256(token.encode()).hexdigest()
        assert token not in everything
        assert token.removeprefix(access.TOKEN_PREFIX) not in everything


async def test_a_revoked_token_is_refused_by_every_service_within_the_cache_ttl(
    settings: Settings,
) -> None:
    cached = settings.model_copy(update={"token_cache_ttl_s": 5.0, "rate_limit_per_minute": 0})
    site = await make_site(cached)
    token = site.tokens["admin"]
    probes = {
        "checkin": "/occupancy",
        "volunteering": "/roles",
        "gatherings": "/upcoming",
        "audit": "/audit/verify",
        "notify": f"/members/{site.volunteer_member_id}/reachability",
    }
    async with services(cached, list(SERVICES)) as client:

        async def statuses() -> dict[str, int]:
            return {name: (await client.call(name, "GET", path, token=token)).status for name, path in probes.items()}

        assert set((await statuses()).values()) == {200}  # every service now holds the token in its cache
        conn = await asyncpg.connect(asyncpg_dsn(cached.database_url))
        try:
            revoked = await conn.fetchval(
                "UPDATE access.tokens SET revoked_at = now() WHERE token_hash = $1 RETURNING token_id",
                access.hash_token(token),
            )
        finally:
            await conn.close()
        assert revoked == site.token_ids["admin"]
        await asyncio.sleep(cached.token_cache_ttl_s)
        assert set((await statuses()).values()) == {401}
