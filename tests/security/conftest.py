"""Fixtures of the bad-input and access suite: the five services against the real PostgreSQL and RabbitMQ, two
sites with a token of every role, and the services' own route declarations (the same ones their OpenAPI documents
are built from), so every check walks every route."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest

from services.cli import running
from shared.settings import Settings
from shared.web import Api, Operation
from tests.support.stack import Client, SiteUnderTest, make_site, services

SERVICES = ("checkin", "volunteering", "gatherings", "audit", "notify")


def api_of(service: str) -> Api:
    return importlib.import_module(f"services.{service}.views").api


def operations() -> list[tuple[str, Operation]]:
    """Every declared route of every service, as (service, operation)."""
    return [(service, op) for service in SERVICES for op in api_of(service).operations]


def unlimited(settings: Settings) -> Settings:
    """The per-token rate limit off: one test token here stands for a whole center's worth of requests."""
    return settings.model_copy(update={"rate_limit_per_minute": 0})


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Client]:
    async with services(unlimited(settings), list(SERVICES)) as client:
        yield client


@pytest.fixture(scope="module")
async def home(settings: Settings) -> SiteUnderTest:
    return await make_site(settings)


@pytest.fixture(scope="module")
async def elsewhere(settings: Settings) -> SiteUnderTest:
    return await make_site(settings)


@contextlib.contextmanager
def services_in_thread(settings: Settings, names: Sequence[str]) -> Iterator[dict[str, str]]:
    """The services on an event loop of their own in a background thread, for synchronous clients (Schemathesis
    sends its requests with ``requests``, which would block the test's own loop)."""
    started = threading.Event()
    urls: dict[str, str] = {}
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            async with running(settings, names) as bound:
                urls.update(bound)
                started.set()
                await stop.wait()
        except BaseException as exc:
            failure.append(exc)
            started.set()
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), name="services", daemon=True)
    thread.start()
    started.wait(timeout=60)
    try:
        if failure:
            raise failure[0]
        assert urls, "the services did not start within 60 s"
        yield urls
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()
