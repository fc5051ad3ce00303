"""The notify benchmark's promotions (bench/notify.py, latency): one-seat shifts set up over HTTP and dropped at a
rate through volunteering, and the same promotions published straight into the broker as CloudEvents."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aiohttp

from bench.common import say
from bench.signups import SETUP_CONCURRENCY
from shared.contracts.volunteering import PromotedFromWaitlist
from shared.events import envelope
from shared.messaging import declare_exchanges
from shared.outbox import amqp_message
from shared.settings import Settings


async def one_seat_shifts(
    volunteering: str, token: str, holders: list[uuid.UUID], waiting: list[uuid.UUID]
) -> list[str]:
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    role_id = f"bench_{uuid.uuid4().hex[:8]}"
    limit = asyncio.Semaphore(SETUP_CONCURRENCY)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def call(method: str, url: str, body: dict[str, Any], expected: int) -> Any:
            async with limit, http.request(method, volunteering + url, json=body) as response:
                answer = await response.json(content_type=None)
                if response.status != expected:
                    raise RuntimeError(f"{method} {url}: {response.status} {answer}")
                return answer

        await call("POST", "/roles", {"role_id": role_id, "title": "Benchmark desk"}, 201)
        await asyncio.gather(*(call("PUT", f"/volunteers/{m}", {"roles": [role_id]}, 200) for m in holders + waiting))

        async def shift(n: int, holder: uuid.UUID, next_in_line: uuid.UUID) -> str:
            at = starts + timedelta(hours=n % 200)
            made = await call(
                "POST",
                "/shifts",
                {
                    "role_id": role_id,
                    "starts_at": at.isoformat(),
                    "ends_at": (at + timedelta(minutes=30)).isoformat(),
                    "capacity": 1,
                },
                201,
            )
            shift_id = str(made["shift_id"])
            await call("POST", f"/shifts/{shift_id}/signups", {"member_id": str(holder)}, 201)
            await call("POST", f"/shifts/{shift_id}/signups", {"member_id": str(next_in_line)}, 201)
            return shift_id

        return list(
            await asyncio.gather(*(shift(n, h, w) for n, (h, w) in enumerate(zip(holders, waiting, strict=True))))
        )


async def drop_at(volunteering: str, token: str, shifts: list[str], holders: list[uuid.UUID], rate: float) -> None:
    """Each holder drops at its moment (a request each, not waiting for the one before)."""
    say(f"dropping {len(shifts):,} holders at {rate:g}/s: each drop promotes the next in line")
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def drop(shift_id: str, member_id: uuid.UUID) -> None:
            for _ in range(10):  # a 503 (the service's pool busy on a crowded machine) changed nothing: again
                async with http.delete(f"{volunteering}/shifts/{shift_id}/signups/{member_id}") as response:
                    answer = await response.json(content_type=None)
                    if response.status == 503:
                        await asyncio.sleep(0.5)
                        continue
                    if response.status != 200 or answer.get("promoted") != 1:
                        raise RuntimeError(f"drop {shift_id}: {response.status} {answer}")
                    return
            raise RuntimeError(f"drop {shift_id}: still 503")

        began = time.monotonic()
        drops = []
        for n, (shift_id, holder) in enumerate(zip(shifts, holders, strict=True)):
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            drops.append(asyncio.create_task(drop(shift_id, holder)))
        await asyncio.gather(*drops)


async def publish_promotions(
    amqp: aio_pika.abc.AbstractConnection, settings: Settings, site_id: str, members: list[uuid.UUID], rate: float
) -> list[tuple[uuid.UUID, float]]:
    """One ``volunteering.promoted_from_waitlist`` per member at ``rate``, each confirmed by the broker; (event id,
    when it was published)."""
    say(f"publishing {len(members):,} promotions at {rate:g}/s into the broker")
    channel = await amqp.channel(publisher_confirms=True)
    exchange, _ = await declare_exchanges(channel, settings)
    starts = datetime.now(UTC) + timedelta(days=3)
    published: list[tuple[uuid.UUID, float]] = []
    began = time.monotonic()
    try:
        for n, member_id in enumerate(members):
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            event_id = uuid.uuid4()
            ce = _promotion(event_id, site_id, member_id, starts)
            at = time.time()
            await exchange.publish(amqp_message(ce), routing_key=ce["type"], timeout=10)
            published.append((event_id, at))
    finally:
        await channel.close()
    return published


def _promotion(event_id: uuid.UUID, site_id: str, member_id: uuid.UUID, starts: datetime) -> dict[str, Any]:
    data = PromotedFromWaitlist(
        signup_id=uuid.uuid4(),
        shift_id=uuid.uuid4(),
        member_id=member_id,
        role_id="front_desk",
        starts_at=starts,
        ends_at=starts + timedelta(hours=3),
        trigger="seat_freed",
    )
    return envelope(
        event_id=event_id,
        source="/rcc/volunteering",
        type_=PromotedFromWaitlist.event_type,
        time=datetime.now(UTC),
        subject=str(member_id),
        site_id=site_id,
        data=data.model_dump(mode="json", by_alias=True),
        dataschema=PromotedFromWaitlist.dataschema(),
        classification=PromotedFromWaitlist.classification,
        sequence=1,
    )
