"""A valid payload for every event contract, built from the contract's own field types, so a test can send every
event type the catalogue has (and the ones a consumer subscribes to) without a hand-written sample each."""

from __future__ import annotations

import types
import typing
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic.fields import FieldInfo

from shared.contracts import EventData


def payload_for(contract: type[EventData], *, at: datetime | None = None) -> dict[str, Any]:
    """The contract's payload as it is published (JSON, by alias); checked against the contract itself."""
    at = at or datetime.now(UTC)
    values = {name: _value(field.annotation, field, at) for name, field in contract.model_fields.items()}
    return contract(**values).model_dump(mode="json", by_alias=True)


def _value(annotation: Any, field: FieldInfo | None, at: datetime) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        chosen = [arg for arg in args if arg is not type(None)]
        return _value(chosen[0], field, at)
    if origin in (list, tuple, set, frozenset):
        return []
    if origin is dict:
        return {}
    if annotation is uuid.UUID:
        return uuid.uuid4()
    if annotation is datetime:
        return at
    if annotation is date:
        return (at - timedelta(days=1)).date()
    if annotation is bool:
        return False
    if annotation is int:
        return max(1, _lower_bound(field))
    if annotation is Decimal:
        return Decimal("1.00")
    if annotation is str:
        return "x" * max(1, _min_length(field))
    raise TypeError(f"no sample for {annotation!r}: add one")


def _lower_bound(field: FieldInfo | None) -> int:
    for rule in field.metadata if field is not None else ():
        for name in ("ge", "gt"):
            bound = getattr(rule, name, None)
            if bound is not None:
                return int(bound) + (name == "gt")
    return 0


def _min_length(field: FieldInfo | None) -> int:
    for rule in field.metadata if field is not None else ():
        bound = getattr(rule, "min_length", None)
        if bound is not None:
            return int(bound)
    return 0
