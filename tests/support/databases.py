"""Throwaway databases for test runs: created, migrated, and dropped afterwards."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from services.cli import migrate
from shared.settings import Settings

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def database_url(name: str) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def create_database(prefix: str = "rcc_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def migrated_settings(**overrides: object) -> tuple[str, Settings]:
    name = await create_database()
    settings = Settings(
        database_url=database_url(name),
        broker_prefix=f"test-{name}.",
        checkin_port=0,
        volunteering_port=0,
        gatherings_port=0,
        audit_port=0,
        notify_port=0,
        relay_poll_interval_s=0.2,
        token_cache_ttl_s=0.0,
        log_json=True,
        **overrides,
    )
    await asyncio.to_thread(migrate, settings)
    return name, settings
