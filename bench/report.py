"""Presenting a run: the table on stdout, what machine and commit it ran on, and its section in RESULTS.md."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import asyncpg
from sqlalchemy.engine import make_url

from bench.common import ROOT, Figure, Outcome
from shared.db import asyncpg_dsn
from shared.settings import Settings

RESULTS = Path(__file__).with_name("RESULTS.md")
RESULTS_HEADER = """# Benchmark results

Written by `python -m bench.run … --write` (see [README.md](README.md)); a rerun on the same day, commit and set of
benchmarks replaces its section. Figures depend on the machine and on whatever else it was doing: compare the
**ratios**, which are measured against a baseline in the same run, and the goals, not figures across runs.
"""


@dataclass
class RunReport:
    started: datetime
    command: str
    machine: dict[str, str]
    parameters: dict[str, str]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


# --- the table -----------------------------------------------------------------------------------------------


def format_value(figure: Figure) -> str:
    value = figure.value
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        text = f"{value:,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {figure.unit}".strip()


def _repeated(report: RunReport) -> bool:
    """A ``--repeat`` run: its tables gain a spread column (one run's keep the five columns they always had)."""
    return any(f.spread is not None for outcome in report.outcomes.values() for f in outcome.figures)


def header(report: RunReport) -> tuple[str, ...]:
    if _repeated(report):
        return ("benchmark", "figure", "median", "spread (min–max)", "goal", "met")
    return ("benchmark", "figure", "value", "goal", "met")


def rows(report: RunReport) -> list[tuple[str, ...]]:
    spread = (lambda f: (f.spread or "",)) if _repeated(report) else (lambda _f: ())
    return [
        (name, f.name, format_value(f), *spread(f), str(f.goal) if f.goal else "", f.verdict)
        for name, outcome in report.outcomes.items()
        for f in outcome.figures
    ]


def render_table(report: RunReport) -> str:
    table = [header(report), *rows(report)]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines += [f"note ({name}): {note}" for name, outcome in report.outcomes.items() for note in outcome.notes]
    lines += [f"FAILED {name}: {error}" for name, error in report.failures.items()]
    return "\n".join(lines)


# --- where it ran --------------------------------------------------------------------------------------------


async def machine_facts(settings: Settings) -> dict[str, str]:
    facts = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({_cpu_model()}), {_memory_gib():.1f} GiB RAM",
        "load average at start": " ".join(f"{load:.2f}" for load in os.getloadavg()),
        "python": platform.python_version(),
        "commit": commit(),
    }
    with contextlib.suppress(Exception):
        url = make_url(settings.database_url).set(database="postgres").render_as_string(False)
        conn = await asyncpg.connect(asyncpg_dsn(url))
        facts["postgresql"] = await conn.fetchval("SHOW server_version")
        await conn.close()
    with contextlib.suppress(Exception):
        connection = await aio_pika.connect(settings.amqp_url)
        version = connection.transport.connection.server_properties["version"]
        facts["rabbitmq"] = version.decode() if isinstance(version, bytes) else str(version)
        await connection.close()
    # Tuning under test, e.g. RCC_RELAY_BATCH_SIZE; URLs stay out (they may carry credentials).
    tuning = sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("RCC_") and not k.endswith("_URL"))
    if tuning:
        facts["RCC_* in the environment"] = " ".join(tuning)
    return facts


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{head} (with uncommitted changes)" if dirty else head


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    return 0.0


# --- RESULTS.md ----------------------------------------------------------------------------------------------


def write_results(report: RunReport, path: Path = RESULTS) -> None:
    """Append this run's section, or replace the one of the same day, commit and benchmarks."""
    title = (
        f"## {report.started:%Y-%m-%d} · {report.machine['commit'].split()[0]} · "
        f"{', '.join([*report.outcomes, *report.failures])}"
    )
    text = path.read_text() if path.exists() else RESULTS_HEADER
    sections = re.split(r"(?m)^(?=## )", text)
    kept = [s for s in sections if not s.startswith(title + "\n")]
    path.write_text("".join(kept).rstrip("\n") + "\n\n" + _section(title, report))


def _section(title: str, report: RunReport) -> str:
    lines = [title, "", f"- run: {report.started:%Y-%m-%d %H:%M} UTC, `{report.command}`"]
    lines += [f"- {key}: {value}" for key, value in {**report.machine, **report.parameters}.items()]
    columns = header(report)
    lines += ["", f"| {' | '.join(columns)} |", "|" + "---|" * len(columns)]
    lines += [f"| {' | '.join(cell.replace('|', '/') for cell in row)} |" for row in rows(report)]
    notes = [f"{name}: {note}" for name, outcome in report.outcomes.items() for note in outcome.notes]
    notes += [f"{name} FAILED: {error}" for name, error in report.failures.items()]
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def now() -> datetime:
    return datetime.now(UTC)
