"""The interface documents under docs/ are generated; they must match the code that validates."""

import importlib
import json
import re

import pytest

from services.cli import api_documents
from services.registry import ROOT, SERVICES
from shared.contracts.asyncapi import topic_matches
from shared.settings import Settings
from shared.web import Operation


def test_committed_docs_match_the_code() -> None:
    for relative, document in api_documents().items():
        committed = json.loads((ROOT / "docs" / relative).read_text())
        assert committed == json.loads(json.dumps(document)), f"docs/{relative} is stale: run `rcc docs`"


def test_asyncapi_lists_every_event_with_its_envelope() -> None:
    document = api_documents()["asyncapi.json"]
    assert document["asyncapi"] == "3.0.0"
    assert "checkin.visitor_checked_in" in document["channels"]
    message = document["components"]["messages"]["checkin.visitor_checked_in"]
    assert message["payload"]["properties"]["type"]["const"] == "checkin.visitor_checked_in"
    schema = document["components"]["schemas"]["checkin.visitor_checked_in"]
    assert schema["properties"]["purpose"]["enum"][0] == "drop_in"


OPENAPI = {relative: doc for relative, doc in api_documents().items() if relative.startswith("openapi/")}
ALWAYS_UP = {"/healthz", "/metrics", "/openapi.json"}  # answered from memory: no database, no 503


def declared_operations() -> list[tuple[str, Operation]]:
    return [
        (name, op)
        for name, service in SERVICES.items()
        for op in importlib.import_module(f"{service.package}.views").api.operations
    ]


@pytest.mark.parametrize("relative", sorted(OPENAPI))
def test_openapi_names_its_servers(relative: str) -> None:
    service = relative.removeprefix("openapi/").removesuffix(".json")
    servers = OPENAPI[relative]["servers"]
    urls = {server["url"]: server for server in servers}
    assert set(urls) == {"http://{host}:{port}", f"http://{{host}}:{{port}}/api/{service}"}
    for server in servers:
        assert server["description"]
        assert set(re.findall(r"{(\w+)}", server["url"])) == set(server["variables"])
    assert urls["http://{host}:{port}"]["variables"]["port"]["default"] == str(Settings().port_of(service))


@pytest.mark.parametrize("relative", sorted(OPENAPI))
def test_every_operation_has_a_described_tag(relative: str) -> None:
    document = OPENAPI[relative]
    tags = {tag["name"]: tag["description"] for tag in document["tags"]}
    assert all(tags.values()), f"a tag without a description (add it to shared/openapi.py _AREAS): {tags}"
    used = set()
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert len(operation["tags"]) == 1, (method, path)
            used |= set(operation["tags"])
    assert used == set(tags)


@pytest.mark.parametrize("relative", sorted(OPENAPI))
def test_every_status_a_route_can_answer_is_documented(relative: str) -> None:
    service = relative.removeprefix("openapi/").removesuffix(".json")
    paths = OPENAPI[relative]["paths"]
    for name, op in declared_operations():
        if name != service:
            continue
        responses = paths[op.path][op.method.lower()]["responses"]
        expected = {"503"}
        if op.roles is not None:
            expected |= {"401", "403", "429"}
        if op.body is not None:
            expected |= {"400", "413", "415", "422"}
        if op.query is not None:
            expected.add("422")
        assert expected <= set(responses), (op.method, op.path, sorted(expected - set(responses)))
        if op.body is None:
            assert not {"413", "415"} & set(responses), (op.method, op.path)
        if op.roles is None:
            assert not {"401", "429"} & set(responses), (op.method, op.path)
    for path, methods in paths.items():
        for method, operation in methods.items():
            responses = operation["responses"]
            if "401" in responses:
                header = responses["401"]["headers"]["WWW-Authenticate"]
                assert header["required"] is True
                assert re.fullmatch(header["schema"]["pattern"], 'Bearer realm="rcc"')
                assert re.fullmatch(header["schema"]["pattern"], 'Bearer realm="rcc", error="invalid_token"')
            for status in ("429", "503"):
                if status in responses:
                    assert responses[status]["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
            assert ("503" in responses) == (path not in ALWAYS_UP), (method, path)
    assert "503" in paths["/readyz"]["get"]["responses"]


def test_asyncapi_names_the_broker() -> None:
    servers = api_documents()["asyncapi.json"]["servers"]
    assert servers["broker"]["protocol"] == "amqp"
    assert (
        servers["broker"]["host"].format(**{k: v["default"] for k, v in servers["broker"]["variables"].items()})
        == "127.0.0.1:5672"
    )


def test_asyncapi_says_what_each_service_receives() -> None:
    document = api_documents()["asyncapi.json"]
    receiving = {op["channel"]["$ref"]: op for op in document["operations"].values() if op["action"] == "receive"}
    everything = set(document["components"]["messages"])
    for name, service in SERVICES.items():
        queue = service.queue()
        ref = f"#/channels/queue-{name}"
        if queue is None:
            assert ref not in receiving
            continue
        queue_name, bindings = queue
        channel = document["channels"][f"queue-{name}"]
        assert channel["address"] == queue_name
        assert channel["bindings"]["amqp"]["is"] == "queue"
        messages = {m["$ref"].rsplit("/", 1)[1] for m in receiving[ref]["messages"]}
        assert messages == set(channel["messages"])
        assert messages == (everything if "#" in bindings else set(bindings))
    assert {"#/channels/queue-audit", "#/channels/queue-volunteering", "#/channels/queue-gatherings"} <= set(receiving)


def test_asyncapi_envelope_has_an_absolute_dataschema_and_a_string_sequence() -> None:
    message = api_documents()["asyncapi.json"]["components"]["messages"]["checkin.visitor_checked_in"]
    properties = message["payload"]["properties"]
    assert properties["dataschema"] == {
        "type": "string",
        "format": "uri",
        "const": "urn:rcc:schema:checkin.visitor_checked_in:v1",
    }
    assert properties["sequence"]["type"] == "string"


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("#", "checkin.visitor_checked_in", True),
        ("checkin.*", "checkin.visitor_checked_in", True),
        ("checkin.*", "gatherings.session_moved", False),
        ("checkin.visitor_checked_in", "checkin.visitor_checked_in", True),
        ("*.visitor_checked_in", "checkin.visitor_checked_in", True),
        ("checkin.#", "checkin", True),
        ("checkin.*.x", "checkin.a", False),
    ],
)
def test_topic_matching(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches
