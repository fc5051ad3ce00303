"""Stipend arithmetic without I/O: rates per hour and per shift (and per role), rounding to the cent, caps (monthly,
yearly, the organisation's), a policy change in the middle of a month, late approvals, the tax-paperwork flag, and
the rules about which period may be closed and from when a policy may change."""

from __future__ import annotations

import random
import uuid
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import pytest
from pydantic import ValidationError

from services.volunteering.stipends import domain as stipends
from services.volunteering.stipends.commands import PaidBody, ReverseBody, StipendPolicyBody
from services.volunteering.stipends.domain import ApprovedHours, Period, Policy, RoleRate
from shared.errors import Conflict, InvalidInput

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
MARCH = Period(2026, 3)
ALICE = uuid.UUID("00000000-0000-4000-8000-00000000000a")
BOB = uuid.UUID("00000000-0000-4000-8000-00000000000b")
CARA = uuid.UUID("00000000-0000-4000-8000-00000000000c")


def policy(
    effective_from: date = date(2026, 1, 1),
    *,
    hourly: int = 0,
    per_shift: int = 0,
    monthly_cap: int = 10**7,
    yearly_cap: int | None = None,
    org_cap: int | None = None,
    threshold: int = 60_000,
    role_rates: tuple[RoleRate, ...] = (),
    version: int = 1,
) -> Policy:
    return Policy(
        policy_id=uuid.uuid4(),
        version=version,
        effective_from=effective_from,
        hourly_rate_cents=hourly,
        per_shift_cents=per_shift,
        monthly_cap_cents=monthly_cap,
        yearly_cap_cents=yearly_cap,
        tax_threshold_cents=threshold,
        org_monthly_cap_cents=org_cap,
        role_rates=role_rates,
    )


def worked(member: uuid.UUID, day: date, minutes: int, role: str = "front_desk") -> ApprovedHours:
    return ApprovedHours(uuid.uuid4(), member, uuid.uuid4(), role, day, minutes)


def close(
    hours: list[ApprovedHours],
    policies: list[Policy],
    *,
    period: Period = MARCH,
    booked: dict[uuid.UUID, int] | None = None,
) -> stipends.Closing:
    return stipends.close_period(period, hours, policies, booked_this_year=booked or {})


# Rounding and rates


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(0, 60, 0), (29, 60, 0), (30, 60, 1), (31, 60, 1), (90, 60, 2), (89, 60, 1), (150, 60, 3), (7, 2, 4), (5, 2, 3)],
)
def test_round_half_up_rounds_halves_up_and_the_rest_to_the_nearest(
    numerator: int, denominator: int, expected: int
) -> None:
    assert stipends.round_half_up(numerator, denominator) == expected


def test_round_half_up_refuses_what_it_is_not_for() -> None:
    with pytest.raises(ValueError):
        stipends.round_half_up(-1, 60)
    with pytest.raises(ValueError):
        stipends.round_half_up(1, 0)


@pytest.mark.parametrize(
    ("minutes", "hourly", "per_shift", "expected"),
    [
        (60, 1_000, 0, 1_000),  # an hour at $10
        (90, 1_000, 0, 1_500),
        (7, 1_000, 0, 117),  # 116.67 → 117
        (1, 1_250, 0, 21),  # 20.83 → 21
        (3, 1_010, 0, 51),  # 50.5 → 51: half up
        (1, 30, 0, 1),  # 0.5 → 1
        (1, 29, 0, 0),  # 0.48 → 0
        (120, 0, 2_500, 2_500),  # per shift only
        (45, 1_000, 500, 1_250),  # both
        (0, 1_000, 2_500, 0),  # no minutes: not a completed shift, nothing
        (1440, 1_000_000, 1_000_000, 25_000_000),  # the largest record and rates stay exact
    ],
)
def test_one_hours_record_earns_its_rounded_hourly_part_plus_the_shift_rate(
    minutes: int, hourly: int, per_shift: int, expected: int
) -> None:
    assert stipends.hours_cents(minutes, hourly, per_shift) == expected
    if minutes:
        exact = Fraction(minutes * hourly, 60)
        assert abs(stipends.hours_cents(minutes, hourly, 0) - exact) <= Fraction(1, 2)


def test_negative_minutes_or_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        stipends.hours_cents(-15, 1_000, 0)
    with pytest.raises(ValueError):
        stipends.hours_cents(15, -1, 0)


def test_a_role_rate_replaces_both_default_rates_for_that_role_only() -> None:
    p = policy(hourly=1_000, per_shift=300, role_rates=(RoleRate("peer_mentor", 1_500, 0),))
    assert p.rates("peer_mentor") == (1_500, 0)
    assert p.rates("front_desk") == (1_000, 300)
    mentoring = stipends.price(worked(ALICE, date(2026, 3, 2), 60, "peer_mentor"), p)
    desk = stipends.price(worked(ALICE, date(2026, 3, 2), 60, "front_desk"), p)
    assert (mentoring.cents, mentoring.shifts, desk.cents, desk.shifts) == (1_500, 1, 1_300, 1)


def test_rounding_is_per_record_so_a_month_is_the_sum_of_its_records() -> None:
    p = policy(hourly=1_000)
    hours = [worked(ALICE, date(2026, 3, d), 7) for d in (2, 3, 4)]  # 116.67 each → 117 each, not 350 (21 min)
    [entry] = close(hours, [p]).entries
    assert entry.amount_cents == 351
    assert entry.lines[0].cents == 351 and entry.lines[0].minutes == 21


# Periods


def test_a_period_is_written_yyyy_mm() -> None:
    assert str(Period.parse("2026-03")) == "2026-03"
    for bad in ("2026-3", "2026-13", "2026-00", "26-03", "2026-03-01", "march", "0999-01", " 2026-03"):
        with pytest.raises(InvalidInput) as raised:
            Period.parse(bad)
        assert raised.value.code == "bad_period"


def test_periods_step_across_years_and_know_their_days() -> None:
    assert Period(2026, 12).next() == Period(2027, 1)
    assert Period(2026, 1).previous() == Period(2025, 12)
    assert Period(2026, 5).previous().next() == Period(2026, 5)
    assert Period(2024, 2).last_day == date(2024, 2, 29)
    assert Period(2026, 12).last_day == date(2026, 12, 31)
    assert Period.of(date(2026, 7, 31)) == Period(2026, 7)
    assert Period(2026, 3) < Period(2026, 11) < Period(2027, 1)


def test_a_period_is_a_month_on_the_sites_wall_clock_across_daylight_saving() -> None:
    # March 2026 in New York starts at EST (-5) and ends at EDT (-4).
    assert MARCH.start(NEW_YORK).astimezone(UTC) == datetime(2026, 3, 1, 5, tzinfo=UTC)
    assert MARCH.end(NEW_YORK).astimezone(UTC) == datetime(2026, 4, 1, 4, tzinfo=UTC)
    assert MARCH.contains(date(2026, 3, 31)) and not MARCH.contains(date(2026, 4, 1))


# Which policy applies


def test_the_policy_in_effect_is_the_latest_started_then_the_latest_made() -> None:
    january = policy(date(2026, 1, 1), hourly=1_000, version=1)
    mid_march = policy(date(2026, 3, 15), hourly=1_200, version=2)
    mid_march_again = policy(date(2026, 3, 15), hourly=1_300, version=3)
    policies = [mid_march_again, january, mid_march]
    assert stipends.policy_on(policies, date(2025, 12, 31)) is None
    assert stipends.policy_on(policies, date(2026, 3, 14)) is january
    assert stipends.policy_on(policies, date(2026, 3, 15)) is mid_march_again
    current, upcoming = stipends.current_and_upcoming(policies, date(2026, 2, 1))
    assert current is january and upcoming == [mid_march_again]
    assert stipends.first_period(policies) == Period(2026, 1)
    assert stipends.first_period([]) is None


def test_a_repeated_version_is_recognised_as_the_same_terms() -> None:
    a = policy(hourly=1_000, role_rates=(RoleRate("a", 1, 2), RoleRate("b", 3, 4)))
    same = Policy(
        uuid.uuid4(),
        9,
        a.effective_from,
        1_000,
        0,
        a.monthly_cap_cents,
        role_rates=(RoleRate("b", 3, 4), RoleRate("a", 1, 2)),
    )
    assert a.same_terms(same)
    assert not a.same_terms(
        Policy(uuid.uuid4(), 9, a.effective_from, 1_001, 0, a.monthly_cap_cents, role_rates=a.role_rates)
    )
    assert not a.same_terms(Policy(uuid.uuid4(), 9, a.effective_from, 1_000, 0, a.monthly_cap_cents))


def test_a_policy_change_in_the_middle_of_a_month_splits_it_by_shift_date() -> None:
    before = policy(date(2026, 1, 1), hourly=1_000, per_shift=0, version=1)
    after = policy(date(2026, 3, 15), hourly=1_200, per_shift=500, version=2)
    hours = [worked(ALICE, date(2026, 3, 14), 120), worked(ALICE, date(2026, 3, 15), 60)]
    closing = close(hours, [before, after])
    [entry] = closing.entries
    assert entry.amount_cents == 2_000 + 1_700
    assert {(line.policy_id, line.minutes, line.shifts, line.cents) for line in entry.lines} == {
        (before.policy_id, 120, 1, 2_000),
        (after.policy_id, 60, 1, 1_700),
    }
    assert entry.policy_ids == [before.policy_id, after.policy_id]
    assert closing.cap_policy is after


def test_the_caps_are_those_of_the_policy_on_the_periods_last_day() -> None:
    generous = policy(date(2026, 1, 1), hourly=1_000, monthly_cap=10_000, version=1)
    tighter_from_the_31st = policy(date(2026, 3, 31), hourly=1_000, monthly_cap=5_000, version=2)
    hours = [worked(ALICE, date(2026, 3, day), 120) for day in (2, 9, 16, 23)]  # 8 h = $80
    [entry] = close(hours, [generous, tighter_from_the_31st]).entries
    assert (entry.amount_cents, entry.over_cap_cents, entry.capped_by) == (5_000, 3_000, ("monthly_cap",))
    # The same month under the generous policy alone is not capped.
    [uncapped] = close(hours, [generous]).entries
    assert (uncapped.amount_cents, uncapped.over_cap_cents, uncapped.capped_by) == (8_000, 0, ())


# Caps


def test_the_monthly_cap_keeps_what_is_over_it_on_the_entry() -> None:
    p = policy(hourly=1_500, per_shift=1_000, monthly_cap=15_000)
    hours = [worked(ALICE, date(2026, 3, d), 180) for d in range(2, 9)]  # 7 × (45 + 10) = $385
    hours += [worked(BOB, date(2026, 3, 2), 60)]
    closing = close(hours, [p])
    alice, bob = closing.entries
    assert (alice.member_id, alice.amount_cents, alice.over_cap_cents, alice.raw_cents) == (
        ALICE,
        15_000,
        23_500,
        38_500,
    )
    assert (alice.minutes, alice.shifts) == (1_260, 7)
    assert (bob.amount_cents, bob.over_cap_cents, bob.capped_by) == (2_500, 0, ())
    assert (closing.volunteers, closing.accrued_cents, closing.over_cap_cents) == (2, 17_500, 23_500)


def test_the_yearly_cap_counts_what_the_ledger_already_holds_this_year() -> None:
    p = policy(hourly=1_000, monthly_cap=20_000, yearly_cap=50_000)
    hours = [
        worked(ALICE, date(2026, 3, 2), 600),
        worked(BOB, date(2026, 3, 2), 600),
        worked(CARA, date(2026, 3, 2), 600),
    ]
    closing = close(hours, [p], booked={ALICE: 45_000, BOB: 50_000, CARA: 60_000})
    alice, bob, cara = closing.entries
    assert (alice.amount_cents, alice.over_cap_cents, alice.capped_by) == (5_000, 5_000, ("yearly_cap",))
    assert (bob.amount_cents, bob.over_cap_cents) == (0, 10_000)
    assert (cara.amount_cents, cara.over_cap_cents) == (0, 10_000)  # already over (a reversal freed less): nothing


def test_monthly_then_yearly_caps_both_show_when_both_bite() -> None:
    p = policy(hourly=1_000, monthly_cap=5_000, yearly_cap=10_000)
    [entry] = close([worked(ALICE, date(2026, 3, 2), 600)], [p], booked={ALICE: 7_000}).entries
    assert (entry.amount_cents, entry.over_cap_cents, entry.capped_by) == (3_000, 7_000, ("monthly_cap", "yearly_cap"))


def test_the_org_cap_shares_its_budget_pro_rata_to_the_cent() -> None:
    p = policy(hourly=1_000, monthly_cap=100_000, org_cap=10_000)
    hours = [
        worked(ALICE, date(2026, 3, 2), 600),
        worked(BOB, date(2026, 3, 2), 300),
        worked(CARA, date(2026, 3, 2), 300),
    ]  # $100 + $50 + $50 = $200 against $100
    closing = close(hours, [p])
    assert [(e.amount_cents, e.over_cap_cents, e.capped_by) for e in closing.entries] == [
        (5_000, 5_000, ("org_cap",)),
        (2_500, 2_500, ("org_cap",)),
        (2_500, 2_500, ("org_cap",)),
    ]
    assert closing.accrued_cents == 10_000


def test_apportioning_gives_leftover_cents_to_the_largest_remainders_then_the_lowest_id() -> None:
    thirds = stipends.apportion({ALICE: 100, BOB: 100, CARA: 100}, 100)
    assert thirds == {ALICE: 34, BOB: 33, CARA: 33}
    uneven = stipends.apportion({ALICE: 1, BOB: 2, CARA: 7}, 5)  # 0.5, 1.0, 3.5 → remainders .5, 0, .5
    assert uneven == {ALICE: 1, BOB: 1, CARA: 3}
    assert stipends.apportion({ALICE: 10, BOB: 5}, 15) == {ALICE: 10, BOB: 5}
    assert stipends.apportion({ALICE: 10, BOB: 5}, 0) == {ALICE: 0, BOB: 0}
    rng = random.Random(7)
    for _ in range(300):
        amounts = {uuid.UUID(int=rng.randrange(2**64)): rng.randrange(0, 50_000) for _ in range(rng.randrange(1, 9))}
        budget = rng.randrange(0, sum(amounts.values()) + 2)
        shares = stipends.apportion(amounts, budget)
        assert sum(shares.values()) == min(budget, sum(amounts.values()))
        assert all(0 <= shares[k] <= amounts[k] for k in amounts)
        total = sum(amounts.values())
        if total > budget:
            assert all(abs(shares[k] - Fraction(amounts[k] * budget, total)) < 1 for k in amounts)


# Late approvals


def test_late_hours_of_closed_periods_become_adjustments_naming_their_shift_after_the_accrual() -> None:
    p = policy(hourly=1_000, per_shift=0, monthly_cap=4_000)
    march = worked(ALICE, date(2026, 3, 10), 120)
    february = worked(ALICE, date(2026, 2, 20), 60)
    january = worked(ALICE, date(2026, 1, 5), 90)
    closing = close([march, february, january], [p])
    accrual, first_late, second_late = closing.entries
    assert (accrual.kind, accrual.shift_id, accrual.original_period, accrual.amount_cents) == (
        "accrual",
        None,
        MARCH,
        2_000,
    )
    # Oldest first; the cap left $20 for them: January's $15 fits, February's $10 gets $5.
    assert (first_late.kind, first_late.shift_id, first_late.original_period) == (
        "adjustment",
        january.shift_id,
        Period(2026, 1),
    )
    assert (first_late.amount_cents, first_late.over_cap_cents) == (1_500, 0)
    assert (second_late.shift_id, second_late.original_period) == (february.shift_id, Period(2026, 2))
    assert (second_late.amount_cents, second_late.over_cap_cents, second_late.capped_by) == (500, 500, ("monthly_cap",))
    assert closing.adjustments == 2


def test_a_volunteer_with_only_late_hours_gets_adjustments_and_no_accrual() -> None:
    p = policy(per_shift=2_500)
    late = worked(BOB, date(2026, 2, 27), 30)
    [entry] = close([late], [p]).entries
    assert (entry.kind, entry.amount_cents, entry.shifts, entry.minutes) == ("adjustment", 2_500, 1, 30)


def test_late_hours_are_priced_by_the_policy_of_their_own_date() -> None:
    old = policy(date(2026, 1, 1), hourly=1_000, version=1)
    new = policy(date(2026, 3, 1), hourly=2_000, version=2)
    [entry] = close([worked(ALICE, date(2026, 2, 27), 60)], [old, new]).entries
    assert (entry.amount_cents, entry.policy_ids) == (1_000, [old.policy_id])


def test_hours_from_before_any_policy_are_left_alone_and_hours_after_the_period_are_a_bug() -> None:
    p = policy(date(2026, 2, 15), hourly=1_000)
    closing = close([worked(ALICE, date(2026, 2, 14), 60), worked(ALICE, date(2026, 3, 1), 60)], [p])
    assert [e.amount_cents for e in closing.entries] == [1_000]
    assert [u.local_date for u in closing.unpriced] == [date(2026, 2, 14)]
    with pytest.raises(ValueError):
        close([worked(ALICE, date(2026, 4, 1), 60)], [p])


def test_zero_minute_records_make_a_zero_entry_that_still_books_them() -> None:
    [entry] = close([worked(ALICE, date(2026, 3, 3), 0)], [policy(hourly=1_000, per_shift=500)]).entries
    assert (entry.amount_cents, entry.over_cap_cents, entry.minutes, entry.shifts, len(entry.priced)) == (0, 0, 0, 0, 1)


def test_closing_without_a_policy_for_the_period_is_refused() -> None:
    with pytest.raises(Conflict) as raised:
        close([], [policy(date(2026, 4, 1))])
    assert raised.value.code == "no_policy"


def test_a_generated_month_adds_up_to_the_cent_against_a_plain_fraction_computation() -> None:
    rng = random.Random(2026)
    roles = ["front_desk", "peer_mentor", "facilitator"]
    for _ in range(25):
        policies = [
            policy(
                date(2026, 1, 1),
                hourly=rng.randrange(0, 3_000),
                per_shift=rng.randrange(0, 3_000),
                monthly_cap=rng.randrange(0, 60_000),
                version=1,
                role_rates=(RoleRate("peer_mentor", rng.randrange(0, 4_000), rng.randrange(0, 1_000)),),
            ),
            policy(
                date(2026, 3, rng.randrange(2, 31)),
                hourly=rng.randrange(0, 3_000),
                per_shift=rng.randrange(0, 3_000),
                monthly_cap=rng.randrange(0, 60_000),
                yearly_cap=rng.choice([None, rng.randrange(0, 200_000)]),
                org_cap=rng.choice([None, rng.randrange(0, 300_000)]),
                version=2,
            ),
        ]
        members = [uuid.UUID(int=rng.randrange(2**64)) for _ in range(rng.randrange(1, 12))]
        hours = [
            worked(
                rng.choice(members),
                date(2026, rng.choice([2, 3, 3, 3]), rng.randrange(1, 29)),
                rng.choice([0, 15, 30, 45, 60, 90, 135, 180, 240, 7, 59]),
                rng.choice(roles),
            )
            for _ in range(rng.randrange(0, 80))
        ]
        booked = {m: rng.randrange(0, 100_000) for m in members}
        closing = close(hours, policies, booked=booked)

        def truth(h: ApprovedHours, policies: list[Policy] = policies) -> int:
            p = stipends.policy_on(policies, h.local_date)
            assert p is not None
            hourly, per_shift = p.rates(h.role_id)
            exact = Fraction(h.minutes * hourly, 60)
            rounded = int(exact) + (1 if exact - int(exact) >= Fraction(1, 2) else 0)
            return rounded + per_shift if h.minutes else 0

        assert sum(e.raw_cents for e in closing.entries) == sum(truth(h) for h in hours)
        assert sum(e.amount_cents + e.over_cap_cents for e in closing.entries) == sum(truth(h) for h in hours)
        cap = policies[1]
        by_member: dict[uuid.UUID, int] = {}
        for e in closing.entries:
            assert e.amount_cents >= 0 and e.over_cap_cents >= 0
            assert (e.over_cap_cents > 0) == bool(e.capped_by)
            by_member[e.member_id] = by_member.get(e.member_id, 0) + e.amount_cents
        for member_id, amount in by_member.items():
            assert amount <= cap.monthly_cap_cents
            if cap.yearly_cap_cents is not None:
                assert amount <= max(0, cap.yearly_cap_cents - booked[member_id])
        if cap.org_monthly_cap_cents is not None:
            assert closing.accrued_cents <= cap.org_monthly_cap_cents
        # One accrual per volunteer with hours this month; one adjustment per late record.
        assert sum(1 for e in closing.entries if e.kind == "adjustment") == sum(
            1 for h in hours if h.local_date.month == 2
        )


# Which period may close, and from when a policy may change


def test_a_period_closes_once_it_is_over_in_order_from_the_first_policy() -> None:
    policies = [policy(date(2026, 1, 10))]

    def refusal(period: Period, today: date, last_closed: Period | None) -> str | None:
        try:
            stipends.check_can_close(period, now_local=today, policies=policies, last_closed=last_closed)
        except Conflict as exc:
            return exc.code
        return None

    assert refusal(Period(2026, 3), date(2026, 3, 31), Period(2026, 2)) == "period_not_over"
    assert refusal(Period(2026, 3), date(2026, 4, 1), Period(2026, 2)) is None
    assert refusal(Period(2026, 1), date(2026, 4, 1), None) is None
    assert refusal(Period(2025, 12), date(2026, 4, 1), None) == "no_policy"
    assert refusal(Period(2026, 2), date(2026, 4, 1), None) == "earlier_period_open"
    assert refusal(Period(2026, 3), date(2026, 4, 1), Period(2026, 1)) == "earlier_period_open"
    assert refusal(Period(2026, 1), date(2026, 4, 1), Period(2026, 2)) == "period_out_of_order"
    assert refusal(Period(2026, 3), date(2026, 4, 1), None) == "earlier_period_open"
    with pytest.raises(Conflict) as raised:
        stipends.check_can_close(Period(2026, 3), now_local=date(2026, 4, 1), policies=[], last_closed=None)
    assert raised.value.code == "no_policy"


def test_a_policy_may_start_only_after_the_last_closed_period() -> None:
    stipends.check_effective_from(date(2020, 1, 1), None)
    stipends.check_effective_from(date(2026, 3, 1), Period(2026, 2))
    with pytest.raises(Conflict) as raised:
        stipends.check_effective_from(date(2026, 2, 28), Period(2026, 2))
    assert (raised.value.code, raised.value.extra["earliest"]) == ("period_closed", "2026-03-01")
    with pytest.raises(Conflict):
        stipends.check_effective_from(date(2025, 6, 1), Period(2026, 2))


# Payouts and the tax flag


def test_payable_is_accrued_minus_reversed() -> None:
    assert stipends.payable_cents(10_000, 2_500) == 7_500
    assert stipends.payable_cents(10_000, 10_000) == 0


def test_tax_paperwork_is_needed_from_the_threshold_of_the_policy_on_the_years_last_day() -> None:
    assert not stipends.tax_paperwork_needed(59_999, 60_000)
    assert stipends.tax_paperwork_needed(60_000, 60_000)
    assert stipends.tax_paperwork_needed(60_001, 60_000)
    policies = [
        policy(date(2026, 1, 1), threshold=60_000, version=1),
        policy(date(2026, 12, 31), threshold=200_000, version=2),
    ]
    assert stipends.tax_threshold(policies, 2026) == 200_000
    assert stipends.tax_threshold(policies, 2025) == stipends.DEFAULT_TAX_THRESHOLD_CENTS
    assert stipends.tax_threshold(policies, 2027) == 200_000


# Request bodies


def test_policy_bodies_take_integer_cents_only() -> None:
    valid = {"effective_from": "2026-04-01", "hourly_rate_cents": 1_200, "monthly_cap_cents": 20_000}
    body = StipendPolicyBody.model_validate(valid)
    assert (body.per_shift_cents, body.tax_threshold_cents, body.yearly_cap_cents, body.role_rates) == (
        0,
        60_000,
        None,
        [],
    )
    for bad in (
        {**valid, "hourly_rate_cents": 12.5},
        {**valid, "hourly_rate_cents": "1200"},
        {**valid, "monthly_cap_cents": -1},
        {**valid, "hourly_rate_cents": 1_000_001},
        {**valid, "currency": "USD"},
        {k: v for k, v in valid.items() if k != "monthly_cap_cents"},
        {**valid, "role_rates": [{"role_id": "a", "hourly_rate_cents": 1, "per_shift_cents": 0}] * 2},
        {**valid, "role_rates": [{"role_id": "Front Desk", "hourly_rate_cents": 1, "per_shift_cents": 0}]},
        {**valid, "effective_from": "next week"},
    ):
        with pytest.raises(ValidationError):
            StipendPolicyBody.model_validate(bad)


def test_payment_and_reversal_bodies() -> None:
    assert PaidBody.model_validate({"method": "check", "reference": "Check 1042"}).reference == "Check 1042"
    assert PaidBody.model_validate({"method": "cash"}).reference is None
    for bad in (
        {"method": "crypto"},
        {"method": "cash", "reference": "x" * 101},
        {"method": "cash", "amount": 5},
        {"method": "cash", "reference": ""},
    ):
        with pytest.raises(ValidationError):
            PaidBody.model_validate(bad)
    with pytest.raises(ValidationError):
        ReverseBody.model_validate({})
    assert ReverseBody.model_validate({"reason": "  counted twice  "}).reason == "counted twice"


def test_hours_on_the_last_evening_of_a_month_belong_to_that_month_on_the_sites_clock() -> None:
    late_evening = datetime(2026, 4, 1, 2, 30, tzinfo=UTC)  # 22:30 on March 31 in New York
    local = late_evening.astimezone(NEW_YORK).date()
    assert MARCH.contains(local)
    assert MARCH.start(NEW_YORK) <= late_evening < MARCH.end(NEW_YORK)
    # Python subtracts wall clocks within one zone; the instants are 31 days less the hour lost in March apart.
    assert MARCH.end(NEW_YORK).astimezone(UTC) - MARCH.start(NEW_YORK).astimezone(UTC) == timedelta(days=31, hours=-1)
