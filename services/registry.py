"""Every schema the project migrates and every service ``rcc serve`` can run, in dependency order."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Schema:
    name: str
    migrations: Path


@dataclass(frozen=True)
class Service:
    name: str
    package: str

    def create_app(self, settings: Settings | None = None) -> web.Application:
        app: web.Application = importlib.import_module(f"{self.package}.app").create_app(settings)
        return app

    def queue(self) -> tuple[str, tuple[str, ...]] | None:
        """The service's consumer queue and its bindings, if it consumes."""
        consumers = importlib.import_module(f"{self.package}.consumers")
        bindings = tuple(getattr(consumers, "BINDINGS", ()))
        return (consumers.QUEUE, bindings) if bindings else None


SCHEMAS = (
    Schema("access", ROOT / "shared" / "access_migrations"),
    Schema("checkin", ROOT / "services" / "checkin" / "migrations"),
    Schema("volunteering", ROOT / "services" / "volunteering" / "migrations"),
    Schema("gatherings", ROOT / "services" / "gatherings" / "migrations"),
    Schema("audit", ROOT / "services" / "audit" / "migrations"),
    Schema("notify", ROOT / "services" / "notify" / "migrations"),
)

# The back-end services: each has a schema, an HTTP API (``views.api``) and the broker.
SERVICES = {
    "checkin": Service("checkin", "services.checkin"),
    "volunteering": Service("volunteering", "services.volunteering"),
    "gatherings": Service("gatherings", "services.gatherings"),
    "audit": Service("audit", "services.audit"),
    "notify": Service("notify", "services.notify"),
}

# The pages people use, calling the services' APIs through a proxy of their own: no schema, no broker, no API of its
# own, so it is kept out of SERVICES (migrations, topology, docs and the fault tests iterate those).
PAGES = Service("pages", "services.pages")

# What ``rcc serve`` runs; ``all`` starts them in this order, the pages last so they get the services' URLs.
SERVABLE = {**SERVICES, PAGES.name: PAGES}
