"""Reading a consumed event (shared/inbox.py): tolerant of what a publisher adds or leaves out, strict about what
no consumer can act on, and never quoting a payload's values in the reason."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contracts import EventData, load_catalogue
from shared.contracts.checkin import VisitorCheckedIn
from shared.events import MalformedEvent
from shared.inbox import read_payload

CATALOGUE = load_catalogue()


def visit_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "visit_id": str(uuid.uuid4()),
        "member_id": str(uuid.uuid4()),
        "anonymous": False,
        "purpose": "drop_in",
        "support_type": "affiliational",
        "ref": "front desk",
        "checked_in_at": "2027-03-01T15:00:00Z",
    }
    payload.update(changes)
    return {name: value for name, value in payload.items() if value is not ...}


def test_a_field_the_contract_does_not_know_is_ignored() -> None:
    visit = read_payload(VisitorCheckedIn, visit_payload(kiosk_language="es", occurred_at="2027-03-01T14:59:00Z"))
    assert visit.purpose == "drop_in"
    assert not hasattr(visit, "kiosk_language")


def test_a_missing_field_that_may_be_null_is_null() -> None:
    visit = read_payload(VisitorCheckedIn, visit_payload(ref=..., support_type=...))
    assert visit.ref is None
    assert visit.support_type is None


@pytest.mark.parametrize(
    "payload",
    [visit_payload(visit_id=...), visit_payload(purpose="a secret reason"), visit_payload(anonymous="Sam Rivera")],
)
def test_what_no_consumer_can_act_on_is_malformed_and_the_reason_quotes_no_value(payload: dict[str, Any]) -> None:
    with pytest.raises(MalformedEvent) as refused:
        read_payload(VisitorCheckedIn, payload)
    reason = str(refused.value)
    assert reason.startswith("checkin.visitor_checked_in payload:")
    assert "secret" not in reason and "Sam Rivera" not in reason


def _payloads(contract: type[EventData]) -> st.SearchStrategy[dict[str, Any]]:
    # The contract's own constructor, so every value is one its publisher could send.
    instances = st.builds(contract).filter(lambda instance: True)
    return instances.map(lambda instance: instance.model_dump(mode="json"))


@pytest.mark.parametrize("event_type", sorted(CATALOGUE))
@settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], deadline=None)
@given(data=st.data(), extra=st.dictionaries(st.text(min_size=1).map(lambda k: f"added_{k}"), st.integers()))
def test_every_contract_reads_its_own_payload_with_fields_added_later(
    event_type: str, data: st.DataObject, extra: dict[str, int]
) -> None:
    contract = CATALOGUE[event_type]
    payload = data.draw(_payloads(contract))
    assert read_payload(contract, {**payload, **extra}) == contract.model_validate(payload)


def test_time_fields_keep_their_instant() -> None:
    visit = read_payload(VisitorCheckedIn, visit_payload())
    assert visit.checked_in_at == datetime(2027, 3, 1, 15, tzinfo=UTC)
