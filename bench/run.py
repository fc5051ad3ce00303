"""Run benchmarks; print figures, ratios against their baselines, and whether the goals are met.

    python -m bench.run [checkin|pipeline|signups|reports|notify|all ...] [--duration S] [--events N] [--write]
    python -m bench.run all --repeat 3        # each benchmark three times; medians and spreads

Each benchmark gets its own database and broker prefix (removed afterwards) and runs the services as separate
processes. ``--write`` records the run in bench/RESULTS.md. ``--repeat N`` runs the selection N times in a row, so
each service and its baseline alternate N times (every run measures its baseline and its service as a pair), and
prints each figure's median over the runs and its spread (min–max): a ratio from one pair moves with whatever
else the machine does. Nothing here asserts anything about time: goals are
reported, not enforced, and the exit status says only whether the benchmarks ran."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.common import BENCHMARKS, Figure, Outcome, Stack, say
from bench.report import RunReport, format_value, machine_facts, now, render_table, write_results
from shared import eventloop
from shared.settings import Settings

# Importing a module registers its benchmarks; "all" runs them in this order. Add new benchmark modules here.
BENCHMARK_MODULES = (
    "bench.checkin",
    "bench.pipeline",
    "bench.signups",
    "bench.reports",
    "bench.notify",
    "bench.scaleout",
)


def build_parser() -> argparse.ArgumentParser:
    for module in BENCHMARK_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "benchmarks",
        nargs="*",
        default=["all"],
        metavar="BENCHMARK",
        help=f"any of {', '.join(BENCHMARKS)}, or all (the default)",
    )
    parser.add_argument("--write", action="store_true", help="record the figures in bench/RESULTS.md")
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=1,
        metavar="N",
        help="run the selection N times (service and baseline alternate N times); print medians and spreads (1)",
    )
    parser.add_argument("--note", help="a remark recorded with the figures, e.g. 'quiet machine, nothing else running'")
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep the service logs and request files (kept anyway when a benchmark fails)",
    )
    for bench in BENCHMARKS.values():
        if bench.add_options is not None:
            bench.add_options(parser.add_argument_group(f"{bench.name}: {bench.summary}"))
    return parser


def selected(parser: argparse.ArgumentParser, names: list[str]) -> list[str]:
    if "all" in names:
        return list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)} or all")
    return list(dict.fromkeys(names))


async def run(names: list[str], options: argparse.Namespace, command: str) -> RunReport:
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM gets the same orderly teardown as Ctrl-C (asyncio.run already turns SIGINT into a cancellation).
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    report = RunReport(
        started=now(),
        command=command,
        machine=await machine_facts(Settings()),
        parameters={"parameters": _parameters(names, options), **({"note": options.note} if options.note else {})},
    )
    workdir = Path(tempfile.mkdtemp(prefix="rcc-bench-"))
    say(f"work directory (logs, request files): {workdir}")
    runs: dict[str, list[Outcome]] = {name: [] for name in names}
    try:
        for repetition in range(1, options.repeat + 1):
            started = time.monotonic()
            for name in names:
                bench = BENCHMARKS[name]
                of = f" (run {repetition} of {options.repeat})" if options.repeat > 1 else ""
                say(f"=== {name}: {bench.summary}{of}")
                try:
                    async with Stack.up(workdir) as stack:
                        outcome = await bench.run(options, stack)
                    # The stack has stopped the services by now, reading each one's peak RSS on the way out.
                    outcome.figures += stack.memory_figures()
                except Exception as exc:  # noqa: BLE001 - one failed benchmark must not hide the others' figures
                    traceback.print_exc()
                    error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    report.failures[name] = f"run {repetition}: {error}" if options.repeat > 1 else error
                    continue
                runs[name].append(outcome)
            say(f"run {repetition} of {options.repeat} took {time.monotonic() - started:,.0f} s")
    finally:
        if report.failures or options.keep_workdir:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    for name, outcomes in runs.items():
        if outcomes:
            report.outcomes[name] = outcomes[0] if options.repeat == 1 else combine(outcomes)
    return report


def combine(outcomes: list[Outcome]) -> Outcome:
    """One outcome of several runs of a benchmark: each figure's median over the runs (the middle run's figure, or
    the lower of the two middle ones for an even count, so its unit text matches its value) and its spread. A figure
    missing from some run (a failed measurement) is combined over the runs that have it."""
    names = list(dict.fromkeys(f.name for outcome in outcomes for f in outcome.figures))
    combined = Outcome()
    for name in names:
        figures = [f for outcome in outcomes for f in outcome.figures if f.name == name]
        numbers = [f for f in figures if isinstance(f.value, int | float) and not isinstance(f.value, bool)]
        if numbers:
            ordered = sorted(numbers, key=lambda f: float(f.value))  # type: ignore[arg-type]
            middle = ordered[(len(ordered) - 1) // 2]
            low, high = ordered[0], ordered[-1]
            spread = f"{_bare(low)}–{_bare(high)}"
            if len(numbers) < len(outcomes):
                spread += f" ({len(numbers)} of {len(outcomes)} runs)"
            combined.figures.append(Figure(name, middle.value, middle.unit, middle.goal, spread))
        else:
            values = list(dict.fromkeys(str(f.value) if f.value is not None else "n/a" for f in figures))
            combined.figures.append(Figure(name, " / ".join(values), figures[0].unit, figures[0].goal, ""))
    for number, outcome in enumerate(outcomes, 1):
        combined.notes += [f"run {number}: {note}" for note in outcome.notes]
    return combined


def _bare(figure: Figure) -> str:
    """A value as the table writes it, without its unit (the median beside it has the unit)."""
    return format_value(Figure(figure.name, figure.value))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _parameters(names: list[str], options: argparse.Namespace) -> str:
    dests = dict.fromkeys(dest for name in names for dest in BENCHMARKS[name].parameters)
    described = [f"{dest.replace('_', '-')} {getattr(options, dest)}" for dest in dests]
    if options.repeat > 1:
        described.append(f"repeat {options.repeat}")
    return ", ".join(described) or "defaults"


def _without_note(args: list[str]) -> list[str]:
    """The command as recorded: the note is written on a line of its own."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip or arg.startswith("--note="):
            skip = False
            continue
        if arg == "--note":
            skip = True
            continue
        kept.append(arg)
    return kept


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    options = parser.parse_args(argv)
    names = selected(parser, options.benchmarks)
    command = shlex.join(["python", "-m", "bench.run", *_without_note(sys.argv[1:] if argv is None else argv)])
    try:
        # The services' event loop: the pipeline's raw publisher and consumer run in this process.
        report = eventloop.run(run(names, options, command))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted; the run's database and broker objects were removed")
        sys.exit(130)
    print(render_table(report))
    if options.write:
        write_results(report)
        say("recorded in bench/RESULTS.md")
    sys.exit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
