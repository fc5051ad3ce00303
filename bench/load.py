"""Load generators: wrk for throughput (closed loop, as many requests as the server takes), and a paced poster
for a steady rate (open loop: requests leave on schedule whether or not earlier ones have answered).

Both post one JSON body per line of a file, each body once, with a bearer token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

WRK_SCRIPT = Path(__file__).with_name("post_lines.lua")
RESULT_MARKER = "BENCH_RESULT "


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    status_errors: int  # answered, but not 2xx/3xx
    socket_errors: int  # connect, read, write errors and timeouts
    reused: int  # bodies sent a second time because the file ran out (a repeated check-in is a 409)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors


async def wrk_post_lines(
    url: str, bodies: Path, *, token: str, seconds: int, connections: int, threads: int, log: Path
) -> LoadResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        str(bodies),
        str(threads),
    ]
    # The token goes through the environment, not argv, so it does not show in process listings.
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, "BENCH_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), seconds + 60)
    except BaseException:  # interrupted or stuck: wrk must not go on loading a server that is being torn down
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    with log.open("a") as f:
        f.write(f"$ {' '.join(argv)}\n{text}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}:\n{text}")
    return parse_wrk(text)


def parse_wrk(text: str) -> LoadResult:
    """Read the line post_lines.lua's done() prints (wrk's own report is kept in the log for people)."""
    line = next((line for line in text.splitlines() if line.startswith(RESULT_MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no {RESULT_MARKER.strip()} line:\n{text}")
    r = json.loads(line.removeprefix(RESULT_MARKER))
    return LoadResult(
        requests=r["requests"],
        seconds=r["duration_us"] / 1e6,
        p50_ms=r["p50_us"] / 1e3,
        p99_ms=r["p99_us"] / 1e3,
        max_ms=r["max_us"] / 1e3,
        status_errors=r["status_errors"],
        socket_errors=r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"],
        reused=r["reused"],
    )


@dataclass(frozen=True)
class PacedResult:
    sent: int
    ok: int
    sending_s: float  # from the first request leaving to the last one leaving
    finished_s: float  # from the first request leaving to the last answer
    p50_ms: float | None  # as the client saw them (informational)
    p99_ms: float | None

    @property
    def errors(self) -> int:
        return self.sent - self.ok

    @property
    def offered_per_s(self) -> float:
        """The rate requests actually left at (below the target when the harness itself could not keep up)."""
        return (self.sent - 1) / self.sending_s if self.sending_s > 0 else float(self.sent)

    @property
    def server_kept_up(self) -> bool:
        """False when answers trailed the last request by over a second: the server queued, it was saturated."""
        return self.finished_s - self.sending_s <= 1.0


async def post_paced(url: str, bodies: list[str], *, token: str, rate: float, connections: int = 32) -> PacedResult:
    """POST each body at ``rate`` per second, on schedule: a slow answer does not delay the next request."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    ok = 0

    async def post(http: aiohttp.ClientSession, body: str) -> None:
        nonlocal ok
        began = time.perf_counter()
        try:
            async with http.post(url, data=body.encode(), headers=headers) as response:
                await response.read()
                ok += 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError):
            return
        latencies.append((time.perf_counter() - began) * 1000)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as http:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for i, body in enumerate(bodies):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(http, body)))
        sending_s = loop.time() - start
        await asyncio.gather(*tasks)
        finished_s = loop.time() - start
    p50, p99 = percentiles(latencies)
    return PacedResult(sent=len(bodies), ok=ok, sending_s=sending_s, finished_s=finished_s, p50_ms=p50, p99_ms=p99)


def percentiles(values: list[float]) -> tuple[float | None, float | None]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (None, None)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98]
