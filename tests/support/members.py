"""Members the way production makes them: registered at check-in, known to gatherings and volunteering once
their ``checkin.member_registered`` event has arrived there. A test that runs check-in registers through it
(``register``); a test of one service alone puts the member straight into that service's view (``make_known``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import asyncpg_dsn

if TYPE_CHECKING:
    from tests.support.stack import Client, SiteUnderTest

# The services that keep a view of the members check-in registered.
VIEWS = ("gatherings", "volunteering", "notify")


def existing_views(schemas: Iterable[str]) -> list[str]:
    return [s for s in VIEWS if s in set(schemas)]


async def register(
    client: Client, site: SiteUnderTest, count: int = 1, *, known_to: Sequence[str] = ()
) -> list[uuid.UUID]:
    """``count`` new members of the site, registered at check-in by its coordinator; returns once each service of
    ``known_to`` (those of ``VIEWS`` the client runs, when empty) has received their registrations."""

    async def one() -> uuid.UUID:
        reply = await client.call("checkin", "POST", "/members", token=site.tokens["coordinator"], json={})
        assert reply.status == 201, reply.body
        return uuid.UUID(reply.body["member_id"])

    made = list(await asyncio.gather(*(one() for _ in range(count))))
    await until_known(client.database_url, made, known_to or [s for s in VIEWS if s in client.urls])
    return made


async def until_known(database_url: str, member_ids: Sequence[uuid.UUID], services: Iterable[str]) -> None:
    """Wait until each service's view holds the members (their registration events crossed the broker)."""
    from tests.support.stack import eventually

    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for schema in services:

            async def arrived(schema: str = schema) -> bool:
                found = await conn.fetchval(
                    f'SELECT count(*) FROM "{schema}".known_members WHERE member_id = ANY($1::uuid[])',
                    list(member_ids),
                )
                return found == len(set(member_ids))

            await eventually(arrived)
    finally:
        await conn.close()


async def make_known(
    conn: AsyncConnection, site_id: str, member_ids: Iterable[uuid.UUID], services: Iterable[str] = VIEWS
) -> None:
    """The members as if their registration at ``site_id`` had reached each service (for tests of a service
    without check-in, or members made before the services run)."""
    rows = [{"member_id": m, "site_id": site_id} for m in member_ids]
    if not rows:
        return
    for schema in services:
        await conn.execute(
            text(
                f'INSERT INTO "{schema}".known_members (member_id, site_id, registered_at) '
                "VALUES (:member_id, :site_id, now()) ON CONFLICT DO NOTHING"
            ),
            rows,
        )


async def new_known(
    engine: AsyncEngine, site_id: str, count: int = 1, services: Iterable[str] = VIEWS
) -> list[uuid.UUID]:
    """Fresh member ids already in the services' views (``make_known``)."""
    made = [uuid.uuid4() for _ in range(count)]
    async with engine.begin() as conn:
        await make_known(conn, site_id, made, services)
    return made
