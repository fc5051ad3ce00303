"""Units of work take a pool's connections first come, first served (``shared.uow.Turns``), against the real
PostgreSQL: a unit of work that asks while others wait queues behind them instead of taking the connection just
returned."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from services.checkin.models import Base, CheckinUnitOfWork
from shared.db import create_engine, make_connector
from shared.settings import Settings
from tests.support.databases import create_database, database_url, drop_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    # A database of its own, without the schemas: a unit of work needs only a connection here.
    name = await create_database("rcc_turns")
    engine = create_engine(
        Settings(database_url=database_url(name), db_pool_size=1, db_pool_timeout_s=0.5), service="it-turns"
    )
    try:
        yield engine
    finally:
        await engine.dispose()
        await drop_database(name)


def unit_of_work(engine: AsyncEngine) -> CheckinUnitOfWork:
    return CheckinUnitOfWork(make_connector(engine), Base.metadata)


async def until_waiting(tasks: list[asyncio.Task[None]]) -> None:
    # Each task runs until it waits for its turn; none can get further while the one connection is held.
    for _ in range(10):
        await asyncio.sleep(0)
    assert not any(task.done() for task in tasks)


async def test_units_of_work_get_the_connection_in_the_order_they_asked(engine: AsyncEngine) -> None:
    order: list[str] = []

    async def take(name: str) -> None:
        async with unit_of_work(engine) as uow:
            await uow.driver.fetchval("SELECT 1")
            order.append(name)

    first = unit_of_work(engine)
    await first.__aenter__()
    waiting = [asyncio.create_task(take(f"waiting {n}")) for n in range(3)]
    await until_waiting(waiting)

    await first.__aexit__(None, None, None)
    # The one that just gave the connection back asks again at once, as a kiosk's next request on a kept-alive
    # connection does: it comes after those already waiting.
    await take("asked again")
    await asyncio.gather(*waiting)

    assert order == ["waiting 0", "waiting 1", "waiting 2", "asked again"]


async def test_a_unit_of_work_that_waits_longer_than_the_pool_timeout_gets_the_pools_error(
    engine: AsyncEngine,
) -> None:
    async with unit_of_work(engine):
        with pytest.raises(PoolTimeout):
            async with unit_of_work(engine):
                pass

    async with unit_of_work(engine) as uow:  # the turn of the one that gave up is not lost
        assert await uow.driver.fetchval("SELECT 1") == 1
