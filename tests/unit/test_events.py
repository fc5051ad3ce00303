"""The CloudEvents envelope: canonical JSON, parsing what we receive, and what the official SDK sees."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_rabbitmq
from cloudevents.core.formats.json import JSONFormat
from pamqp import frame
from pamqp.header import ContentHeader

from shared.events import CONTENT_TYPE, MalformedEvent, ReceivedEvent, canonical_json, envelope, format_time
from shared.outbox import amqp_message, amqp_properties, cloudevent_from_row

EVENT_ID = uuid.UUID("6f1c2a52-8d4e-4c1a-9a57-2b0d7e1f3c11")
MEMBER_ID = "0b5e9f3e-6a7d-4f2b-8c1e-3d4a5b6c7d8e"
AT = datetime(2026, 3, 7, 22, 30, 0, 123456, tzinfo=UTC)


# canonical_json


def test_canonical_json_sorts_keys_and_has_no_spaces() -> None:
    assert canonical_json({"b": 1, "a": [1, 2, {"d": None, "c": True}]}) == b'{"a":[1,2,{"c":true,"d":null}],"b":1}'


def test_canonical_json_keeps_utf8_unescaped() -> None:
    text = canonical_json({"place": "Café Ñandú ☕"})
    assert text == '{"place":"Café Ñandú ☕"}'.encode()
    assert b"\\u" not in text


def test_canonical_json_is_the_same_bytes_whatever_the_key_order() -> None:
    one = {"id": "x", "data": {"member_id": "m", "minutes": 5}, "siteid": "s"}
    other = {"siteid": "s", "data": {"minutes": 5, "member_id": "m"}, "id": "x"}
    assert one == other
    assert canonical_json(one) == canonical_json(other)


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_format_time_is_utc_with_z_and_microseconds() -> None:
    eastern = timezone(timedelta(hours=-5))
    assert format_time(datetime(2026, 3, 7, 17, 30, tzinfo=eastern)) == "2026-03-07T22:30:00.000000Z"


# ReceivedEvent.from_body


def make_envelope(**overrides: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = dict(
        event_id=EVENT_ID,
        source="/rcc/checkin",
        type_="checkin.member_registered",
        time=AT,
        subject=MEMBER_ID,
        site_id="downtown",
        data={"member_id": MEMBER_ID, "registered_at": "2026-03-07T22:30:00Z", "registered_by": "kiosk"},
        dataschema="urn:rcc:schema:checkin.member_registered:v1",
        classification="sensitive",
        sequence=17,
        actor_id="token:abc",
        correlation_id="req-1",
    )
    attrs.update(overrides)
    return envelope(**attrs)


def body_of(ce: Any) -> bytes:
    return json.dumps(ce).encode()


def without(name: str) -> dict[str, Any]:
    ce = make_envelope()
    del ce[name]
    return ce


def test_from_body_reads_an_envelope() -> None:
    ce = make_envelope()

    event = ReceivedEvent.from_body(canonical_json(ce))

    assert event.id == EVENT_ID
    assert event.type == "checkin.member_registered"
    assert event.source == "/rcc/checkin"
    assert event.subject == MEMBER_ID
    assert event.site_id == "downtown"
    assert event.time == AT
    assert event.data == ce["data"]
    assert event.attributes == ce
    assert event.attributes["actorid"] == "token:abc"
    assert event.attributes["correlationid"] == "req-1"


def test_envelope_leaves_out_absent_actor_and_correlation() -> None:
    ce = make_envelope(actor_id=None, correlation_id=None)
    assert "actorid" not in ce
    assert "correlationid" not in ce
    assert ReceivedEvent.from_body(canonical_json(ce)).id == EVENT_ID


def test_from_body_without_data_gives_an_empty_dict() -> None:
    assert ReceivedEvent.from_body(body_of(without("data"))).data == {}


def test_from_body_accepts_an_offset_other_than_z() -> None:
    ce = make_envelope()
    ce["time"] = "2026-03-07T17:30:00-05:00"
    assert ReceivedEvent.from_body(body_of(ce)).time == datetime(2026, 3, 7, 22, 30, tzinfo=UTC)


def bad(ce_or_body: Any) -> bytes:
    return ce_or_body if isinstance(ce_or_body, bytes) else body_of(ce_or_body)


def with_(name: str, value: Any) -> dict[str, Any]:
    ce = make_envelope()
    ce[name] = value
    return ce


MALFORMED = {
    "not json": b"this is not json",
    "not utf-8": b"\xff\xfe\xfa",
    "empty body": b"",
    "json array": [make_envelope()],
    "json string": "checkin.member_registered",
    "missing id": without("id"),
    "missing type": without("type"),
    "missing siteid": without("siteid"),
    "missing source": without("source"),
    "missing time": without("time"),
    "missing specversion": without("specversion"),
    "empty id": with_("id", ""),
    "numeric siteid": with_("siteid", 7),
    "id not a uuid": with_("id", "evt-123"),
    "naive time": with_("time", "2026-03-07T22:30:00"),
    "time not a time": with_("time", "yesterday"),
    "specversion 0.3": with_("specversion", "0.3"),
    "data a list": with_("data", [1, 2]),
    "data a string": with_("data", "hello"),
    "data null": with_("data", None),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_from_body_rejects_what_is_not_our_cloudevent(body: Any) -> None:
    with pytest.raises(MalformedEvent):
        ReceivedEvent.from_body(bad(body))


def test_malformed_event_names_the_missing_attributes() -> None:
    ce = make_envelope()
    del ce["id"], ce["siteid"]
    with pytest.raises(MalformedEvent, match=r"id, .*siteid"):
        ReceivedEvent.from_body(body_of(ce))


# The outbox envelope, as the official CloudEvents SDK reads it


def outbox_row(**overrides: Any) -> SimpleNamespace:
    row = dict(
        sequence=42,
        event_id=EVENT_ID,
        type="checkin.visitor_checked_in",
        subject="a1b2c3d4-0000-4000-8000-000000000001",
        site_id="downtown",
        actor_id="token:kiosk",
        correlation_id="req-abc",
        time=AT,
        data={"visit_id": "a1b2c3d4-0000-4000-8000-000000000001", "member_id": None, "purpose": "drop_in"},
        dataschema="urn:rcc:schema:checkin.visitor_checked_in:v1",
        classification="sensitive",
    )
    row.update(overrides)
    return SimpleNamespace(**row)


def read_with_sdk(ce: dict[str, Any]):
    message = RabbitMQMessage(headers={}, content_type=CONTENT_TYPE, body=canonical_json(ce))
    return from_rabbitmq(message, JSONFormat())


def test_outbox_envelope_parses_with_the_cloudevents_sdk() -> None:
    ce = cloudevent_from_row(outbox_row(), "/rcc/checkin")

    event = read_with_sdk(ce)

    assert event.get_specversion() == "1.0"
    assert event.get_id() == str(EVENT_ID)
    assert event.get_type() == "checkin.visitor_checked_in"
    assert event.get_source() == "/rcc/checkin"
    assert event.get_subject() == "a1b2c3d4-0000-4000-8000-000000000001"
    assert event.get_time() == AT
    assert event.get_dataschema() == "urn:rcc:schema:checkin.visitor_checked_in:v1"
    assert event.get_datacontenttype() == "application/json"
    assert event.get_extension("siteid") == "downtown"
    assert event.get_extension("sequence") == "42"
    assert event.get_extension("dataclassification") == "sensitive"
    assert event.get_extension("actorid") == "token:kiosk"
    assert event.get_extension("correlationid") == "req-abc"
    assert event.get_data() == outbox_row().data


def test_outbox_envelope_without_actor_parses_with_the_sdk() -> None:
    ce = cloudevent_from_row(outbox_row(actor_id=None, correlation_id=None), "/rcc/checkin")

    event = read_with_sdk(ce)

    assert event.get_id() == str(EVENT_ID)
    assert event.get_extension("actorid") is None
    assert event.get_extension("correlationid") is None


def test_the_relay_sends_the_properties_of_the_aio_pika_message() -> None:
    ce = cloudevent_from_row(outbox_row(), "/rcc/checkin")

    sent = ContentHeader(properties=amqp_properties(ce), body_size=1)
    expected = ContentHeader(properties=amqp_message(ce).properties, body_size=1)

    assert frame.marshal(sent, 1) == frame.marshal(expected, 1)
    assert sent.properties.message_id == str(EVENT_ID)
    assert sent.properties.delivery_mode == 2


def test_outbox_envelope_round_trips_through_from_body() -> None:
    ce = cloudevent_from_row(outbox_row(), "/rcc/checkin")

    event = ReceivedEvent.from_body(canonical_json(ce))

    assert event.id == EVENT_ID
    assert event.site_id == "downtown"
    assert event.time == AT
    assert event.attributes["sequence"] == "42"
    assert event.sequence == 42
    assert event.attributes["dataclassification"] == "sensitive"


@pytest.mark.parametrize(
    ("sent", "number"),
    [
        ("42", 42),
        ("9007199254740993", 9_007_199_254_740_993),
        (7, 7),
        ("", None),
        ("-1", None),
        ("4.2", None),
        ("٣", None),
        (True, None),
        (None, None),
    ],
)
def test_the_sequence_extension_is_read_as_a_number(sent: Any, number: int | None) -> None:
    ce = make_envelope()
    ce["sequence"] = sent
    assert ReceivedEvent.from_body(canonical_json(ce)).sequence == number


def test_sequences_order_as_numbers_not_as_text() -> None:
    bodies = [canonical_json(make_envelope(event_id=uuid.uuid4(), sequence=n)) for n in (10, 9, 100)]
    received = sorted((ReceivedEvent.from_body(body) for body in bodies), key=lambda event: event.sequence or 0)
    assert [event.attributes["sequence"] for event in received] == ["9", "10", "100"]
