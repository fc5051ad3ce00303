"""A local SMTP server for the notify benchmark, run as its own process: it accepts every message (aiosmtpd, the real
protocol) and keeps nothing but a count, so the sender under test, not the receiver, is what is measured. With
``--times FILE`` it also notes when each message arrived (its Message-ID and the wall clock), written to FILE as
JSON when it stops.

    python -m bench.smtp_sink PORT [--times FILE]

Prints ``SMTP_SINK_READY`` once it listens; SIGTERM stops it."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import time
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

READY_MARKER = "SMTP_SINK_READY"
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


class Accept:
    def __init__(self, timed: bool) -> None:
        self.received = 0
        self.timed = timed
        self.times: list[tuple[str, float]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received += 1
        if self.timed:
            found = _MESSAGE_ID.search(envelope.original_content or b"")
            self.times.append((found.group(1).decode() if found else "", time.time()))
        return "250 OK"


async def serve(port: int, times: Path | None) -> None:
    handler = Accept(times is not None)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="sink.localhost"), "127.0.0.1", port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(READY_MARKER, flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()
    if times is not None:
        times.write_text(json.dumps(handler.times))  # noqa: ASYNC240 - once, at the end, nothing else runs
    print(f"received {handler.received}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("--times", type=Path, help="write each message's Message-ID and arrival time here")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.times))


if __name__ == "__main__":
    main()
