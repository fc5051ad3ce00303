"""The consumer settles messages with a bound: an ack that never completes (the connection died under it) costs at
most the publish timeout, and the consumer goes on with the next batch instead of stalling its queue."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, ClassVar

from shared.events import ReceivedEvent
from shared.messaging import Consumer
from shared.settings import Settings


class HangingMessage:
    """A delivery whose channel's connection is gone without the channel knowing yet: ack and reject never return
    (what aiormq does when the dead connection's frame buffer is full)."""

    redelivered = False
    headers: ClassVar[dict[str, Any]] = {}
    content_type = "application/cloudevents+json"
    routing_key = "checkin.visitor_checked_in"

    def __init__(self) -> None:
        self.message_id = str(uuid.uuid4())
        self.body = json.dumps(
            {
                "specversion": "1.0",
                "id": self.message_id,
                "source": "/rcc/checkin",
                "type": "checkin.visitor_checked_in",
                "time": "2026-03-07T22:30:00Z",
                "siteid": "main",
                "data": {},
            }
        ).encode()
        self.settle_attempts = 0

    async def ack(self, multiple: bool = False) -> None:
        self.settle_attempts += 1
        await asyncio.Event().wait()

    async def reject(self, requeue: bool = False) -> None:
        self.settle_attempts += 1
        await asyncio.Event().wait()


def consumer_of(process: Any) -> Consumer:
    return Consumer(
        None,  # type: ignore[arg-type] - run() is not called: no broker is needed to hand it messages
        name="test",
        bindings=[],
        process=process,
        settings=Settings(publish_timeout_s=0.05),
    )


async def test_an_ack_that_never_completes_does_not_stall_the_consumer() -> None:
    applied: list[str] = []

    async def process(events: list[ReceivedEvent]) -> None:
        applied.extend(str(event.id) for event in events)

    consumer = consumer_of(process)
    first, second = HangingMessage(), HangingMessage()
    async with asyncio.timeout(5):  # without the bound, the first _handle would never return
        await consumer._handle([first])
        await consumer._handle([second])
    assert applied == [first.message_id, second.message_id]
    assert first.settle_attempts == second.settle_attempts == 1


class RefusingChannel:
    """The dead-letter exchange cannot take the message either (the channel is going down)."""

    async def get_exchange(self, name: str, ensure: bool = True) -> RefusingChannel:
        return self

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError("channel is closing")


async def test_a_reject_that_never_completes_does_not_stall_the_consumer() -> None:
    async def process(events: list[ReceivedEvent]) -> None:
        raise ValueError("this event is wrong on its own")

    consumer = consumer_of(process)
    consumer._channel = RefusingChannel()  # type: ignore[assignment]
    poison = HangingMessage()
    async with asyncio.timeout(5):
        await consumer._handle([poison])
    assert poison.settle_attempts == 1  # it tried to hand the message back for the broker to dead-letter
