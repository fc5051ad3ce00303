from aiohttp import web

from services.gatherings import SERVICE
from services.gatherings.settings import GatheringsSettings
from services.gatherings.views import api
from shared import runtime
from shared.settings import Settings
from shared.web import make_app


def create_app(base: Settings | None = None) -> web.Application:
    settings = GatheringsSettings.of(base)
    app = make_app(api, max_body_bytes=settings.max_body_bytes)
    app.cleanup_ctx.extend([runtime.database(settings, SERVICE), runtime.broker(settings, SERVICE)])
    return app
