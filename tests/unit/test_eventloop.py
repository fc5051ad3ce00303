"""The servers' event loop (shared/eventloop.py) is uvloop's."""

from __future__ import annotations

import asyncio

import uvloop

from shared import eventloop


def test_run_runs_the_coroutine_on_uvloop_and_returns_its_result() -> None:
    async def main() -> tuple[type, int]:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()), 42

    loop_type, result = eventloop.run(main())
    assert issubclass(loop_type, uvloop.Loop)
    assert result == 42
