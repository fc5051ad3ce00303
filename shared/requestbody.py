"""Reading a request's body and query before validation: what JSON Schema and pydantic alone would get wrong
(a number sent as a date, 5.0 as an integer, U+0000 that PostgreSQL text cannot hold, the media type)."""

from __future__ import annotations

import functools
import json
import re
import typing
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from shared.errors import MalformedRequest, UnsupportedMediaType
from shared.events import read_json

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


@functools.cache
def time_fields(model: type[BaseModel]) -> frozenset[str]:
    """The names (as sent) of a model's date and time fields."""

    def leaves(annotation: Any) -> Iterator[Any]:
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is typing.Annotated:
            yield from leaves(args[0])
        elif args:
            for arg in args:
                yield from leaves(arg)
        else:
            yield annotation

    return frozenset(
        field.alias or name
        for name, field in model.model_fields.items()
        if any(isinstance(leaf, type) and issubclass(leaf, date) for leaf in leaves(field.annotation))
    )


def numbers_given_as_times(model: type[BaseModel], data: Any) -> list[str]:
    """Fields where a number came as a date or time: pydantic would read "0.5" as a Unix timestamp, which nobody
    sending a date means."""
    if not isinstance(data, Mapping):
        return []
    found = []
    for name in time_fields(model) & data.keys():
        value = data[name]
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and _NUMBER.fullmatch(v) for v in values):
            found.append(name)
    return found


def as_json_types(payload: Any, raw: bytes) -> bytes:
    """The body as sent, or, when it writes a whole number as a float, again with it as an integer: JSON Schema
    counts 5.0 as an integer. Most bodies hold none and are plain ASCII, and are validated from the bytes that came
    (json.loads also reads UTF-16 and a UTF-8 BOM, which the validator's own parser does not; those go round)."""
    if raw.strip() and raw.isascii() and b"\x00" not in raw and not holds_whole_float(payload):
        return raw

    def whole(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, dict):
            return {key: whole(item) for key, item in value.items()}
        if isinstance(value, list):
            return [whole(item) for item in value]
        return value

    return json.dumps(whole(payload)).encode()


def holds_whole_float(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(holds_whole_float(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_whole_float(item) for item in value)
    return False


def holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    return False


def parse_json(request: web.Request, raw: bytes) -> Any:
    # No body at all is an empty one; a body of blanks is not JSON, and is refused as such.
    if not raw:
        return {}
    if request.content_type not in ("application/json", "application/merge-patch+json"):
        raise UnsupportedMediaType("Send the body as application/json.") from None
    try:
        return read_json(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedRequest(f"The body is not valid JSON: {exc}") from None
