"""The services running in the test process against the real PostgreSQL and RabbitMQ, and a small HTTP client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from services.cli import running
from shared import access
from shared.settings import Settings
from tests.support import members


@dataclass
class SiteUnderTest:
    site_id: str
    tokens: dict[str, str] = field(default_factory=dict)
    token_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    volunteer_member_id: uuid.UUID | None = None


async def make_site(settings: Settings, *, capacity: int = 30, timezone: str = "America/Chicago") -> SiteUnderTest:
    site = SiteUnderTest(site_id=f"site-{uuid.uuid4().hex[:8]}")
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await access.create_site(
                conn,
                site.site_id,
                name="Test center",
                capacity=capacity,
                timezone=timezone,
                closes_at=access.parse_closes_at("21:00"),
            )
            for role in ("kiosk", "coordinator", "admin"):
                site.token_ids[role], site.tokens[role] = await access.issue_token(
                    conn, role=access.Role(role), site_id=site.site_id
                )
            volunteer = uuid.uuid4()
            site.token_ids["volunteer"], site.tokens["volunteer"] = await access.issue_token(
                conn, role=access.Role.VOLUNTEER, site_id=site.site_id, member_id=volunteer
            )
            site.volunteer_member_id = volunteer
            # A token's member is one check-in registered (``rcc token create --member`` names one): where the
            # services have their schemas already, they know the member as if the registration had arrived.
            await members.make_known(conn, site.site_id, [volunteer], members.existing_views(await views(conn)))
    finally:
        await engine.dispose()
    return site


async def views(conn: AsyncConnection) -> set[str]:
    """The services whose member view exists in this database (migrated)."""
    found = await conn.execute(
        text("SELECT table_schema FROM information_schema.tables WHERE table_name = 'known_members'")
    )
    return {row[0] for row in found}


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Client:
    http: aiohttp.ClientSession
    urls: dict[str, str]
    # The database the services use, for helpers that wait on their effects (``tests.support.members``).
    database_url: str = ""

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method, self.urls[service] + path, json=json, data=data, headers=all_headers
        ) as response:
            body = await response.json(content_type=None) if response.content_length != 0 else None
            return Reply(response.status, body, dict(response.headers))


@asynccontextmanager
async def services(settings: Settings, names: list[str]) -> AsyncIterator[Client]:
    async with running(settings, names) as urls, aiohttp.ClientSession() as http:
        yield Client(http, urls, settings.database_url)


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 20.0, interval: float = 0.05) -> None:
    """Wait until ``check`` holds (for asynchronous effects: events crossing the broker)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
