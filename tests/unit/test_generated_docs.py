"""The interface documents under docs/ are generated; they must match the code that validates."""

import json

from services.cli import api_documents
from services.registry import ROOT


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
