"""Every guarded route of every service, walked from the OpenAPI document each service serves: without a token, or
with one that is not valid, the answer is a 401 with the bearer challenge of RFC 6750 §3, and names no server
software."""

from __future__ import annotations

import pytest

from shared.access import new_token
from tests.security.conftest import SERVICES, operations
from tests.support.samples import path_for
from tests.support.stack import Client

pytestmark = pytest.mark.e2e

CHALLENGE = 'Bearer realm="rcc"'


async def guarded_routes(stack: Client) -> list[tuple[str, str, str]]:
    """(service, method, path template) of every operation a served document says needs a bearer token."""
    routes = []
    for service in SERVICES:
        document = (await stack.call(service, "GET", "/openapi.json")).body
        for path, methods in document["paths"].items():
            for method, operation in methods.items():
                if operation.get("security"):
                    routes.append((service, method.upper(), path))
                    assert operation["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
    return routes


async def test_every_guarded_route_answers_401_with_the_bearer_challenge(stack: Client) -> None:
    routes = await guarded_routes(stack)
    declared = {(service, op.method, op.path): op for service, op in operations() if op.roles is not None}
    assert set(routes) == set(declared), "the served documents and the route declarations disagree"
    assert len(routes) > 60

    wrong = []
    for service, method, path in routes:
        url = path_for(declared[(service, method, path)])
        for token, expected in ((None, CHALLENGE), (new_token(), f'{CHALLENGE}, error="invalid_token"')):
            reply = await stack.call(service, method, url, token=token)
            seen = (reply.status, reply.headers.get("WWW-Authenticate"), reply.headers.get("Server"))
            if seen != (401, expected, "rcc"):
                wrong.append((method, path, token is not None, seen))
    assert not wrong, wrong
