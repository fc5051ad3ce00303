"""What every benchmark shares: the registry, figures and goals, and the stack a benchmark runs on.

A stack is one benchmark's own world: a fresh migrated database ``rcc_bench_<hex>``, a broker prefix
``bench-<hex>.``, and the services as separate processes (``python -m services.cli serve <name>``), as in
production. Leaving the ``async with`` stops the processes (recording their peak RSS first), drops the database
and deletes the prefixed queues and exchanges, also on failure or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import operator
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

import aio_pika
import aiohttp
import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.cli import migrate
from services.registry import SERVICES
from shared import access
from shared.db import asyncpg_dsn
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
MEMORY_GOAL_MB = 150.0
# The per-token rate limit protects a center from a runaway kiosk; a load test from one kiosk token is exactly
# that, so the services run with a limit far above any load here (the limiter's bookkeeping still runs).
UNLIMITED_RATE = {"RCC_RATE_LIMIT_PER_MINUTE": "1000000000", "RCC_RATE_LIMIT_BURST": "1000000000"}
READY_TIMEOUT_S = 90.0  # a busy machine takes a while to import a service and connect
STOP_TIMEOUT_S = 15.0

_STARTED = time.monotonic()


def say(message: str) -> None:
    """Progress on stderr, so stdout carries only the figures."""
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


# --- figures and goals ---------------------------------------------------------------------------------------


_COMPARE: dict[str, Callable[[float, float], bool]] = {"<": operator.lt, "<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Goal:
    op: Literal["<", "<=", ">="]
    limit: float

    def met(self, value: float) -> bool:
        return _COMPARE[self.op](value, self.limit)

    def __str__(self) -> str:
        return f"{self.op} {self.limit:g}"


@dataclass(frozen=True)
class Figure:
    name: str
    value: float | str | None  # None: could not be measured (the note says why)
    unit: str = ""
    goal: Goal | None = None
    # ``--repeat``: the lowest and highest value over the runs, as text ("0.41–0.55"); the value is their median.
    spread: str | None = None

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        if not isinstance(self.value, int | float):
            return "n/a"
        return "yes" if self.goal.met(self.value) else "NO"


@dataclass
class Outcome:
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # anything that makes a figure suspect, said next to it


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return numerator / denominator


# --- the registry --------------------------------------------------------------------------------------------

RunBenchmark = Callable[[argparse.Namespace, "Stack"], Awaitable[Outcome]]
AddOptions = Callable[[argparse._ArgumentGroup], None]


@dataclass(frozen=True)
class Benchmark:
    name: str
    summary: str
    run: RunBenchmark
    add_options: AddOptions | None = None
    # Parameters worth writing next to the figures (option dests), so a result says how it was measured.
    parameters: tuple[str, ...] = ()


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(
    name: str, summary: str, *, options: AddOptions | None = None, parameters: Sequence[str] = ()
) -> Callable[[RunBenchmark], RunBenchmark]:
    """Register ``async def run(options, stack) -> Outcome`` under ``name`` for ``python -m bench.run``."""

    def register(run: RunBenchmark) -> RunBenchmark:
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name} registered twice")
        BENCHMARKS[name] = Benchmark(name, summary, run, options, tuple(parameters))
        return run

    return register


# --- processes -----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mb(pid: int) -> float | None:
    """The kernel's high-water mark of the process's resident set (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process has used so far (``/proc/<pid>/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Process:
    name: str
    proc: asyncio.subprocess.Process
    url: str
    log: Path
    is_service: bool  # a real service (its memory is a figure), not a baseline server

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# --- the stack -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeededSite:
    site_id: str
    kiosk_token: str
    admin_token: str


class Stack:
    def __init__(self, settings: Settings, database: str, workdir: Path) -> None:
        self.settings = settings
        self.database = database
        self.workdir = workdir
        self.dsn = asyncpg_dsn(settings.database_url)
        self.db: asyncpg.Connection  # the harness's own connection (superuser), for seeding and measuring
        self.amqp: aio_pika.abc.AbstractConnection
        self.processes: list[Process] = []
        self.peak_rss: dict[str, float] = {}  # service -> highest VmHWM over its processes in this stack
        # Consumer queues (unprefixed), each with a ``.dead`` queue: every service's, as ``rcc migrate`` declares
        # them, and any a benchmark adds.
        self.queues: set[str] = {queue[0] for service in SERVICES.values() if (queue := service.queue())}
        self._members_seeded = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def up(cls, workdir: Path) -> AsyncIterator[Stack]:
        base = Settings()  # the RCC_* environment: which PostgreSQL and RabbitMQ, and any tuning under test
        run_id = uuid.uuid4().hex[:10]
        database = f"rcc_bench_{run_id}"
        settings = base.model_copy(
            update={
                "database_url": make_url(base.database_url).set(database=database).render_as_string(False),
                "broker_prefix": f"bench-{run_id}.",
            }
        )
        stack = cls(settings, database, workdir)
        try:
            say(f"creating database {database} and broker prefix {settings.broker_prefix}")
            await stack._server_execute(f'CREATE DATABASE "{database}"')
            await asyncio.to_thread(migrate, settings)
            stack.db = await asyncpg.connect(stack.dsn)
            stack.amqp = await aio_pika.connect(settings.amqp_url)
            yield stack
        finally:
            await stack._teardown()

    # processes

    async def start_service(self, name: str, env: dict[str, str] | None = None, *, role: str = "all") -> Process:
        """``rcc serve name --role role``. The process is called ``name`` when it answers the HTTP load (``all``,
        ``web``) and ``name-role`` otherwise, so its peak RSS and CPU are reported apart."""
        port = free_port()
        return await self.start(
            name if role in ("all", "web") else f"{name}-{role}",
            [sys.executable, "-m", "services.cli", "serve", name, "--role", role],
            port,
            env={**(env or {}), f"RCC_{name.upper()}_PORT": str(port)},
            is_service=True,
        )

    async def start(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        *,
        env: dict[str, str] | None = None,
        is_service: bool = False,
    ) -> Process:
        """Start a process listening on ``port`` and wait until its ``GET /readyz`` answers 200."""
        log = self.workdir / f"{name}-{len(self.processes)}.log"
        environment = {
            **os.environ,
            "RCC_DATABASE_URL": self.settings.database_url,
            "RCC_AMQP_URL": self.settings.amqp_url,
            "RCC_BROKER_PREFIX": self.settings.broker_prefix,
            "RCC_HOST": "127.0.0.1",
            "RCC_LOG_LEVEL": "WARNING",
            "RCC_LOG_JSON": "true",
            **UNLIMITED_RATE,
            **(env or {}),
        }
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=ROOT, env=environment, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
            )
        process = Process(name, proc, f"http://127.0.0.1:{port}", log, is_service)
        self.processes.append(process)
        await self._wait_ready(process)
        say(f"{name} ready at {process.url} (pid {proc.pid})")
        return process

    async def _wait_ready(self, process: Process) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                if not process.running:
                    raise RuntimeError(f"{process.name} exited with {process.proc.returncode}:\n{process.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(process.url + "/readyz") as response:
                        if response.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{process.name} not ready after {READY_TIMEOUT_S}s:\n{process.log_tail()}")
                await asyncio.sleep(0.1)

    def process(self, name: str) -> Process:
        return next(p for p in self.processes if p.name == name)

    async def stop(self, process: Process) -> None:
        """SIGTERM (the services drain and close), SIGKILL if that takes too long; peak RSS is read first."""
        if process.running:
            peak = peak_rss_mb(process.proc.pid)
            if process.is_service and peak is not None:
                self.peak_rss[process.name] = max(peak, self.peak_rss.get(process.name, 0.0))
            with contextlib.suppress(ProcessLookupError):
                process.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                say(f"{process.name} ignored SIGTERM for {STOP_TIMEOUT_S}s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    process.proc.kill()
                await process.proc.wait()
        if process in self.processes:
            self.processes.remove(process)

    def memory_figures(self) -> list[Figure]:
        goal = Goal("<", MEMORY_GOAL_MB)
        return [Figure(f"peak RSS {name}", mb, "MB", goal) for name, mb in sorted(self.peak_rss.items())]

    # seeding

    async def seed_site(self) -> SeededSite:
        """A site with a kiosk token (for the load) and an admin token (for ``GET /audit/verify``)."""
        site_id = f"bench-{uuid.uuid4().hex[:8]}"
        engine = create_async_engine(self.settings.database_url)
        try:
            async with engine.begin() as conn:
                await access.create_site(
                    conn,
                    site_id,
                    name="Benchmark center",
                    capacity=40,
                    timezone="America/Chicago",
                    closes_at=access.parse_closes_at("21:00"),
                )
                _, kiosk = await access.issue_token(conn, role=access.Role.KIOSK, site_id=site_id, label="bench")
                _, admin = await access.issue_token(conn, role=access.Role.ADMIN, site_id=site_id, label="bench")
        finally:
            await engine.dispose()
        return SeededSite(site_id, kiosk, admin)

    async def seed_members(self, site_id: str, count: int) -> list[uuid.UUID]:
        """``count`` members of the site, straight into the table (COPY): registering them over HTTP would take
        longer than the benchmark. Every check-in of a load uses its own member: one with an open visit gets 409."""
        members = [uuid.uuid4() for _ in range(count)]
        now = datetime.now(UTC)
        first = self._members_seeded
        self._members_seeded += count
        await self.db.copy_records_to_table(
            "members",
            schema_name="checkin",
            columns=["member_id", "site_id", "kiosk_code", "registered_at"],
            records=((m, site_id, f"B{first + i:08d}", now) for i, m in enumerate(members)),
        )
        await self.db.execute("ANALYZE checkin.members")
        return members

    async def purge_queues(self, names: Iterable[str]) -> None:
        """Empty consumer queues whose service does not run here, so one step's messages do not wait into the next."""
        channel = await self.amqp.channel()
        try:
            for name in names:
                queue = await channel.get_queue(self.settings.queue_name(name), ensure=False)
                await queue.purge()
        finally:
            await channel.close()

    # measuring

    async def poll(
        self,
        query: str,
        done: Callable[[asyncpg.Record], bool],
        *,
        timeout: float,
        what: str,
        interval: float = 0.05,
        args: Sequence[object] = (),
    ) -> asyncpg.Record:
        """Run ``query`` until ``done(row)``; returns that row. Queries select ``clock_timestamp()`` when they need
        the moment they saw it, on the database's clock, which the services' timestamps share."""
        deadline = time.monotonic() + timeout
        while True:
            row = await self.db.fetchrow(query, *args)
            if done(row):
                return row
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not done after {timeout:.0f}s (last: {dict(row)})")
            for process in self.processes:
                if not process.running:
                    raise RuntimeError(f"{process.name} died:\n{process.log_tail()}")
            await asyncio.sleep(interval)

    # teardown

    async def _teardown(self) -> None:
        for process in list(self.processes):
            await _quietly(f"stopping {process.name}", self.stop(process))
        for resource in ("db", "amqp"):
            if hasattr(self, resource):
                await _quietly(f"closing {resource}", getattr(self, resource).close())
        drop = f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'
        await _quietly("dropping the database", self._server_execute(drop))
        await _quietly("deleting broker objects", self._delete_broker_objects())
        say(f"removed database {self.database} and broker objects {self.settings.broker_prefix}*")

    async def _server_execute(self, sql: str) -> None:
        """DDL on the server's maintenance database (CREATE/DROP DATABASE cannot run inside the target)."""
        maintenance = make_url(self.settings.database_url).set(database="postgres").render_as_string(False)
        conn = await asyncpg.connect(asyncpg_dsn(maintenance))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def _delete_broker_objects(self) -> None:
        queues = [self.settings.queue_name(name) for name in sorted(self.queues)]
        queues += [q + ".dead" for q in queues]
        connection = await aio_pika.connect(self.settings.amqp_url)
        async with connection:
            for queue in queues:
                await _broker_op(connection, lambda channel, q=queue: channel.queue_delete(q))
            for exchange in (self.settings.exchange_name, self.settings.dead_exchange_name):
                await _broker_op(connection, lambda channel, e=exchange: channel.exchange_delete(e))


async def _broker_op(connection: aio_pika.abc.AbstractConnection, op: Callable[..., Awaitable[object]]) -> None:
    # A failed operation closes its channel, so each gets a fresh one; "not there" is as good as deleted.
    channel = await connection.channel()
    with contextlib.suppress(aio_pika.exceptions.AMQPError):
        await op(channel)
    with contextlib.suppress(Exception):
        await channel.close()


async def _quietly(what: str, step: Awaitable[object]) -> None:
    """Teardown goes on past a failed step: the rest must still be removed."""
    try:
        await step
    except Exception as exc:  # noqa: BLE001
        say(f"teardown: {what} failed: {type(exc).__name__}: {exc}")


# --- small helpers -------------------------------------------------------------------------------------------

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    with path.open("w") as out:
        for line in lines:
            out.write(line + "\n")
    return path


def per_second(count: float, seconds: float | None) -> float | None:
    return count / seconds if seconds and seconds > 0 else None
