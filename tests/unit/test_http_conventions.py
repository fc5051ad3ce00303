"""What every answer of every service carries, over HTTP: the bearer challenge on a 401 (RFC 6750 §3), Retry-After on
a 429 and a 503, and a Server header that names no software versions; and a rate limiter that keeps real buckets
under a flood."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shared.access import Principal, Role, TokenStore, new_token
from shared.errors import ServiceUnavailable
from shared.ratelimit import RateLimited, RateLimiter
from shared.settings import Settings
from shared.web import READINESS, TOKENS, Api, Call, make_app, problem

KIOSK = Principal(uuid.uuid4(), Role.KIOSK, "downtown", None)
GOOD_TOKEN = new_token()


class OneToken(TokenStore):
    """Knows one kiosk token; no database."""

    def __init__(self) -> None:
        super().__init__(engine=None)  # type: ignore[arg-type]

    async def _lookup(self, token_hash: str) -> Principal | None:
        from shared.access import hash_token

        return KIOSK if token_hash == hash_token(GOOD_TOKEN) else None


def build_api() -> Api:
    api = Api("checkin", "Test")

    @api.get("/thing", summary="A guarded route", roles=[Role.KIOSK])
    async def thing(_call: Call) -> dict[str, Any]:
        return {"ok": True}

    @api.get("/database-down", summary="The database went away", roles=None)
    async def database_down(_call: Call) -> dict[str, Any]:
        raise ConnectionRefusedError("connection refused")

    @api.get("/unavailable", summary="A dependency refused", roles=None)
    async def unavailable(_call: Call) -> dict[str, Any]:
        raise ServiceUnavailable()

    @api.get("/answers-503", summary="A view that answers 503 itself", roles=None)
    async def answers_503(_call: Call) -> web.Response:
        return problem(503, "busy", "Busy")

    @api.get("/streamed", summary="A view that streams its answer", roles=None)
    async def streamed(call: Call) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(call.request)
        await response.write(b"a,b\n")
        return response

    return api


@contextlib.asynccontextmanager
async def serving(settings: Settings, *, ready: bool = True) -> AsyncIterator[TestClient]:
    app = make_app(build_api(), settings)
    app[TOKENS] = OneToken()

    async def not_ready() -> str | None:
        return None if ready else "database: ConnectionRefusedError"

    app[READINESS].append(not_ready)
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with serving(Settings(rate_limit_per_minute=0)) as client:
        yield client


@pytest.mark.parametrize("authorization", [None, "", "Basic dXNlcjpwYXNz", "Bearer"])
async def test_a_401_without_a_bearer_token_carries_the_bare_challenge(
    client: TestClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get("/thing", headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="rcc"'
    assert (await response.json())["code"] == "missing_token"


@pytest.mark.parametrize("token", [new_token(), "not-ours", "rcc_" + "a" * 200])
async def test_a_401_for_a_bad_token_says_invalid_token(client: TestClient, token: str) -> None:
    response = await client.get("/thing", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="rcc", error="invalid_token"'


async def test_a_good_token_gets_no_challenge(client: TestClient) -> None:
    response = await client.get("/thing", headers={"Authorization": f"Bearer {GOOD_TOKEN}"})
    assert response.status == 200
    assert "WWW-Authenticate" not in response.headers


async def test_a_429_says_when_the_bucket_has_a_token_again() -> None:
    async with serving(Settings(rate_limit_per_minute=6, rate_limit_burst=1)) as client:
        headers = {"Authorization": f"Bearer {GOOD_TOKEN}"}
        assert (await client.get("/thing", headers=headers)).status == 200
        refused = await client.get("/thing", headers=headers)
    assert refused.status == 429
    assert 9 <= int(refused.headers["Retry-After"]) <= 10  # one token per 10 s, one just spent


@pytest.mark.parametrize("path", ["/database-down", "/unavailable", "/answers-503"])
async def test_every_503_says_retry_shortly(client: TestClient, path: str) -> None:
    response = await client.get(path)
    assert response.status == 503
    assert 1 <= int(response.headers["Retry-After"]) <= 5
    assert response.headers["Content-Type"].startswith("application/problem+json")


async def test_a_503_from_readyz_says_retry_shortly() -> None:
    async with serving(Settings(), ready=False) as client:
        response = await client.get("/readyz")
    assert response.status == 503
    assert 1 <= int(response.headers["Retry-After"]) <= 5


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/thing"),  # 401
        ("GET", "/nowhere"),  # 404
        ("DELETE", "/healthz"),  # 405
        ("GET", "/database-down"),  # 503
        ("GET", "/streamed"),  # prepared by the view itself
    ],
)
async def test_every_answer_names_no_server_software(client: TestClient, method: str, path: str) -> None:
    response = await client.request(method, path)
    await response.read()
    assert response.headers["Server"] == "rcc"


async def test_the_pages_app_names_no_server_software_either() -> None:
    from services.pages.app import create_app

    async with TestClient(TestServer(create_app(Settings()))) as client:
        for path in ("/healthz", "/kiosk", "/static/nowhere.js", "/api/nowhere/x"):
            response = await client.get(path)
            assert response.headers["Server"] == "rcc", path


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
    ],
    ids=["not http", "bad content-length", "nul in the path"],
)
async def test_a_request_aiohttp_cannot_parse_gets_no_server_software_either(raw: bytes) -> None:
    runner = web.AppRunner(make_app(build_api(), Settings()), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        await runner.cleanup()
    head = answer.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0].split()[1] == b"400"
    assert [line for line in head if line.lower().startswith(b"server:")] == [b"Server: rcc"]


# The rate limiter's buckets under a flood


def test_a_drained_bucket_in_use_stays_drained_under_a_flood_of_other_tokens() -> None:
    limiter = RateLimiter(per_minute=1, burst=2, max_buckets=100)
    real = uuid.uuid4()
    limiter.check(real)
    limiter.check(real)
    for n in range(5_000):
        limiter.check(uuid.uuid4())
        if n % 50 == 0:  # the real token keeps knocking
            with pytest.raises(RateLimited):
                limiter.check(real)
    with pytest.raises(RateLimited):
        limiter.check(real)
    assert len(limiter._buckets) == 100


def test_a_full_limiter_forgets_the_bucket_used_longest_ago() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, max_buckets=2)
    old, recent, new = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    limiter.check(old)
    limiter.check(recent)
    limiter.check(new)  # the limiter is full: old goes
    with pytest.raises(RateLimited):
        limiter.check(recent)
    limiter.check(old)  # a fresh bucket: it was forgotten, and only it
    with pytest.raises(RateLimited):
        limiter.check(recent)
