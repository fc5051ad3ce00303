"""A stateful property test of event registrations: sign-ups, cancellations, capacity changes and retries with the
same Idempotency-Key, in any order hypothesis finds, against the real handlers and PostgreSQL. After every step the
database equals a model small enough to be obviously right: first come first served, a party that does not fit
waits (and keeps its place while smaller parties behind it are seated), a freed seat or a bigger room seats the
waiting parties in order, a retry replays the first answer and changes nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gatherings import handlers
from services.gatherings.commands import CancelRegistration, ChangeCapacity, Register, ScheduleSoberEvent
from services.gatherings.models import Base, GatheringsUnitOfWork
from shared.clock import SystemClock
from shared.db import create_engine, make_connector
from shared.errors import DomainError
from shared.settings import Settings
from shared.uow import IdempotencyClaim, execute
from tests.support.members import new_known
from tests.support.stack import make_site

pytestmark = pytest.mark.integration

MEMBERS = 8
ACTOR = "token:00000000-0000-4000-8000-00000000aaaa"


@dataclass
class Party:
    registration_id: str
    member: int
    adults: int
    children: int
    status: str  # confirmed | waitlisted | cancelled


@dataclass
class Model:
    capacity: int
    child_care_seats: int
    parties: list[Party] = field(default_factory=list)  # arrival order
    promotions: list[str] = field(default_factory=list)

    def taken(self) -> tuple[int, int]:
        seated = [p for p in self.parties if p.status == "confirmed"]
        return sum(p.adults for p in seated), sum(p.children for p in seated)

    def room(self) -> tuple[int, int]:
        adults, children = self.taken()
        return self.capacity - adults, self.child_care_seats - children

    def fits(self, adults: int, children: int) -> bool:
        room = self.room()
        return adults <= room[0] and children <= room[1]

    def waiting(self) -> list[Party]:
        return [p for p in self.parties if p.status == "waitlisted"]

    def active_of(self, member: int) -> Party | None:
        return next((p for p in self.parties if p.member == member and p.status != "cancelled"), None)

    def promote(self) -> None:
        for party in self.waiting():
            if self.room()[0] == 0:
                break
            if self.fits(party.adults, party.children):
                party.status = "confirmed"
                self.promotions.append(party.registration_id)


@dataclass
class Sent:
    """A request as sent, so a retry can send it again byte for byte."""

    key: str
    method: str
    path: str
    body: bytes
    answer: tuple[int, Any] | None  # (status, body) the first time, or None when it failed (nothing was stored)


class Registrations(RuleBasedStateMachine):
    runner: asyncio.Runner
    engine: AsyncEngine
    site_id: str

    def __init__(self) -> None:
        super().__init__()
        # Members check-in registered at the site, as the gatherings service knows them from its events.
        self.members = self.run(new_known(self.engine, self.site_id, MEMBERS, ["gatherings"]))
        self.sent: list[Sent] = []

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.runner.run(coro)

    def uow(self) -> GatheringsUnitOfWork:
        return GatheringsUnitOfWork(make_connector(self.engine), Base.metadata)

    def execute(self, handler: Any, cmd: Any, *, status: int, claim: IdempotencyClaim | None) -> tuple[int, Any, bool]:
        """(status, body, replayed), or (error status, code, False) for a refusal."""
        try:
            outcome = self.run(
                execute(handler, cmd, uow=self.uow(), clock=SystemClock(), status=status, idempotency=claim)
            )
        except DomainError as exc:
            return exc.status, exc.code, False
        return outcome.status, outcome.body, outcome.replayed

    @initialize(capacity=st.integers(1, 4), child_care_seats=st.integers(0, 3))
    def schedule(self, capacity: int, child_care_seats: int) -> None:
        starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
        cmd = ScheduleSoberEvent(
            site_id=self.site_id,
            actor_id=ACTOR,
            timezone="America/Chicago",
            title="Family picnic",
            kind="sober_social",
            support_type=None,
            starts_at=starts,
            ends_at=starts + timedelta(hours=3),
            capacity=capacity,
            child_care_seats=child_care_seats,
            family_friendly=True,
            room=None,
            registration_opens_at=None,
            registration_closes_at=None,
        )
        status, body, _ = self.execute(handlers.schedule_sober_event, cmd, status=201, claim=None)
        assert status == 201, body
        self.event_id = uuid.UUID(body["event_id"])
        self.model = Model(capacity, child_care_seats)

    # --- the steps -------------------------------------------------------------------------------------------

    @rule(
        member=st.integers(0, MEMBERS - 1),
        adults=st.sampled_from([1, 1, 1, 2, 3]),
        children=st.sampled_from([0, 0, 1, 2]),
        keyed=st.booleans(),
    )
    def register(self, member: int, adults: int, children: int, keyed: bool) -> None:
        body = f'{{"member_id":"{self.members[member]}","adults":{adults},"children":{children}}}'.encode()
        self._send("POST", f"/events/{self.event_id}/registrations", body, keyed)

    @precondition(lambda self: any(p.status == "confirmed" for p in self.model.parties))
    @rule(pick=st.integers(0, 10_000), keyed=st.booleans())
    def cancel_a_seat(self, pick: int, keyed: bool) -> None:
        seated = [p for p in self.model.parties if p.status == "confirmed"]
        self._send("DELETE", f"/registrations/{seated[pick % len(seated)].registration_id}", b"", keyed)

    @precondition(lambda self: bool(self.model.parties))
    @rule(pick=st.integers(0, 10_000), keyed=st.booleans())
    def cancel_any(self, pick: int, keyed: bool) -> None:
        """A place in the waitlist, or one cancelled already (409)."""
        party = self.model.parties[pick % len(self.model.parties)]
        self._send("DELETE", f"/registrations/{party.registration_id}", b"", keyed)

    @rule(capacity=st.integers(1, 5), child_care_seats=st.integers(0, 3))
    def change_capacity(self, capacity: int, child_care_seats: int) -> None:
        self._send(
            "PATCH",
            f"/events/{self.event_id}",
            f'{{"capacity":{capacity},"child_care_seats":{child_care_seats}}}'.encode(),
            keyed=False,
        )

    @precondition(lambda self: any(s.key for s in self.sent))
    @rule(pick=st.integers(0, 10_000))
    def retry(self, pick: int) -> None:
        """A kiosk that lost the answer sends the same request again with the same key."""
        keyed = [s for s in self.sent if s.key]
        first = keyed[pick % len(keyed)]
        # A refused request stores nothing under its key, so the answer the key holds is that of its first
        # accepted sending: an earlier retry of a refused request may have been accepted since.
        stored = next((s for s in self.sent if s.key == first.key and s.answer is not None), None)
        if stored is None:
            # Refused every time so far, so nothing was stored under its key: the retry is decided afresh.
            self._send(first.method, first.path, first.body, keyed=True, key=first.key)
            return
        status, body, replayed = self._call(first.method, first.path, first.body, first.key)
        assert (status, body, replayed) == (*stored.answer, True), "a retry must replay the first answer"

    @precondition(lambda self: any(s.key and s.answer is not None for s in self.sent))
    @rule(pick=st.integers(0, 10_000), member=st.integers(0, MEMBERS - 1))
    def reuse_key_for_another_request(self, pick: int, member: int) -> None:
        stored = [s for s in self.sent if s.key and s.answer is not None]
        first = stored[pick % len(stored)]
        other = f'{{"member_id":"{self.members[member]}","adults":1,"children":0,"x":1}}'.encode()
        status, code, _ = self._call("POST", f"/events/{self.event_id}/registrations", other, first.key)
        assert (status, code) == (422, "idempotency_key_reused")

    # --- sending a request and what the model expects of it ----------------------------------------------------

    def _send(self, method: str, path: str, body: bytes, keyed: bool, key: str | None = None) -> None:
        key = key or (uuid.uuid4().hex if keyed else "")
        expected = self._expect(method, path, body)
        status, answer, replayed = self._call(method, path, body, key)
        assert not replayed
        got = (status, answer if status >= 400 else None)
        assert got == expected, f"{method} {path} {body!r}: got {status} {answer}, the model says {expected}"
        if status < 400:
            self._apply(method, path, body, answer)
        self.sent.append(Sent(key, method, path, body, (status, answer) if status < 400 else None))

    def _call(self, method: str, path: str, body: bytes, key: str) -> tuple[int, Any, bool]:
        claim = IdempotencyClaim.of(ACTOR, key or None, method, path, body)
        if method == "POST":
            data = json.loads(body)
            cmd: Any = Register(
                site_id=self.site_id,
                actor_id=ACTOR,
                role="coordinator",
                acting_member_id=None,
                gathering_type="event",
                gathering_id=self.event_id,
                member_id=uuid.UUID(data["member_id"]),
                adults=data["adults"],
                children=data["children"],
            )
            return self.execute(handlers.register, cmd, status=201, claim=claim)
        if method == "DELETE":
            cmd = CancelRegistration(
                site_id=self.site_id,
                actor_id=ACTOR,
                role="coordinator",
                acting_member_id=None,
                registration_id=uuid.UUID(path.rsplit("/", 1)[1]),
            )
            return self.execute(handlers.cancel_registration, cmd, status=200, claim=claim)
        data = json.loads(body)
        cmd = ChangeCapacity(
            site_id=self.site_id,
            actor_id=ACTOR,
            gathering_type="event",
            gathering_id=self.event_id,
            capacity=data["capacity"],
            child_care_seats=data["child_care_seats"],
        )
        return self.execute(handlers.change_capacity, cmd, status=200, claim=claim)

    def _expect(self, method: str, path: str, body: bytes) -> tuple[int, str | None]:
        model = self.model
        if method == "POST":
            data = json.loads(body)
            member = self.members.index(uuid.UUID(data["member_id"]))
            if data["adults"] > model.capacity or data["children"] > model.child_care_seats:
                return 409, "party_too_large"
            if model.active_of(member) is not None:
                return 409, "already_registered"
            return 201, None
        if method == "DELETE":
            party = next(p for p in model.parties if p.registration_id == path.rsplit("/", 1)[1])
            return (409, "already_cancelled") if party.status == "cancelled" else (200, None)
        data = json.loads(body)
        adults, children = model.taken()
        if data["capacity"] < adults or data["child_care_seats"] < children:
            return 409, "capacity_below_confirmed"
        if any(p.adults > data["capacity"] or p.children > data["child_care_seats"] for p in model.waiting()):
            return 409, "capacity_below_waiting_party"
        return 200, None

    def _apply(self, method: str, path: str, body: bytes, answer: dict[str, Any]) -> None:
        model = self.model
        if method == "POST":
            data = json.loads(body)
            member = self.members.index(uuid.UUID(data["member_id"]))
            seated = model.fits(data["adults"], data["children"])
            model.parties.append(
                Party(
                    answer["registration_id"],
                    member,
                    data["adults"],
                    data["children"],
                    "confirmed" if seated else "waitlisted",
                )
            )
            assert answer["status"] == ("confirmed" if seated else "waitlisted")
            assert answer["position"] == (None if seated else len(model.waiting()))
        elif method == "DELETE":
            party = next(p for p in model.parties if p.registration_id == answer["registration_id"])
            was_seated = party.status == "confirmed"
            party.status = "cancelled"
            before = len(model.promotions)
            if was_seated:
                model.promote()
            assert answer["promoted"] == model.promotions[before:]
        else:
            data = json.loads(body)
            before = len(model.promotions)
            if (data["capacity"], data["child_care_seats"]) != (model.capacity, model.child_care_seats):
                model.capacity, model.child_care_seats = data["capacity"], data["child_care_seats"]
                model.promote()
            assert answer["promoted"] == model.promotions[before:]

    # --- the database equals the model ------------------------------------------------------------------------

    @invariant()
    def database_equals_model(self) -> None:
        if not hasattr(self, "model"):
            return
        rows, seats, promoted = self.run(self._state())
        assert [(str(r.registration_id), r.status, r.adults, r.children) for r in rows] == [
            (p.registration_id, p.status, p.adults, p.children) for p in self.model.parties
        ]
        assert tuple(seats) == (self.model.capacity, self.model.child_care_seats, *self.model.taken())
        assert promoted == self.model.promotions, "promotions out of order, or someone promoted twice"

    async def _state(self) -> tuple[list[Any], Any, list[str]]:
        async with self.engine.connect() as conn:
            rows = list(
                await conn.execute(
                    text(
                        "SELECT registration_id, status, adults, children FROM gatherings.registrations "
                        "WHERE gathering_id = :g ORDER BY seq"
                    ),
                    {"g": self.event_id},
                )
            )
            seats = (
                await conn.execute(
                    text(
                        "SELECT capacity, child_care_seats, taken_adults, taken_children FROM gatherings.gatherings "
                        "WHERE gathering_id = :g"
                    ),
                    {"g": self.event_id},
                )
            ).one()
            promoted = [
                r.id
                for r in await conn.execute(
                    text(
                        "SELECT data->>'registration_id' AS id FROM gatherings.outbox "
                        "WHERE type = 'gatherings.promoted_from_waitlist' AND data->>'event_id' = :g ORDER BY sequence"
                    ),
                    {"g": str(self.event_id)},
                )
            ]
        return rows, seats, promoted


def run_machine(settings: Settings, site_id: str) -> None:
    """In a thread of its own with its own event loop: hypothesis drives the steps synchronously."""
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        engine = create_engine(settings, service="stateful-test")
        Registrations.runner, Registrations.engine, Registrations.site_id = runner, engine, site_id
        try:
            run_state_machine_as_test(
                Registrations,
                settings=hypothesis_settings(
                    max_examples=40,
                    stateful_step_count=30,
                    deadline=None,
                    derandomize=True,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow],
                ),
            )
        finally:
            runner.run(engine.dispose())


def run_steps(settings: Settings, site_id: str, steps: Callable[[Registrations], None]) -> None:
    """One sequence of steps, written out, with the invariant checked after each (as hypothesis would)."""
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        engine = create_engine(settings, service="stateful-test")
        Registrations.runner, Registrations.engine, Registrations.site_id = runner, engine, site_id
        try:
            steps(Registrations())
        finally:
            runner.run(engine.dispose())


async def test_a_retry_of_a_refused_request_accepted_later_replays_that_acceptance(settings: Settings) -> None:
    """A party too large is refused (nothing stored under its key); the room grows and the kiosk's retry is
    accepted; a further retry with that key replays the acceptance."""

    def steps(machine: Registrations) -> None:
        machine.schedule(capacity=1, child_care_seats=0)
        machine.register(member=0, adults=1, children=1, keyed=True)
        assert machine.sent[-1].answer is None, "the party should not have fitted"
        machine.change_capacity(capacity=1, child_care_seats=1)
        for _ in range(2):
            machine.retry(pick=0)
            machine.database_equals_model()
        assert [p.status for p in machine.model.parties] == ["confirmed"]

    site = await make_site(settings)
    await asyncio.to_thread(run_steps, settings, site.site_id, steps)


async def test_registrations_always_match_the_model(settings: Settings) -> None:
    site = await make_site(settings)
    await asyncio.to_thread(run_machine, settings, site.site_id)
