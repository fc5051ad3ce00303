"""Stipend arithmetic and rules, without I/O. Money is integer cents; nothing here ever touches a float.

Policy
    A site's stipend policy is a list of immutable versions, each in effect from a local date (``effective_from``)
    until the next version's: a default rate per approved hour and per completed shift, optional rates per role
    (a role rate replaces both default rates for that role), a monthly cap per volunteer, an optional yearly cap,
    an optional organisation-wide monthly cap, and the yearly tax-paperwork threshold (default $600). Of two
    versions from the same date, the later one counts. A new version may start on any date after the last closed
    period (409 ``period_closed`` otherwise), so a closed period, and every period before it, keep the policy they
    were computed with; each ledger entry also stores the ids of the policies it used.

Periods
    A period is a calendar month ("YYYY-MM") on the site's wall clock. It can be closed once it is over (409
    ``period_not_over``), and periods are closed in order, from the month of the first policy on (409
    ``earlier_period_open`` names the one to close first). Closing is done once: a repeat returns the same totals.

What a period books
    Every approved hours record of the site that no ledger entry holds yet, whose shift starts before the end of
    the period and on or after the first policy's date (hours from before any policy never accrue). The shift's
    local date decides which policy prices the record, so a policy change in the middle of a month splits it.
    Records of the period itself make the volunteer's ``accrual`` entry (one per volunteer per period); records of
    earlier, already closed periods (approved late, or put back by a reversal) make one ``adjustment`` entry each,
    naming the shift and its original period. A closed period is never recomputed.

    Eligibility is the volunteer's profile (``stipend_eligible``) when the period is closed. The hours of a
    volunteer who is not eligible then are settled without an entry: they never accrue later, even if the
    volunteer becomes eligible.

Amounts
    One hours record: ``round_half_up(minutes × hourly_rate_cents / 60) + per_shift_cents``, where the shift rate
    is paid for a completed shift (minutes > 0) and the rates are the role's when the policy has a rate for the
    record's role, else the default ones. Rounding is per record, to the cent, half up (exact integer arithmetic).

Caps (what a period books can never exceed them)
    The caps are those of the policy in effect on the period's LAST day (the policy the month ends under). For each
    volunteer, everything the period books (accrual plus adjustments) is summed and limited by:
    1. the monthly cap;
    2. the yearly cap, if any: the cap minus what the volunteer's ledger already holds for the calendar year of the
       period at this site (accrued minus reversed, in earlier periods of that year);
    3. the organisation's monthly cap, if any: when the volunteers' capped totals together exceed it, each volunteer
       gets the same share of it, ``total × org_cap / sum`` rounded down, and the cents left over go one by one to
       the largest remainders (ties: lowest member id), so the shares sum to the cap exactly.
    The amount allowed is laid over the volunteer's entries in order (the accrual first, then adjustments, oldest
    shift first). Whatever an entry could not pay is recorded on it as ``over_cap_cents`` with the caps that bit
    (``capped_by``), never dropped silently: ``amount_cents + over_cap_cents`` is always the full priced amount.

Tax paperwork
    A volunteer's year total is what the ledger books for them in that calendar year's periods at the site (accrued
    minus reversed; what was paid is part of it). Paperwork is needed when the total reaches the threshold of the
    policy in effect on the year's last day (the IRS asks for Form 1099-NEC at $600 *or more*).
"""

from __future__ import annotations

import re
import uuid
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal

from shared.errors import Conflict, InvalidInput

DEFAULT_TAX_THRESHOLD_CENTS = 60_000
PERIOD_PATTERN = re.compile(r"^(?P<year>\d{4})-(?P<month>0[1-9]|1[0-2])$")

StipendKind = Literal["accrual", "adjustment"]
CapCode = Literal["monthly_cap", "yearly_cap", "org_cap"]


# Periods


@dataclass(frozen=True, order=True, slots=True)
class Period:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        match = PERIOD_PATTERN.fullmatch(text)
        if match is None or not 1900 <= int(match["year"]) <= 9998:
            raise InvalidInput("A period is a month written YYYY-MM, e.g. 2026-03.", code="bad_period")
        return cls(int(match["year"]), int(match["month"]))

    @classmethod
    def of(cls, day: date) -> Period:
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return self.next().first_day - timedelta(days=1)

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def start(self, zone: zoneinfo.ZoneInfo) -> datetime:
        """The first instant of the period on the site's wall clock."""
        return local_midnight(self.first_day, zone)

    def end(self, zone: zoneinfo.ZoneInfo) -> datetime:
        """The first instant after the period (exclusive end)."""
        return self.next().start(zone)

    def contains(self, day: date) -> bool:
        return (day.year, day.month) == (self.year, self.month)


def local_midnight(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def year_periods(year: int) -> tuple[str, str]:
    """The first and last period of a calendar year, as stored ("YYYY-01", "YYYY-12")."""
    return f"{year:04d}-01", f"{year:04d}-12"


# Policies


@dataclass(frozen=True, slots=True)
class RoleRate:
    role_id: str
    hourly_rate_cents: int
    per_shift_cents: int


@dataclass(frozen=True, slots=True)
class Policy:
    policy_id: uuid.UUID
    version: int  # creation order: of two versions from the same date, the later counts
    effective_from: date
    hourly_rate_cents: int
    per_shift_cents: int
    monthly_cap_cents: int
    yearly_cap_cents: int | None = None
    tax_threshold_cents: int = DEFAULT_TAX_THRESHOLD_CENTS
    org_monthly_cap_cents: int | None = None
    role_rates: tuple[RoleRate, ...] = ()

    def rates(self, role_id: str) -> tuple[int, int]:
        """(hourly_rate_cents, per_shift_cents) for a role: its own rates if the policy has them, else the default."""
        for rate in self.role_rates:
            if rate.role_id == role_id:
                return rate.hourly_rate_cents, rate.per_shift_cents
        return self.hourly_rate_cents, self.per_shift_cents

    def same_terms(self, other: Policy) -> bool:
        """Whether two versions say the same thing (ids and creation order aside)."""
        return (
            self.effective_from,
            self.hourly_rate_cents,
            self.per_shift_cents,
            self.monthly_cap_cents,
            self.yearly_cap_cents,
            self.tax_threshold_cents,
            self.org_monthly_cap_cents,
            sorted(self.role_rates, key=lambda r: r.role_id),
        ) == (
            other.effective_from,
            other.hourly_rate_cents,
            other.per_shift_cents,
            other.monthly_cap_cents,
            other.yearly_cap_cents,
            other.tax_threshold_cents,
            other.org_monthly_cap_cents,
            sorted(other.role_rates, key=lambda r: r.role_id),
        )


def policy_on(policies: Iterable[Policy], day: date) -> Policy | None:
    """The version in effect on a local date: the latest ``effective_from`` on or before it (then the latest made)."""
    in_effect = [p for p in policies if p.effective_from <= day]
    return max(in_effect, key=lambda p: (p.effective_from, p.version)) if in_effect else None


def current_and_upcoming(policies: Iterable[Policy], today: date) -> tuple[Policy | None, list[Policy]]:
    """The version in effect today, and those that start later (one per start date, the latest made)."""
    every = list(policies)
    later: dict[date, Policy] = {}
    for p in every:
        if p.effective_from > today and (p.effective_from not in later or p.version > later[p.effective_from].version):
            later[p.effective_from] = p
    return policy_on(every, today), [later[d] for d in sorted(later)]


def first_period(policies: Iterable[Policy]) -> Period | None:
    """The month of the first policy: nothing before it accrues, and periods are closed in order from it."""
    starts = [p.effective_from for p in policies]
    return Period.of(min(starts)) if starts else None


def check_effective_from(effective_from: date, last_closed: Period | None) -> None:
    """A new version may start on any date after the last closed period, so closed periods keep their policy."""
    if last_closed is not None and effective_from <= last_closed.last_day:
        raise Conflict(
            f"{last_closed} is closed: a new policy can start on {last_closed.next().first_day} at the earliest.",
            code="period_closed",
            last_closed_period=str(last_closed),
            earliest=last_closed.next().first_day.isoformat(),
        )


def check_can_close(period: Period, *, now_local: date, policies: Sequence[Policy], last_closed: Period | None) -> None:
    """Whether ``period`` (not closed yet) may be closed now: it is over, a policy covers it, and every earlier
    period since the first policy is closed."""
    if now_local <= period.last_day:
        raise Conflict(
            f"{period} is not over yet on the site's clock.",
            code="period_not_over",
            closes_from=period.next().first_day.isoformat(),
        )
    start = first_period(policies)
    if start is None or policy_on(policies, period.last_day) is None:
        raise Conflict(f"No stipend policy covers {period}.", code="no_policy")
    if last_closed is not None and period < last_closed:
        # Its hours were booked as adjustments of a later period: closing it now would book them twice over.
        raise Conflict(
            f"{last_closed} is closed already; periods are closed in order.",
            code="period_out_of_order",
            last_closed_period=str(last_closed),
        )
    expected = last_closed.next() if last_closed is not None else start
    if period > expected:
        raise Conflict(
            f"Close {expected} first: periods are closed in order.",
            code="earlier_period_open",
            open_period=str(expected),
        )


# Amounts


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, halves up (both non-negative)."""
    if numerator < 0 or denominator <= 0:
        raise ValueError("round_half_up takes a non-negative numerator and a positive denominator")
    return (2 * numerator + denominator) // (2 * denominator)


def hours_cents(minutes: int, hourly_rate_cents: int, per_shift_cents: int) -> int:
    """What one approved hours record earns: the hourly part rounded half up to the cent, plus the shift rate for
    a completed shift (minutes > 0)."""
    if minutes < 0 or hourly_rate_cents < 0 or per_shift_cents < 0:
        raise ValueError("minutes and rates are never negative")
    if minutes == 0:
        return 0
    return round_half_up(minutes * hourly_rate_cents, 60) + per_shift_cents


@dataclass(frozen=True, slots=True)
class ApprovedHours:
    """An approved hours record not yet booked, with its shift's local date."""

    hours_id: uuid.UUID
    member_id: uuid.UUID
    shift_id: uuid.UUID
    role_id: str
    local_date: date
    minutes: int


@dataclass(frozen=True, slots=True)
class PricedHours:
    hours: ApprovedHours
    policy_id: uuid.UUID
    hourly_rate_cents: int
    per_shift_cents: int
    shifts: int  # 1 for a completed shift (minutes > 0), else 0
    cents: int


def price(hours: ApprovedHours, policy: Policy) -> PricedHours:
    hourly, per_shift = policy.rates(hours.role_id)
    return PricedHours(
        hours=hours,
        policy_id=policy.policy_id,
        hourly_rate_cents=hourly,
        per_shift_cents=per_shift,
        shifts=1 if hours.minutes > 0 else 0,
        cents=hours_cents(hours.minutes, hourly, per_shift),
    )


@dataclass(frozen=True, slots=True)
class Line:
    """The hours behind an amount, by the policy and role that priced them: the rates used and what they came to
    (the sum of the records' rounded amounts)."""

    policy_id: uuid.UUID
    role_id: str
    hourly_rate_cents: int
    per_shift_cents: int
    minutes: int
    shifts: int
    cents: int


def lines_of(priced: Iterable[PricedHours]) -> list[Line]:
    grouped: dict[tuple[uuid.UUID, str, int, int], list[PricedHours]] = {}
    for p in priced:
        grouped.setdefault((p.policy_id, p.hours.role_id, p.hourly_rate_cents, p.per_shift_cents), []).append(p)
    return [
        Line(
            policy_id,
            role_id,
            hourly,
            per_shift,
            sum(p.hours.minutes for p in group),
            sum(p.shifts for p in group),
            sum(p.cents for p in group),
        )
        for (policy_id, role_id, hourly, per_shift), group in grouped.items()
    ]


@dataclass(slots=True)
class Accrual:
    """One ``accrued`` ledger entry about to be written."""

    member_id: uuid.UUID
    kind: StipendKind
    original_period: Period
    shift_id: uuid.UUID | None
    priced: tuple[PricedHours, ...]
    amount_cents: int = 0
    over_cap_cents: int = 0
    capped_by: tuple[CapCode, ...] = ()
    lines: list[Line] = field(default_factory=list)

    @property
    def raw_cents(self) -> int:
        return sum(p.cents for p in self.priced)

    @property
    def minutes(self) -> int:
        return sum(p.hours.minutes for p in self.priced)

    @property
    def shifts(self) -> int:
        return sum(p.shifts for p in self.priced)

    @property
    def policy_ids(self) -> list[uuid.UUID]:
        return list(dict.fromkeys(p.policy_id for p in self.priced))


@dataclass(frozen=True, slots=True)
class Closing:
    period: Period
    cap_policy: Policy
    entries: list[Accrual]  # by member id; each volunteer's accrual first, then adjustments, oldest first
    unpriced: list[ApprovedHours]  # from before any policy: left alone

    @property
    def volunteers(self) -> int:
        return len({e.member_id for e in self.entries})

    @property
    def accrued_cents(self) -> int:
        return sum(e.amount_cents for e in self.entries)

    @property
    def over_cap_cents(self) -> int:
        return sum(e.over_cap_cents for e in self.entries)

    @property
    def adjustments(self) -> int:
        return sum(1 for e in self.entries if e.kind == "adjustment")


def close_period(
    period: Period,
    hours: Iterable[ApprovedHours],
    policies: Sequence[Policy],
    *,
    booked_this_year: Mapping[uuid.UUID, int],
) -> Closing:
    """Price the eligible volunteers' unbooked approved hours and apply the caps (see the module's rules).

    ``booked_this_year``: per volunteer, what the ledger holds for them in earlier periods of the period's year
    (accrued minus reversed)."""
    cap_policy = policy_on(policies, period.last_day)
    if cap_policy is None:
        raise Conflict(f"No stipend policy covers {period}.", code="no_policy")
    by_member: dict[uuid.UUID, list[PricedHours]] = {}
    unpriced: list[ApprovedHours] = []
    for item in hours:
        if item.local_date > period.last_day:
            raise ValueError(f"hours of {item.local_date} do not belong in {period} or before")
        policy = policy_on(policies, item.local_date)
        if policy is None:
            unpriced.append(item)
            continue
        by_member.setdefault(item.member_id, []).append(price(item, policy))

    entries: dict[uuid.UUID, list[Accrual]] = {}
    for member_id in sorted(by_member, key=str):
        priced = by_member[member_id]
        own = tuple(p for p in priced if period.contains(p.hours.local_date))
        late = sorted(
            (p for p in priced if not period.contains(p.hours.local_date)),
            key=lambda p: (p.hours.local_date, str(p.hours.shift_id), str(p.hours.hours_id)),
        )
        member_entries: list[Accrual] = []
        if own:
            member_entries.append(Accrual(member_id, "accrual", period, None, own))
        for p in late:
            member_entries.append(
                Accrual(member_id, "adjustment", Period.of(p.hours.local_date), p.hours.shift_id, (p,))
            )
        entries[member_id] = member_entries

    allowed: dict[uuid.UUID, int] = {}
    caps: dict[uuid.UUID, list[CapCode]] = {}
    for member_id, member_entries in entries.items():
        total = sum(e.raw_cents for e in member_entries)
        codes: list[CapCode] = []
        if total > cap_policy.monthly_cap_cents:
            total = cap_policy.monthly_cap_cents
            codes.append("monthly_cap")
        if cap_policy.yearly_cap_cents is not None:
            room = max(0, cap_policy.yearly_cap_cents - booked_this_year.get(member_id, 0))
            if total > room:
                total = room
                codes.append("yearly_cap")
        allowed[member_id] = total
        caps[member_id] = codes
    if cap_policy.org_monthly_cap_cents is not None:
        shares = apportion(allowed, cap_policy.org_monthly_cap_cents)
        for member_id, share in shares.items():
            if share < allowed[member_id]:
                caps[member_id].append("org_cap")
        allowed = shares

    ordered: list[Accrual] = []
    for member_id, member_entries in entries.items():
        left = allowed[member_id]
        for entry in member_entries:
            entry.lines = lines_of(entry.priced)
            entry.amount_cents = min(entry.raw_cents, left)
            entry.over_cap_cents = entry.raw_cents - entry.amount_cents
            entry.capped_by = tuple(caps[member_id]) if entry.over_cap_cents else ()
            left -= entry.amount_cents
            ordered.append(entry)
    return Closing(period, cap_policy, ordered, unpriced)


def apportion(amounts: Mapping[uuid.UUID, int], budget: int) -> dict[uuid.UUID, int]:
    """Scale ``amounts`` down so they sum to ``budget`` when they exceed it: each gets ``amount × budget / total``
    rounded down, and the cents left over go one each to the largest remainders (ties: lowest id). Amounts within
    the budget are returned unchanged."""
    total = sum(amounts.values())
    if total <= budget:
        return dict(amounts)
    shares = {key: amount * budget // total for key, amount in amounts.items()}
    remainders = sorted(amounts, key=lambda key: (-(amounts[key] * budget % total), str(key)))
    for key in remainders[: budget - sum(shares.values())]:
        shares[key] += 1
    return shares


# Payouts and years


def payable_cents(accrued_cents: int, reversed_cents: int) -> int:
    """What a payout pays: the period's accrued entries minus what was reversed of them."""
    return accrued_cents - reversed_cents


def tax_threshold(policies: Iterable[Policy], year: int) -> int:
    """The threshold of the policy in effect on the year's last day (the default without one)."""
    policy = policy_on(policies, date(year, 12, 31))
    return policy.tax_threshold_cents if policy is not None else DEFAULT_TAX_THRESHOLD_CENTS


def tax_paperwork_needed(year_total_cents: int, threshold_cents: int) -> bool:
    return year_total_cents >= threshold_cents
