"""Fixtures of the fault tests: each test that cuts, closes or kills something runs on a database and a broker
prefix of its own, removed afterwards, so nothing it breaks can touch another test (or another engineer's run)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from shared.db import asyncpg_dsn
from shared.settings import Settings
from tests.support.broker import delete_prefixed
from tests.support.databases import drop_database, migrated_settings
from tests.support.report import summarize

EXTRA_QUEUES = ["tap"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    summarize(terminalreporter, "tests/faults/")


Isolate = Callable[..., Awaitable[tuple[str, Settings]]]


@pytest.fixture
async def isolate() -> AsyncIterator[Isolate]:
    """``await isolate(**settings_overrides)`` → (database name, settings): a migrated database and a broker
    prefix of the test's own. Every one made is dropped (database, queues, exchanges) when the test ends."""
    made: list[tuple[str, Settings]] = []

    async def make(**overrides: Any) -> tuple[str, Settings]:
        name, settings = await migrated_settings(**overrides)
        made.append((name, settings))
        return name, settings

    yield make
    for name, settings in made:
        await delete_prefixed(settings, EXTRA_QUEUES)
        await drop_database(name)


@pytest.fixture
async def isolated(isolate: Isolate) -> Settings:
    """Settings of a database and broker prefix of this test's own; no rate limit (the load stands for many
    kiosks)."""
    _, settings = await isolate(rate_limit_per_minute=0)
    return settings


@pytest.fixture
async def db(isolated: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(asyncpg_dsn(isolated.database_url), min_size=1, max_size=4)
    yield pool
    await pool.close()
