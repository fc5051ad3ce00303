"""The event loop every server process runs on: uvloop (libuv's loop, written in Cython).

Measured under the check-in benchmark (bench/RESULTS.md, issue #19): the check-in process's CPU time per request fell
by about 30 % against asyncio's own loop, most of it in the transport writes and the loop's own bookkeeping that
every request pays. The benchmarks' raw baselines run on it as well, so a ratio to them still compares the code,
not the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a new uvloop loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
