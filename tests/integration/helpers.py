"""Small helpers shared by the integration tests (broker probing, scratch names, test CloudEvents)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection

from shared.events import canonical_json, envelope
from shared.settings import Settings


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def sub_prefix(settings: Settings, label: str) -> Settings:
    """Settings whose broker names live under a fresh prefix nested in the run's own one (nothing else binds)."""
    return settings.model_copy(update={"broker_prefix": f"{settings.broker_prefix}{unique(label)}."})


async def queue_state(connection: AbstractConnection, name: str) -> tuple[int, int] | None:
    """(ready messages, consumers) of a queue, or None when it does not exist. Uses a channel of its own."""
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return None
    result = queue.declaration_result
    await channel.close()
    return result.message_count, result.consumer_count


def cloud_event(
    routing_key: str, *, event_id: uuid.UUID | None = None, site_id: str = "site-it", **data: Any
) -> dict[str, Any]:
    return envelope(
        event_id=event_id or uuid.uuid4(),
        source="/rcc/integration-test",
        type_=routing_key,
        time=datetime.now(UTC),
        subject=f"subject-{uuid.uuid4().hex[:8]}",
        site_id=site_id,
        data=dict(data),
        dataschema=f"/rcc/schemas/{routing_key}/v1",
        classification="internal",
        sequence=1,
    )


def message_of(ce: dict[str, Any]) -> aio_pika.Message:
    return aio_pika.Message(
        canonical_json(ce),
        content_type="application/cloudevents+json",
        message_id=ce["id"],
        type=ce["type"],
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def header_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def body_json(message: aio_pika.abc.AbstractIncomingMessage) -> dict[str, Any]:
    return json.loads(message.body)
