from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.logging import configure_logging
from shared.settings import Settings
from tests.support.broker import delete_prefixed
from tests.support.databases import drop_database, migrated_settings
from tests.support.stack import Client, SiteUnderTest, make_site, services

configure_logging("WARNING", json=True)

QUEUES = ["audit", "tap", "volunteering", "gatherings", "notify"]


@pytest.fixture(scope="session")
async def settings() -> AsyncIterator[Settings]:
    """A database of this run's own (migrated) and a broker prefix of its own; both removed afterwards."""
    name, settings = await migrated_settings()
    yield settings
    await delete_prefixed(settings, QUEUES)
    await drop_database(name)


@pytest.fixture
async def site(settings: Settings) -> SiteUnderTest:
    return await make_site(settings)


@pytest.fixture
async def other_site(settings: Settings) -> SiteUnderTest:
    return await make_site(settings)


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Client]:
    async with services(settings, ["checkin", "audit"]) as client:
        yield client
