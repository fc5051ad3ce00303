"""The CloudEvents 1.0 envelope (structured JSON mode) every service publishes and every consumer receives."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from shared.contracts import EventData

CONTENT_TYPE = "application/cloudevents+json"
SPECVERSION = "1.0"


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no whitespace, UTF-8. The audit hash chain is computed over it.

    The bytes are those of ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, whose form
    the chain has always hashed. orjson writes the same bytes a tenth of the time when the value holds no float
    (it spells some floats differently: 1e-7 for 1e-07) and no integer beyond 64 bits (which it refuses); every
    character in strings and keys was checked to come out the same (tests/unit/test_canonical_json.py)."""
    if not _holds_float(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # an integer beyond 64 bits, or something json.dumps refuses as well
            pass
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def read_json(raw: bytes, **json_options: Any) -> Any:
    """``json.loads(raw, **json_options)``'s value, read by orjson in a fifth of the CPU where both read the same.
    json reads what orjson refuses (UTF-16, a BOM, NaN, a lone surrogate) and raises its errors; and a value with a
    float is read again by json, as orjson reads an integer beyond 64 bits as a float, not as the integer sent."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw, **json_options)
    if _holds_float(value):
        return json.loads(raw, **json_options)
    return value


def _holds_float(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str or kind is int or item is None or kind is bool:  # nearly everything: decided by one look
            continue
        if isinstance(item, float):
            return True
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


def format_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class Event:
    """A fact a handler records; the outbox turns it into a CloudEvent after the transaction commits."""

    data: EventData
    subject: str
    site_id: str
    actor_id: str | None = None
    correlation_id: str | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def type(self) -> str:
        return self.data.event_type


def envelope(
    *,
    event_id: uuid.UUID | str,
    source: str,
    type_: str,
    time: datetime,
    subject: str,
    site_id: str,
    data: dict[str, Any],
    dataschema: str,
    classification: str,
    sequence: int,
    actor_id: str | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """The structured-mode CloudEvent. ``sequence`` is the outbox row's number, sent as the sequence extension's
    String (CloudEvents ``extensions/sequence.md``): compare it as a number, never as text, as ``sequence_of``
    does ("10" sorts before "9")."""
    ce: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": str(event_id),
        "source": source,
        "type": type_,
        "time": format_time(time),
        "subject": subject,
        "datacontenttype": "application/json",
        "dataschema": dataschema,
        "data": data,
        "siteid": site_id,
        "sequence": str(sequence),
        "dataclassification": classification,
    }
    if actor_id:
        ce["actorid"] = actor_id
    if correlation_id:
        ce["correlationid"] = correlation_id
    return ce


def sequence_of(attributes: dict[str, Any]) -> int | None:
    """The sequence extension of a received event as a number, for ordering events of one source."""
    value = attributes.get("sequence")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):  # sent before the extension became a String
        return value
    return None


class MalformedEvent(ValueError):
    """A message that is not a CloudEvent we understand; it is dead-lettered, never retried."""


REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "siteid")


def _refuse_constant(name: str) -> None:
    raise MalformedEvent(f"{name} is not JSON")


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    id: uuid.UUID
    type: str
    source: str
    subject: str | None
    site_id: str
    time: datetime
    data: dict[str, Any]
    attributes: dict[str, Any]

    @property
    def sequence(self) -> int | None:
        return sequence_of(self.attributes)

    @classmethod
    def from_body(cls, body: bytes) -> ReceivedEvent:
        try:
            ce = read_json(body, parse_constant=_refuse_constant)
        except (UnicodeDecodeError, json.JSONDecodeError, MalformedEvent) as exc:
            raise MalformedEvent(f"body is not JSON: {exc}") from exc
        if not isinstance(ce, dict):
            raise MalformedEvent("body is not a JSON object")
        missing = [name for name in REQUIRED_ATTRIBUTES if not isinstance(ce.get(name), str) or not ce[name]]
        if missing:
            raise MalformedEvent(f"missing CloudEvents attributes: {', '.join(missing)}")
        if ce["specversion"] != SPECVERSION:
            raise MalformedEvent(f"unsupported specversion {ce['specversion']!r}")
        try:
            event_id = uuid.UUID(ce["id"])
            time = parse_time(ce["time"])
        except ValueError as exc:
            raise MalformedEvent(f"bad id or time: {exc}") from exc
        if str(event_id) != ce["id"]:
            # Only the canonical spelling: the audit chain hashes the body as received and files it by this id.
            raise MalformedEvent("id is not a lowercase, hyphenated UUID")
        if time.tzinfo is None:
            raise MalformedEvent("time has no offset")
        data = ce.get("data", {})
        if not isinstance(data, dict):
            raise MalformedEvent("data is not a JSON object")
        return cls(
            id=event_id,
            type=ce["type"],
            source=ce["source"],
            subject=ce.get("subject"),
            site_id=ce["siteid"],
            time=time,
            data=data,
            attributes=ce,
        )
