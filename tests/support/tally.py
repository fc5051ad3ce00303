"""Counting what arrived where, for the fault tests: lost (expected, never seen), duplicated (seen more than once) and
unexpected (seen, never expected), read straight from the databases."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from tests.support.stack import Reply


@dataclass(frozen=True)
class Tally:
    lost: int
    duplicated: int
    unexpected: int

    def counts(self, prefix: str = "") -> dict[str, int]:
        return {
            f"{prefix}lost": self.lost,
            f"{prefix}duplicated": self.duplicated,
            f"{prefix}unexpected": self.unexpected,
        }


def tally(expected: Iterable[Any], seen: Counter[Any]) -> Tally:
    wanted = set(expected)
    return Tally(
        lost=sum(1 for key in wanted if seen[key] == 0),
        duplicated=sum(n - 1 for n in seen.values() if n > 1),
        unexpected=sum(n for key, n in seen.items() if key not in wanted),
    )


async def audit_entries(db: asyncpg.Pool, site_id: str, types: Iterable[str] | None = None) -> list[asyncpg.Record]:
    """(event_id, type, subject) of every audit log entry of the site, in chain order."""
    return await db.fetch(
        "SELECT event_id, type, subject FROM audit.audit_log WHERE site_id = $1 "
        "AND ($2::text[] IS NULL OR type = ANY($2::text[])) ORDER BY sequence",
        site_id,
        list(types) if types is not None else None,
    )


async def outbox(
    db: asyncpg.Pool, schema: str, site_id: str, types: Iterable[str] | None = None
) -> list[asyncpg.Record]:
    """(event_id, type, subject, published_at) of a service's outbox rows of the site, in sequence order."""
    assert schema in {"checkin", "volunteering", "gatherings", "audit", "notify"}
    return await db.fetch(
        f"SELECT event_id, type, subject, published_at FROM {schema}.outbox WHERE site_id = $1 "
        "AND ($2::text[] IS NULL OR type = ANY($2::text[])) ORDER BY sequence",
        site_id,
        list(types) if types is not None else None,
    )


async def unpublished(db: asyncpg.Pool, schema: str) -> int:
    assert schema in {"checkin", "volunteering", "gatherings", "audit", "notify"}
    return await db.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL")


async def inbox(db: asyncpg.Pool, schema: str, consumer: str) -> set[uuid.UUID]:
    assert schema in {"checkin", "volunteering", "gatherings", "audit", "notify"}
    rows = await db.fetch(f"SELECT event_id FROM {schema}.inbox WHERE consumer = $1", consumer)
    return {r["event_id"] for r in rows}


async def post_all(
    http: aiohttp.ClientSession,
    url: Callable[[], str],
    requests: list[tuple[str, dict[str, Any]]],
    *,
    token: str,
    concurrency: int,
    on_answer: Callable[[int], Awaitable[None]] | None = None,
) -> list[Reply | BaseException]:
    """POST every (path, body) with ``concurrency`` requests in flight; an answer or the error that came instead,
    in request order. ``url()`` is read per request (a restarted process has a new port)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(requests)):
        queue.put_nowait(index)
    answers: list[Reply | BaseException] = [RuntimeError("not sent")] * len(requests)
    done = 0

    async def worker() -> None:
        nonlocal done
        while not queue.empty():
            index = queue.get_nowait()
            path, body = requests[index]
            try:
                async with http.post(url() + path, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
                    answers[index] = Reply(r.status, await r.json(content_type=None), dict(r.headers))
            except (TimeoutError, aiohttp.ClientError) as exc:
                answers[index] = exc
            done += 1
            if on_answer is not None:
                await on_answer(done)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answers
