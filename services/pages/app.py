from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from services.pages import SERVICE, proxy
from services.pages.settings import PagesSettings
from services.registry import SERVICES
from shared.settings import Settings
from shared.web import (
    READINESS,
    SERVICE_NAME,
    healthz,
    metrics,
    neutral_server_header,
    readyz,
    request_context_middleware,
)

STATIC = Path(__file__).resolve().parent / "static"
PAGES = ("kiosk", "volunteer", "coordinator")

# Everything a page loads comes from this origin: a center may be offline, and a kiosk shows nothing it did not ship.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def create_app(base: Settings | None = None) -> web.Application:
    settings = PagesSettings.of(base)
    app = web.Application(middlewares=[request_context_middleware], client_max_size=settings.max_body_bytes)
    app[SERVICE_NAME] = SERVICE
    app[READINESS] = []
    app[proxy.UPSTREAMS] = proxy.upstreams(settings, tuple(SERVICES))
    app.cleanup_ctx.append(proxy.client_session(settings))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", _page("index"))
    for name in PAGES:
        app.router.add_get(f"/{name}", _page(name))
    app.router.add_static("/static/", STATIC, append_version=False)
    app.router.add_route("*", proxy.PREFIX + "{service}/{tail:.*}", proxy.forward)
    app.on_response_prepare.append(neutral_server_header)
    app.on_response_prepare.append(_page_headers)
    return app


def _page(name: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    path = STATIC / f"{name}.html"

    async def handler(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    return handler


async def _page_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(proxy.PREFIX):
        return
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    # Small files, revalidated each time, so an updated kiosk never runs yesterday's script.
    response.headers["Cache-Control"] = "no-cache"
