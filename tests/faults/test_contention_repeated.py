"""Seats under contention, many rounds in one run, for a volunteer shift and for a sober event alike:

- 200 concurrent sign-ups for 20 seats: exactly 20 confirmed and 180 waitlisted, the waitlist in the order the
  server accepted them (positions in the answers, the database's arrival order and the events all agree);
- concurrent cancellations (of seats and of places in line) and new sign-ups on a full shift/event with a line:
  capacity never exceeded, every freed seat goes to the head of the line, nobody is promoted twice.

Each round is checked three ways: the HTTP answers, the database, and the events in the service's outbox replayed
through a first-come-first-served model (the same events the broker carries). A race that shows up once in a
hundred runs shows up here within a run: the counts are summed over every round and must all be zero."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.settings import Settings
from tests.support.report import report
from tests.support.stack import Client, Reply, SiteUnderTest, make_site, services
from tests.support.volunteering import Center, Volunteer

pytestmark = pytest.mark.e2e

SEATS = 20
CROWD = 200
SIGN_UP_ROUNDS = 10  # per kind, 200 sign-ups each: about 3 s a round here (one seat at a time, client in-process)
CHURN_ROUNDS = 10  # per kind
CHURN_LINE = 30  # waiting when the churn starts
CHURN_LEAVE_SEATED, CHURN_LEAVE_WAITING, CHURN_JOIN = 8, 5, 20
STIPEND_MONTHS = 12


@dataclass(frozen=True)
class Step:
    """One outbox event about one seat: ``seated``, ``waiting`` (with its position), ``promoted``, ``left``."""

    kind: str
    who: str
    position: int | None = None
    previous: str | None = None


class Seats(Protocol):
    """A shift or an event, seen the same way: who asked, who holds a seat, who waits, and the events."""

    async def new(self, round_: int) -> str: ...
    async def join(self, target: str, person: int) -> Reply: ...
    async def leave(self, target: str, who: str) -> Reply: ...
    async def arrivals(self, target: str) -> list[tuple[str, str]]: ...  # (who, status) in arrival order
    async def steps(self, target: str) -> list[Step]: ...


def joined(reply: Reply) -> tuple[str, str, int | None]:
    return reply.body["id"], reply.body["status"], reply.body.get("position")


@dataclass
class Line:
    """First come, first served, replayed from the events; counts every way the events break it."""

    capacity: int
    seated: set[str] = field(default_factory=set)
    waiting: list[str] = field(default_factory=list)
    promoted: set[str] = field(default_factory=set)
    over_capacity: int = 0
    out_of_order: int = 0
    promoted_twice: int = 0
    wrong_position: int = 0
    seat_left_empty: int = 0

    def replay(self, steps: list[Step]) -> Line:
        for index, step in enumerate(steps):
            nothing_pending = index + 1 == len(steps) or steps[index + 1].kind != "promoted"
            match step.kind:
                case "seated":
                    self.seated.add(step.who)
                    if self.waiting:  # a newcomer took a seat someone in line was owed
                        self.out_of_order += 1
                case "waiting":
                    self.waiting.append(step.who)
                    self.wrong_position += step.position != len(self.waiting)
                case "left" if step.previous == "confirmed":
                    self.seated.discard(step.who)
                case "left":
                    self.waiting.remove(step.who)
                case "promoted":
                    if step.who in self.promoted:
                        self.promoted_twice += 1
                    self.promoted.add(step.who)
                    if not self.waiting or self.waiting[0] != step.who:
                        self.out_of_order += 1
                    if step.who in self.waiting:
                        self.waiting.remove(step.who)
                    self.seated.add(step.who)
            self.over_capacity += len(self.seated) > self.capacity
            # A transaction that freed a seat promotes in the same transaction: once its events are over, a free
            # seat with someone waiting is a seat left empty.
            if nothing_pending and len(self.seated) < self.capacity and self.waiting:
                self.seat_left_empty += 1
        return self


@dataclass
class Tally:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, **counts: int) -> None:
        for name, value in counts.items():
            self.counts[name] = self.counts.get(name, 0) + int(value)


def compare(line: Line, arrivals: list[tuple[str, str]], tally: Tally) -> None:
    """The replayed events and the database tell the same story."""
    seated = {who for who, status in arrivals if status == "confirmed"}
    waiting = [who for who, status in arrivals if status == "waitlisted"]
    tally.add(
        over_capacity=line.over_capacity + (len(seated) > line.capacity),
        promoted_out_of_order=line.out_of_order,
        promoted_twice=line.promoted_twice,
        wrong_position_in_event=line.wrong_position,
        seat_left_empty=line.seat_left_empty,
        events_disagree_with_database=(line.seated != seated) + (line.waiting != waiting),
    )


async def sign_up_round(seats: Seats, round_: int, tally: Tally) -> None:
    target = await seats.new(round_)
    replies = await asyncio.gather(*(seats.join(target, person) for person in range(CROWD)))
    refused = [r for r in replies if r.status != 201]
    answers = [joined(r) for r in replies if r.status == 201]
    confirmed = [who for who, status, _ in answers if status == "confirmed"]
    position = {who: pos for who, status, pos in answers if status == "waitlisted"}
    arrivals = await seats.arrivals(target)
    line = [who for who, status in arrivals if status == "waitlisted"]
    tally.add(
        refused=len(refused),
        wrong_confirmed_count=abs(len(confirmed) - SEATS),
        # The order the server accepted them: the answer's position is the place in the database's line.
        waitlist_not_in_arrival_order=sum(1 for place, who in enumerate(line, 1) if position.get(who) != place)
        + abs(len(line) - (CROWD - SEATS)),
        seated_not_first_arrivals=sum(1 for _, status in arrivals[:SEATS] if status != "confirmed"),
    )
    compare(Line(SEATS).replay(await seats.steps(target)), arrivals, tally)


async def churn_round(seats: Seats, round_: int, rng: random.Random, tally: Tally) -> None:
    target = await seats.new(round_)
    first = await asyncio.gather(*(seats.join(target, person) for person in range(SEATS + CHURN_LINE)))
    answers = [joined(r) for r in first if r.status == 201]
    seated = [who for who, status, _ in answers if status == "confirmed"]
    waiting = [who for who, status in await seats.arrivals(target) if status == "waitlisted"]
    leaving = rng.sample(seated, CHURN_LEAVE_SEATED) + rng.sample(waiting, CHURN_LEAVE_WAITING)
    work = [seats.leave(target, who) for who in leaving]
    work += [seats.join(target, person) for person in range(SEATS + CHURN_LINE, SEATS + CHURN_LINE + CHURN_JOIN)]
    rng.shuffle(work)
    replies = await asyncio.gather(*work)
    tally.add(refused=sum(1 for r in [*first, *replies] if r.status not in (200, 201)))

    # Every seat freed went to the head of the line as it stood: the first CHURN_LEAVE_SEATED of those waiting
    # who did not leave themselves (the line is long enough that newcomers only ever queue behind them).
    stayed = [who for who in waiting if who not in leaving]
    arrivals = await seats.arrivals(target)
    now_seated = {who for who, status in arrivals if status == "confirmed"}
    tally.add(
        promoted_not_head_of_line=len(set(stayed[:CHURN_LEAVE_SEATED]) - now_seated),
        wrong_seat_count=abs(len(now_seated) - SEATS),
    )
    compare(Line(SEATS).replay(await seats.steps(target)), arrivals, tally)


class Shifts:
    def __init__(self, center: Center, role: str, people: list[Volunteer]) -> None:
        self.center, self.role, self.people = center, role, people
        self.by_member = {str(p.member_id): p for p in people}

    async def new(self, round_: int) -> str:
        # A day apart: one volunteer cannot hold two overlapping shifts.
        return await self.center.shift(self.role, starts_in=timedelta(days=3 + round_), capacity=SEATS)

    async def join(self, target: str, person: int) -> Reply:
        reply = await self.center.sign_up(target, self.people[person], by_coordinator=True)
        if reply.status == 201:
            reply.body["id"] = reply.body["member_id"]
        return reply

    async def leave(self, target: str, who: str) -> Reply:
        return await self.center.drop(target, self.by_member[who], by_coordinator=True)

    async def arrivals(self, target: str) -> list[tuple[str, str]]:
        return [
            (str(r.member_id), r.status)
            for r in await self.center.signups(target)
            if r.status in ("confirmed", "waitlisted")
        ]

    async def steps(self, target: str) -> list[Step]:
        rows = await self.center.rows(
            "SELECT type, data FROM volunteering.outbox WHERE data->>'shift_id' = :shift ORDER BY sequence",
            shift=target,
        )
        kinds = {
            "volunteering.signed_up": "seated",
            "volunteering.waitlisted": "waiting",
            "volunteering.promoted_from_waitlist": "promoted",
            "volunteering.dropped": "left",
        }
        return [
            Step(kinds[r.type], r.data["member_id"], r.data.get("position"), r.data.get("previous_status"))
            for r in rows
            if r.type in kinds
        ]


class Events:
    def __init__(self, client: Client, site: SiteUnderTest, engine: AsyncEngine, members: list[uuid.UUID]) -> None:
        self.client, self.site, self.engine, self.members = client, site, engine, members

    async def new(self, round_: int) -> str:
        starts = (datetime.now(UTC) + timedelta(days=3 + round_)).replace(microsecond=0)
        reply = await self.client.call(
            "gatherings",
            "POST",
            "/events",
            token=self.site.tokens["coordinator"],
            json={
                "title": "Sober bowling night",
                "kind": "sports",
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=2)).isoformat(),
                "capacity": SEATS,
            },
        )
        assert reply.status == 201, reply.body
        return reply.body["event_id"]

    async def join(self, target: str, person: int) -> Reply:
        reply = await self.client.call(
            "gatherings",
            "POST",
            f"/events/{target}/registrations",
            token=self.site.tokens["kiosk"],
            json={"member_id": str(self.members[person]), "adults": 1, "children": 0},
        )
        if reply.status == 201:
            reply.body["id"] = reply.body["registration_id"]
        return reply

    async def leave(self, target: str, who: str) -> Reply:
        return await self.client.call(
            "gatherings", "DELETE", f"/registrations/{who}", token=self.site.tokens["coordinator"]
        )

    async def arrivals(self, target: str) -> list[tuple[str, str]]:
        async with self.engine.connect() as conn:
            rows = await conn.exec_driver_sql(
                "SELECT registration_id::text, status FROM gatherings.registrations WHERE gathering_id = $1 "
                "AND status IN ('confirmed', 'waitlisted') ORDER BY seq",
                (uuid.UUID(target),),
            )
            return [(r[0], r[1]) for r in rows]

    async def steps(self, target: str) -> list[Step]:
        async with self.engine.connect() as conn:
            rows = await conn.exec_driver_sql(
                "SELECT type, data FROM gatherings.outbox WHERE data->>'event_id' = $1 ORDER BY sequence", (target,)
            )
            kinds = {
                "gatherings.registered": "seated",
                "gatherings.waitlisted": "waiting",
                "gatherings.promoted_from_waitlist": "promoted",
                "gatherings.registration_cancelled": "left",
            }
            return [
                Step(kinds[t], d["registration_id"], d.get("position"), d.get("previous_status"))
                for t, d in rows
                if t in kinds
            ]


@pytest.fixture
async def stack(isolated: Settings) -> AsyncIterator[tuple[Client, AsyncEngine]]:
    engine = create_async_engine(isolated.database_url)
    try:
        async with services(isolated, ["volunteering", "gatherings"]) as client:
            yield client, engine
    finally:
        await engine.dispose()


async def kinds_of_seats(isolated: Settings, client: Client, engine: AsyncEngine) -> dict[str, Any]:
    center = Center(client, isolated, await make_site(isolated, timezone="America/New_York"), engine)
    role = await center.role()
    people = await center.volunteers(CROWD, [role])
    # The same members queue for the events: each person joins a round's event once, like its shift.
    return {
        "shift": Shifts(center, role, people),
        "event": Events(client, center.site, engine, [p.member_id for p in people]),
    }


async def test_200_sign_ups_for_20_seats_round_after_round(
    isolated: Settings, stack: tuple[Client, AsyncEngine]
) -> None:
    client, engine = stack
    for kind, seats in (await kinds_of_seats(isolated, client, engine)).items():
        tally = Tally()
        for round_ in range(SIGN_UP_ROUNDS):
            await sign_up_round(seats, round_, tally)
        report(
            f"200 sign-ups for 20 seats ({kind})", tally.counts, rounds=SIGN_UP_ROUNDS, sign_ups=SIGN_UP_ROUNDS * CROWD
        )


async def test_cancellations_and_sign_ups_at_once_round_after_round(
    isolated: Settings, stack: tuple[Client, AsyncEngine]
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    client, engine = stack
    for kind, seats in (await kinds_of_seats(isolated, client, engine)).items():
        tally = Tally()
        for round_ in range(CHURN_ROUNDS):
            await churn_round(seats, round_, rng, tally)
        report(f"cancellations and sign-ups at once ({kind})", tally.counts, rounds=CHURN_ROUNDS, seed=seed)


def cents(minutes: int, hourly: int, per_shift: int) -> int:
    """What one hours record earns, computed here without the service's code: half-up rounding by divmod."""
    whole, rest = divmod(minutes * hourly, 60)
    return whole + (1 if 2 * rest >= 60 else 0) + per_shift


async def test_stipend_periods_closed_at_once_and_retried_month_after_month(
    isolated: Settings, stack: tuple[Client, AsyncEngine]
) -> None:
    """Eight closes of one month at once (three of them one request retried with its Idempotency-Key) and a
    retry afterwards, month after month: one accrual per volunteer and month, and every sum exact to the cent."""
    client, engine = stack
    center = Center(client, isolated, await make_site(isolated, timezone="America/New_York"), engine)
    rng = random.Random(2025)
    hourly, per_shift = 1_337, 250  # an hourly rate that leaves remainders, so rounding is exercised
    await center.policy(effective_from="2025-01-01", hourly_rate_cents=hourly, per_shift_cents=per_shift)
    role = await center.role()
    people = await center.stipend_volunteers(4, [role])
    tally = Tally()
    for month in range(1, STIPEND_MONTHS + 1):
        period = f"2025-{month:02d}"
        shifts = [await center.shift_on(role, datetime(2025, month, day).date()) for day in (5, 19)]
        worked = [(p, s, rng.randrange(31, 181)) for p in people for s in shifts]
        for person, shift_id, minutes in worked:
            await center.worked(person.member_id, shift_id, minutes)
        expected = {p.member_id: sum(cents(m, hourly, per_shift) for q, _, m in worked if q is p) for p in people}

        replies = await asyncio.gather(
            *(center.close(period, key=f"close-{period}" if i % 3 == 0 else None) for i in range(8))
        )
        replies += [await center.close(period), await center.close(period, key=f"close-{period}")]
        accrued = await center.rows(
            "SELECT member_id, amount_cents FROM volunteering.stipend_ledger WHERE site_id = :site "
            "AND period = :period AND kind = 'accrual'",
            site=center.site.site_id,
            period=period,
        )
        by_member = Counter(r.member_id for r in accrued)
        closed_events = await center.rows(
            "SELECT count(*) AS n FROM volunteering.outbox WHERE type = 'volunteering.stipend_period_closed' "
            "AND site_id = :site AND data->>'period' = :period",
            site=center.site.site_id,
            period=period,
        )
        tally.add(
            refused=sum(1 for r in replies if r.status != 200),
            answers_disagree=len({repr(sorted(r.body.items())) for r in replies if r.status == 200}) - 1,
            accrual_lost=sum(1 for p in people if by_member[p.member_id] == 0),
            accrual_duplicated=sum(n - 1 for n in by_member.values() if n > 1),
            member_cents_off=sum(1 for r in accrued if r.amount_cents != expected.get(r.member_id)),
            total_cents_off=abs(replies[0].body["accrued_cents"] - sum(expected.values())),
            period_closed_events_not_one=abs(closed_events[0].n - 1),
        )
    report(
        "stipend periods closed at once and retried", tally.counts, months=STIPEND_MONTHS, closes=STIPEND_MONTHS * 10
    )
