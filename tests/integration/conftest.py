"""Fixtures of the integration tests that several modules share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.settings import Settings
from tests.support.stack import Client, make_site, services
from tests.support.volunteering import SERVICES, Center


@pytest.fixture(scope="module")
async def vstack(settings: Settings) -> AsyncIterator[Client]:
    """Check-in, volunteering and audit running in this process for a whole test module. The per-token rate limit
    is off: one test coordinator token here does in seconds what a person would not do in an hour."""
    async with services(settings.model_copy(update={"rate_limit_per_minute": 0}), SERVICES) as client:
        yield client


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def center(settings: Settings, vstack: Client, engine: AsyncEngine) -> Center:
    return Center(vstack, settings, await make_site(settings, timezone="America/New_York"), engine)
