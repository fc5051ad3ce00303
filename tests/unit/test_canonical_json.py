"""The canonical JSON the audit chain hashes is byte for byte what it always was (json.dumps with sorted keys, no
whitespace, UTF-8), now mostly written by orjson; and CloudEvents are read as before."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events import MalformedEvent, ReceivedEvent, canonical_json, read_json


def reference(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def test_every_character_in_keys_and_strings_comes_out_the_same() -> None:
    characters = [chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF]
    value = {char: char for char in characters}
    assert canonical_json(value) == reference(value)
    assert canonical_json(["".join(characters)]) == reference(["".join(characters)])


def test_floats_and_huge_integers_are_written_as_json_writes_them() -> None:
    value = {"small": 1e-07, "large": 1e16, "plain": 0.5, "huge": 2**70, "negative": -(2**64)}
    assert (
        canonical_json(value)
        == reference(value)
        == b'{"huge":1180591620717411303424,"large":1e+16,'
        + (b'"negative":-18446744073709551616,"plain":0.5,"small":1e-07}')
    )
    assert canonical_json({"deep": [[{"x": 1e-07}]]}) == b'{"deep":[[{"x":1e-07}]]}'


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_any_json_value_without_floats_comes_out_the_same(value: Any) -> None:
    assert canonical_json(value) == reference(value)


@given(st.dictionaries(st.text(), st.floats(allow_nan=False, allow_infinity=False) | st.integers(), max_size=6))
def test_any_object_with_numbers_comes_out_the_same(value: dict[str, Any]) -> None:
    assert canonical_json(value) == reference(value)


def event(**changes: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/rcc/checkin",
        "type": "rcc.checkin.visitor_checked_in.v1",
        "time": "2026-12-07T18:00:00.000000Z",
        "siteid": "site-1",
        "data": {"count": 1},
        **changes,
    }


def test_an_event_reads_the_same_whatever_parser_reads_it() -> None:
    for attributes in (event(), event(data={"big": 2**70}), event(data={"text": "caf\u00e9 \u2028"})):
        body = json.dumps(attributes).encode()
        received = ReceivedEvent.from_body(body)
        assert received.attributes == json.loads(body)
        assert canonical_json(received.attributes) == reference(json.loads(body))
    utf16 = json.dumps(event()).encode("utf-16")
    assert ReceivedEvent.from_body(utf16).attributes["siteid"] == "site-1"


@pytest.mark.parametrize("body", [b'{"specversion": NaN}', b"not json", b"\xff\xfe\x00", b'{"a": Infinity}'])
def test_what_is_not_json_is_still_refused(body: bytes) -> None:
    with pytest.raises(MalformedEvent):
        ReceivedEvent.from_body(body)


@pytest.mark.parametrize(
    "raw", [b'{"n": 1180591620717411303424}', b'{"n": 12345678901234567890123, "x": 0.1}', b'[1e-07, 2, "x"]']
)
def test_read_json_reads_what_json_reads(raw: bytes) -> None:
    """orjson alone would read the integers beyond 64 bits as floats, and the chain would hash other bytes."""
    value = read_json(raw)
    assert value == json.loads(raw)
    assert canonical_json(value) == reference(json.loads(raw))
