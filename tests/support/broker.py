"""Broker helpers for tests: a tap queue on the test's exchange, and cleanup of everything a test prefix made."""

from __future__ import annotations

import aio_pika

from shared.settings import Settings


async def delete_prefixed(settings: Settings, queues: list[str]) -> None:
    """Delete the exchanges, every service's queue (``rcc migrate`` declares them) and the named extra queues,
    with their dead-letter queues, of a test prefix."""
    from services.registry import SERVICES

    service_queues = [queue[0] for service in SERVICES.values() if (queue := service.queue()) is not None]
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        for name in dict.fromkeys([*service_queues, *queues]):
            channel = await connection.channel()
            for queue in (settings.queue_name(name), settings.queue_name(name) + ".dead"):
                try:
                    await channel.queue_delete(queue)
                except aio_pika.exceptions.ChannelClosed:
                    channel = await connection.channel()
        channel = await connection.channel()
        for exchange in (settings.exchange_name, settings.dead_exchange_name):
            try:
                await channel.exchange_delete(exchange)
            except aio_pika.exceptions.ChannelClosed:
                channel = await connection.channel()
    finally:
        await connection.close()
