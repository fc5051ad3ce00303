"""The event catalogue: type names, strictness, and no personal data in any payload."""

from __future__ import annotations

import re
import types
import typing
import urllib.parse
import uuid
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_rabbitmq
from cloudevents.core.formats.json import JSONFormat
from pydantic import BaseModel, ValidationError

from shared.contracts import CATALOGUE, EventData, load_catalogue, register
from shared.events import CONTENT_TYPE, Event, ReceivedEvent
from shared.outbox import amqp_message, cloudevent_from_row
from shared.uow import outbox_row

TYPE_NAME = re.compile(r"^(?P<service>[a-z][a-z0-9]*)\.(?P<name>[a-z][a-z0-9]*(?:_[a-z0-9]+)*)$")
PERSONAL_WORDS = {"nickname", "name", "phone", "email", "address", "note", "notes"}

CONTRACTS = sorted(load_catalogue().items())


def test_catalogue_has_the_checkin_events() -> None:
    assert {
        "checkin.member_registered",
        "checkin.visitor_checked_in",
        "checkin.visitor_checked_out",
        "checkin.member_erased",
    } <= set(load_catalogue())


@pytest.mark.parametrize(("event_type", "cls"), CONTRACTS, ids=[t for t, _ in CONTRACTS])
def test_type_is_service_dot_snake_case_and_owned_by_that_service(event_type: str, cls: type[EventData]) -> None:
    match = TYPE_NAME.match(event_type)
    assert match is not None, event_type
    assert cls.event_type == event_type
    assert cls.__module__ == f"shared.contracts.{match['service']}"


@pytest.mark.parametrize(("event_type", "cls"), CONTRACTS, ids=[t for t, _ in CONTRACTS])
def test_contract_forbids_extra_fields(event_type: str, cls: type[EventData]) -> None:
    assert cls.model_config.get("extra") == "forbid"
    with pytest.raises(ValidationError) as raised:
        cls.model_validate({"nickname": "Sunny"})
    assert any(error["type"] == "extra_forbidden" for error in raised.value.errors())


def _field_names(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    """Field names of a model and of any model nested in its fields."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for arg in [field.annotation, *typing.get_args(field.annotation)]:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= _field_names(arg, seen)
    return names


@pytest.mark.parametrize(("event_type", "cls"), CONTRACTS, ids=[t for t, _ in CONTRACTS])
def test_no_field_is_personal_data(event_type: str, cls: type[EventData]) -> None:
    names = _field_names(cls)
    assert names, "a contract with no fields"
    offending = {n for n in names if set(n.split("_")) & PERSONAL_WORDS or n in PERSONAL_WORDS}
    assert not offending, f"{event_type} carries personal-data fields: {offending}"


@pytest.mark.parametrize(("event_type", "cls"), CONTRACTS, ids=[t for t, _ in CONTRACTS])
def test_dataschema_names_type_and_version(event_type: str, cls: type[EventData]) -> None:
    assert cls.dataschema() == f"urn:rcc:schema:{event_type}:v{cls.version}"
    assert cls.classification in ("internal", "sensitive")
    assert cls.summary


def test_payloads_are_frozen() -> None:
    cls = load_catalogue()["checkin.member_erased"]
    payload = cls.model_validate({"member_id": "0b5e9f3e-6a7d-4f2b-8c1e-3d4a5b6c7d8e", "erased_at": datetime.now(UTC)})
    with pytest.raises(ValidationError):
        payload.member_id = None  # type: ignore[misc]


def test_registering_a_type_twice_is_refused() -> None:
    existing = CATALOGUE["checkin.member_erased"]

    class Again(EventData):
        event_type = "checkin.member_erased"

    with pytest.raises(ValueError, match="registered twice"):
        register(Again)
    assert CATALOGUE["checkin.member_erased"] is existing


# Every event of the catalogue, as the relay sends it, read by the official CloudEvents SDK


def sample_value(annotation: Any) -> Any:
    """A valid value of a payload field's type, so every contract can be built for real."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        return sample_value(next(arg for arg in args if arg is not type(None)))
    if origin is list:
        return [sample_value(args[0])]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {name: sample_value(field.annotation) for name, field in annotation.model_fields.items()}
    return {
        uuid.UUID: str(uuid.UUID(int=7)),
        datetime: "2026-03-07T22:30:00Z",
        date: "2026-03-07",
        int: 1,
        bool: True,
        str: "x",
    }[annotation]


def sample_event(cls: type[EventData]) -> Event:
    data = cls.model_validate({name: sample_value(f.annotation) for name, f in cls.model_fields.items()})
    return Event(
        data=data,
        subject=str(uuid.UUID(int=9)),
        site_id="downtown",
        actor_id="token:abc",
        correlation_id="req-1",
        time=datetime(2026, 3, 7, 22, 30, 0, 123456, tzinfo=UTC),
    )


# RFC 3986 absolute-URI, its characters spelled out: scheme ":" hier-part [ "?" query ], no fragment.
ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})+$")
# CloudEvents 1.0: extension names are lowercase letters and digits, 20 characters at most.
EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
CORE_ATTRIBUTES = {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema", "data"}


@pytest.mark.parametrize(("event_type", "cls"), CONTRACTS, ids=[t for t, _ in CONTRACTS])
def test_every_event_parses_with_the_cloudevents_sdk_and_round_trips(event_type: str, cls: type[EventData]) -> None:
    event = sample_event(cls)
    service = event_type.split(".")[0]
    row = SimpleNamespace(**outbox_row(event), sequence=9_007_199_254_740_993)  # beyond a double's exact integers
    ce = cloudevent_from_row(row, f"/rcc/{service}")
    message = amqp_message(ce)

    parsed = from_rabbitmq(
        RabbitMQMessage(headers=dict(message.headers or {}), content_type=message.content_type, body=message.body),
        JSONFormat(),
    )

    attributes = parsed.get_attributes()
    assert set(attributes) == set(ce) - {"data"}
    for name, value in ce.items():
        if name == "time":
            assert parsed.get_time() == event.time
        elif name != "data":
            assert attributes[name] == value, name
            assert isinstance(value, str), f"{name} is a {type(value).__name__}, not a CloudEvents String"
    assert cls.model_validate(parsed.get_data()) == event.data
    assert (parsed.get_specversion(), parsed.get_type(), parsed.get_source()) == ("1.0", event_type, f"/rcc/{service}")
    assert parsed.get_id() == str(event.event_id) == message.message_id
    assert message.type == event_type and message.content_type == CONTENT_TYPE
    assert parsed.get_subject() == event.subject and parsed.get_datacontenttype() == "application/json"
    assert parsed.get_time() is not None and parsed.get_time().utcoffset() is not None

    dataschema = parsed.get_dataschema()
    assert dataschema == cls.dataschema()
    assert ABSOLUTE_URI.fullmatch(dataschema), dataschema
    assert urllib.parse.urlsplit(dataschema).scheme

    sequence = parsed.get_extension("sequence")
    assert isinstance(sequence, str) and sequence.isdigit()
    assert int(sequence) == row.sequence == ReceivedEvent.from_body(message.body).sequence
    assert parsed.get_extension("siteid") == "downtown"
    assert parsed.get_extension("actorid") == "token:abc"
    assert parsed.get_extension("correlationid") == "req-1"
    assert parsed.get_extension("dataclassification") == cls.classification
    for extension in set(attributes) - CORE_ATTRIBUTES:
        assert EXTENSION_NAME.fullmatch(extension), extension
