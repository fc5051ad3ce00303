"""A burst load generator, run as its own process: POST every body at once (one connection each) and report.

    BENCH_TOKEN=... python -m bench.burst URL BODIES_FILE

Before the burst it opens one keep-alive connection per body (``GET /healthz``, not timed), so the burst measures
the server, not TCP handshakes queueing in the listen backlog. Prints one line, ``BENCH_RESULT {json}``: the time
from the first request leaving to the last answer, each request's latency, the answers' status codes and the
``status`` field of each answer's body (``confirmed``, ``waitlisted``, …)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

RESULT_MARKER = "BENCH_RESULT "


async def burst(url: str, bodies: list[str], token: str) -> dict[str, object]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    parts = urlsplit(url)
    health = f"{parts.scheme}://{parts.netloc}/healthz"
    connector = aiohttp.TCPConnector(limit=0, force_close=False, keepalive_timeout=120)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def warm() -> None:
            async with http.get(health) as response:
                await response.read()

        await asyncio.gather(*(warm() for _ in bodies))
        statuses: Counter[int | str] = Counter()
        outcomes: Counter[str] = Counter()
        latencies: list[float] = []
        start = asyncio.Event()

        async def post(body: str) -> float:
            await start.wait()
            began = time.perf_counter()
            try:
                async with http.post(url, data=body.encode(), headers=headers) as response:
                    payload = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
                return time.perf_counter()
            ended = time.perf_counter()
            statuses[response.status] += 1
            try:
                outcomes[str(json.loads(payload).get("status", "?"))] += 1
            except (ValueError, AttributeError):
                outcomes["?"] += 1
            latencies.append((ended - began) * 1000)
            return ended

        tasks = [asyncio.create_task(post(body)) for body in bodies]
        await asyncio.sleep(0)  # every task is waiting on the event: they leave together
        first = time.perf_counter()
        start.set()
        last = max(await asyncio.gather(*tasks))
    return {
        "settle_ms": (last - first) * 1000,
        "latencies_ms": latencies,
        "statuses": {str(k): v for k, v in statuses.items()},
        "outcomes": dict(outcomes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("bodies", type=Path, help="one JSON body per line")
    args = parser.parse_args()
    bodies = args.bodies.read_text().splitlines()
    result = asyncio.run(burst(args.url, bodies, os.environ.get("BENCH_TOKEN", "")))
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
