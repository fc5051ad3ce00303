"""A publisher may add a field to any event before its consumers know it. Every consumer in the system, over the
real broker, still settles every event type it subscribes to when each carries fields added later: applied (in its
inbox, or the audit log), never dead-lettered."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import pytest

from services.gatherings import consumers as gatherings_consumers
from services.volunteering import consumers as volunteering_consumers
from shared.contracts import EventData, load_catalogue
from shared.db import asyncpg_dsn
from shared.events import envelope
from shared.messaging import declare_exchanges
from shared.outbox import amqp_message
from shared.settings import Settings
from tests.support.payloads import payload_for
from tests.support.stack import Client, eventually, services

ADDED_LATER = {"added_in_a_later_version": {"nested": [1, "two"]}, "kiosk_language": "es"}


@pytest.fixture(scope="module")
async def everyone(settings: Settings) -> AsyncIterator[Client]:
    async with services(settings, ["checkin", "volunteering", "gatherings", "audit"]) as client:
        yield client


def evolved(contract: type[EventData], site_id: str) -> dict[str, Any]:
    return envelope(
        event_id=uuid.uuid4(),
        source="/rcc/a-later-version",
        type_=contract.event_type,
        time=datetime.now(UTC),
        subject=str(uuid.uuid4()),
        site_id=site_id,
        data={**payload_for(contract), **ADDED_LATER},
        dataschema=contract.dataschema(),
        classification=contract.classification,
        sequence=1,
    )


async def dead_ids(connection: aio_pika.abc.AbstractConnection, queue: str) -> set[str]:
    """Ids of what sits in a queue's dead-letter queue (put back, so other tests see the queue as it was)."""
    channel = await connection.channel()
    try:
        dead = await channel.declare_queue(f"{queue}.dead", passive=True)
        seen: set[str] = set()
        messages = []
        while (message := await dead.get(fail=False)) is not None:
            messages.append(message)
            seen.add(message.message_id or "")
        for message in messages:
            await message.nack(requeue=True)
        return seen
    finally:
        await channel.close()


@pytest.mark.parametrize(
    ("schema", "consumer", "contracts"),
    [
        ("volunteering", volunteering_consumers.QUEUE, volunteering_consumers.SUBSCRIPTIONS.contracts),
        ("gatherings", gatherings_consumers.QUEUE, gatherings_consumers.SUBSCRIPTIONS.contracts),
        ("audit", "audit", tuple(load_catalogue().values())),
    ],
)
async def test_every_consumer_settles_every_event_it_reads_with_fields_added_later(
    settings: Settings, everyone: Client, schema: str, consumer: str, contracts: tuple[type[EventData], ...]
) -> None:
    site_id = f"site-{uuid.uuid4().hex[:8]}"
    events = [evolved(contract, site_id) for contract in contracts]
    ids = [uuid.UUID(ce["id"]) for ce in events]
    db = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange, _ = await declare_exchanges(channel, settings)
        for ce in events:
            await exchange.publish(amqp_message(ce), routing_key=ce["type"], timeout=5)
        if schema == "audit":
            settled = "SELECT count(*) FROM audit.audit_log WHERE event_id = ANY($1::uuid[])"
            args: tuple[Any, ...] = (ids,)
        else:
            settled = f"SELECT count(*) FROM {schema}.inbox WHERE consumer = $2 AND event_id = ANY($1::uuid[])"
            args = (ids, consumer)

        async def all_settled() -> bool:
            return await db.fetchval(settled, *args) == len(ids)

        await eventually(all_settled, timeout=30)
        assert not {str(i) for i in ids} & await dead_ids(connection, settings.queue_name(consumer))
    finally:
        await connection.close()
        await db.close()
