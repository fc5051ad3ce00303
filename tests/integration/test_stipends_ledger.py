"""Stipends against the real PostgreSQL and RabbitMQ: a generated month booked to the cent against a computation done
here independently, closing once however often and however concurrently it is asked, late approvals booked once in
the next period, payments and reversals as ledger entries, and every cent of the ledger in the audit log."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import uuid
from collections import Counter
from datetime import date
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.support.stack import eventually
from tests.support.volunteering import STIPEND_CSV_COLUMNS, Center

pytestmark = pytest.mark.integration


def cents(minutes: int, hourly: int, per_shift: int) -> int:
    """What one record earns, computed here without the service's code: half-up rounding by divmod."""
    if minutes == 0:
        return 0
    whole, rest = divmod(minutes * hourly, 60)
    return whole + (1 if 2 * rest >= 60 else 0) + per_shift


def rates(policy: dict[str, Any], role_id: str) -> tuple[int, int]:
    for rate in policy["role_rates"]:
        if rate["role_id"] == role_id:
            return rate["hourly_rate_cents"], rate["per_shift_cents"]
    return policy["hourly_rate_cents"], policy["per_shift_cents"]


async def gather_limited(calls: list[Any], limit: int = 20) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Any) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


async def test_a_generated_month_books_the_approved_hours_times_the_rates_less_what_was_over_cap_to_the_cent(
    center: Center,
) -> None:
    rng = random.Random(202503)
    desk, mentor, groups = [await center.role(title=t) for t in ("Front desk", "Peer mentor", "Facilitator")]
    roles = [desk, mentor, groups]
    # A policy change in the middle of the month: the hours before the 16th are priced by the first version, the rest
    # by the second, and the caps are the second's (in effect on the 31st).
    first = await center.policy(
        effective_from="2025-03-01",
        hourly_rate_cents=1_250,
        per_shift_cents=500,
        monthly_cap_cents=30_000,
        role_rates=[{"role_id": mentor, "hourly_rate_cents": 1_800, "per_shift_cents": 0}],
    )
    second = await center.policy(
        effective_from="2025-03-16",
        hourly_rate_cents=1_400,
        per_shift_cents=300,
        monthly_cap_cents=20_000,
        role_rates=[{"role_id": groups, "hourly_rate_cents": 1_000, "per_shift_cents": 1_500}],
    )
    eligible = await center.stipend_volunteers(9, roles)
    ineligible = await center.stipend_volunteers(3, roles, eligible=False)

    month = [date(2025, 3, d) for d in range(1, 32)]
    shifts: list[tuple[str, str, date]] = []
    for day in [*sorted(rng.sample(month, 14)), date(2025, 3, 16)]:
        role = rng.choice(roles)
        shifts.append((await center.shift_on(role, day, hour=rng.choice([9, 13, 18])), role, day))
    # Edges of the month on the site's clock: 22:00 on the 31st is March, 00:30 on April 1st and 23:00 on
    # February 28th (before any policy) are not.
    shifts.append((await center.shift_on(desk, date(2025, 3, 31), hour=22, hours=1.5), desk, date(2025, 3, 31)))
    outside = [
        await center.shift_on(desk, date(2025, 4, 1), hour=0, minute=30, hours=2),
        await center.shift_on(desk, date(2025, 2, 28), hour=23, hours=0.5),
    ]

    records: list[dict[str, Any]] = []
    calls = []
    for person in eligible + ineligible:
        for shift_id, role, day in rng.sample(shifts, rng.randrange(3, 9)):
            minutes = rng.choice([0, 17, 45, 60, 90, 120, 135, 180, 195, 240])
            fate = rng.choices(["approved", "rejected", "pending"], weights=[85, 5, 10])[0]
            records.append(
                {
                    "member": person.member_id,
                    "shift": shift_id,
                    "role": role,
                    "day": day,
                    "minutes": minutes,
                    "fate": fate,
                }
            )
            calls.append(center.worked(person.member_id, shift_id, minutes, approve=fate != "pending"))
        for shift_id in outside:
            calls.append(center.worked(person.member_id, shift_id, 60))
    hours_ids = await gather_limited(calls)
    ids = iter(hours_ids)
    for person in eligible + ineligible:
        for record in (r for r in records if r["member"] == person.member_id):
            record["hours_id"] = next(ids)
        next(ids), next(ids)  # the outside-the-month records
    for record in records:
        if record["fate"] == "rejected":  # approved above, then corrected and rejected: not approved any more
            await center.ok("POST", f"/hours/{record['hours_id']}/correct", json={"minutes": 30, "reason": "no"})
            await center.ok("POST", f"/hours/{record['hours_id']}/reject", json={"reason": "not a shift"})

    closed = await center.close("2025-03")
    assert closed.status == 200, closed.body

    # The truth, computed here: approved hours of eligible volunteers x the rates of their shift date, capped.
    eligible_ids = {p.member_id for p in eligible}
    approved = [r for r in records if r["fate"] == "approved"]
    raw: Counter[uuid.UUID] = Counter()
    for r in approved:
        if r["member"] in eligible_ids:
            raw[r["member"]] += cents(
                r["minutes"], *rates(second if r["day"] >= date(2025, 3, 16) else first, r["role"])
            )
    cap = second["monthly_cap_cents"]
    expected_paid = {m: min(total, cap) for m, total in raw.items()}
    assert any(total > cap for total in raw.values()) and any(total < cap for total in raw.values())

    ledger = await center.ledger()
    assert {e.entry_type for e in ledger} == {"accrued"} and {e.kind for e in ledger} == {"accrual"}
    assert {e.member_id: e.amount_cents for e in ledger} == expected_paid
    assert {e.member_id: e.amount_cents + e.over_cap_cents for e in ledger} == dict(raw)
    assert sum(e.amount_cents for e in ledger) == sum(raw.values()) - sum(e.over_cap_cents for e in ledger)
    for e in ledger:
        assert sum(line["cents"] for line in e.lines) == raw[e.member_id]
        assert (e.over_cap_cents > 0) == (e.capped_by == ["monthly_cap"])
        assert e.cap_policy_id == uuid.UUID(second["policy_id"])
        assert set(e.rate_policy_ids) <= {uuid.UUID(first["policy_id"]), uuid.UUID(second["policy_id"])}
        mine = [r for r in approved if r["member"] == e.member_id]
        assert (e.minutes, e.shifts) == (sum(r["minutes"] for r in mine), sum(1 for r in mine if r["minutes"]))
    assert closed.body == {
        "period": "2025-03",
        "status": "closed",
        "closed_at": closed.body["closed_at"],
        "cap_policy_id": second["policy_id"],
        "volunteers": len(raw),
        "entries": len(raw),
        "adjustments": 0,
        "accrued_cents": sum(expected_paid.values()),
        "over_cap_cents": sum(raw.values()) - sum(expected_paid.values()),
    }

    # Every approved March record is settled once: booked by its volunteer's entry, or (not eligible) with none.
    booked = {b.hours_id: b for b in await center.booked()}
    assert set(booked) == {uuid.UUID(r["hours_id"]) for r in approved}
    entry_of = {e.member_id: e.entry_id for e in ledger}
    for r in approved:
        claim = booked[uuid.UUID(r["hours_id"])]
        if r["member"] in eligible_ids:
            assert (claim.outcome, claim.entry_id, claim.local_date) == ("accrued", entry_of[r["member"]], r["day"])
        else:
            assert (claim.outcome, claim.entry_id) == ("ineligible", None)

    # The bookkeeper's export says the same, as CSV with the documented columns.
    status, body, headers = await center.text("/stipend-periods/2025-03/payouts", headers={"Accept": "text/csv"})
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert "attachment" in headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert list(rows[0]) == STIPEND_CSV_COLUMNS and body.startswith(",".join(STIPEND_CSV_COLUMNS) + "\r\n")
    assert {uuid.UUID(r["member_id"]): int(r["accrued_cents"]) for r in rows} == expected_paid
    assert all(r["payable_cents"] == r["accrued_cents"] and r["paid_cents"] == "0" and r["paid_at"] == "" for r in rows)
    assert all(r["period"] == "2025-03" and r["tax_paperwork_needed"] in ("true", "false") for r in rows)
    assert sum(int(r["over_cap_cents"]) for r in rows) == closed.body["over_cap_cents"]

    # Every cent of the ledger is in the audit log: one event per entry, with its id and amount.
    async def all_audited() -> bool:
        audited = await center.audited("volunteering.stipend_accrued")
        return {(e["data"]["entry_id"], e["data"]["amount_cents"]) for e in audited} == {
            (str(e.entry_id), e.amount_cents) for e in ledger
        }

    await eventually(all_audited)
    [period_event] = await center.audited("volunteering.stipend_period_closed")
    assert period_event["data"]["accrued_cents"] == sum(expected_paid.values())
    assert period_event["dataclassification"] == "internal"
    accrued = await center.audited("volunteering.stipend_accrued")
    assert {e["dataclassification"] for e in accrued} == {"sensitive"}
    assert all(
        set(e["data"])
        >= {
            "entry_id",
            "member_id",
            "period",
            "amount_cents",
            "over_cap_cents",
            "minutes",
            "shifts",
            "policy_id",
            "kind",
            "shift_id",
        }
        for e in accrued
    )


async def test_closing_twice_or_ten_times_at_once_books_one_set_of_entries(center: Center) -> None:
    role = await center.role()
    await center.policy(effective_from="2025-05-01", hourly_rate_cents=1_000, per_shift_cents=250)
    people = await center.stipend_volunteers(5, [role])
    shift_ids = [await center.shift_on(role, date(2025, 5, d)) for d in (3, 12, 24)]
    await gather_limited([center.worked(p.member_id, s, 120) for p in people for s in shift_ids])

    # Ten at once, a few of them the same request retried with one Idempotency-Key.
    replies = await asyncio.gather(
        *(center.close("2025-05", key="close-may" if i % 3 == 0 else None) for i in range(10))
    )
    assert [r.status for r in replies] == [200] * 10, [r.body for r in replies]
    assert len({tuple(sorted(r.body.items())) for r in replies}) == 1
    assert replies[0].body["accrued_cents"] == 5 * 3 * (2_000 + 250)
    again = await center.close("2025-05")
    assert again.body == replies[0].body
    replay = await center.close("2025-05", key="close-may")
    assert (replay.status, replay.body, replay.headers.get("Idempotent-Replayed")) == (200, replies[0].body, "true")

    ledger = await center.ledger()
    assert len(ledger) == 5 and Counter(e.member_id for e in ledger) == Counter(p.member_id for p in people)
    assert len(await center.booked()) == 15
    assert len(await center.outbox("volunteering.stipend_accrued")) == 5
    assert len(await center.outbox("volunteering.stipend_period_closed")) == 1
    [payouts] = await center.rows(
        "SELECT count(*) AS n FROM volunteering.stipend_payouts WHERE site_id = :s", s=center.site.site_id
    )
    assert payouts.n == 5


async def test_late_approvals_go_to_the_next_period_as_adjustments_and_are_never_booked_twice(
    center: Center,
) -> None:
    role = await center.role()
    await center.policy(
        effective_from="2025-01-01", hourly_rate_cents=1_200, per_shift_cents=0, monthly_cap_cents=10_000
    )
    [me] = await center.stipend_volunteers(1, [role])
    january = [await center.shift_on(role, date(2025, 1, d)) for d in (6, 20)]
    february = await center.shift_on(role, date(2025, 2, 10))
    on_time = await center.worked(me.member_id, january[0], 180)  # $36
    late = await center.worked(me.member_id, january[1], 90, approve=False)  # $18, approved after January closed
    assert (await center.close("2025-01")).body["accrued_cents"] == 3_600
    await center.ok("POST", f"/hours/{late}/approve")
    await center.worked(me.member_id, february, 480)  # $96: with the late $18, over the $100 cap by $14

    closed = await center.close("2025-02")
    assert (closed.status, closed.body["entries"], closed.body["adjustments"]) == (200, 2, 1), closed.body
    ledger = await center.ledger()
    accrual, adjustment = [e for e in ledger if e.period == "2025-02"]
    assert (accrual.kind, accrual.amount_cents, accrual.over_cap_cents, accrual.shift_id) == ("accrual", 9_600, 0, None)
    assert (adjustment.kind, adjustment.shift_id, adjustment.original_period) == (
        "adjustment",
        uuid.UUID(january[1]),
        "2025-01",
    )
    assert (adjustment.amount_cents, adjustment.over_cap_cents, adjustment.capped_by) == (400, 1_400, ["monthly_cap"])
    [event] = [e for e in await center.outbox("volunteering.stipend_accrued") if e["kind"] == "adjustment"]
    assert (event["shift_id"], event["original_period"], event["period"], event["amount_cents"]) == (
        january[1],
        "2025-01",
        "2025-02",
        400,
    )

    # Booked hours are not edited: correcting them waits for a reversal, which puts them back for the next close.
    refused = await center.call(
        "POST", f"/hours/{on_time}/correct", token=center.coordinator, json={"minutes": 120, "reason": "left early"}
    )
    january_entry = next(e for e in ledger if e.period == "2025-01")
    assert (refused.status, refused.body["code"], refused.body["entry_id"]) == (
        409,
        "stipend_booked",
        str(january_entry.entry_id),
    )
    reversal = await center.ok(
        "POST",
        f"/ledger/{january_entry.entry_id}/reverse",
        token=center.admin,
        json={"reason": "left early on the 6th"},
    )
    assert (reversal["amount_cents"], reversal["released_hours"], reversal["period"]) == (3_600, 1, "2025-01")
    await center.ok("POST", f"/hours/{on_time}/correct", json={"minutes": 120, "reason": "left early"})
    await center.ok("POST", f"/hours/{on_time}/approve")
    march = await center.close("2025-03")
    assert (march.body["entries"], march.body["accrued_cents"]) == (1, 2_400)
    rebooked = [e for e in await center.ledger() if e.period == "2025-03"]
    assert [(e.kind, e.shift_id, e.original_period, e.minutes) for e in rebooked] == [
        ("adjustment", uuid.UUID(january[0]), "2025-01", 120)
    ]

    # Whatever the order of events, every approved record is held by exactly one live entry, and the books balance:
    # accrued - reversed = what those records earn, less what the caps held back.
    booked = await center.booked()
    assert sorted(str(b.hours_id) for b in booked) == sorted([on_time, late, await _hours_of(center, february)])
    ledger = await center.ledger()
    net = sum(
        e.amount_cents if e.entry_type == "accrued" else -e.amount_cents for e in ledger if e.entry_type != "paid"
    )
    assert net == 2_400 + 9_600 + 400
    statement = await center.ok("GET", "/me/stipends?year=2025", token=me.token)
    assert [(p["period"], p["payable_cents"]) for p in statement["periods"]] == [
        ("2025-01", 0),
        ("2025-02", 10_000),
        ("2025-03", 2_400),
    ]
    [year] = statement["years"]
    assert (year["total_cents"], year["tax_paperwork_needed"]) == (12_400, False)


async def _hours_of(center: Center, shift_id: str) -> str:
    [row] = await center.rows("SELECT hours_id FROM volunteering.hours WHERE shift_id = :s", s=uuid.UUID(shift_id))
    return str(row.hours_id)


async def test_approvals_racing_with_a_close_are_booked_once_in_that_period_or_the_next(center: Center) -> None:
    role = await center.role()
    await center.policy(effective_from="2025-05-01", hourly_rate_cents=1_000, per_shift_cents=100)
    people = await center.stipend_volunteers(6, [role])
    may = [await center.shift_on(role, date(2025, 5, d)) for d in (5, 26)]
    june = [await center.shift_on(role, date(2025, 6, d)) for d in (2, 9, 16, 23, 30)]
    late = await gather_limited([center.worked(p.member_id, s, 60, approve=False) for p in people for s in may])
    assert (await center.close("2025-05")).body["entries"] == 0  # nothing approved in time
    current = await gather_limited([center.worked(p.member_id, s, 60, approve=False) for p in people for s in june])
    records = late + current
    assert len(records) == 42

    # May's late hours and June's own are approved while June closes: each lands in June or, if its approval
    # commits after the close looked, in July; never in both, never nowhere.
    approvals = [center.call("POST", f"/hours/{h}/approve", token=center.coordinator) for h in records]
    results = await asyncio.gather(*approvals[:21], center.close("2025-06"), *approvals[21:])
    assert [r.status for r in results] == [200] * 43, [r.body for r in results if r.status != 200]
    in_june = results[21].body["accrued_cents"] // 1_100
    july = await center.close("2025-07")
    assert july.status == 200, july.body
    assert july.body["accrued_cents"] == (42 - in_june) * 1_100

    booked = await center.booked()
    assert sorted(str(b.hours_id) for b in booked) == sorted(records)  # each once, none lost
    assert {b.period for b in booked if str(b.hours_id) in late} <= {"2025-06", "2025-07"}
    ledger = await center.ledger()
    assert sum(e.amount_cents for e in ledger) == 42 * 1_100
    assert sum(e.minutes for e in ledger) == 42 * 60
    assert {e.original_period for e in ledger if e.kind == "adjustment"} <= {"2025-05", "2025-06"}
    assert sum(1 for e in ledger if e.kind == "adjustment") == 12 + sum(
        1 for b in booked if b.period == "2025-07" and str(b.hours_id) in current
    )
    assert len(await center.outbox("volunteering.stipend_accrued")) == len(ledger)


async def test_payouts_are_paid_once_reversals_are_entries_and_the_ledger_refuses_edits(center: Center) -> None:
    role = await center.role()
    await center.policy(
        effective_from="2025-08-01", per_shift_cents=2_500, monthly_cap_cents=5_000, tax_threshold_cents=7_500
    )
    alex, blair, casey = await center.stipend_volunteers(3, [role])
    await center.policy(
        effective_from="2025-09-01", per_shift_cents=2_500, monthly_cap_cents=0, tax_threshold_cents=7_500
    )
    for day in (4, 11, 18):
        shift_id = await center.shift_on(role, date(2025, 8, day))
        await center.worked(alex.member_id, shift_id, 60)
        if day == 4:
            await center.worked(blair.member_id, shift_id, 60)
    september = await center.shift_on(role, date(2025, 9, 3))
    await center.worked(casey.member_id, september, 60)
    assert (await center.close("2025-08")).body["accrued_cents"] == 5_000 + 2_500
    assert (await center.close("2025-09")).body["over_cap_cents"] == 2_500  # a $0 cap: recorded, not paid

    page = await center.ok("GET", "/stipend-periods/2025-08/payouts", token=center.admin)
    payout = {uuid.UUID(p["member_id"]): p for p in page["items"]}
    assert (page["status"], len(page["items"]), page["next_cursor"]) == ("closed", 2, None)
    alex_payout, blair_payout = payout[alex.member_id], payout[blair.member_id]
    assert (alex_payout["accrued_cents"], alex_payout["over_cap_cents"], alex_payout["payable_cents"]) == (
        5_000,
        2_500,
        5_000,
    )

    paid_path = f"/payouts/{alex_payout['payout_id']}/paid"
    body = {"method": "check", "reference": "Check 1042"}
    headers = {"Idempotency-Key": "pay-alex-august"}
    first = await center.call("POST", paid_path, token=center.admin, json=body, headers=headers)
    retry = await center.call("POST", paid_path, token=center.admin, json=body, headers=headers)
    assert (first.status, retry.status, retry.body, retry.headers.get("Idempotent-Replayed")) == (
        200,
        200,
        first.body,
        "true",
    )
    assert (first.body["amount_cents"], first.body["method"], first.body["reference"]) == (5_000, "check", "Check 1042")
    twice = await center.call("POST", paid_path, token=center.admin, json={"method": "cash"})
    assert (twice.status, twice.body["code"], twice.body["entry_id"]) == (409, "already_paid", first.body["entry_id"])
    [casey_payout] = (await center.ok("GET", "/stipend-periods/2025-09/payouts", token=center.admin))["items"]
    nothing = await center.call(
        "POST", f"/payouts/{casey_payout['payout_id']}/paid", token=center.admin, json={"method": "cash"}
    )
    assert (nothing.status, nothing.body["code"]) == (409, "nothing_to_pay")
    missing = await center.call("POST", f"/payouts/{uuid.uuid4()}/paid", token=center.admin, json={"method": "cash"})
    assert (missing.status, missing.body["code"]) == (404, "payout_not_found")

    # Blair's entry is reversed before payment (nothing left to pay), Alex's after it (a negative balance).
    ledger = {(e.member_id, e.entry_type): e for e in await center.ledger()}
    blair_entry, alex_entry = ledger[(blair.member_id, "accrued")], ledger[(alex.member_id, "accrued")]
    reversed_ = await center.ok(
        "POST",
        f"/ledger/{blair_entry.entry_id}/reverse",
        token=center.admin,
        json={"reason": "shift counted for the wrong person"},
    )
    assert (reversed_["amount_cents"], reversed_["reverses_entry_id"]) == (2_500, str(blair_entry.entry_id))
    again = await center.call(
        "POST", f"/ledger/{blair_entry.entry_id}/reverse", token=center.admin, json={"reason": "again"}
    )
    assert (again.status, again.body["code"], again.body["reversed_by"]) == (
        409,
        "already_reversed",
        reversed_["entry_id"],
    )
    for entry_id, code in ((first.body["entry_id"], "not_reversible"), (reversed_["entry_id"], "not_reversible")):
        refused = await center.call("POST", f"/ledger/{entry_id}/reverse", token=center.admin, json={"reason": "x"})
        assert (refused.status, refused.body["code"]) == (409, code)
    nothing = await center.call(
        "POST", f"/payouts/{blair_payout['payout_id']}/paid", token=center.admin, json={"method": "cash"}
    )
    assert (nothing.status, nothing.body["code"]) == (409, "nothing_to_pay")
    await center.ok("POST", f"/ledger/{alex_entry.entry_id}/reverse", token=center.admin, json={"reason": "audit"})
    page = await center.ok("GET", "/stipend-periods/2025-08/payouts", token=center.admin)
    after = {uuid.UUID(p["member_id"]): p for p in page["items"]}
    assert (
        after[alex.member_id]["payable_cents"],
        after[alex.member_id]["paid_cents"],
        after[alex.member_id]["balance_cents"],
        after[alex.member_id]["method"],
    ) == (0, 5_000, -5_000, "check")
    assert after[blair.member_id]["reversed_cents"] == 2_500

    # Each entry has exactly one event carrying its id and amount; the reference and reasons stay here.
    ledger_rows = await center.ledger()
    events = {
        **{e["entry_id"]: ("accrued", e["amount_cents"]) for e in await center.outbox("volunteering.stipend_accrued")},
        **{e["entry_id"]: ("paid", e["amount_cents"]) for e in await center.outbox("volunteering.stipend_paid")},
        **{
            e["entry_id"]: ("reversed", e["amount_cents"]) for e in await center.outbox("volunteering.stipend_reversed")
        },
    }
    assert events == {str(e.entry_id): (e.entry_type, e.amount_cents) for e in ledger_rows}
    outbox_text = str(
        await center.rows("SELECT data FROM volunteering.outbox WHERE site_id = :s", s=center.site.site_id)
    )
    assert "Check 1042" not in outbox_text and "wrong person" not in outbox_text

    # The year: what was reversed is not booked any more (the payment made stays on record); a $0 cap books $0.
    yearly = await center.ok("GET", "/stipends/yearly?year=2025", token=center.admin)
    totals = {
        uuid.UUID(i["member_id"]): (i["total_cents"], i["paid_cents"], i["tax_paperwork_needed"])
        for i in yearly["items"]
    }
    assert totals == {alex.member_id: (0, 5_000, False), blair.member_id: (0, 0, False), casey.member_id: (0, 0, False)}

    # Append-only, whatever the code does: the database refuses to change or remove an entry.
    async with center.engine.connect() as conn:
        for statement in (
            "UPDATE volunteering.stipend_ledger SET amount_cents = 1 WHERE entry_id = :e",
            "DELETE FROM volunteering.stipend_ledger WHERE entry_id = :e",
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                await conn.execute(text(statement), {"e": alex_entry.entry_id})
            await conn.rollback()
        with pytest.raises(DBAPIError, match="append-only"):
            await conn.execute(text("TRUNCATE volunteering.stipend_ledger CASCADE"))


async def test_the_tax_paperwork_flag_and_the_statement_show_the_hours_behind_each_amount(center: Center) -> None:
    role = await center.role()
    policy = await center.policy(
        effective_from="2025-10-01",
        hourly_rate_cents=1_500,
        per_shift_cents=500,
        monthly_cap_cents=50_000,
        tax_threshold_cents=10_000,
    )
    heavy, light = await center.stipend_volunteers(2, [role])
    shift_ids = [await center.shift_on(role, date(2025, 10, d)) for d in (1, 8, 15)]
    for shift_id in shift_ids:
        await center.worked(heavy.member_id, shift_id, 180)  # 3 × ($45 + $5) = $150
    await center.worked(light.member_id, shift_ids[0], 50)  # $12.50 + $5
    await center.close("2025-10")

    yearly = await center.ok("GET", "/stipends/yearly?year=2025&limit=1", token=center.admin)
    assert len(yearly["items"]) == 1 and yearly["next_cursor"] is not None and yearly["tax_threshold_cents"] == 10_000
    rest = await center.ok("GET", f"/stipends/yearly?year=2025&cursor={yearly['next_cursor']}", token=center.admin)
    flags = {
        uuid.UUID(i["member_id"]): (i["total_cents"], i["tax_paperwork_needed"])
        for i in yearly["items"] + rest["items"]
    }
    assert flags == {heavy.member_id: (15_000, True), light.member_id: (1_750, False)}

    statement = await center.ok("GET", "/me/stipends?year=2025", token=heavy.token)
    assert statement["member_id"] == str(heavy.member_id)
    [period] = statement["periods"]
    assert (period["period"], period["accrued_cents"], period["minutes"], period["shifts"]) == (
        "2025-10",
        15_000,
        540,
        3,
    )
    [entry] = period["entries"]
    assert entry["lines"] == [
        {
            "policy_id": policy["policy_id"],
            "role_id": role,
            "hourly_rate_cents": 1_500,
            "per_shift_cents": 500,
            "minutes": 540,
            "shifts": 3,
            "cents": 15_000,
        }
    ]
    assert [(h["shift_id"], h["minutes"], h["cents"]) for h in entry["hours"]] == [(s, 180, 5_000) for s in shift_ids]
    assert statement["years"] == [
        {
            "year": 2025,
            "site_id": center.site.site_id,
            "member_id": str(heavy.member_id),
            "minutes": 540,
            "total_cents": 15_000,
            "paid_cents": 0,
            "over_cap_cents": 0,
            "tax_threshold_cents": 10_000,
            "tax_paperwork_needed": True,
        }
    ]
    assert (await center.ok("GET", f"/volunteers/{heavy.member_id}/stipends?year=2025")) == statement
    assert (await center.ok("GET", "/me/stipends?year=2024", token=heavy.token))["periods"] == []


async def test_volunteers_not_eligible_at_close_accrue_nothing_then_or_later(center: Center) -> None:
    role = await center.role()
    await center.policy(effective_from="2025-11-01", hourly_rate_cents=1_000)
    [later_eligible] = await center.stipend_volunteers(1, [role], eligible=False)
    november = await center.shift_on(role, date(2025, 11, 5))
    await center.worked(later_eligible.member_id, november, 120)
    closed = await center.close("2025-11")
    assert (closed.body["volunteers"], closed.body["entries"]) == (0, 0)
    await center.ok("PUT", f"/volunteers/{later_eligible.member_id}", json={"roles": [role], "stipend_eligible": True})
    december = await center.shift_on(role, date(2025, 12, 5))
    await center.worked(later_eligible.member_id, december, 60)
    closed = await center.close("2025-12")
    assert (closed.body["entries"], closed.body["adjustments"], closed.body["accrued_cents"]) == (1, 0, 1_000)
    [settled, booked] = await center.booked()
    assert (settled.outcome, settled.period, booked.outcome, booked.period) == (
        "ineligible",
        "2025-11",
        "accrued",
        "2025-12",
    )
