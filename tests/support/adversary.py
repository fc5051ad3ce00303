"""A reader who tries to undo small-cell suppression by arithmetic (tests of services/audit reports).

It knows what docs/reports.md says of the figures, independently of how the service withholds cells: within a
summary, visits are the sum of the purposes, each support type the sum of its purposes, visits the sum of the
support types plus volunteer shifts, unduplicated members new plus returning; a summary's visits, new members and
group plus event attendance are the sums of its daily series; the network's additive figures (and its daily visits
and attendance) are the sums of the sites'. It takes every published report of one range side by side (JSON or the
cells read back from CSV), writes these identities with the shown cells as constants, and solves them exactly
(rational Gaussian elimination, which covers every subtraction of every subset of shown cells from every total and
every combination of identities). A withheld cell it recovers is a leak."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

PURPOSES = (
    "drop_in",
    "peer_mentoring",
    "recovery_group",
    "sober_event",
    "resource_connecting",
    "education",
    "volunteer_shift",
)
SUPPORT = {
    "emotional": ("peer_mentoring", "recovery_group"),
    "informational": ("education",),
    "instrumental": ("resource_connecting",),
    "affiliational": ("drop_in", "sober_event"),
}
ADDITIVE = (
    "visits",
    "anonymous_visits",
    "shifts_filled",
    "shifts_missed",
    "waitlist_promotions",
    "group_sessions_held",
    "group_attendance",
    "events_held",
    "event_registrations",
    "event_attendance",
)

Cell = tuple[Any, ...]


def summary_cells(scope: str, body: Mapping[str, Any]) -> dict[Cell, int | None]:
    cells: dict[Cell, int | None] = {}
    for key in (*ADDITIVE, "unduplicated_members", "new_members", "returning_members"):
        if key in body:
            cells[("s", scope, key)] = body[key]
    for purpose in PURPOSES:
        cells[("s", scope, f"purpose.{purpose}")] = body["visits_by_purpose"][purpose]
    for support in SUPPORT:
        cells[("s", scope, f"support.{support}")] = body["visits_by_support_type"][support]
    return cells


def daily_cells(scope: str, body: Mapping[str, Any]) -> dict[Cell, int | None]:
    return {
        ("d", scope, key, str(row["date"])): row[key]
        for row in body["days"]
        for key in ("visits", "new_members", "attendance")
    }


def identities(summaries: Mapping[str, Any], dailies: Mapping[str, Any]) -> list[tuple[list[Cell], list[Cell]]]:
    """(totals, parts) with sum(totals) = sum(parts)."""
    found: list[tuple[list[Cell], list[Cell]]] = []
    for scope in summaries:

        def s(key: str, scope: str = scope) -> Cell:
            return ("s", scope, key)

        found.append(([s("visits")], [s(f"purpose.{p}") for p in PURPOSES]))
        for support, purposes in SUPPORT.items():
            found.append(([s(f"support.{support}")], [s(f"purpose.{p}") for p in purposes]))
        found.append(([s("visits")], [*(s(f"support.{t}") for t in SUPPORT), s("purpose.volunteer_shift")]))
        found.append(([s("unduplicated_members")], [s("new_members"), s("returning_members")]))
        if scope in dailies:
            days = [str(row["date"]) for row in dailies[scope]["days"]]
            found.append(([s("visits")], [("d", scope, "visits", day) for day in days]))
            found.append(([s("new_members")], [("d", scope, "new_members", day) for day in days]))
            found.append(
                ([s("group_attendance"), s("event_attendance")], [("d", scope, "attendance", day) for day in days])
            )
    sites = [scope for scope in summaries if scope != "all"]
    if "all" in summaries and sites:
        for key in (*ADDITIVE, *(f"purpose.{p}" for p in PURPOSES), *(f"support.{t}" for t in SUPPORT)):
            found.append(([("s", "all", key)], [("s", site, key) for site in sites]))
    daily_sites = [scope for scope in dailies if scope != "all"]
    if "all" in dailies and daily_sites:
        for row in dailies["all"]["days"]:
            for key in ("visits", "attendance"):
                found.append(
                    (
                        [("d", "all", key, str(row["date"]))],
                        [("d", site, key, str(row["date"])) for site in daily_sites],
                    )
                )
    return found


def recovered(summaries: Mapping[str, Any], dailies: Mapping[str, Any]) -> dict[Cell, Fraction]:
    """Every withheld cell whose value the identities fix, with that value."""
    cells: dict[Cell, int | None] = {}
    for scope, body in summaries.items():
        cells.update(summary_cells(scope, body))
    for scope, body in dailies.items():
        cells.update(daily_cells(scope, body))
    rows: list[dict[Cell, Fraction]] = []
    for totals, parts in identities(summaries, dailies):
        if any(cell not in cells for cell in (*totals, *parts)):
            continue  # a figure this set of reports does not show
        row: dict[Cell, Fraction] = {}
        constant = Fraction(0)
        for cell, sign in [*((c, 1) for c in totals), *((c, -1) for c in parts)]:
            value = cells[cell]
            if value is None:
                row[cell] = row.get(cell, Fraction(0)) + sign
            else:
                constant -= sign * value
        row = {cell: coef for cell, coef in row.items() if coef}
        if row:
            row[()] = constant  # the constant side: sum(coef * unknown) = constant
            rows.append(row)
    # Reduced row echelon form over the rationals.
    pivots: dict[Cell, dict[Cell, Fraction]] = {}
    for row in rows:
        for pivot, pivot_row in pivots.items():
            factor = row.get(pivot)
            if factor:
                for cell, coef in pivot_row.items():
                    row[cell] = row.get(cell, Fraction(0)) - factor * coef
                row = {cell: coef for cell, coef in row.items() if coef or cell == ()}
        unknowns = [cell for cell in row if cell != ()]
        if not unknowns:
            continue
        pivot = unknowns[0]
        scale = row[pivot]
        row = {cell: coef / scale for cell, coef in row.items()}
        for other, other_row in pivots.items():
            factor = other_row.get(pivot)
            if factor:
                for cell, coef in row.items():
                    other_row[cell] = other_row.get(cell, Fraction(0)) - factor * coef
                pivots[other] = {cell: coef for cell, coef in other_row.items() if coef or cell == ()}
        pivots[pivot] = row
    return {
        pivot: row.get((), Fraction(0))
        for pivot, row in pivots.items()
        if [cell for cell in row if cell != ()] == [pivot]
    }


def csv_summary(text: str) -> dict[str, Any]:
    """A summary CSV read back into the shape of the JSON (withheld cells are empty)."""
    body: dict[str, Any] = {"visits_by_purpose": {}, "visits_by_support_type": {}}
    for line in text.splitlines()[1:]:
        metric, _, value = line.partition(",")
        target, key = body, metric
        if "." in metric:
            group, key = metric.split(".", 1)
            target = body.setdefault(group, {})
        target[key] = int(value) if value.lstrip("-").isdigit() else (None if value == "" else value)
    return body


def csv_daily(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    header = lines[0].split(",")
    days = []
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=True))
        days.append(
            {
                key: (None if value == "" else value if key in ("date", "volunteer_hours") else int(value))
                for key, value in row.items()
            }
        )
    return {"days": days}
