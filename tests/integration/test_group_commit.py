"""Group commit against the real PostgreSQL: requests that arrive together share one transaction, each in its own
savepoint; a refused one undoes only itself; answers come only after the commit; Idempotency-Keys replay within a
run; a request whose client hung up before its turn is never run. A handler that refuses without writing runs
without the savepoints, and a failed statement then has the run done again with them. A run handler decides the
requests of a run without keys together, in arrival order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gatherings.models import Base, GatheringsUnitOfWork
from shared.clock import Clock, SystemClock
from shared.db import create_engine, make_connector
from shared.errors import Conflict
from shared.groupcommit import MAX_RUN, GroupCommit, refuses_without_writing
from shared.locks import KeyedLocks
from shared.settings import Settings
from shared.uow import IdempotencyClaim
from tests.integration.helpers import unique

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Put:
    """Write ``value`` into the scratch table; ``refuse`` raises a domain error after writing, ``clash`` writes a
    value that breaks the table's unique constraint."""

    value: str
    refuse: bool = False
    clash: bool = False


class Written(BaseModel):
    value: str
    transaction: int


class Harness:
    def __init__(self, engine: AsyncEngine, schema: str) -> None:
        self.engine = engine
        self.schema = schema
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def put(self, cmd: Put, *, uow: GatheringsUnitOfWork, clock: Clock) -> Written:
        self.started.set()
        await self.release.wait()  # a test holds the first run here while the next requests queue up
        value = "taken" if cmd.clash else cmd.value
        await uow.driver.execute(f'INSERT INTO "{self.schema}".written (value) VALUES ($1)', value)
        if cmd.refuse:
            raise Conflict("refused after writing", code="refused")
        transaction = await uow.driver.fetchval("SELECT txid_current()")
        return Written(value=cmd.value, transaction=transaction)

    async def values(self) -> set[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(text(f'SELECT value FROM "{self.schema}".written'))
            return {row.value for row in rows}


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[tuple[Harness, GroupCommit]]:
    engine = create_engine(settings, service="it-group-commit")
    schema = unique("it_group_commit_")
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.execute(text(f'CREATE TABLE "{schema}".written (value text PRIMARY KEY)'))
        await conn.execute(text(f"INSERT INTO \"{schema}\".written VALUES ('taken')"))
    connector = make_connector(engine)
    harness = Harness(engine, schema)
    group = GroupCommit(
        harness.put,
        uow=lambda: GatheringsUnitOfWork(connector, Base.metadata),
        clock=SystemClock(),
        locks=KeyedLocks(),
        status=201,
    )
    try:
        yield harness, group
    finally:
        await group.close()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def submit_behind_a_held_run(
    harness: Harness, group: GroupCommit, key: str, puts: list[Put], claims: list[IdempotencyClaim | None] | None = None
) -> tuple[Written, list[Written | BaseException]]:
    """A first request holds the run; ``puts`` arrive meanwhile and queue up; then everything goes."""
    harness.started.clear()
    harness.release.clear()
    first = asyncio.create_task(group.submit(key, Put(unique("first-"))))
    await harness.started.wait()
    rest = [
        asyncio.create_task(group.submit(key, put, idempotency=(claims or [None] * len(puts))[i]))
        for i, put in enumerate(puts)
    ]
    await asyncio.sleep(0.05)
    harness.release.set()
    answers = await asyncio.gather(*rest, return_exceptions=True)
    return Written.model_validate((await first).body), [
        a if isinstance(a, BaseException) else Written.model_validate(a.body) for a in answers
    ]


async def test_requests_that_arrive_together_share_one_transaction(harness: tuple[Harness, GroupCommit]) -> None:
    h, group = harness
    puts = [Put(unique("v-")) for _ in range(10)]
    first, answers = await submit_behind_a_held_run(h, group, "k", puts)
    assert all(isinstance(a, Written) for a in answers)
    assert len({a.transaction for a in answers}) == 1  # the ten queued ones: one run
    assert first.transaction not in {a.transaction for a in answers}  # the held one was a run of its own
    assert {p.value for p in puts} <= await h.values()


async def test_a_run_is_at_most_max_run_requests(harness: tuple[Harness, GroupCommit]) -> None:
    h, group = harness
    puts = [Put(unique("v-")) for _ in range(MAX_RUN + 5)]
    _, answers = await submit_behind_a_held_run(h, group, "k", puts)
    transactions = [a.transaction for a in answers if isinstance(a, Written)]
    assert len(transactions) == MAX_RUN + 5
    assert sorted(transactions.count(t) for t in set(transactions)) == [5, MAX_RUN]


async def test_a_refused_request_undoes_only_itself(harness: tuple[Harness, GroupCommit]) -> None:
    h, group = harness
    puts = [Put(unique("v-")), Put(unique("refused-"), refuse=True), Put(unique("v-"), clash=True), Put(unique("v-"))]
    _, answers = await submit_behind_a_held_run(h, group, "k", puts)
    assert isinstance(answers[1], Conflict) and answers[1].code == "refused"
    assert "UniqueViolation" in repr(answers[2]) or "unique" in str(answers[2]).lower()
    assert isinstance(answers[0], Written) and isinstance(answers[3], Written)
    assert answers[0].transaction == answers[3].transaction
    stored = await h.values()
    assert puts[0].value in stored and puts[3].value in stored
    assert puts[1].value not in stored  # written, then undone with its savepoint


async def test_an_answer_is_given_only_after_the_commit(harness: tuple[Harness, GroupCommit]) -> None:
    h, group = harness
    value = unique("v-")
    await group.submit("k", Put(value))
    assert value in await h.values()  # seen from another connection the moment the answer arrived


async def test_an_idempotency_key_replays_within_a_run(harness: tuple[Harness, GroupCommit]) -> None:
    h, group = harness
    claim = IdempotencyClaim(scope=f"token:{uuid.uuid4()}", key="same", fingerprint="f")
    value = unique("v-")
    _, answers = await submit_behind_a_held_run(h, group, "k", [Put(value), Put(value)], [claim, claim])
    assert answers[0] == answers[1]  # the second got the first's answer, not a second write (which would clash)


async def test_a_request_whose_client_hung_up_before_its_turn_is_not_run(
    harness: tuple[Harness, GroupCommit],
) -> None:
    h, group = harness
    h.started.clear()
    h.release.clear()
    first = asyncio.create_task(group.submit("k", Put(unique("first-"))))
    await h.started.wait()
    gone_value, kept_value = unique("gone-"), unique("kept-")
    gone = asyncio.create_task(group.submit("k", Put(gone_value)))
    kept = asyncio.create_task(group.submit("k", Put(kept_value)))
    await asyncio.sleep(0.05)
    gone.cancel()
    h.release.set()
    await first
    await kept
    with pytest.raises(asyncio.CancelledError):
        await gone
    stored = await h.values()
    assert kept_value in stored and gone_value not in stored


async def test_keys_are_independent(harness: tuple[Harness, GroupCommit]) -> None:
    _, group = harness
    a, b = await asyncio.gather(group.submit("a", Put(unique("a-"))), group.submit("b", Put(unique("b-"))))
    assert Written.model_validate(a.body).transaction != Written.model_validate(b.body).transaction


async def test_a_cancelled_run_tells_the_requests_in_it_and_behind_it(harness: tuple[Harness, GroupCommit]) -> None:
    """Shutdown cancels a run mid-transaction: nothing of it commits, and no request is left waiting forever."""
    h, group = harness
    h.started.clear()
    h.release.clear()
    in_run_value, behind_value = unique("in-run-"), unique("behind-")
    in_run = asyncio.create_task(group.submit("k", Put(in_run_value)))
    await h.started.wait()
    behind = asyncio.create_task(group.submit("k", Put(behind_value)))
    await asyncio.sleep(0.05)
    group._runners["k"].cancel()
    async with asyncio.timeout(5):
        for waiting in (in_run, behind):
            with pytest.raises(asyncio.CancelledError):
                await waiting
    h.release.set()
    assert not {in_run_value, behind_value} & await h.values()


class Unreachable:
    """A unit of work whose database cannot be reached."""

    transactional = True

    async def __aenter__(self) -> None:
        raise ConnectionRefusedError("the database is not answering")

    async def __aexit__(self, *_: object) -> None:
        return None


async def test_without_the_database_every_request_of_the_run_gets_the_error(
    harness: tuple[Harness, GroupCommit],
) -> None:
    """Each request is told the connection error (which the web layer answers 503 database_unavailable), none waits
    forever, and the next run starts afresh."""
    h, _ = harness
    broken = GroupCommit(h.put, uow=Unreachable, clock=SystemClock(), locks=KeyedLocks())  # type: ignore[arg-type]
    answers = await asyncio.gather(*(broken.submit("k", Put(unique("v-"))) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(a, ConnectionRefusedError) for a in answers)
    assert not broken._runners


@pytest.fixture
async def without_savepoints(
    harness: tuple[Harness, GroupCommit],
) -> AsyncIterator[tuple[Harness, GroupCommit, list[bool]]]:
    """The same scratch table behind a handler marked ``refuses_without_writing``; ``savepoints`` records, per run,
    whether it was done with them."""
    h, _ = harness

    @refuses_without_writing
    async def put(cmd: Put, *, uow: GatheringsUnitOfWork, clock: Clock) -> Written:
        return await h.put(cmd, uow=uow, clock=clock)

    runs: list[bool] = []

    class Recording(GroupCommit[GatheringsUnitOfWork, Written]):
        async def _in_one_transaction(self, run: list[Any], *, savepoints: bool) -> list[Any]:
            runs.append(savepoints)
            return await super()._in_one_transaction(run, savepoints=savepoints)

    group = Recording(
        put,
        uow=lambda: GatheringsUnitOfWork(make_connector(h.engine), Base.metadata),
        clock=SystemClock(),
        locks=KeyedLocks(),
        status=201,
    )
    try:
        yield h, group, runs
    finally:
        await group.close()


async def test_a_handler_that_refuses_without_writing_runs_without_savepoints(
    without_savepoints: tuple[Harness, GroupCommit, list[bool]],
) -> None:
    """Shown by a handler that breaks that promise: what it wrote before refusing is not undone."""
    h, group, runs = without_savepoints
    puts = [Put(unique("v-")), Put(unique("refused-"), refuse=True), Put(unique("v-"))]
    _, answers = await submit_behind_a_held_run(h, group, "k", puts)
    assert isinstance(answers[1], Conflict) and answers[1].code == "refused"
    assert isinstance(answers[0], Written) and isinstance(answers[2], Written)
    assert answers[0].transaction == answers[2].transaction
    assert runs == [False, False]  # the held first request's run, then the queued three
    assert {p.value for p in puts} <= await h.values()


async def test_a_failed_statement_without_savepoints_does_the_run_again_with_them(
    without_savepoints: tuple[Harness, GroupCommit, list[bool]],
) -> None:
    h, group, runs = without_savepoints
    puts = [Put(unique("v-")), Put(unique("v-"), clash=True), Put(unique("v-"))]
    _, answers = await submit_behind_a_held_run(h, group, "k", puts)
    assert "unique" in str(answers[1]).lower()
    assert isinstance(answers[0], Written) and isinstance(answers[2], Written)
    assert answers[0].transaction == answers[2].transaction
    assert runs == [False, False, True]
    stored = await h.values()
    assert puts[0].value in stored and puts[2].value in stored


async def test_with_an_idempotency_key_a_request_keeps_its_savepoint(
    without_savepoints: tuple[Harness, GroupCommit, list[bool]],
) -> None:
    """Its key was claimed before the handler refused: the savepoint undoes the claim with the rest."""
    h, group, _ = without_savepoints
    claim = IdempotencyClaim(scope=f"token:{uuid.uuid4()}", key="refused", fingerprint="f")
    refused = Put(unique("refused-"), refuse=True)
    _, answers = await submit_behind_a_held_run(h, group, "k", [refused], [claim])
    assert isinstance(answers[0], Conflict)
    assert refused.value not in await h.values()


@pytest.fixture
async def with_a_run_handler(
    harness: tuple[Harness, GroupCommit],
) -> AsyncIterator[tuple[Harness, GroupCommit, list[list[str]]]]:
    """A run handler beside the one-at-a-time handler: it writes its run's values in one statement and returns a
    refusal without writing; ``calls`` records each call of either handler (the values it was given)."""
    h, _ = harness
    calls: list[list[str]] = []

    @refuses_without_writing
    async def put(cmd: Put, *, uow: GatheringsUnitOfWork, clock: Clock) -> Written:
        calls.append([cmd.value])
        return await h.put(cmd, uow=uow, clock=clock)

    async def put_run(cmds: list[Put], *, uow: GatheringsUnitOfWork, clock: Clock) -> list[Written | Conflict]:
        calls.append([cmd.value for cmd in cmds])
        h.started.set()
        await h.release.wait()
        kept = [cmd for cmd in cmds if not cmd.refuse]
        await uow.driver.execute(
            f'INSERT INTO "{h.schema}".written (value) SELECT unnest($1::text[])',
            ["taken" if cmd.clash else cmd.value for cmd in kept],
        )
        transaction = await uow.driver.fetchval("SELECT txid_current()")
        return [
            Conflict("refused", code="refused") if cmd.refuse else Written(value=cmd.value, transaction=transaction)
            for cmd in cmds
        ]

    group = GroupCommit(
        put,
        run_handler=put_run,
        uow=lambda: GatheringsUnitOfWork(make_connector(h.engine), Base.metadata),
        clock=SystemClock(),
        locks=KeyedLocks(),
        status=201,
    )
    try:
        yield h, group, calls
    finally:
        await group.close()


async def test_a_run_handler_decides_the_requests_of_a_run_together_in_arrival_order(
    with_a_run_handler: tuple[Harness, GroupCommit, list[list[str]]],
) -> None:
    h, group, calls = with_a_run_handler
    puts = [Put(unique("v-")), Put(unique("refused-"), refuse=True), Put(unique("v-"))]
    first, answers = await submit_behind_a_held_run(h, group, "k", puts)
    assert calls == [[first.value], [p.value for p in puts]]
    assert isinstance(answers[1], Conflict) and answers[1].code == "refused"
    assert isinstance(answers[0], Written) and isinstance(answers[2], Written)
    stored = await h.values()
    assert puts[0].value in stored and puts[2].value in stored and puts[1].value not in stored


async def test_a_request_with_an_idempotency_key_goes_alone_in_its_turn(
    with_a_run_handler: tuple[Harness, GroupCommit, list[list[str]]],
) -> None:
    h, group, calls = with_a_run_handler
    puts = [Put(unique("v-")) for _ in range(4)]
    claim = IdempotencyClaim(scope=f"token:{uuid.uuid4()}", key="alone", fingerprint="f")
    first, answers = await submit_behind_a_held_run(h, group, "k", puts, [None, None, claim, None])
    assert calls == [[first.value], [puts[0].value, puts[1].value], [puts[2].value], [puts[3].value]]
    assert all(isinstance(a, Written) for a in answers)
    assert len({a.transaction for a in answers if isinstance(a, Written)}) == 1


async def test_a_failed_statement_in_a_run_handler_does_the_run_again_one_at_a_time(
    with_a_run_handler: tuple[Harness, GroupCommit, list[list[str]]],
) -> None:
    h, group, calls = with_a_run_handler
    puts = [Put(unique("v-")), Put(unique("v-"), clash=True), Put(unique("v-"))]
    first, answers = await submit_behind_a_held_run(h, group, "k", puts)
    assert calls == [[first.value], [p.value for p in puts], *([p.value] for p in puts)]
    assert "unique" in str(answers[1]).lower()
    assert isinstance(answers[0], Written) and isinstance(answers[2], Written)
    stored = await h.values()
    assert puts[0].value in stored and puts[2].value in stored
