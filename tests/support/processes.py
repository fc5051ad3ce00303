"""Services as real operating-system processes (``python -m services.cli serve …``), for tests that kill them.

Each process gets its configuration the way production does (``RCC_*`` environment variables, built from a
``Settings``), listens on ports the kernel picks (port 0), and logs JSON to a file of its own; its URLs are read from
its ``serving`` log lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from services.registry import ROOT, SERVABLE
from shared.settings import Settings
from tests.support.stack import eventually


def environment(settings: Settings, **overrides: Any) -> dict[str, str]:
    """``RCC_*`` variables that make ``Settings()`` in the child equal ``settings`` (plus ``overrides``)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RCC_")}
    values = {**settings.model_dump(), **{f"{name}_port": 0 for name in SERVABLE}, **overrides}
    for name, value in values.items():
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        env[f"RCC_{name.upper()}"] = text
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ServiceProcess:
    """``rcc serve <service>`` (or ``all``) in a child process. ``kill()`` is SIGKILL: no cleanup of any kind runs,
    exactly like a power cut or the OOM killer."""

    def __init__(self, service: str, settings: Settings, log_dir: Path, **overrides: Any) -> None:
        self.service = service
        self.settings = settings
        self.log_dir = log_dir
        self.overrides = {"log_json": True, "log_level": "INFO", **overrides}
        self.process: asyncio.subprocess.Process | None = None
        self.urls: dict[str, str] = {}
        self.starts = 0
        self.log_path = log_dir / f"{service}.log"

    @property
    def names(self) -> list[str]:
        return list(SERVABLE) if self.service == "all" else [self.service]

    async def start(self, *, timeout: float = 60.0) -> dict[str, str]:
        assert self.process is None or self.process.returncode is not None, "already running"
        self.starts += 1
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:  # noqa: ASYNC230 - a local file, opened once per start
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.cli",
                "serve",
                self.service,
                cwd=ROOT,
                env=environment(self.settings, **self.overrides),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        process = self.process

        async def serving() -> bool:
            if process.returncode is not None:
                raise AssertionError(f"{self.service} exited with {process.returncode}:\n{self.log(offset)[-3000:]}")
            self.urls = {
                line["service"]: line["url"] for line in self.log_lines(offset) if line.get("event") == "serving"
            }
            return set(self.urls) == set(self.names)

        await eventually(serving, timeout=timeout, interval=0.1)
        return self.urls

    def kill(self) -> None:
        """SIGKILL, now."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self, *, timeout: float = 20.0) -> None:
        """A graceful stop (SIGTERM), a SIGKILL if it does not come in time."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.kill()
            await self.process.wait()

    def log(self, offset: int = 0) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_lines(self, offset: int = 0) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log(offset).splitlines():
            with contextlib.suppress(ValueError):
                parsed = json.loads(raw)
                if isinstance(parsed, dict):
                    lines.append(parsed)
        return lines


@contextlib.asynccontextmanager
async def service_processes(
    settings: Settings, log_dir: Path, services: Sequence[str], **overrides: Any
) -> AsyncIterator[dict[str, ServiceProcess]]:
    """Started processes, one per name; all stopped (killed if they hang) on the way out."""
    processes = {name: ServiceProcess(name, settings, log_dir, **overrides) for name in services}
    try:
        await asyncio.gather(*(p.start() for p in processes.values()))
        yield processes
    finally:
        await asyncio.gather(*(p.stop() for p in processes.values()), return_exceptions=True)
