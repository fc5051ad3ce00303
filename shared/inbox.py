"""Consuming an event, the one way: a service lists the contracts it reads and the handler of each
(:class:`Subscriptions`), and :func:`inbox_consumer` turns that into its queue consumer's ``process``.

Each batch is one transaction that records the event ids in the service's inbox and applies each event not seen
before exactly once. Payloads are read tolerantly (:func:`read_payload`), here and nowhere else: a publisher may add
a field before its consumers know it, and an optional field may be left out; neither dead-letters an event. What a
consumer cannot read at all (a required field missing, a wrong type) is malformed and is dead-lettered, never
retried.

A handler is ``async def handler(event: Delivered[Contract], *, uow, clock)``: ``event.data`` is the payload as the
contract class, the rest is the envelope the handler may need (the site, the id for a correlation)."""

from __future__ import annotations

import types
import typing
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import structlog
from pydantic import ValidationError

from shared.clock import Clock
from shared.contracts import EventData
from shared.events import MalformedEvent, ReceivedEvent
from shared.uow import UnitOfWork

C = TypeVar("C", bound=EventData)
U = TypeVar("U", bound=UnitOfWork)


@dataclass(frozen=True, slots=True)
class Delivered(Generic[C]):
    """A consumed event: its payload as the contract class, and the envelope attributes a handler may use."""

    data: C
    id: uuid.UUID
    site_id: str
    time: datetime
    subject: str | None


def read_payload(contract: type[C], data: Mapping[str, Any]) -> C:
    """The tolerant reader: fields the contract does not know are ignored, a missing field whose type admits null
    is null. Anything else wrong is :class:`MalformedEvent`."""
    # Payloads are written by alias (``from``, not ``from_``), so they are read by it.
    fields = {field.alias or name: field for name, field in contract.model_fields.items()}
    known = {key: value for key, value in data.items() if key in fields}
    for key, field in fields.items():
        if key not in known and field.is_required() and _admits_none(field.annotation):
            known[key] = None
    try:
        return contract.model_validate(known)
    except ValidationError as exc:
        # Where and what, never the values: the reason is logged and kept with the dead letter.
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(payload)'}: {e['type']}" for e in exc.errors())
        raise MalformedEvent(f"{contract.event_type} payload: {where}") from exc


def _admits_none(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return annotation is None or (
        origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)
    )


Handler = Callable[..., Awaitable[None]]


class Subscriptions:
    """Which contracts a consumer reads, and the handler of each; its ``bindings`` are the queue's routing keys."""

    def __init__(self, handlers: Mapping[type[EventData], Handler]) -> None:
        self._by_type: dict[str, tuple[type[EventData], Handler]] = {
            contract.event_type: (contract, handler) for contract, handler in handlers.items()
        }

    @property
    def bindings(self) -> tuple[str, ...]:
        return tuple(self._by_type)

    @property
    def contracts(self) -> tuple[type[EventData], ...]:
        return tuple(contract for contract, _ in self._by_type.values())

    def wants(self, event: ReceivedEvent) -> bool:
        return event.type in self._by_type

    async def dispatch(self, event: ReceivedEvent, *, uow: UnitOfWork, clock: Clock) -> None:
        contract, handler = self._by_type[event.type]
        delivered = Delivered(
            data=read_payload(contract, event.data),
            id=event.id,
            site_id=event.site_id,
            time=event.time,
            subject=event.subject,
        )
        await handler(delivered, uow=uow, clock=clock)


def inbox_consumer(
    consumer: str, uow_factory: Callable[[], U], clock: Clock, subscriptions: Subscriptions
) -> Callable[[list[ReceivedEvent]], Awaitable[None]]:
    """A consumer's ``process``: one transaction per batch; each wanted event not in the inbox yet is applied once
    (the same id twice in one batch is still one effect)."""

    async def process(events: list[ReceivedEvent]) -> None:
        wanted = [event for event in events if subscriptions.wants(event)]
        async with uow_factory() as uow:
            fresh = await uow.claim_new_events(consumer, [event.id for event in wanted])
            for event in wanted:
                if event.id in fresh:
                    fresh.discard(event.id)
                    with structlog.contextvars.bound_contextvars(event_id=str(event.id), event_type=event.type):
                        await subscriptions.dispatch(event, uow=uow, clock=clock)
            await uow.commit()

    return process
