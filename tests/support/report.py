"""Fault and safety tests end in counts that must all be zero (lost, duplicated, unexpected, …): ``report`` prints
them into the test output, keeps them for the session's summary, and asserts them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

# Every report of the run, in order; the ``pytest_terminal_summary`` hooks of tests/faults and tests/security show
# their own after the test results.
REPORTS: list[Counts] = []


@dataclass
class Counts:
    title: str
    must_be_zero: dict[str, int]
    context: dict[str, Any] = field(default_factory=dict)
    test: str = field(default_factory=lambda: os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0])

    @property
    def ok(self) -> bool:
        return not any(self.must_be_zero.values())

    def line(self) -> str:
        zeros = " ".join(f"{name}={value}" for name, value in self.must_be_zero.items())
        facts = " ".join(f"{name}={value}" for name, value in self.context.items())
        verdict = "ok" if self.ok else "FAILED"
        return f"{self.title}: {zeros}" + (f" ({facts})" if facts else "") + f" [{verdict}]"


def report(title: str, must_be_zero: dict[str, int], **context: Any) -> Counts:
    """Print ``title: lost=0 duplicated=0 … (context)`` and assert every count in ``must_be_zero`` is 0."""
    counts = Counts(title, dict(must_be_zero), context)
    REPORTS.append(counts)
    print(f"\n[counts] {counts.line()}")
    assert counts.ok, counts.line()
    return counts


def summarize(terminalreporter: Any, directory: str) -> None:
    """The reports of the tests under ``directory`` (e.g. "tests/faults/"), as a section of the summary."""
    mine = [counts for counts in REPORTS if counts.test.startswith(directory)]
    if mine:
        terminalreporter.write_sep("-", f"counts ({directory.rstrip('/')})")
        for counts in mine:
            terminalreporter.write_line(counts.line())
