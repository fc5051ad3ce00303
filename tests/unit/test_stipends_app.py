"""The stipend endpoints and events as wired, without I/O: routes, OpenAPI (CSV, idempotency), the event contracts."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from services.volunteering.app import create_app
from services.volunteering.stipends.views import CSV_COLUMNS
from services.volunteering.views import api
from shared.contracts import load_catalogue

STIPEND_EVENTS = {
    "volunteering.stipend_policy_changed": "internal",
    "volunteering.stipend_period_closed": "internal",
    "volunteering.stipend_accrued": "sensitive",
    "volunteering.stipend_reversed": "sensitive",
    "volunteering.stipend_paid": "sensitive",
}


def test_every_stipend_route_of_the_issue_is_served() -> None:
    routes = {(route.method, route.resource.canonical) for route in create_app().router.routes()}
    assert {
        ("PUT", "/stipend-policy"),
        ("GET", "/stipend-policy"),
        ("GET", "/stipend-periods"),
        ("POST", "/stipend-periods/{period}/close"),
        ("GET", "/stipend-periods/{period}/payouts"),
        ("POST", "/payouts/{payout_id}/paid"),
        ("POST", "/ledger/{entry_id}/reverse"),
        ("GET", "/me/stipends"),
        ("GET", "/volunteers/{member_id}/stipends"),
        ("GET", "/stipends/yearly"),
    } <= routes


def test_openapi_documents_the_csv_export_and_idempotent_writes() -> None:
    document = api.openapi()
    payouts = document["paths"]["/stipend-periods/{period}/payouts"]["get"]
    assert set(payouts["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert ",".join(CSV_COLUMNS) in payouts["summary"]
    assert payouts["description"] == "Roles: admin."
    for path, method in (
        ("/stipend-periods/{period}/close", "post"),
        ("/payouts/{payout_id}/paid", "post"),
        ("/ledger/{entry_id}/reverse", "post"),
        ("/stipend-policy", "put"),
    ):
        operation = document["paths"][path][method]
        assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"]), path
        assert {"401", "403", "409"} <= set(operation["responses"]), path
    assert (
        CSV_COLUMNS[:13]
        == (
            "period",
            "payout_id",
            "member_id",
            "minutes",
            "shifts",
            "accrued_cents",
            "over_cap_cents",
            "reversed_cents",
            "payable_cents",
            "paid_cents",
            "paid_at",
            "method",
            "year_total_cents",
        )
        and CSV_COLUMNS[-1] == "tax_paperwork_needed"
    )


def test_the_stipend_events_are_in_the_catalogue_with_their_classification() -> None:
    catalogue = load_catalogue()
    for event_type, classification in STIPEND_EVENTS.items():
        assert catalogue[event_type].classification == classification


def test_the_accrued_event_carries_ids_cents_and_codes_and_nothing_else() -> None:
    accrued = load_catalogue()["volunteering.stipend_accrued"]
    data = {
        "entry_id": uuid.uuid4(),
        "payout_id": uuid.uuid4(),
        "member_id": uuid.uuid4(),
        "period": "2026-03",
        "kind": "adjustment",
        "amount_cents": 400,
        "over_cap_cents": 1_400,
        "capped_by": ["monthly_cap"],
        "minutes": 90,
        "shifts": 1,
        "policy_id": uuid.uuid4(),
        "rate_policy_ids": [uuid.uuid4()],
        "shift_id": uuid.uuid4(),
        "original_period": "2026-02",
    }
    assert accrued.model_validate(data).amount_cents == 400
    for bad in ({**data, "kind": "bonus"}, {**data, "capped_by": ["mood"]}, {**data, "reason": "typed by someone"}):
        with pytest.raises(ValidationError):
            accrued.model_validate(bad)
    paid = load_catalogue()["volunteering.stipend_paid"]
    assert "reference" not in paid.model_fields
    assert (
        paid.model_validate(
            {
                "payout_id": uuid.uuid4(),
                "entry_id": uuid.uuid4(),
                "member_id": uuid.uuid4(),
                "period": "2026-03",
                "amount_cents": 5_000,
                "paid_at": datetime(2026, 4, 3, tzinfo=UTC),
                "method": "check",
            }
        ).method
        == "check"
    )
    policy = load_catalogue()["volunteering.stipend_policy_changed"]
    changed = policy.model_validate(
        {
            "policy_id": uuid.uuid4(),
            "effective_from": "2026-04-01",
            "hourly_rate_cents": 1_200,
            "per_shift_cents": 0,
            "role_rates": [{"role_id": "peer_mentor", "hourly_rate_cents": 1_500, "per_shift_cents": 0}],
            "monthly_cap_cents": 20_000,
            "yearly_cap_cents": None,
            "tax_threshold_cents": 60_000,
            "org_monthly_cap_cents": None,
        }
    )
    assert changed.effective_from == date(2026, 4, 1)  # type: ignore[attr-defined]
