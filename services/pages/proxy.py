"""``/api/<service>/<path>`` forwarded to that service: the pages and the APIs share one origin, whether the services
run in this process (``rcc serve all``) or in containers of their own (docker compose)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import structlog
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from services.pages.settings import PagesSettings
from shared.logging import get_logger
from shared.web import problem

UPSTREAMS: web.AppKey[dict[str, URL]] = web.AppKey("pages_upstreams")
HTTP = web.AppKey("pages_http", aiohttp.ClientSession)

PREFIX = "/api/"
FORWARDED_REQUEST_HEADERS = ("Authorization", "Idempotency-Key", "Content-Type", "Accept", "Accept-Language")
# Hop-by-hop, or set by this server itself (the request id is the one it forwarded, so they match).
DROPPED_RESPONSE_HEADERS = frozenset(
    h.lower()
    for h in ("Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length", "Date", "Server", "X-Request-ID")
)

log = get_logger(component="pages-proxy")


def upstreams(settings: PagesSettings, services: tuple[str, ...]) -> dict[str, URL]:
    return {name: URL(settings.url_of(name)) for name in services}


def client_session(settings: PagesSettings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(
            total=settings.upstream_timeout_s, sock_connect=settings.upstream_connect_timeout_s
        )
        # Redirects and cookies are the browser's business, not the proxy's.
        async with aiohttp.ClientSession(
            timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
        ) as session:
            app[HTTP] = session
            yield

    return ctx


async def forward(request: web.Request) -> web.StreamResponse:
    service = request.match_info["service"]
    known = request.app[UPSTREAMS]
    base = known.get(service)
    if base is None:
        return problem(
            404,
            "unknown_service",
            "No such service",
            f"The API prefixes are /api/{{{','.join(known)}}}/.",
        )
    # The raw (still percent-encoded) path, so an id or a calendar secret reaches the service exactly as sent.
    tail = "/" + request.rel_url.raw_path.split("/", 3)[3]
    target = URL(
        f"{base}{tail}{'?' + request.rel_url.raw_query_string if request.rel_url.raw_query_string else ''}",
        encoded=True,
    )
    headers = CIMultiDict((h, request.headers[h]) for h in FORWARDED_REQUEST_HEADERS if h in request.headers)
    if request_id := structlog.contextvars.get_contextvars().get("request_id"):
        headers["X-Request-ID"] = request_id
    body = await request.read() if request.body_exists else None
    try:
        async with request.app[HTTP].request(
            request.method, target, headers=headers, data=body, allow_redirects=False
        ) as upstream:
            content = await upstream.read()
            response = web.Response(status=upstream.status, body=content)
            for name, value in upstream.headers.items():
                if name.lower() not in DROPPED_RESPONSE_HEADERS:
                    response.headers.add(name, value)
            return response
    except TimeoutError:
        log.warning("upstream_timeout", upstream=service)
        return problem(
            504,
            "upstream_timeout",
            "The service did not answer in time",
            f"{service} is slow; try again.",
            service=service,
        )
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.IncompleteReadError) as exc:
        log.warning("upstream_unavailable", upstream=service, error=type(exc).__name__)
        return problem(
            502,
            "upstream_unavailable",
            "The service cannot be reached",
            f"{service} is not answering; try again shortly.",
            service=service,
        )
