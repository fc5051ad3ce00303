"""A TCP proxy in front of PostgreSQL that the test controls, so a test can take "the database" away without
touching the PostgreSQL server everyone else on the machine uses.

- ``cut()``: every open connection is dropped (RST) and new ones are refused until ``restore()`` — a crashed or
  restarting server, a failover.
- ``blackhole()``: open connections stop carrying bytes and new ones are accepted but never answered — a network
  partition, a hung server: nothing fails, everything just waits.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.support.databases import database_url


class PostgresProxy:
    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.mode = "pass"  # pass | cut | blackhole
        self.connections_made = 0
        self.refused = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._held: set[asyncio.StreamWriter] = set()
        self._resumed = asyncio.Event()
        self._resumed.set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` through this proxy."""
        return database_url(database).replace("127.0.0.1:5432", f"127.0.0.1:{self.port}")

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            self.refused += 1
            client_writer.transport.abort()
            return
        if self.mode == "blackhole":
            self._held.add(client_writer)  # accepted, never answered
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self.connections_made += 1
        self._writers |= {client_writer, upstream_writer}
        for reader, writer in ((client_reader, upstream_writer), (upstream_reader, client_writer)):
            task = asyncio.create_task(self._pipe(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                await self._resumed.wait()  # a blackhole holds the bytes
                if writer.is_closing():
                    break
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)

    def cut(self) -> None:
        """Drop every connection (RST) and refuse new ones."""
        self.mode = "cut"
        self._resumed.set()
        self._abort_all()

    def blackhole(self) -> None:
        """Open connections go silent and new ones hang: no error, no answer."""
        self.mode = "blackhole"
        self._resumed.clear()

    def restore(self) -> None:
        """Connections work again; those held by a blackhole are dropped (their protocol state is unknown)."""
        self.mode = "pass"
        if not self._resumed.is_set():
            self._abort_all()
        self._resumed.set()
        for writer in list(self._held):
            writer.transport.abort()
        self._held.clear()

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        for writer in list(self._held):
            writer.transport.abort()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
