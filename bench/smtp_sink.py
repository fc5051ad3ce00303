"""A local SMTP server for the notify benchmark, run as its own process: it accepts every message (aiosmtpd, the real
protocol) and keeps nothing but a count, so the sender under test, not the receiver, is what is measured.

    python -m bench.smtp_sink PORT

Prints ``SMTP_SINK_READY`` once it listens; SIGTERM stops it."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from aiosmtpd.smtp import SMTP

READY_MARKER = "SMTP_SINK_READY"


class Accept:
    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received += 1
        return "250 OK"


async def serve(port: int) -> None:
    handler = Accept()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="sink.localhost"), "127.0.0.1", port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(READY_MARKER, flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()
    print(f"received {handler.received}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
