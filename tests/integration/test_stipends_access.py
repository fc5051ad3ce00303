"""Who may see and do what with stipends, bad input, the policy endpoints, and the CSV export's shape."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.settings import Settings
from tests.support.stack import make_site
from tests.support.volunteering import STIPEND_CSV_COLUMNS, Center, Volunteer

pytestmark = pytest.mark.integration

ADMIN = {"admin"}
STAFF = {"coordinator", "admin"}
PEOPLE = {"volunteer", "coordinator", "admin"}


async def closed_month(center: Center) -> tuple[str, Volunteer, Volunteer, dict[str, Any]]:
    """A role, a policy from January 2025, two eligible volunteers with hours, January closed. The site's own
    "volunteer" token acts as the first of them."""
    role = await center.role()
    await center.policy(effective_from="2025-01-01", hourly_rate_cents=1_000, per_shift_cents=500)
    [row] = await center.rows(
        "SELECT member_id FROM access.tokens WHERE token_id = :t", t=center.site.token_ids["volunteer"]
    )
    mine = Volunteer(row.member_id, center.site.tokens["volunteer"])
    await center.set_up_volunteer(mine.member_id, [role], {}, stipend_eligible=True)
    [theirs] = await center.stipend_volunteers(1, [role])
    shift_id = await center.shift_on(role, date(2025, 1, 15))
    for person in (mine, theirs):
        await center.worked(person.member_id, shift_id, 60)
    closed = await center.close("2025-01")
    assert closed.status == 200, closed.body
    return role, mine, theirs, closed.body


def _matrix(payout_id: str, entry_id: str, member_id: uuid.UUID) -> list[tuple[str, str, Any, set[str]]]:
    return [
        ("PUT", "/stipend-policy", {"effective_from": "2030-01-01", "monthly_cap_cents": 100}, ADMIN),
        ("GET", "/stipend-policy", None, STAFF),
        ("GET", "/stipend-periods", None, STAFF),
        ("POST", "/stipend-periods/2025-02/close", None, ADMIN),
        ("GET", "/stipend-periods/2025-01/payouts", None, ADMIN),
        ("POST", f"/payouts/{payout_id}/paid", {"method": "cash"}, ADMIN),
        ("POST", f"/ledger/{entry_id}/reverse", {"reason": "matrix"}, ADMIN),
        ("GET", "/me/stipends", None, {"volunteer"}),
        ("GET", f"/volunteers/{member_id}/stipends", None, PEOPLE),
        ("GET", "/stipends/yearly", None, ADMIN),
    ]


async def test_every_stipend_endpoint_needs_a_token_and_the_right_role(center: Center) -> None:
    _, mine, _, _ = await closed_month(center)
    [entry] = [e for e in await center.ledger() if e.member_id == mine.member_id]
    tokens = center.site.tokens
    for method, path, body, allowed in _matrix(str(entry.payout_id), str(entry.entry_id), mine.member_id):
        missing = await center.call(method, path, json=body)
        assert (missing.status, missing.body["code"]) == (401, "missing_token"), (method, path)
        kiosk = await center.call(method, path, json=body, token=tokens["kiosk"])
        assert (kiosk.status, kiosk.body["code"]) == (403, "wrong_role"), (method, path)
        for role in ("volunteer", "coordinator", "admin"):
            reply = await center.call(method, path, json=body, token=tokens[role])
            if role in allowed:
                assert reply.status not in (401, 403, 500), (method, path, role, reply.body)
            else:
                assert (reply.status, reply.body["code"]) == (403, "wrong_role"), (method, path, role)


async def test_a_volunteer_reads_only_their_own_stipends(center: Center) -> None:
    _, mine, theirs, _ = await closed_month(center)
    for token in (mine.token, theirs.token):
        other = theirs.member_id if token == mine.token else mine.member_id
        refused = await center.call("GET", f"/volunteers/{other}/stipends", token=token)
        assert (refused.status, refused.body["code"]) == (403, "not_yours")
        assert refused.headers["Content-Type"].startswith("application/problem+json")
    own = await center.ok("GET", "/me/stipends?year=2025", token=mine.token)
    assert own["member_id"] == str(mine.member_id)
    assert {p["member_id"] for p in own["periods"]} == {str(mine.member_id)}
    assert [p["accrued_cents"] for p in own["periods"]] == [1_500]
    assert own == await center.ok("GET", f"/volunteers/{mine.member_id}/stipends?year=2025", token=mine.token)
    # Staff see anyone's here; nobody sees the payment reference but the admin's payout list.
    theirs_seen = await center.ok("GET", f"/volunteers/{theirs.member_id}/stipends?year=2025")
    assert theirs_seen["member_id"] == str(theirs.member_id)
    assert "reference" not in theirs_seen["periods"][0]


async def test_another_sites_staff_cannot_see_or_touch_this_sites_stipends(settings: Settings, center: Center) -> None:
    _, mine, _, _ = await closed_month(center)
    elsewhere = await make_site(settings)
    coordinator = elsewhere.tokens["coordinator"]
    reply = await center.call("GET", f"/volunteers/{mine.member_id}/stipends", token=coordinator)
    assert (reply.status, reply.body["code"]) == (404, "volunteer_not_found")
    their_admin = elsewhere.tokens["admin"]
    # An admin's lists are of their own site; their period list and payouts here show nothing of this site.
    assert (await center.ok("GET", "/stipend-periods/2025-01/payouts", token=their_admin))["items"] == []
    assert (await center.ok("GET", "/stipends/yearly?year=2025", token=their_admin))["items"] == []


def _bad(entry_id: str) -> list[tuple[str, str, Any, int, str]]:
    this_month = datetime.now(UTC).strftime("%Y-%m")
    return [
        ("POST", "/stipend-periods/2025-13/close", None, 422, "bad_period"),
        ("POST", "/stipend-periods/25-01/close", None, 422, "bad_period"),
        ("POST", "/stipend-periods/2025-1/close", None, 422, "bad_period"),
        ("GET", "/stipend-periods/march/payouts", None, 422, "bad_period"),
        ("POST", f"/stipend-periods/{this_month}/close", None, 409, "period_not_over"),
        ("POST", "/stipend-periods/2024-12/close", None, 409, "no_policy"),
        ("POST", "/stipend-periods/2025-03/close", None, 409, "earlier_period_open"),
        ("PUT", "/stipend-policy", {"effective_from": "2025-01-31", "monthly_cap_cents": 1}, 409, "period_closed"),
        (
            "PUT",
            "/stipend-policy",
            {
                "effective_from": "2030-01-01",
                "monthly_cap_cents": 1,
                "role_rates": [{"role_id": "no_such_role", "hourly_rate_cents": 1, "per_shift_cents": 1}],
            },
            422,
            "unknown_role",
        ),
        ("PUT", "/stipend-policy", {"effective_from": "2030-01-01", "monthly_cap_cents": 12.5}, 422, "invalid_request"),
        ("PUT", "/stipend-policy", {"effective_from": "2030-01-01"}, 422, "invalid_request"),
        ("POST", f"/payouts/{uuid.uuid4()}/paid", {"method": "venmo"}, 422, "invalid_request"),
        ("POST", f"/payouts/{uuid.uuid4()}/paid", {"method": "cash", "amount_cents": 5}, 422, "invalid_request"),
        ("POST", "/payouts/not-an-id/paid", {"method": "cash"}, 404, "not_found"),
        ("POST", f"/ledger/{entry_id}/reverse", {}, 422, "invalid_request"),
        ("POST", f"/ledger/{uuid.uuid4()}/reverse", {"reason": "x"}, 404, "entry_not_found"),
        ("GET", "/stipend-periods/2025-01/payouts?format=xml", None, 422, "invalid_request"),
        ("GET", "/stipend-periods/2025-01/payouts?cursor=bm9wZQ==", None, 422, "bad_cursor"),
        ("GET", "/stipends/yearly?year=twenty", None, 422, "invalid_request"),
        ("GET", "/stipends/yearly?limit=5000", None, 422, "invalid_request"),
    ]


async def test_bad_stipend_input_gets_a_problem_with_a_code_and_changes_nothing(center: Center) -> None:
    await closed_month(center)
    [entry] = (await center.ledger())[:1]
    before = await center.rows(
        "SELECT count(*) AS n FROM volunteering.outbox WHERE site_id = :s", s=center.site.site_id
    )
    ledger_before = len(await center.ledger())
    for method, path, body, status, code in _bad(str(entry.entry_id)):
        reply = await center.call(method, path, token=center.admin, json=body)
        assert (reply.status, reply.body.get("code")) == (status, code), (method, path, body, reply.body)
        assert reply.headers["Content-Type"].startswith("application/problem+json")
    after = await center.rows("SELECT count(*) AS n FROM volunteering.outbox WHERE site_id = :s", s=center.site.site_id)
    assert after[0].n == before[0].n
    assert len(await center.ledger()) == ledger_before


async def test_the_policy_has_versions_a_repeat_changes_nothing_and_closed_periods_keep_theirs(
    center: Center,
) -> None:
    role = await center.role()
    today = datetime.now(UTC).date()
    empty = await center.ok("GET", "/stipend-policy")
    assert empty == {"current": None, "upcoming": []}
    current = await center.policy(
        effective_from=today - timedelta(days=40), hourly_rate_cents=1_000, monthly_cap_cents=20_000
    )
    future = {
        "effective_from": (today + timedelta(days=60)).isoformat(),
        "hourly_rate_cents": 1_200,
        "per_shift_cents": 0,
        "monthly_cap_cents": 25_000,
        "yearly_cap_cents": 150_000,
        "tax_threshold_cents": 60_000,
        "org_monthly_cap_cents": 500_000,
        "role_rates": [{"role_id": role, "hourly_rate_cents": 1_500, "per_shift_cents": 250}],
    }
    made = await center.policy(**future)
    repeat = await center.call("PUT", "/stipend-policy", token=center.admin, json=future)
    assert (repeat.status, repeat.body) == (200, made)
    assert {k: made[k] for k in future} == future
    listed = await center.ok("GET", "/stipend-policy")
    assert (listed["current"], listed["upcoming"]) == (current, [made])
    changed = await center.outbox("volunteering.stipend_policy_changed")
    assert [e["policy_id"] for e in changed] == [current["policy_id"], made["policy_id"]]
    assert changed[1]["role_rates"] == future["role_rates"]
    # A different version from the same day replaces it as what counts.
    replaced = await center.policy(**{**future, "hourly_rate_cents": 1_300})
    assert (await center.ok("GET", "/stipend-policy"))["upcoming"] == [replaced]

    periods = await center.ok("GET", "/stipend-periods")
    first_month = (today - timedelta(days=40)).strftime("%Y-%m")
    assert (periods["items"], periods["next_to_close"]) == ([], first_month)


async def test_the_csv_export_is_whole_valid_csv_with_the_documented_columns(center: Center) -> None:
    role = await center.role()
    await center.policy(effective_from="2025-04-01", per_shift_cents=2_000, tax_threshold_cents=4_000)
    people = await center.stipend_volunteers(7, [role])
    shift_ids = [await center.shift_on(role, date(2025, 4, d)) for d in (1, 2)]
    for i, person in enumerate(people):
        for shift_id in shift_ids[: 1 + i % 2]:
            await center.worked(person.member_id, shift_id, 60)
    await center.close("2025-04")

    status, body, headers = await center.text("/stipend-periods/2025-04/payouts?format=csv")
    assert (status, headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
    rows = list(csv.reader(io.StringIO(body, newline="")))
    assert rows[0] == STIPEND_CSV_COLUMNS
    assert len(rows) == 1 + 7 and all(len(r) == len(STIPEND_CSV_COLUMNS) for r in rows)
    records = [dict(zip(STIPEND_CSV_COLUMNS, r, strict=True)) for r in rows[1:]]
    assert [r["member_id"] for r in records] == sorted(str(p.member_id) for p in people)
    assert {(r["accrued_cents"], r["tax_paperwork_needed"]) for r in records} == {("2000", "false"), ("4000", "true")}
    # JSON pages through the same rows; format=json wins over the Accept header.
    page = await center.ok("GET", "/stipend-periods/2025-04/payouts?limit=4", token=center.admin)
    rest = await center.ok(
        "GET", f"/stipend-periods/2025-04/payouts?limit=4&cursor={page['next_cursor']}", token=center.admin
    )
    assert [i["member_id"] for i in page["items"] + rest["items"]] == [r["member_id"] for r in records]
    assert rest["next_cursor"] is None
    status, body, headers = await center.text(
        "/stipend-periods/2025-04/payouts?format=json", headers={"Accept": "text/csv"}
    )
    assert headers["Content-Type"].startswith("application/json")
    # A period not closed exports the header alone.
    status, body, _ = await center.text("/stipend-periods/2025-05/payouts", headers={"Accept": "text/csv"})
    assert (status, body) == (200, ",".join(STIPEND_CSV_COLUMNS) + "\r\n")
    listed = await center.ok("GET", "/stipend-periods/2025-05/payouts", token=center.admin)
    assert (listed["status"], listed["items"], listed["closed_at"]) == ("open", [], None)
