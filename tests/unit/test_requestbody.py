"""Reading a body before validation: no body is an empty one, a body of blanks is not JSON (found by schemathesis:
a PUT whose body was a space was accepted as ``{}``)."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from shared.errors import MalformedRequest
from shared.requestbody import parse_json


def _request() -> web.Request:
    return make_mocked_request("PUT", "/volunteers/x", headers={"Content-Type": "application/json"})


def test_no_body_reads_as_an_empty_object() -> None:
    assert parse_json(_request(), b"") == {}


@pytest.mark.parametrize("raw", [b" ", b"\n", b"\t \r\n"])
def test_a_body_of_blanks_is_refused_as_not_json(raw: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_json(_request(), raw)


def test_a_json_body_is_read() -> None:
    assert parse_json(_request(), b' {"roles": []} ') == {"roles": []}
