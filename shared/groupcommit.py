"""Group commit for requests that change one hot row (a popular event's seats): a run of them in one transaction.

Such requests are decided one after another under the row's lock anyway (that is what keeps them correct across
processes), so with one transaction each, the lock, the commit and its WAL flush are paid once per request in series:
500 people signing up at once wait for 500 commits. Here the requests for one key that arrived while the previous
run was in the database go in together, in arrival order: one transaction, each request in a savepoint of its own,
so a refused one (a domain error, a failed statement) undoes only itself. The answers are given after the commit,
never before: a request that got its 2xx is durable, exactly as with ``execute``.

A service may also give a run handler, deciding the run's requests without an Idempotency-Key together: it takes their
commands in arrival order and answers each with a result or its refusal (a ``DomainError``, having written nothing),
so what the run costs under the lock is a few statements, not a few per request. Requests with a key, and a run done
again with savepoints, go through ``handler`` one at a time.

A handler marked :func:`refuses_without_writing` runs without the savepoints (SAVEPOINT and RELEASE are two of a
sign-up's four round trips under the row lock): its refusals leave nothing to undo. Should one of its statements
fail all the same, the transaction is lost, and the run is done again with a savepoint per request.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg

from shared.clock import Clock
from shared.errors import DomainError
from shared.locks import KeyedLocks
from shared.logging import get_logger
from shared.uow import ATTEMPTS, IdempotencyClaim, Outcome, R, U, decide, retryable

log = get_logger(component="group_commit")

# Requests per transaction: bounds how long the row stays locked for others (each costs well under a millisecond in
# the database) and how many answers one failed commit takes with it.
MAX_RUN = 64


@dataclass
class _Request(Generic[R]):
    cmd: Any
    idempotency: IdempotencyClaim | None
    answer: asyncio.Future[Outcome[R]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    # Its client hung up: skipped if its turn has not come, and never given an answer no one would read.
    abandoned: bool = False


H = TypeVar("H", bound=Callable[..., Awaitable[Any]])
# ``(cmds, *, uow, clock)``: one answer per command, in order; a refusal is returned, not raised.
RunHandler = Callable[..., Awaitable[Sequence[Any]]]


C = TypeVar("C")
A = TypeVar("A")


def each_decided(cmds: Sequence[C], decide: Callable[[C], A]) -> list[A | DomainError]:
    """A run handler's answers: each command decided in arrival order, its result or its refusal; a refused one
    leaves the others going."""
    answers: list[A | DomainError] = []
    for cmd in cmds:
        try:
            answers.append(decide(cmd))
        except DomainError as refused:
            answers.append(refused)
    return answers


async def alone(run_handler: RunHandler, cmd: Any, *, uow: Any, clock: Clock) -> Any:
    """A run handler given one command (a request with an Idempotency-Key, a run done again with savepoints): its
    result, or its refusal raised."""
    (answer,) = await run_handler([cmd], uow=uow, clock=clock)
    if isinstance(answer, DomainError):
        raise answer
    return answer


def refuses_without_writing(handler: H) -> H:
    """Marks a handler whose every refusal (a ``DomainError``) is raised before it wrote anything, or after a
    statement that wrote nothing (a place that was taken, a duplicate). In a group-commit run it then needs no
    savepoint: a refused request has nothing to undo. A request with an Idempotency-Key still gets one (its key is
    claimed before the handler runs)."""
    handler.refuses_without_writing = True  # type: ignore[attr-defined]  # a mark, as uow.single_statement
    return handler


class _NeedsSavepoints(Exception):
    """A run without savepoints lost its transaction to a failed statement: it is done again with them."""


class GroupCommit(Generic[U, R]):
    """Runs ``handler`` for the requests of one key in shared transactions. ``locks`` is the service's in-process
    queue for that key: a run holds it, so other changes of the same row (a cancellation) keep their turn."""

    def __init__(
        self,
        handler: Callable[..., Awaitable[R]],
        *,
        uow: Callable[[], U],
        clock: Clock,
        locks: KeyedLocks,
        status: int = 200,
        run_handler: RunHandler | None = None,
    ) -> None:
        self.handler = handler
        self.run_handler = run_handler
        self.uow = uow
        self.clock = clock
        self.locks = locks
        self.status = status
        self.savepoints = not getattr(handler, "refuses_without_writing", False)
        self._waiting: dict[Hashable, list[_Request[R]]] = {}
        self._runners: dict[Hashable, asyncio.Task[None]] = {}

    async def submit(self, key: Hashable, cmd: Any, *, idempotency: IdempotencyClaim | None = None) -> Outcome[R]:
        request: _Request[R] = _Request(cmd, idempotency)
        self._waiting.setdefault(key, []).append(request)
        if key not in self._runners:
            # A context of its own: the run serves many requests, and must not log as the one that started it.
            self._runners[key] = asyncio.create_task(
                self._run(key), name=f"group-commit-{key}", context=contextvars.Context()
            )
        try:
            # Shielded: a client that hangs up cancels its wait, not the run its request may be part of already.
            return await asyncio.shield(request.answer)
        except asyncio.CancelledError:
            request.abandoned = True
            raise

    async def close(self) -> None:
        """Let the runs in progress finish (their requests are in the database already, or about to be)."""
        runners = list(self._runners.values())
        if runners:
            await asyncio.gather(*runners, return_exceptions=True)

    async def _run(self, key: Hashable) -> None:
        try:
            while waiting := self._waiting.get(key):
                run, self._waiting[key] = waiting[:MAX_RUN], waiting[MAX_RUN:]
                run = [request for request in run if not request.abandoned]
                if run:
                    async with self.locks.hold(key):
                        await self._commit_run(run)
        finally:
            # No await between the loop's last look at the queue and this: a request that arrives now starts a new run.
            # Left waiting only when the run was cancelled (shutdown): their turn will not come, so they are told.
            for request in self._waiting.pop(key, []):
                request.answer.cancel()
            del self._runners[key]

    async def _commit_run(self, run: list[_Request[R]]) -> None:
        savepoints = self.savepoints
        attempt = 1
        while True:
            try:
                answers = await self._in_one_transaction(run, savepoints=savepoints)
            except _NeedsSavepoints:
                savepoints = True  # once at most, and not an attempt: the run is done again with savepoints
                continue
            except Exception as exc:  # noqa: BLE001 - the run failed as a whole: each request gets the error
                if attempt < ATTEMPTS and retryable(exc):
                    attempt += 1
                    continue
                self._failed(run, exc)
                return
            except BaseException:  # cancelled: whether it committed is unknown, and no answer may claim it did
                for request in run:
                    request.answer.cancel()
                raise
            for request, answer in zip(run, answers, strict=True):
                _tell(request, answer)
            return

    def _failed(self, run: list[_Request[R]], exc: Exception) -> None:
        log.warning("group_commit_failed", handler=self.handler.__name__, requests=len(run), error=type(exc).__name__)
        for request in run:
            _tell(request, exc)

    async def _in_one_transaction(self, run: list[_Request[R]], *, savepoints: bool) -> list[Outcome[R] | Exception]:
        answers: list[Outcome[R] | Exception] = []
        uow = self.uow()
        uow.transactional = True
        async with uow:
            together: list[_Request[R]] = []  # consecutive requests for the run handler
            for request in run:
                if not savepoints and request.idempotency is None and self.run_handler is not None:
                    together.append(request)
                    continue
                if together:
                    answers += await self._together(together, uow)
                    together = []
                if savepoints or request.idempotency is not None:
                    answers.append(await self._one(request, uow))
                else:
                    answers.append(await self._one_without_savepoint(request, uow))
            if together:
                answers += await self._together(together, uow)
            await uow.commit()
        return answers

    async def _together(self, requests: list[_Request[R]], uow: U) -> list[Outcome[R] | Exception]:
        assert self.run_handler is not None
        try:
            results = await self.run_handler([request.cmd for request in requests], uow=uow, clock=self.clock)
        except Exception as exc:
            if retryable(exc):
                raise  # a deadlock: the whole run goes again, as any run would
            raise _NeedsSavepoints from exc
        return [
            result
            if isinstance(result, DomainError)
            else Outcome(status=self.status, body=result.model_dump(mode="json"), replayed=False)
            for result in results
        ]

    async def _one_without_savepoint(self, request: _Request[R], uow: U) -> Outcome[R] | Exception:
        emitted = len(uow.events)
        try:
            return await decide(
                self.handler, request.cmd, uow=uow, clock=self.clock, status=self.status, idempotency=None
            )
        except DomainError as exc:
            # A refusal made of a failed statement (one the handler turned into a domain error) lost the
            # transaction too: a COMMIT now would quietly roll back every answer of the run.
            if isinstance(exc.__cause__ or exc.__context__, asyncpg.PostgresError):
                raise _NeedsSavepoints from exc
            del uow.events[emitted:]
            return exc
        except Exception as exc:
            if retryable(exc):
                raise  # a deadlock: the whole run goes again, as any run would
            raise _NeedsSavepoints from exc

    async def _one(self, request: _Request[R], uow: U) -> Outcome[R] | Exception:
        emitted = len(uow.events)
        for attempt in range(1, ATTEMPTS + 1):
            savepoint = uow.driver.transaction()
            await savepoint.start()
            try:
                outcome = await decide(
                    self.handler,
                    request.cmd,
                    uow=uow,
                    clock=self.clock,
                    status=self.status,
                    idempotency=request.idempotency,
                )
            except Exception as exc:  # noqa: BLE001 - refused: undo only this request's writes, and say why
                await savepoint.rollback()
                del uow.events[emitted:]
                if attempt < ATTEMPTS and retryable(exc):
                    continue
                return exc
            await savepoint.commit()
            return outcome
        raise AssertionError("unreachable")


def _tell(request: _Request[Any], answer: Outcome[Any] | Exception) -> None:
    if request.abandoned or request.answer.done():
        return
    if isinstance(answer, Exception):
        request.answer.set_exception(answer)
    else:
        request.answer.set_result(answer)
