"""Log redaction, idempotency claims, and the OpenAPI documents the services serve."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from shared.errors import InvalidInput
from shared.logging import REDACTED, configure_logging, redact_personal_data
from shared.uow import IdempotencyClaim

# Redaction


@pytest.mark.parametrize("key", ["nickname", "token", "authorization", "kiosk_code", "phone", "email", "notes"])
def test_personal_values_are_redacted(key: str) -> None:
    event = {"event": "member_registered", key: "secret value", "site_id": "downtown"}

    result = redact_personal_data(None, "info", event)

    assert result[key] == REDACTED
    assert "secret value" not in repr(result)
    assert result["event"] == "member_registered"
    assert result["site_id"] == "downtown"


def test_everything_personal_is_redacted_at_once() -> None:
    event = {
        "event": "check_in",
        "nickname": "Sunny",
        "token": "rcc_abc",
        "authorization": "Bearer rcc_abc",
        "kiosk_code": "ABC234",
        "member_id": "0b5e9f3e-6a7d-4f2b-8c1e-3d4a5b6c7d8e",
    }

    result = redact_personal_data(None, "info", dict(event))

    assert result == {
        "event": "check_in",
        "nickname": REDACTED,
        "token": REDACTED,
        "authorization": REDACTED,
        "kiosk_code": REDACTED,
        "member_id": "0b5e9f3e-6a7d-4f2b-8c1e-3d4a5b6c7d8e",
    }


def test_a_log_line_without_personal_keys_is_unchanged() -> None:
    event = {"event": "http_request", "route": "/visits", "status": 201}
    assert redact_personal_data(None, "info", dict(event)) == event


# Idempotency claims


def claim(key: str | None = "key-1", method: str = "POST", path: str = "/visits", body: bytes = b'{"a":1}'):
    return IdempotencyClaim.of("token-1", key, method, path, body)


def test_no_key_no_claim() -> None:
    assert claim(key=None) is None


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_a_key_of_bad_length_is_refused(key: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        claim(key=key)
    assert raised.value.code == "bad_idempotency_key"
    assert raised.value.status == 422


def test_a_key_of_200_characters_is_accepted() -> None:
    result = claim(key="k" * 200)
    assert result is not None
    assert result.key == "k" * 200
    assert result.scope == "token-1"


def test_same_request_gives_the_same_fingerprint() -> None:
    first, second = claim(), claim()
    assert first is not None and second is not None
    assert first.fingerprint == second.fingerprint
    assert re.fullmatch(r"[0-9a-f]{64}", first.fingerprint)


@pytest.mark.parametrize(
    "other",
    [
        {"body": b'{"a":2}'},
        {"path": "/members"},
        {"method": "PUT"},
    ],
    ids=["body", "path", "method"],
)
def test_a_different_request_gives_a_different_fingerprint(other: dict[str, Any]) -> None:
    first, second = claim(), claim(**other)
    assert first is not None and second is not None
    assert first.fingerprint != second.fingerprint


def test_fingerprint_does_not_depend_on_the_key() -> None:
    first, second = claim(key="a"), claim(key="b")
    assert first is not None and second is not None
    assert first.fingerprint == second.fingerprint


# OpenAPI


@pytest.fixture(scope="module")
def checkin_doc() -> dict[str, Any]:
    from services.checkin.views import api

    return api.openapi()


@pytest.fixture(scope="module")
def audit_doc() -> dict[str, Any]:
    from services.audit.views import api

    return api.openapi()


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def assert_every_ref_resolves(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    found = list(refs(doc))
    assert found, "no $ref at all"
    for ref in found:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, f"dangling {ref}"


def problem_ref(response: dict[str, Any]) -> str:
    return response["content"]["application/problem+json"]["schema"]["$ref"]


def test_checkin_document_is_openapi_3_1(checkin_doc: dict[str, Any]) -> None:
    assert checkin_doc["openapi"] == "3.1.0"
    assert checkin_doc["info"]["title"]
    assert checkin_doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_check_in_operation(checkin_doc: dict[str, Any]) -> None:
    operation = checkin_doc["paths"]["/visits"]["post"]

    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/CheckInBody"}
    responses = operation["responses"]
    assert "201" in responses
    assert responses["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/CheckedIn"}
    for status in ("401", "403", "422"):
        assert problem_ref(responses[status]) == "#/components/schemas/Problem"
    assert operation["security"] == [{"bearer": []}]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in operation["parameters"])


def test_check_in_body_schema_lists_the_purposes(checkin_doc: dict[str, Any]) -> None:
    schema = checkin_doc["components"]["schemas"]["CheckInBody"]
    assert "purpose" in schema["required"]
    assert set(schema["properties"]["purpose"]["enum"]) >= {"drop_in", "volunteer_shift"}
    assert schema.get("additionalProperties") is False


def test_path_parameters_are_declared(checkin_doc: dict[str, Any]) -> None:
    operation = checkin_doc["paths"]["/visits/{visit_id}/checkout"]["post"]
    assert {"name": "visit_id", "in": "path", "required": True, "schema": {"type": "string"}} in operation["parameters"]


@pytest.mark.parametrize("doc_name", ["checkin_doc", "audit_doc"])
def test_every_ref_resolves(doc_name: str, request: pytest.FixtureRequest) -> None:
    assert_every_ref_resolves(request.getfixturevalue(doc_name))


@pytest.mark.parametrize("doc_name", ["checkin_doc", "audit_doc"])
def test_operation_ids_are_unique_and_every_operation_has_responses(
    doc_name: str, request: pytest.FixtureRequest
) -> None:
    doc = request.getfixturevalue(doc_name)
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values() if "operationId" in op]
    assert len(ids) == len(set(ids))
    for ops in doc["paths"].values():
        for operation in ops.values():
            assert operation["responses"]


@pytest.mark.parametrize("doc_name", ["checkin_doc", "audit_doc"])
def test_standard_endpoints_are_documented(doc_name: str, request: pytest.FixtureRequest) -> None:
    paths = request.getfixturevalue(doc_name)["paths"]
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert "200" in paths[path]["get"]["responses"]


def test_audit_document(audit_doc: dict[str, Any]) -> None:
    assert audit_doc["openapi"] == "3.1.0"
    operation = audit_doc["paths"]["/audit"]["get"]
    responses = operation["responses"]
    assert responses["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/AuditPage"}
    for status in ("401", "403", "422"):
        assert problem_ref(responses[status]) == "#/components/schemas/Problem"
    query_names = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert {"type", "site", "from", "to", "after", "limit"} <= query_names
    assert "AuditEntryOut" in audit_doc["components"]["schemas"]


# Library log lines: through the same JSON renderer and redaction as ours


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Logging configured as a service does, into a buffer; every line must be one JSON object. Restores the test
    run's own configuration afterwards."""
    saved_config, root = structlog.get_config(), logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure_logging("INFO", json=True, stream=buffer)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    try:
        yield lines
    finally:
        structlog.configure(**saved_config)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


@pytest.mark.parametrize(
    "name",
    [
        "aio_pika.robust_connection",
        "aiormq.connection",
        "asyncpg",
        "alembic.runtime.migration",
        "sqlalchemy.engine.Engine",
        "aiohttp.server",
    ],
)
def test_a_library_log_line_is_json_with_our_context_and_redaction(
    log_lines: Callable[[], list[dict[str, Any]]], name: str
) -> None:
    structlog.contextvars.bind_contextvars(request_id="r-1", nickname="Sunny")
    try:
        logging.getLogger(name).warning("Connection to %s lost: %s", "127.0.0.1:5672", "reset")
    finally:
        structlog.contextvars.clear_contextvars()

    (line,) = log_lines()
    assert line["event"] == "Connection to 127.0.0.1:5672 lost: reset"
    assert (line["logger"], line["level"], line["request_id"]) == (name, "warning", "r-1")
    assert line["nickname"] == REDACTED
    assert line["timestamp"].endswith("Z")


def test_a_library_exception_is_one_json_line_with_its_traceback(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError:
        logging.getLogger("aiormq.connection").exception("Unexpected connection close")

    (line,) = log_lines()
    assert line["event"] == "Unexpected connection close"
    assert "ConnectionResetError: peer went away" in line["exception"]


def test_our_lines_and_library_lines_share_the_stream(log_lines: Callable[[], list[dict[str, Any]]]) -> None:
    structlog.get_logger().info("ours", token="rcc_secret")
    logging.getLogger("asyncpg").warning("theirs")

    ours, theirs = log_lines()
    assert (ours["event"], ours["token"], ours["level"]) == ("ours", REDACTED, "info")
    assert (theirs["event"], theirs["logger"]) == ("theirs", "asyncpg")


def test_library_noise_below_warning_stays_out(log_lines: Callable[[], list[dict[str, Any]]]) -> None:
    logging.getLogger("aiormq.connection").info("Heartbeat")
    logging.getLogger("alembic.runtime.migration").info("Context impl PostgresqlImpl.")
    assert log_lines() == []


def test_configuring_twice_leaves_one_handler(log_lines: Callable[[], list[dict[str, Any]]]) -> None:
    buffer = io.StringIO()
    configure_logging("INFO", json=True, stream=buffer)
    logging.getLogger("asyncpg").warning("once")
    assert len(buffer.getvalue().splitlines()) == 1
    assert log_lines() == []


async def test_the_aiohttp_access_log_is_json(log_lines: Callable[[], list[dict[str, Any]]]) -> None:
    from aiohttp import ClientSession, web

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/hello", hello)
    access = logging.getLogger("aiohttp.access")
    saved_level = access.level
    access.setLevel(logging.INFO)
    runner = web.AppRunner(app, access_log=access)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with ClientSession() as http, http.get(f"http://127.0.0.1:{port}/hello") as response:
            assert response.status == 200
    finally:
        await runner.cleanup()
        access.setLevel(saved_level)

    (line,) = log_lines()
    assert line["logger"] == "aiohttp.access"
    assert line["level"] == "info"
    assert '"GET /hello HTTP/1.1" 200' in line["event"]
