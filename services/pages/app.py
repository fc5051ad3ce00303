from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import hdrs, web

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
    app = web.Application(
        middlewares=[request_context_middleware, _compressed], client_max_size=settings.max_body_bytes
    )
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
    app.router.add_get("/sw.js", kiosk_service_worker)
    app.router.add_get("/kiosk.webmanifest", kiosk_manifest)
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


# The kiosk's app shell: what its service worker keeps, so a kiosk rebooted with the network down still comes up.
# Its cache is named after a hash of these files' contents, so a deploy that changes any of them changes the worker
# (a byte-different /sw.js), which the browser installs beside the old one and which then drops the old cache.
KIOSK_SHELL = (
    "/kiosk",
    "/static/kiosk.js",
    "/static/common.js",
    "/static/i18n.js",
    "/static/style.css",
    "/static/kiosk.css",
    "/static/i18n/kiosk.es.json",
    "/kiosk.webmanifest",
    "/static/icons/kiosk-192.png",
)


def _shipped_file(url: str) -> Path:
    if url.startswith("/static/"):
        return STATIC / url.removeprefix("/static/")
    return STATIC / f"{url.strip('/')}.html" if url == "/kiosk" else STATIC / url.strip("/")


_versions: dict[tuple[tuple[int, int], ...], str] = {}


def kiosk_shell_version() -> str:
    """A hash of the worker and its shell files, kept per (mtime, size) of each so a request costs a few stats."""
    files = [STATIC / "sw.js", *(_shipped_file(url) for url in KIOSK_SHELL)]
    stamp = tuple((f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    if stamp not in _versions:
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
        _versions.clear()
        _versions[stamp] = digest.hexdigest()[:16]
    return _versions[stamp]


async def kiosk_service_worker(_request: web.Request) -> web.Response:
    source = (STATIC / "sw.js").read_text()
    script = source.replace('"__VERSION__"', json.dumps(kiosk_shell_version())).replace(
        "__SHELL__", json.dumps(list(KIOSK_SHELL))
    )
    # Served from the root so that it may control /kiosk (a worker's scope cannot reach above its own folder).
    return web.Response(text=script, content_type="text/javascript")


async def kiosk_manifest(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "kiosk.webmanifest", headers={"Content-Type": "application/manifest+json"})


@web.middleware
async def _compressed(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Pages and their files gzipped when the browser takes it (a kiosk's first load stays a few kilobytes); the
    proxied API answers pass through as the services sent them. Not for a conditional request: its answer is
    mostly a 304, which aiohttp would give a compressed empty body, and a 304 has none (browsers refuse it)."""
    response = await handler(request)
    path = request.path
    page = path.startswith("/static/") or path.removeprefix("/") in (*PAGES, "", "sw.js", "kiosk.webmanifest")
    conditional = hdrs.IF_NONE_MATCH in request.headers or hdrs.IF_MODIFIED_SINCE in request.headers
    accepts_gzip = "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, "").lower()
    if page and accepts_gzip and not conditional and not path.endswith(".png") and not response.prepared:
        response.enable_compression(web.ContentCoding.gzip)
    return response


async def _page_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(proxy.PREFIX):
        return
    # A policy binds documents and workers only; on every script, style and catalogue it would be bytes a kiosk's
    # first load pays for (about 4 kB of its 30) and no browser reads.
    if request.path.removeprefix("/") in (*PAGES, "", "sw.js"):
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    # Small files, revalidated each time, so an updated kiosk never runs yesterday's script.
    response.headers["Cache-Control"] = "no-cache"
