"""The unit of work (the one transaction boundary) and the small bus that runs a handler inside it.

Handlers are plain ``async def handler(cmd, *, uow, clock)``: they read and change state through ``uow`` and
record facts with ``uow.emit``. ``execute`` opens the transaction, honours an ``Idempotency-Key``, runs the
handler and commits state, outbox rows and the idempotent response together.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Self, TypeVar

import asyncpg
from pydantic import BaseModel
from sqlalchemy import MetaData, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import Pool, QueuePool
from sqlalchemy.util import greenlet_spawn

from shared.clock import Clock
from shared.contracts import EventData
from shared.errors import Conflict, InvalidInput
from shared.events import Event


class Recorder:
    """Recording an event, the one way (DESIGN: the transactional outbox): ``uow.emit(contract, ...)`` takes the
    typed payload and its envelope and queues the outbox row, written in the transaction at commit. Real and fake
    units of work share it, so a handler's unit test sees the events exactly as they would reach the outbox."""

    events: list[Event]

    def emit(
        self,
        data: EventData,
        *,
        subject: uuid.UUID | str,
        site_id: str,
        at: datetime,
        actor_id: str | None = None,
        correlation_id: str | None = None,
        by_statement: bool = False,
    ) -> Event:
        """Queue ``data`` as a CloudEvent about ``subject`` at ``site_id`` that happened ``at``.

        ``by_statement``: the caller's one statement writes the outbox row itself, in the same statement as the
        state it records (:func:`outbox_insert`, for the single-statement hot paths); the event is only returned,
        for the statement's parameters (:func:`outbox_args`), and is not written again at commit."""
        event = Event(
            data, subject=str(subject), site_id=site_id, actor_id=actor_id, correlation_id=correlation_id, time=at
        )
        if not by_statement:
            self.events.append(event)
        return event


class UnitOfWork(Recorder):
    """One database transaction; events emitted in it reach the outbox in the same transaction."""

    source: str = "/rcc/unknown"

    def __init__(self, connect: Callable[[], AsyncConnection], metadata: MetaData) -> None:
        self._connect = connect
        schema = metadata.schema
        self._outbox = metadata.tables[f"{schema}.outbox"]
        self._inbox = metadata.tables[f"{schema}.inbox"]
        self._idempotency = metadata.tables[f"{schema}.idempotency_keys"]
        self._insert_outbox_sql = (
            f'INSERT INTO "{schema}".outbox ({", ".join(OUTBOX_COLUMNS)}) '
            f"VALUES ({', '.join(f'${i}' for i in range(1, len(OUTBOX_COLUMNS) + 1))})"
        )
        self.events: list[Event] = []
        # False for a handler whose writes, outbox row included, are one statement (see ``single_statement``).
        self.transactional = True
        self._active = False
        self._turns: Turns | None = None

    async def __aenter__(self) -> Self:
        # "session" in PostgreSQL's sense: one connection. The transaction is begun here on the driver (asyncpg)
        # connection, and SQLAlchemy is told to leave transactions alone (AUTOCOMMIT means it sends no BEGIN or
        # COMMIT of its own): Core statements and the raw statements of hot paths then share one transaction, and
        # the outbox insert and COMMIT cost no more than they cost asyncpg itself. A single-statement unit of work
        # (``transactional`` False) begins nothing: its one statement is its transaction.
        # The checkout, the AUTOCOMMIT and the driver connection in one pass into SQLAlchemy's sync layer: each
        # pass (a greenlet switch there and back) cost more CPU than the work it did, and a check-in paid three.
        unstarted = self._connect()
        self._turns = turns_of(unstarted.sync_engine.pool)
        if self._turns is not None:
            await self._turns.wait()
        try:
            connection, driver = await greenlet_spawn(_autocommit_checkout, unstarted.sync_engine)
        except BaseException:
            if self._turns is not None:
                self._turns.release()
            raise
        self.session = AsyncConnection(unstarted.engine, connection)
        try:
            if driver is None:
                raise RuntimeError("the pooled connection has no asyncpg connection under it")
            self.driver: asyncpg.Connection = driver
            self._transaction: asyncpg.transaction.Transaction | None = None
            if self.transactional:
                self._transaction = self.driver.transaction()
                await self._transaction.start()
        except BaseException:
            await self._close()
            raise
        self._active = True
        self.events = []
        self.start()
        return self

    def start(self) -> None:
        """Subclasses open their repositories here."""

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if self._active:
                if exc_type is None or issubclass(exc_type, Exception):
                    await self.rollback()
                else:
                    # Cancelled (or worse) possibly mid-statement: the connection's protocol state is unknown, so
                    # it is discarded rather than awaited on (a ROLLBACK there can wait forever).
                    self._active, self._transaction = False, None
                    await self.session.invalidate()
        except Exception:  # noqa: BLE001 - a connection that cannot roll back is not given to anyone else
            self._active, self._transaction = False, None
            await self.session.invalidate()
        finally:
            await self._close()

    async def _close(self) -> None:
        try:
            await self.session.close()
        finally:
            if self._turns is not None:
                self._turns.release()

    async def commit(self) -> None:
        """Write the emitted events to the outbox and commit; the unit of work is done after this."""
        if not self._active:
            raise RuntimeError("this unit of work has already committed or rolled back")
        if self._transaction is None:
            if self.events:
                raise RuntimeError("events emitted outside a transaction would not commit with the state")
            self._active = False
            return
        if self.events:
            await self.driver.executemany(self._insert_outbox_sql, [outbox_args(e) for e in self.events])
        await self._transaction.commit()
        self._active, self._transaction = False, None
        self.events = []

    async def rollback(self) -> None:
        self.events = []
        self._active = False
        if self._transaction is not None and not self.driver.is_closed():
            transaction, self._transaction = self._transaction, None
            await transaction.rollback()

    async def claim_new_events(self, consumer: str, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Record the events as processed by ``consumer``; returns the ones not processed before (the inbox)."""
        if not event_ids:
            return set()
        result = await self.session.execute(
            pg_insert(self._inbox)
            .values([{"consumer": consumer, "event_id": event_id} for event_id in event_ids])
            .on_conflict_do_nothing()
            .returning(self._inbox.c.event_id)
        )
        return set(result.scalars())

    async def claim_idempotency_key(self, claim: IdempotencyClaim) -> StoredResponse | None:
        """Reserve the key in this transaction, or return the response the first request got.

        A concurrent request with the same key blocks on the key's row until the first commits, then replays."""
        inserted = await self.session.execute(
            pg_insert(self._idempotency)
            .values(scope=claim.scope, key=claim.key, fingerprint=claim.fingerprint)
            .on_conflict_do_nothing()
            .returning(self._idempotency.c.key)
        )
        if inserted.first() is not None:
            return None
        row = (
            await self.session.execute(
                select(self._idempotency.c.fingerprint, self._idempotency.c.status, self._idempotency.c.response).where(
                    self._idempotency.c.scope == claim.scope, self._idempotency.c.key == claim.key
                )
            )
        ).one()
        if row.fingerprint != claim.fingerprint:
            raise InvalidInput(
                "This Idempotency-Key was already used for a different request.", code="idempotency_key_reused"
            )
        return StoredResponse(status=row.status, body=row.response)

    async def store_idempotent_response(self, claim: IdempotencyClaim, status: int, body: Any) -> None:
        await self.session.execute(
            update(self._idempotency)
            .where(self._idempotency.c.scope == claim.scope, self._idempotency.c.key == claim.key)
            .values(status=status, response=body)
        )


@contextlib.asynccontextmanager
async def checkout(engine: AsyncEngine) -> AsyncIterator[tuple[AsyncConnection, asyncpg.Connection]]:
    """A pooled connection that leaves transactions to its asyncpg connection, and that asyncpg connection, checked
    out in one pass into SQLAlchemy's sync layer (as the unit of work checks out), for code that speaks asyncpg."""
    unstarted = engine.connect()
    connection, driver = await greenlet_spawn(_autocommit_checkout, unstarted.sync_engine)
    session = AsyncConnection(unstarted.engine, connection)
    try:
        if driver is None:
            raise RuntimeError("the pooled connection has no asyncpg connection under it")
        yield session, driver
    finally:
        await session.close()


class Turns:
    """Checkouts of a pool's connections in the order they were asked for. SQLAlchemy's pool hands a returned
    connection to whoever asks next, and a unit of work that was already waiting, woken to take it, goes to the back
    of the queue when a newer one got there first: under load a few waited many times as long as the rest (in the
    check-in benchmark the checkout's p99 was 132 ms, the statement's 23 ms). At most the pool's size pass at a time,
    first come first served (``asyncio.Semaphore`` queues a newcomer behind the waiters), so the pool itself has no
    one to keep waiting; the pool's timeout bounds the wait here, and ends it with the pool's error."""

    def __init__(self, size: int, timeout_s: float) -> None:
        self._free = asyncio.Semaphore(size)
        self._timeout_s = timeout_s

    async def wait(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._free.acquire()
        except TimeoutError as exc:
            raise PoolTimeout(f"no pooled connection within {self._timeout_s:g} s") from exc

    def release(self) -> None:
        self._free.release()


_TURNS: weakref.WeakKeyDictionary[Pool, Turns] = weakref.WeakKeyDictionary()


def turns_of(pool: Pool) -> Turns | None:
    """The pool's turns (a new pool, as ``engine.dispose()`` makes, gets its own); none for a pool of no fixed
    size, where nobody waits."""
    if not isinstance(pool, QueuePool):
        return None
    turns = _TURNS.get(pool)
    if turns is None:
        turns = _TURNS[pool] = Turns(pool.size(), pool.timeout())  # create_engine allows no overflow
    return turns


def _autocommit_checkout(engine: Engine) -> tuple[Connection, asyncpg.Connection | None]:
    """In SQLAlchemy's sync layer: a pooled connection told to leave transactions alone, and the asyncpg connection
    under it."""
    connection = engine.connect()
    try:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        driver: asyncpg.Connection | None = connection.connection.driver_connection
    except BaseException:
        connection.close()
        raise
    return connection, driver


OUTBOX_COLUMNS = (
    "event_id",
    "type",
    "subject",
    "site_id",
    "actor_id",
    "correlation_id",
    "time",
    "data",
    "dataschema",
    "classification",
)


def outbox_args(event: Event) -> tuple[Any, ...]:
    """The event's outbox row, positional in ``OUTBOX_COLUMNS`` order (for raw statements on ``uow.driver``);
    jsonb takes JSON text on these connections."""
    return (
        event.event_id,
        event.type,
        event.subject,
        event.site_id,
        event.actor_id,
        event.correlation_id,
        event.time,
        event.data.model_dump_json(),
        event.data.dataschema(),
        event.data.classification,
    )


def outbox_insert(schema: str, *, first_param: int, rows: str, merge_into_data: str | None = None) -> str:
    """The outbox insert of a single-statement hot path, as a data-modifying CTE body: ``INSERT INTO outbox (…)
    SELECT $first_param, … FROM <rows>``. The event row is written once per row ``rows`` yields, so only when the
    state change it records happened (``rows`` is a CTE of that change, with a ``WHERE`` where needed). Its
    parameters are :func:`outbox_args` of the event ``uow.emit(…, by_statement=True)`` returned, from
    ``$first_param`` on. ``merge_into_data``: a jsonb expression over ``rows`` merged into the payload, for a value
    only the statement knows (the member a code resolved to, a waitlist position)."""
    params = [f"${i}" for i in range(first_param, first_param + len(OUTBOX_COLUMNS))]
    if merge_into_data is not None:
        params[OUTBOX_COLUMNS.index("data")] += f"::jsonb || {merge_into_data}"
    return f'INSERT INTO "{schema}".outbox ({", ".join(OUTBOX_COLUMNS)}) SELECT {", ".join(params)} FROM {rows}'


def outbox_row(event: Event) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "type": event.type,
        "subject": event.subject,
        "site_id": event.site_id,
        "actor_id": event.actor_id,
        "correlation_id": event.correlation_id,
        "time": event.time,
        "data": event.data.model_dump(mode="json"),
        "dataschema": event.data.dataschema(),
        "classification": event.data.classification,
    }


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    scope: str  # who asked (token id): keys of different callers never collide
    key: str
    fingerprint: str

    @classmethod
    def of(cls, scope: str, key: str | None, method: str, path: str, body: bytes) -> IdempotencyClaim | None:
        if key is None:
            return None
        if not 1 <= len(key) <= 200:
            raise InvalidInput("Idempotency-Key must be 1 to 200 characters.", code="bad_idempotency_key")
        fingerprint = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()
        return cls(scope=scope, key=key, fingerprint=fingerprint)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int | None
    body: Any


H = TypeVar("H", bound=Callable[..., Awaitable[Any]])


def single_statement(*, unless: Callable[[Any], bool] = lambda _cmd: False) -> Callable[[H], H]:
    """Marks a handler whose writes, its outbox rows included, are one statement (it emits only ``by_statement``,
    queueing nothing). Without an Idempotency-Key it then runs with no BEGIN and COMMIT: a statement is its own
    transaction, and the two round trips are a third of a kiosk check-in's cost. With a key, the claim and the
    stored answer need the transaction; so do the commands ``unless`` picks (a rarer case of the command whose
    writes take more than one statement: it may emit events the usual way too)."""

    def mark(handler: H) -> H:
        # typing has no type for a function with a mark
        handler.single_statement = lambda cmd: not unless(cmd)  # type: ignore[attr-defined]
        return handler

    return mark


U = TypeVar("U", bound=UnitOfWork)
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Outcome(Generic[R]):
    status: int
    body: dict[str, Any]
    replayed: bool


# PostgreSQL aborts one of two transactions that wait on each other (deadlock) or that cannot both be serialized;
# the aborted one changed nothing, so it is simply run again.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
ATTEMPTS = 3


def retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure, raised through SQLAlchemy or by asyncpg itself (the raw statements
    of the hot paths)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    for candidate in (exc, orig, getattr(orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None)
        if state:
            return str(state) in RETRYABLE_SQLSTATES
    return False


async def execute(
    handler: Callable[..., Awaitable[R]],
    cmd: Any,
    *,
    uow: U,
    clock: Clock,
    status: int = 200,
    idempotency: IdempotencyClaim | None = None,
) -> Outcome[R]:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await _execute_once(handler, cmd, uow=uow, clock=clock, status=status, idempotency=idempotency)
        except Exception as exc:
            if attempt == ATTEMPTS or not retryable(exc):
                raise
    raise AssertionError("unreachable")


async def _execute_once(
    handler: Callable[..., Awaitable[R]],
    cmd: Any,
    *,
    uow: U,
    clock: Clock,
    status: int,
    idempotency: IdempotencyClaim | None,
) -> Outcome[R]:
    one_statement: Callable[[Any], bool] | None = getattr(handler, "single_statement", None)
    uow.transactional = idempotency is not None or one_statement is None or not one_statement(cmd)
    async with uow:
        outcome = await decide(handler, cmd, uow=uow, clock=clock, status=status, idempotency=idempotency)
        await uow.commit()
    return outcome


async def decide(
    handler: Callable[..., Awaitable[R]],
    cmd: Any,
    *,
    uow: U,
    clock: Clock,
    status: int,
    idempotency: IdempotencyClaim | None,
) -> Outcome[R]:
    """Inside an open unit of work, before its commit: honour the Idempotency-Key (the first answer is replayed),
    run the handler and store its answer under the key."""
    if idempotency is not None:
        stored = await uow.claim_idempotency_key(idempotency)
        if stored is not None:
            if stored.status is None:
                raise Conflict("The first request with this key is still running.", code="request_in_progress")
            return Outcome(status=stored.status, body=stored.body, replayed=True)
    result = await handler(cmd, uow=uow, clock=clock)
    body = result.model_dump(mode="json")
    if idempotency is not None:
        await uow.store_idempotent_response(idempotency, status, body)
    return Outcome(status=status, body=body, replayed=False)
