from aiohttp import web

from services.volunteering import SERVICE
from services.volunteering.settings import VolunteeringSettings
from services.volunteering.views import api
from shared import runtime
from shared.settings import Settings
from shared.web import make_app


def create_app(base: Settings | None = None) -> web.Application:
    settings = VolunteeringSettings.of(base)
    app = make_app(api, max_body_bytes=settings.max_body_bytes)
    app.cleanup_ctx.extend([runtime.database(settings, SERVICE), runtime.broker(settings, SERVICE)])
    return app
