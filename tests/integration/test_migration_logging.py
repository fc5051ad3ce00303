"""Alembic, run as ``rcc migrate`` runs it, keeps the process's logging: its lines come out as JSON like ours."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from services.registry import SCHEMAS
from shared.logging import configure_logging
from shared.migrate import upgrade
from shared.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def buffer() -> Iterator[io.StringIO]:
    saved_config, root = structlog.get_config(), logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    alembic = logging.getLogger("alembic")
    saved_alembic_level = alembic.level
    buffer = io.StringIO()
    configure_logging("INFO", json=True, stream=buffer)
    alembic.setLevel(logging.INFO)  # its INFO lines, normally kept out, so there is something to read
    try:
        yield buffer
    finally:
        structlog.configure(**saved_config)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        alembic.setLevel(saved_alembic_level)


async def test_migrating_keeps_our_json_logging(settings: Settings, buffer: io.StringIO) -> None:
    handlers = list(logging.getLogger().handlers)

    for schema in SCHEMAS:  # already at head: each run only connects, checks and says so
        await asyncio.to_thread(upgrade, settings.database_url, schema.name, schema.migrations)

    assert logging.getLogger().handlers == handlers
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert any(line.get("logger", "").startswith("alembic") for line in lines), lines
    assert all({"event", "level", "timestamp"} <= line.keys() for line in lines)
