"""HTTP helpers every service shares: routes declared with the models that validate them (and generate OpenAPI),
problem+json errors, request ids, metrics, and the standard ``/healthz``, ``/readyz``, ``/metrics``,
``/openapi.json`` endpoints."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp import web_response as aiohttp_web_response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import problemtext, requestbody
from shared.access import Principal, Role, SiteDirectory, TokenStore
from shared.errors import DomainError, InvalidInput, NotFound, Unauthorized
from shared.logging import get_logger
from shared.messaging import Broker, is_transient
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.openapi import IDEMPOTENCY_KEY
from shared.ratelimit import RateLimited, RateLimiter
from shared.settings import Settings
from shared.uow import IdempotencyClaim, Outcome

PROBLEM_CONTENT_TYPE = "application/problem+json"

TOKENS = web.AppKey("tokens", TokenStore)
SITES = web.AppKey("sites", SiteDirectory)
SERVICE_NAME = web.AppKey("service_name", str)
READINESS: web.AppKey[list[ReadinessCheck]] = web.AppKey("readiness")
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
# What /healthz says of the broker ("connected", "disconnected", "not used by this role"), and what /metrics
# refreshes before it answers (gauges read at scrape time: broker state, the oldest unsent outbox row).
BROKER_STATE: web.AppKey[Callable[[], str]] = web.AppKey("broker_state")
METRIC_PROBES: web.AppKey[list[Callable[[], Awaitable[None]]]] = web.AppKey("metric_probes")
PROCESS_ROLE = web.AppKey("process_role", str)

log = get_logger(component="http")

# What every response says in its Server header: the name of the system, not the Python and aiohttp versions an
# attacker would look up (OWASP: no fingerprint of the server software). neutral_server_header sets it on what the
# apps answer; aiohttp answers a request it cannot parse itself, before any app sees it, with its module default,
# so that default says the same (tests/unit/test_http_conventions.py sends such requests).
SERVER = "rcc"
aiohttp_web_response.SERVER_SOFTWARE = SERVER  # type: ignore[attr-defined]  # aiohttp's default, not exported
# The realm of every bearer challenge (RFC 6750 §3): one token store serves every service.
REALM = "rcc"
# Seconds a client should wait before retrying a 503 when nothing better is known: a database or broker that is
# restarting is back within seconds, and a kiosk that retries sooner only adds to the queue.
UNAVAILABLE_RETRY_AFTER_S = 2


def problem(status: int, code: str, title: str, detail: str | None = None, **extra: Any) -> web.Response:
    # Title and detail in the language the request asked for (shared/problemtext); the code stays as it is.
    language = problemtext.LANGUAGE.get()
    title, detail = problemtext.localize(code, title, detail, language)
    body: dict[str, Any] = {"type": f"/problems/{code}", "title": title, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    response = web.Response(status=status, text=json.dumps(body), content_type=PROBLEM_CONTENT_TYPE)
    response.headers["Content-Language"] = language
    response.headers["Vary"] = "Accept-Language"
    return response


def _validation_problem(exc: ValidationError, where: str) -> web.Response:
    # The offending input is not echoed back: it may be personal data.
    errors = [
        {"loc": [where, *exc_loc], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_input=False, include_url=False)
        for exc_loc in [err["loc"]]
    ]
    return problem(422, "invalid_request", "The request is not valid", f"Check the {where}.", errors=errors)


_HTTP_CODES = {
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("body_too_large", "The request body is too large"),
    415: ("unsupported_media_type", "Send application/json"),
}

# What the router takes for a UUID segment: loose on purpose (any spelling uuid.UUID reads, its hyphens optional);
# Call.uuid_param still parses it.
UUID_SEGMENT = "[0-9A-Fa-f-]{32,36}"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY)


@web.middleware
async def request_context_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    # 32 hex digits, as uuid4().hex gave, for a fifth of its CPU (every request pays it).
    request_id = incoming if _REQUEST_ID.match(incoming) else os.urandom(16).hex()
    service = request.app[SERVICE_NAME]
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, service=service)
    problemtext.LANGUAGE.set(problemtext.negotiate(request.headers.get("Accept-Language")))
    started = time.perf_counter()
    response = await _answer(request, handler)
    elapsed = time.perf_counter() - started
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = response.status
    counted, timed = _metrics(service, request.method, route, status)
    counted.inc()
    timed.observe(elapsed)
    response.headers["X-Request-ID"] = request_id
    level = "debug" if status < 400 else "info" if status < 500 else "error"
    getattr(log, level)("http_request", method=request.method, route=route, status=status, ms=round(elapsed * 1000, 2))
    return response


# The metric children of each (service, method, route, status) seen: prometheus_client's ``labels()`` takes a lock
# and builds its key on every call, which cost more CPU per request than counting itself. Only routes of the app
# are kept (a bounded set); an unmatched path's method is whatever a client sent, so those are not.
_MetricChildren = tuple[Any, Any]
_METRICS: dict[tuple[str, str, str, int], _MetricChildren] = {}


def _metrics(service: str, method: str, route: str, status: int) -> _MetricChildren:
    key = (service, method, route, status)
    children = _METRICS.get(key)
    if children is None:
        children = (HTTP_REQUESTS.labels(service, method, route, status), HTTP_LATENCY.labels(service, route))
        if route != "unmatched":
            _METRICS[key] = children
    return children


async def _answer(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except RateLimited as exc:
        response = problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    except Unauthorized as exc:
        response = problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)
        response.headers["WWW-Authenticate"] = bearer_challenge(exc.code)
        return response
    except DomainError as exc:
        return problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, title = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        response = problem(exc.status, code, title, exc.text if exc.status not in _HTTP_CODES else None)
        if "Allow" in exc.headers:  # a 405 names the methods that would work (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and _client_gone(request):
            # The kiosk hung up (network blip, tablet asleep) before it sent its whole request: not our database
            # failing, so no 503 that would page someone about it. Nobody will read this answer.
            log.info("client_disconnected", error=type(exc).__name__)
            return web.Response(status=CLIENT_CLOSED_REQUEST)
        if is_transient(exc):
            log.warning("dependency_unavailable", error=type(exc).__name__)
            response = problem(503, "database_unavailable", "The database is unavailable; try again shortly")
            response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
            return response
        log.exception("unhandled_error")
        return problem(500, "internal_error", "Something went wrong on our side")


def bearer_challenge(code: str) -> str:
    """The ``WWW-Authenticate`` of a 401 (RFC 6750 §3): a request that sent no bearer token gets the bare challenge,
    one whose token is unknown, expired or revoked is told ``invalid_token`` so a client knows to get a new one."""
    challenge = f'Bearer realm="{REALM}"'
    if code == "invalid_token":
        challenge += ', error="invalid_token"'
    return challenge


async def neutral_server_header(_request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs after aiohttp filled in its own Server header, for every response the app
    sends (errors, health routes and answers a view streams itself included)."""
    response.headers["Server"] = SERVER
    if response.status in (429, 503):
        # RFC 9110 §10.2.3: tell a client when to come back, whichever code path answered "not now".
        response.headers.setdefault("Retry-After", str(UNAVAILABLE_RETRY_AFTER_S))


# nginx's code for "the client closed the connection before it got an answer".
CLIENT_CLOSED_REQUEST = 499


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@dataclass(slots=True)
class Call:
    """What a view receives: the request, who sent it, and its validated body and query."""

    request: web.Request
    principal: Principal | None
    body: Any = None
    query: Any = None
    raw_body: bytes = b""

    @property
    def who(self) -> Principal:
        assert self.principal is not None, "route declared without roles"
        return self.principal

    def uuid_param(self, name: str) -> uuid.UUID:
        try:
            return uuid.UUID(self.request.match_info[name])
        except ValueError as exc:
            raise NotFound(f"No such {name.removesuffix('_id')}.", code="not_found") from exc

    def idempotency(self) -> IdempotencyClaim | None:
        key = self.request.headers.get("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
            raise InvalidInput("Idempotency-Key is 1 to 200 visible ASCII characters.", code="bad_idempotency_key")
        return IdempotencyClaim.of(
            str(self.who.token_id),
            key,
            self.request.method,
            self.request.path_qs,
            self.raw_body,
        )


View = Callable[[Call], Awaitable[Any]]


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    roles: tuple[Role, ...] | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    errors: tuple[int, ...]
    idempotent: bool
    content_types: tuple[str, ...] = ()


@dataclass
class Api:
    """Routes of one service. Each route names its roles and the models that validate its input and describe its
    output; the same declarations produce ``/openapi.json``."""

    service: str
    title: str
    version: str = "1.0.0"
    routes: web.RouteTableDef = field(default_factory=web.RouteTableDef)
    operations: list[Operation] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        roles: Sequence[Role] | None,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        errors: Sequence[int] = (),
        idempotent: bool = False,
        content_types: Sequence[str] = (),
        uuid_params: Sequence[str] = (),
    ) -> Callable[[View], View]:
        """``uuid_params``: path parameters the router matches only where the segment looks like a UUID, so that a
        literal sibling (``/members/display-names`` beside ``/members/{member_id}``) is not also this route (its
        405 would advertise this route's methods in ``Allow``). The documented path stays as written."""
        allowed = tuple(roles) if roles is not None else None
        routed = path
        for name in uuid_params:
            assert f"{{{name}}}" in path, (path, name)
            routed = routed.replace(f"{{{name}}}", f"{{{name}:{UUID_SEGMENT}}}")

        def register(view: View) -> View:
            async def handler(request: web.Request) -> web.StreamResponse:
                principal = None
                if allowed is not None:
                    principal = await request.app[TOKENS].authenticate(request.headers.get("Authorization"))
                    structlog.contextvars.bind_contextvars(actor=principal.actor_id)
                    request.app[RATE_LIMITER].check(principal.token_id)
                    if principal.role not in allowed:
                        return problem(
                            403, "wrong_role", "Not allowed for this token", f"This needs one of: {', '.join(allowed)}."
                        )
                call = Call(request, principal)
                if body is not None:
                    call.raw_body = await request.read()
                    payload = requestbody.parse_json(request, call.raw_body)
                    if b"\\u0000" in call.raw_body and requestbody.holds_nul(payload):
                        return _nul_problem("body")
                    if numbers := requestbody.numbers_given_as_times(body, payload):
                        return _numbers_problem(numbers, "body")
                    try:
                        # Strict: JSON types as documented (no "5" for 5, no 0 for a date); strings still become
                        # dates, times and ids, as JSON has no types of its own for them.
                        call.body = body.model_validate_json(
                            requestbody.as_json_types(payload, call.raw_body), strict=True
                        )
                    except ValidationError as exc:
                        return _validation_problem(exc, "body")
                if query is not None:
                    if any("\x00" in value for value in request.query.values()):
                        return _nul_problem("query")
                    if numbers := requestbody.numbers_given_as_times(query, request.query):
                        return _numbers_problem(numbers, "query")
                    try:
                        call.query = query.model_validate(dict(request.query))
                    except ValidationError as exc:
                        return _validation_problem(exc, "query")
                result = await view(call)
                return _to_response(result, status)

            self.routes.route(method, routed)(handler)
            self.operations.append(
                Operation(
                    method,
                    path,
                    summary,
                    allowed,
                    body,
                    query,
                    response,
                    status,
                    tuple(errors),
                    idempotent,
                    tuple(content_types),
                )
            )
            return view

        return register

    def get(self, path: str, **kwargs: Any) -> Callable[[View], View]:
        return self.route("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[View], View]:
        return self.route("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[View], View]:
        return self.route("DELETE", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[View], View]:
        return self.route("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[View], View]:
        return self.route("PUT", path, **kwargs)

    def openapi(self) -> dict[str, Any]:
        from shared.openapi import build_openapi

        return build_openapi(self)


def _numbers_problem(names: list[str], where: str) -> web.Response:
    errors = [
        {"loc": [where, name], "msg": "Give an ISO 8601 date or time, not a number", "type": "number_as_time"}
        for name in names
    ]
    return problem(422, "invalid_request", "The request is not valid", f"Check the {where}.", errors=errors)


def _nul_problem(where: str) -> web.Response:
    # PostgreSQL text cannot hold U+0000; refuse it here, as bad input, rather than fail in the database.
    return problem(422, "invalid_character", "The request is not valid", f"The {where} contains a NUL character.")


def _to_response(result: Any, status: int) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, Outcome):
        response = json_answer(result.body, result.status)
        if result.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return response
    if isinstance(result, BaseModel):
        return web.Response(status=status, body=result.model_dump_json(), content_type="application/json")
    return json_answer(result, status)


def json_answer(body: Any, status: int = 200) -> web.Response:
    """``web.json_response``, written by orjson (a twentieth of json.dumps' CPU; non-ASCII text as UTF-8 rather
    than escaped, the same JSON)."""
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


ReadinessCheck = Callable[[], Awaitable[str | None]]


def database_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> str | None:
        try:
            async with asyncio.timeout(2):
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure means not ready, and says why
            return f"database: {type(exc).__name__}"
        return None

    return check


def broker_check(broker: Broker) -> ReadinessCheck:
    async def check() -> str | None:
        return None if broker.is_ready else "broker: not connected"

    return check


async def healthz(request: web.Request) -> web.Response:
    """The process is up (a liveness probe: never fails because a dependency is away). The detail says which role
    it runs and how its broker connection stands, for an operator; readiness is ``/readyz``."""
    detail = {"status": "ok"}
    if (role := request.app.get(PROCESS_ROLE)) is not None:
        detail["role"] = role
    if (broker_state := request.app.get(BROKER_STATE)) is not None:
        detail["broker"] = broker_state()
    return web.json_response(detail)


async def readyz(request: web.Request) -> web.Response:
    checks: list[ReadinessCheck] = request.app[READINESS]
    failures = [reason for reason in await asyncio.gather(*(check() for check in checks)) if reason]
    if failures:
        response = problem(503, "not_ready", "Not ready", "; ".join(failures), failing=failures)
        response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
        return response
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    # A probe that fails (the database is away) leaves its gauge as it was: /metrics itself always answers.
    await asyncio.gather(*(probe() for probe in request.app.get(METRIC_PROBES, ())), return_exceptions=True)
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


def make_app(api: Api, settings: Settings) -> web.Application:
    app = web.Application(middlewares=[request_context_middleware], client_max_size=settings.max_body_bytes)
    app[RATE_LIMITER] = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    app[SERVICE_NAME] = api.service
    app[READINESS] = []
    app[METRIC_PROBES] = []
    app[PROCESS_ROLE] = settings.role
    app[OPENAPI] = api.openapi()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi_json)
    if settings.runs("web"):  # a relay, consumer or scheduler replica answers its probes and nothing else
        app.add_routes(api.routes)
    app.on_response_prepare.append(neutral_server_header)
    return app
