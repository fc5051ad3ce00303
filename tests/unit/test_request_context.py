"""The request middleware: every answer carries a request id (the client's when it sent a well-formed one), and every
request is counted under its route and status, also when the metric children are reused."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shared.metrics import HTTP_REQUESTS
from shared.web import SERVICE_NAME, request_context_middleware

SERVICE = "it-request-context"


async def created(_request: web.Request) -> web.Response:
    return web.Response(status=201)


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[request_context_middleware])
    app[SERVICE_NAME] = SERVICE
    app.router.add_post("/things", created)
    async with TestClient(TestServer(app)) as client:
        yield client


def counted(method: str, route: str, status: int) -> float:
    value = HTTP_REQUESTS.labels(SERVICE, method, route, status)._value.get()
    assert isinstance(value, float)
    return value


async def test_a_request_without_an_id_gets_a_new_one_each_time(
    client: TestClient[web.Request, web.Application],
) -> None:
    ids = set()
    for _ in range(3):
        async with client.post("/things") as response:
            assert response.status == 201
            ids.add(response.headers["X-Request-ID"])
    assert len(ids) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)


async def test_a_well_formed_client_id_is_kept_and_a_bad_one_replaced(
    client: TestClient[web.Request, web.Application],
) -> None:
    async with client.post("/things", headers={"X-Request-ID": "kiosk-7.abc"}) as response:
        assert response.headers["X-Request-ID"] == "kiosk-7.abc"
    async with client.post("/things", headers={"X-Request-ID": "no spaces <here>"}) as response:
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


async def test_every_request_is_counted_under_its_route_and_status(
    client: TestClient[web.Request, web.Application],
) -> None:
    before_created, before_missing = counted("POST", "/things", 201), counted("GET", "unmatched", 404)
    for _ in range(3):
        async with client.post("/things"):
            pass
    async with client.get("/nowhere"):
        pass
    assert counted("POST", "/things", 201) == before_created + 3
    assert counted("GET", "unmatched", 404) == before_missing + 1
