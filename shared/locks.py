"""In-process, first-come-first-served queues by key (a shift, a gathering).

Requests that change one hot row's seats are decided one at a time anyway (the row is locked in the database, which
is what keeps them correct across processes). Queueing them here as well means a rush on one popular shift or event
waits in memory holding one pooled connection, instead of every waiting request holding one: the pool stays free
for everything else and no request times out waiting for a connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
