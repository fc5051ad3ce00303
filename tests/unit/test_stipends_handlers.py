"""The stipend handlers against an in-memory unit of work (the same methods as StipendRepository and the parts of
volunteering proper's repositories they call, lists and dicts inside)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import pytest

from services.volunteering.commands import Actor
from services.volunteering.stipends import handlers
from services.volunteering.stipends.commands import (
    CloseStipendPeriod,
    MarkPayoutPaid,
    ReverseStipendEntry,
    SetStipendPolicy,
)
from services.volunteering.stipends.domain import Period, Policy
from services.volunteering.stipends.models import (
    BookedHours,
    EntryRecord,
    NewEntry,
    NewPayout,
    PayableHours,
    PayoutRecord,
    PeriodRecord,
    PeriodTotals,
)
from shared.access import Role
from shared.clock import FixedClock
from shared.errors import Conflict, InvalidInput, NotFound
from shared.events import Event
from shared.uow import Recorder

SITE = "downtown"
OTHER_SITE = "uptown"
ZONE = "America/New_York"
ADMIN = Actor("token:admin-1", Role.ADMIN, SITE, None)
COORDINATOR_ELSEWHERE = Actor("token:coordinator-9", Role.COORDINATOR, OTHER_SITE, None)
APRIL_2 = datetime(2026, 4, 2, 16, 0, tzinfo=UTC)  # March 2026 is over in New York
ANA = uuid.UUID("00000000-0000-4000-8000-00000000000a")
BEN = uuid.UUID("00000000-0000-4000-8000-00000000000b")


class FakeStipendRepository:
    """What StipendRepository promises, kept in lists."""

    def __init__(self) -> None:
        self.site_locks: list[str] = []
        self.stored_policies: dict[str, list[Policy]] = {}
        self.periods: dict[tuple[str, str], PeriodRecord] = {}
        self.payouts: dict[uuid.UUID, NewPayout] = {}
        self.entries: list[NewEntry] = []
        self.booked: list[BookedHours] = []
        self.released_by: dict[int, uuid.UUID] = {}  # index in ``booked`` -> the reversal that released it
        self.versions = 0

    async def lock_site(self, site_id: str) -> None:
        self.site_locks.append(site_id)

    async def policies(self, site_id: str) -> list[Policy]:
        return sorted(self.stored_policies.get(site_id, []), key=lambda p: (p.effective_from, p.version))

    async def add_policy(self, site_id: str, policy: Policy, at: datetime, by: str) -> int:
        self.versions += 1
        self.stored_policies.setdefault(site_id, []).append(replace(policy, version=self.versions))
        return self.versions

    async def last_closed(self, site_id: str) -> Period | None:
        closed = [Period.parse(p) for (s, p), r in self.periods.items() if s == site_id and r.status == "closed"]
        return max(closed, default=None)

    async def lock_period(self, site_id: str, period: str, at: datetime) -> PeriodRecord:
        return self.periods.setdefault(
            (site_id, period), PeriodRecord(site_id, period, "open", None, 0, 0, 0, 0, 0, None)
        )

    async def close_period(self, site_id: str, period: str, totals: PeriodTotals, at: datetime, by: str) -> None:
        self.periods[site_id, period] = PeriodRecord(
            site_id,
            period,
            "closed",
            totals.cap_policy_id,
            totals.volunteers,
            totals.entries,
            totals.adjustments,
            totals.accrued_cents,
            totals.over_cap_cents,
            at,
        )

    async def booked_in_year(
        self, site_id: str, member_ids: list[uuid.UUID], first: str, before: str
    ) -> dict[uuid.UUID, int]:
        totals: dict[uuid.UUID, int] = {}
        for e in self.entries:
            if e.site_id == site_id and e.member_id in member_ids and first <= e.period < before:
                sign = {"accrued": 1, "reversed": -1}.get(e.entry_type, 0)
                totals[e.member_id] = totals.get(e.member_id, 0) + sign * e.amount_cents
        return totals

    async def add_payouts(self, payouts: list[NewPayout]) -> None:
        self.payouts.update((p.payout_id, p) for p in payouts)

    async def add_entries(self, entries: list[NewEntry]) -> None:
        self.entries.extend(entries)

    async def book_hours(self, booked: list[BookedHours]) -> None:
        self.booked.extend(booked)

    def holds(self, hours_id: uuid.UUID) -> bool:
        return any(b.hours.hours_id == hours_id and i not in self.released_by for i, b in enumerate(self.booked))

    async def booking_entry(self, hours_id: uuid.UUID) -> uuid.UUID | None:
        for i, b in enumerate(self.booked):
            if b.hours.hours_id == hours_id and i not in self.released_by and b.entry_id is not None:
                return b.entry_id
        return None

    async def lock_payout(self, payout_id: uuid.UUID, site_id: str | None) -> PayoutRecord | None:
        payout = self.payouts.get(payout_id)
        if payout is None or (site_id is not None and payout.site_id != site_id):
            return None
        reversed_cents = sum(
            e.amount_cents for e in self.entries if e.payout_id == payout_id and e.entry_type == "reversed"
        )
        payment = next((e for e in self.entries if e.payout_id == payout_id and e.entry_type == "paid"), None)
        return PayoutRecord(
            payout.payout_id,
            payout.site_id,
            payout.member_id,
            payout.period,
            payout.accrued_cents,
            reversed_cents,
            payment.entry_id if payment else None,
            payment.created_at if payment else None,
        )

    async def entry(self, entry_id: uuid.UUID, site_id: str | None) -> EntryRecord | None:
        for e in self.entries:
            if e.entry_id == entry_id and (site_id is None or e.site_id == site_id):
                return EntryRecord(
                    e.entry_id,
                    e.site_id,
                    e.member_id,
                    e.period,
                    e.entry_type,
                    e.payout_id,
                    e.amount_cents,
                    e.minutes,
                    e.shifts,
                )
        return None

    async def reversal_of(self, entry_id: uuid.UUID) -> uuid.UUID | None:
        return next((e.entry_id for e in self.entries if e.reverses_entry_id == entry_id), None)

    async def release_hours(self, entry_id: uuid.UUID, reversal_id: uuid.UUID) -> int:
        held = [i for i, b in enumerate(self.booked) if b.entry_id == entry_id and i not in self.released_by]
        self.released_by.update((i, reversal_id) for i in held)
        return len(held)


@dataclass
class StoredHours:
    site_id: str
    record: PayableHours
    status: str = "approved"


class FakeHoursRepository:
    """Volunteering proper's side of the boundary: its approved hours, less those a stipend entry holds."""

    def __init__(self, stipends: FakeStipendRepository) -> None:
        self.records: list[StoredHours] = []
        self.stipends = stipends

    async def unbooked_approved(self, site_id: str, *, since: datetime, before: datetime) -> list[PayableHours]:
        found = [
            h.record
            for h in self.records
            if h.site_id == site_id
            and h.status == "approved"
            and since <= h.record.shift_starts_at < before
            and not self.stipends.holds(h.record.hours_id)
        ]
        return sorted(found, key=lambda r: (r.member_id, r.shift_starts_at, r.hours_id))


class FakePeopleRepository:
    def __init__(self) -> None:
        self.roles: set[tuple[str, str]] = {(SITE, "front_desk"), (SITE, "mentor")}

    async def known_role_ids(self, site_id: str, role_ids: list[str]) -> set[str]:
        return {r for r in role_ids if (site_id, r) in self.roles}


class FakeUnitOfWork(Recorder):
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.stipends = FakeStipendRepository()
        self.hours = FakeHoursRepository(self.stipends)
        self.people = FakePeopleRepository()

    def of_type(self, kind: str) -> list[dict]:
        return [e.data.model_dump(mode="json") for e in self.events if e.type == kind]


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(APRIL_2)


# Builders


async def set_policy(
    uow: FakeUnitOfWork,
    clock: FixedClock,
    *,
    effective_from: date = date(2026, 3, 1),
    hourly: int = 1_500,
    per_shift: int = 500,
    monthly_cap: int = 50_000,
    **more: object,
):
    cmd = SetStipendPolicy(
        ADMIN,
        ZONE,
        effective_from,
        hourly,
        per_shift,
        more.pop("role_rates", ()),  # type: ignore[arg-type]
        monthly_cap,
        more.pop("yearly_cap", None),
        more.pop("tax_threshold", 60_000),  # type: ignore[arg-type]
        more.pop("org_cap", None),  # type: ignore[arg-type]
    )
    return await handlers.set_stipend_policy(cmd, uow=uow, clock=clock)  # type: ignore[arg-type]


def approved(
    uow: FakeUnitOfWork,
    member_id: uuid.UUID,
    starts_at: datetime,
    minutes: int,
    *,
    role_id: str = "front_desk",
    eligible: bool = True,
    site_id: str = SITE,
) -> PayableHours:
    record = PayableHours(uuid.uuid4(), member_id, uuid.uuid4(), role_id, starts_at, minutes, eligible)
    uow.hours.records.append(StoredHours(site_id, record))
    return record


async def close(uow: FakeUnitOfWork, clock: FixedClock, period: str = "2026-03"):
    cmd = CloseStipendPeriod(ADMIN, ZONE, period)
    return await handlers.close_stipend_period(cmd, uow=uow, clock=clock)  # type: ignore[arg-type]


async def pay(uow: FakeUnitOfWork, clock: FixedClock, payout_id: uuid.UUID, actor: Actor = ADMIN):
    cmd = MarkPayoutPaid(actor, payout_id, "check", "No. 1041")
    return await handlers.mark_payout_paid(cmd, uow=uow, clock=clock)  # type: ignore[arg-type]


async def reverse(uow: FakeUnitOfWork, clock: FixedClock, entry_id: uuid.UUID):
    cmd = ReverseStipendEntry(ADMIN, entry_id, "Logged on the wrong shift")
    return await handlers.reverse_stipend_entry(cmd, uow=uow, clock=clock)  # type: ignore[arg-type]


def march(day: int, hour: int = 15) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


# Policies


async def test_a_policy_is_stored_and_announced(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    result = await set_policy(uow, clock, role_rates=(("mentor", 2_000, 0),))

    [stored] = await uow.stipends.policies(SITE)
    assert stored.policy_id == result.policy_id
    assert stored.rates("mentor") == (2_000, 0) and stored.rates("front_desk") == (1_500, 500)
    [event] = uow.of_type("volunteering.stipend_policy_changed")
    assert event["hourly_rate_cents"] == 1_500
    assert event["role_rates"] == [{"role_id": "mentor", "hourly_rate_cents": 2_000, "per_shift_cents": 0}]
    assert uow.stipends.site_locks == [SITE]


async def test_the_same_policy_again_is_not_a_new_version(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    first = await set_policy(uow, clock)

    again = await set_policy(uow, clock)

    assert again.policy_id == first.policy_id
    assert len(await uow.stipends.policies(SITE)) == 1
    assert len(uow.events) == 1


async def test_a_rate_for_an_unknown_role_is_refused(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    with pytest.raises(InvalidInput) as raised:
        await set_policy(uow, clock, role_rates=(("chef", 100, 0),))

    assert raised.value.code == "unknown_role"
    assert raised.value.extra["roles"] == ["chef"]
    assert uow.stipends.stored_policies == {} and uow.events == []


async def test_a_policy_cannot_start_in_a_closed_period(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock)
    await close(uow, clock)

    with pytest.raises(Conflict) as raised:
        await set_policy(uow, clock, effective_from=date(2026, 3, 15), hourly=9_999)

    assert raised.value.code == "period_closed"
    assert raised.value.extra["earliest"] == "2026-04-01"


# Closing a period: accrual


async def test_closing_books_an_accrual_a_payout_and_the_hours(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    policy = await set_policy(uow, clock)
    first = approved(uow, ANA, march(3), 90)  # 1,500 × 1.5 h + 500 = 2,750
    second = approved(uow, ANA, march(10), 45)  # 1,125 + 500 = 1,625

    result = await close(uow, clock)

    assert (result.status, result.volunteers, result.entries, result.adjustments) == ("closed", 1, 1, 0)
    assert (result.accrued_cents, result.over_cap_cents) == (4_375, 0)
    [entry] = uow.stipends.entries
    assert (entry.entry_type, entry.kind, entry.member_id, entry.period) == ("accrued", "accrual", ANA, "2026-03")
    assert (entry.amount_cents, entry.minutes, entry.shifts) == (4_375, 135, 2)
    assert entry.cap_policy_id == policy.policy_id and entry.rate_policy_ids == (policy.policy_id,)
    [line] = entry.lines
    assert (line.role_id, line.minutes, line.shifts, line.cents) == ("front_desk", 135, 2, 4_375)
    [payout] = uow.stipends.payouts.values()
    assert (payout.member_id, payout.accrued_cents, payout.minutes, payout.shifts) == (ANA, 4_375, 135, 2)
    assert entry.payout_id == payout.payout_id
    assert {b.hours.hours_id for b in uow.stipends.booked} == {first.hours_id, second.hours_id}
    assert all(b.entry_id == entry.entry_id for b in uow.stipends.booked)
    [accrued] = uow.of_type("volunteering.stipend_accrued")
    assert accrued["amount_cents"] == 4_375 and accrued["payout_id"] == str(payout.payout_id)
    [closed] = uow.of_type("volunteering.stipend_period_closed")
    assert closed["accrued_cents"] == 4_375 and closed["volunteers"] == 1
    assert uow.stipends.periods[SITE, "2026-03"].status == "closed"


async def test_closing_again_answers_the_same_totals_and_books_nothing(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock)
    approved(uow, ANA, march(3), 60)
    first = await close(uow, clock)
    events, entries = len(uow.events), len(uow.stipends.entries)
    clock.advance(days=3)

    again = await close(uow, clock)

    assert again.model_dump() == first.model_dump()
    assert (len(uow.events), len(uow.stipends.entries)) == (events, entries)


async def test_hours_of_a_volunteer_not_eligible_are_settled_without_an_entry(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    await set_policy(uow, clock)
    hours = approved(uow, BEN, march(3), 60, eligible=False)

    result = await close(uow, clock)

    assert (result.volunteers, result.entries, result.accrued_cents) == (0, 0, 0)
    [settled] = uow.stipends.booked
    assert settled.hours.hours_id == hours.hours_id and settled.entry_id is None and settled.cents == 0
    assert uow.stipends.holds(hours.hours_id)  # never priced later, even if Ben becomes eligible
    assert uow.of_type("volunteering.stipend_accrued") == []


async def test_hours_approved_after_a_close_accrue_as_an_adjustment_of_the_next(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    await set_policy(uow, clock)
    await close(uow, clock)
    late = approved(uow, ANA, march(20), 60)  # approved in April, for a March shift
    clock.advance(days=30)

    result = await close(uow, clock, "2026-04")

    assert (result.entries, result.adjustments, result.accrued_cents) == (1, 1, 2_000)
    [entry] = uow.stipends.entries
    assert (entry.kind, entry.period, entry.original_period, entry.shift_id) == (
        "adjustment",
        "2026-04",
        "2026-03",
        late.shift_id,
    )


# Caps


async def test_the_monthly_cap_holds_back_the_rest_and_says_so(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock, monthly_cap=2_000)
    approved(uow, ANA, march(3), 90)  # 2,750

    result = await close(uow, clock)

    assert (result.accrued_cents, result.over_cap_cents) == (2_000, 750)
    [entry] = uow.stipends.entries
    assert (entry.amount_cents, entry.over_cap_cents, entry.capped_by) == (2_000, 750, ("monthly_cap",))
    [accrued] = uow.of_type("volunteering.stipend_accrued")
    assert accrued["capped_by"] == ["monthly_cap"]


async def test_the_org_cap_is_shared_between_volunteers(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock, hourly=1_000, per_shift=0, org_cap=1_500)
    approved(uow, ANA, march(3), 120)  # 2,000
    approved(uow, BEN, march(3), 60)  # 1,000

    result = await close(uow, clock)

    assert result.accrued_cents == 1_500
    amounts = {e.member_id: (e.amount_cents, e.capped_by) for e in uow.stipends.entries}
    assert amounts == {ANA: (1_000, ("org_cap",)), BEN: (500, ("org_cap",))}


async def test_the_yearly_cap_counts_what_earlier_periods_booked(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock, hourly=1_000, per_shift=0, yearly_cap=1_500)
    approved(uow, ANA, march(3), 60)
    await close(uow, clock)
    approved(uow, ANA, datetime(2026, 4, 6, 15, tzinfo=UTC), 60)
    clock.advance(days=30)

    await close(uow, clock, "2026-04")

    april = uow.stipends.entries[-1]
    assert (april.amount_cents, april.over_cap_cents, april.capped_by) == (500, 500, ("yearly_cap",))


# Refusals when closing


async def test_a_period_not_over_yet_is_not_closed(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock)

    with pytest.raises(Conflict) as raised:
        await close(uow, clock, "2026-04")

    assert raised.value.code == "period_not_over"
    assert uow.stipends.entries == [] and uow.events[1:] == []


async def test_periods_close_in_order(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock, effective_from=date(2026, 2, 1))

    with pytest.raises(Conflict) as raised:
        await close(uow, clock, "2026-03")

    assert raised.value.code == "earlier_period_open"
    assert raised.value.extra["open_period"] == "2026-02"


async def test_no_policy_no_close(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    with pytest.raises(Conflict) as raised:
        await close(uow, clock)

    assert raised.value.code == "no_policy"


# Paying


async def test_paying_a_payout_writes_a_payment_entry(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock)
    approved(uow, ANA, march(3), 60)
    await close(uow, clock)
    [payout] = uow.stipends.payouts.values()
    clock.advance(hours=2)

    result = await pay(uow, clock, payout.payout_id)

    assert (result.amount_cents, result.member_id, result.method, result.reference) == (2_000, ANA, "check", "No. 1041")
    payment = uow.stipends.entries[-1]
    assert (payment.entry_type, payment.payout_id, payment.amount_cents) == ("paid", payout.payout_id, 2_000)
    assert payment.method == "check" and payment.entry_id == result.entry_id
    [paid] = uow.of_type("volunteering.stipend_paid")
    assert paid["amount_cents"] == 2_000
    assert "No. 1041" not in str(paid)  # a reference stays in the ledger


async def test_a_payout_is_paid_once(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock)
    approved(uow, ANA, march(3), 60)
    await close(uow, clock)
    [payout] = uow.stipends.payouts.values()
    first = await pay(uow, clock, payout.payout_id)

    with pytest.raises(Conflict) as raised:
        await pay(uow, clock, payout.payout_id)

    assert raised.value.code == "already_paid"
    assert raised.value.extra["entry_id"] == str(first.entry_id)


async def test_a_payout_of_another_site_is_not_found(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock)
    approved(uow, ANA, march(3), 60)
    await close(uow, clock)
    [payout] = uow.stipends.payouts.values()

    with pytest.raises(NotFound) as raised:
        await pay(uow, clock, payout.payout_id, actor=COORDINATOR_ELSEWHERE)

    assert raised.value.code == "payout_not_found"


# Reversal


async def test_reversing_an_entry_takes_it_back_and_releases_its_hours(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock)
    hours = approved(uow, ANA, march(3), 60)
    await close(uow, clock)
    [accrual] = uow.stipends.entries

    result = await reverse(uow, clock, accrual.entry_id)

    assert (result.reverses_entry_id, result.amount_cents, result.released_hours) == (accrual.entry_id, 2_000, 1)
    reversal = uow.stipends.entries[-1]
    assert (reversal.entry_type, reversal.payout_id, reversal.reason) == (
        "reversed",
        accrual.payout_id,
        "Logged on the wrong shift",
    )
    assert not uow.stipends.holds(hours.hours_id)
    [event] = uow.of_type("volunteering.stipend_reversed")
    assert event["released_hours"] == 1 and "wrong shift" not in str(event)

    with pytest.raises(Conflict) as raised:
        await pay(uow, clock, accrual.payout_id)
    assert raised.value.code == "nothing_to_pay"


async def test_released_hours_are_booked_again_at_the_next_close(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock)
    hours = approved(uow, ANA, march(3), 60)
    await close(uow, clock)
    await reverse(uow, clock, uow.stipends.entries[0].entry_id)
    clock.advance(days=30)

    await close(uow, clock, "2026-04")

    again = uow.stipends.entries[-1]
    assert (again.kind, again.original_period, again.amount_cents) == ("adjustment", "2026-03", 2_000)
    assert await uow.stipends.booking_entry(hours.hours_id) == again.entry_id


async def test_an_entry_is_reversed_once(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock)
    approved(uow, ANA, march(3), 60)
    await close(uow, clock)
    accrual = uow.stipends.entries[0]
    first = await reverse(uow, clock, accrual.entry_id)

    with pytest.raises(Conflict) as raised:
        await reverse(uow, clock, accrual.entry_id)

    assert raised.value.code == "already_reversed"
    assert raised.value.extra["reversed_by"] == str(first.entry_id)


async def test_a_payment_is_not_reversible(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await set_policy(uow, clock)
    approved(uow, ANA, march(3), 60)
    await close(uow, clock)
    payment = await pay(uow, clock, next(iter(uow.stipends.payouts)))

    with pytest.raises(Conflict) as raised:
        await reverse(uow, clock, payment.entry_id)

    assert raised.value.code == "not_reversible"


async def test_an_unknown_entry_is_not_found(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    with pytest.raises(NotFound) as raised:
        await reverse(uow, clock, uuid.uuid4())

    assert raised.value.code == "entry_not_found"
