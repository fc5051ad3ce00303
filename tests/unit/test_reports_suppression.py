"""Complementary suppression (services/audit/reports/suppression.py) against a reader who subtracts
(tests/support/adversary.py): with randomised counts, no withheld cell of any site's or the network's summary and
daily series is recovered."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.audit import handlers
from services.audit.handlers import Withholder
from services.audit.reports.rules import NETWORK, PURPOSES, SUPPORT_TYPES
from services.audit.reports.suppression import (
    Identity,
    Suppressor,
    daily_cell,
    disclosed,
    report_family,
    summary_cell,
    withheld_cells,
)
from shared.contracts.checkin import SUPPORT_TYPE_OF_PURPOSE
from shared.errors import InvalidInput
from tests.support.adversary import recovered

FIRST = date(2026, 12, 7)
GATHERING = ("session_held", "session_attendance", "event_held", "event_registrations", "event_attendance")
SHOWN_KEYS = {
    "group_sessions_held": "session_held",
    "group_attendance": "session_attendance",
    "events_held": "event_held",
    "event_registrations": "event_registrations",
    "event_attendance": "event_attendance",
}

small = st.integers(0, 12)


@st.composite
def centers(draw: st.DrawFn) -> dict[str, Any]:
    """Per site and day: visits by purpose, new members and attendance; the network adds them up."""
    sites = draw(st.integers(1, 3))
    days = draw(st.integers(1, 3))
    data: dict[str, Any] = {}
    for n in range(sites):
        site = f"s{n + 1}"
        data[site] = [
            {
                "purposes": {p: draw(small) for p in PURPOSES},
                "new": draw(small),
                "attendance": draw(small),
                "gathering": {name: draw(small) for name in GATHERING},
            }
            for _ in range(days)
        ]
    return data


def _figures(data: dict[str, Any]) -> tuple[dict[str, dict[str, int]], dict[str, dict[date, dict[str, int]]]]:
    summaries: dict[str, dict[str, int]] = {}
    daily: dict[str, dict[date, dict[str, int]]] = {}
    for site, days in data.items():
        for offset, day in enumerate(days):
            when = FIRST + timedelta(days=offset)
            visits = sum(day["purposes"].values())
            counts = {
                "visits": visits,
                "anonymous_visits": 0,
                "shifts_filled": 0,
                "shifts_missed": 0,
                "waitlist_promotions": 0,
                **{f"purpose_{p}": v for p, v in day["purposes"].items()},
                **{
                    f"support_{t}": sum(v for p, v in day["purposes"].items() if SUPPORT_TYPE_OF_PURPOSE[p] == t)
                    for t in SUPPORT_TYPES
                },
                **day["gathering"],
            }
            attendance = day["gathering"]["session_attendance"] + day["gathering"]["event_attendance"]
            for scope in (site, NETWORK):
                totals = summaries.setdefault(scope, {})
                for name, value in counts.items():
                    totals[name] = totals.get(name, 0) + value
                row = daily.setdefault(scope, {}).setdefault(when, {"visits": 0, "attendance": 0, "new_members": 0})
                row["visits"] += visits
                row["attendance"] += attendance
                row["new_members"] += day["new"]  # the network's own new members: here, no one visits two sites
    return summaries, daily


def _reports(data: dict[str, Any], min_cell: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every scope's summary and daily report as the handlers render them."""
    summaries, daily = _figures(data)
    days = [FIRST + timedelta(days=n) for n in range(len(next(iter(data.values()))))]
    summary_bodies: dict[str, Any] = {}
    daily_bodies: dict[str, Any] = {}
    for scope in [*data, NETWORK]:
        new = sum(row["new_members"] for row in daily[scope].values())
        unduplicated = new + sum(site[0]["new"] for site in data.values())  # some returning members too
        values, identities = report_family(
            summaries, daily, {"unduplicated_members": unduplicated, "new_members": new}, days, scope
        )
        count = Suppressor(min_cell, withheld_cells(values, identities, min_cell))
        totals = summaries[scope]
        label = "all" if scope == NETWORK else scope
        summary_bodies[label] = {
            "visits": count(totals["visits"], summary_cell(scope, "visits")),
            "anonymous_visits": count(0, summary_cell(scope, "anonymous_visits")),
            "unduplicated_members": count(unduplicated, summary_cell(scope, "unduplicated_members")),
            "new_members": count(new, summary_cell(scope, "new_members")),
            "returning_members": count(unduplicated - new, summary_cell(scope, "returning_members")),
            "visits_by_purpose": {
                p: count(totals[f"purpose_{p}"], summary_cell(scope, f"purpose_{p}")) for p in PURPOSES
            },
            "visits_by_support_type": {
                t: count(totals[f"support_{t}"], summary_cell(scope, f"support_{t}")) for t in SUPPORT_TYPES
            },
            **{key: count(totals[name], summary_cell(scope, name)) for key, name in SHOWN_KEYS.items()},
        }
        daily_bodies[label] = {
            "days": [
                {
                    "date": day.isoformat(),
                    **{
                        key: count(daily[scope][day][key], daily_cell(scope, key, day))
                        for key in ("visits", "new_members", "attendance")
                    },
                }
                for day in days
            ]
        }
    return summary_bodies, daily_bodies


@settings(max_examples=150, deadline=None)
@given(centers(), st.integers(2, 10))
def test_no_withheld_cell_is_recovered_by_any_subtraction(data: dict[str, Any], min_cell: int) -> None:
    summaries, dailies = _reports(data, min_cell)
    assert recovered(summaries, dailies) == {}
    # and every small count is withheld, every shown one is the truth
    for body in summaries.values():
        shown = [body["visits"], *body["visits_by_purpose"].values(), *body["visits_by_support_type"].values()]
        assert all(value is None or value == 0 or value >= min_cell for value in shown)


def test_the_issue_s_example_leaks_without_complements_and_not_with_them() -> None:
    # s2 on one day: education 2 (withheld at min_cell 5) beside a shown total and every other purpose.
    data = {
        "s2": [
            {
                "purposes": {
                    "drop_in": 20,
                    "peer_mentoring": 7,
                    "recovery_group": 9,
                    "sober_event": 0,
                    "resource_connecting": 6,
                    "education": 2,
                    "volunteer_shift": 5,
                },
                "new": 5,
                "attendance": 0,
                "gathering": dict.fromkeys(GATHERING, 0),
            }
        ]
    }
    summaries, dailies = _reports(data, 5)
    assert summaries["s2"]["visits_by_purpose"]["education"] is None
    assert summaries["s2"]["visits_by_support_type"]["informational"] is None
    assert recovered(summaries, dailies) == {}

    primary_only = {
        scope: {**body, "visits_by_purpose": dict(body["visits_by_purpose"])} for scope, body in summaries.items()
    }
    primary_only["s2"]["visits_by_purpose"] = {
        p: (None if 0 < v < 5 else v) for p, v in data["s2"][0]["purposes"].items()
    }
    primary_only["s2"]["visits"] = 49
    primary_only["s2"]["visits_by_support_type"] = {
        "emotional": 16,
        "informational": None,
        "instrumental": 6,
        "affiliational": 20,
    }
    leaked = recovered({"s2": primary_only["s2"]}, {})
    assert leaked[("s", "s2", "purpose.education")] == 2
    assert leaked[("s", "s2", "support.informational")] == 2


def test_a_cycle_of_pairs_is_caught_by_the_exact_check() -> None:
    # x + y, y + z and x + z known: each identity withholds two cells, yet all three are fixed.
    identities = [Identity(("a",), ("x", "y")), Identity(("b",), ("y", "z")), Identity(("c",), ("x", "z"))]
    assert disclosed(identities, {"x", "y", "z"}) == {"x", "y", "z"}
    assert disclosed(identities, {"x", "y", "z", "a"}) == set()
    values = {"a": 30, "b": 40, "c": 50, "x": 20, "y": 10, "z": 30}
    hidden = withheld_cells(values, identities, 11)
    assert "y" in hidden and disclosed(identities, hidden) == set()


def test_without_min_cell_nothing_is_withheld() -> None:
    assert withheld_cells({"a": 1}, [Identity(("a",), ("b",))], None) == set()


@st.composite
def systems(draw: st.DrawFn) -> tuple[list[Identity], set[str]]:
    """Small systems of identities over a few cells (a cell may be on both sides), and the cells withheld."""
    cells = [f"c{n}" for n in range(draw(st.integers(2, 8)))]
    some = st.lists(st.sampled_from(cells), min_size=1, max_size=4, unique=True)
    identities = [Identity(tuple(draw(some))[:2], tuple(draw(some))) for _ in range(draw(st.integers(1, 7)))]
    return identities, set(draw(st.lists(st.sampled_from(cells), unique=True)))


def _fixed_by_rational_elimination(identities: list[Identity], hidden: set[str]) -> set[str]:
    """A withheld cell follows from the shown ones when its unit vector is in the span of the identities' rows over
    the withheld cells: adding it to the rows does not raise their rank."""
    unknowns = sorted(hidden)

    def rank(rows: list[list[Fraction]]) -> int:
        rows = [list(row) for row in rows]
        found = 0
        for column in range(len(unknowns)):
            pivot = next((n for n in range(found, len(rows)) if rows[n][column]), None)
            if pivot is None:
                continue
            rows[found], rows[pivot] = rows[pivot], rows[found]
            for n in range(len(rows)):
                if n != found and rows[n][column]:
                    factor = rows[n][column] / rows[found][column]
                    rows[n] = [a - factor * b for a, b in zip(rows[n], rows[found], strict=True)]
            found += 1
        return found

    rows = []
    for identity in identities:
        row = [Fraction(0)] * len(unknowns)
        for cell, sign in (*((t, 1) for t in identity.totals), *((p, -1) for p in identity.parts)):
            if cell in hidden:
                row[unknowns.index(cell)] += sign
        rows.append(row)
    base = rank(rows)
    unit = [[Fraction(int(n == m)) for m in range(len(unknowns))] for n in range(len(unknowns))]
    return {cell for n, cell in enumerate(unknowns) if rank([*rows, unit[n]]) == base}


@settings(max_examples=300, deadline=None)
@given(systems())
def test_the_exact_check_agrees_with_rational_elimination(system: tuple[list[Identity], set[str]]) -> None:
    identities, hidden = system
    assert disclosed(identities, hidden) == _fixed_by_rational_elimination(identities, hidden)


def test_a_year_of_ten_sites_is_solved_part_by_part_and_leaves_nothing_determined() -> None:
    # Small counts everywhere: most daily cells withheld, a system of thousands of unknowns to check exactly.
    rng = random.Random(11)
    data = {
        f"s{n}": [
            {
                "purposes": {p: rng.randint(0, 9) for p in PURPOSES},
                "new": rng.randint(0, 6),
                "attendance": 0,
                "gathering": {name: rng.randint(0, 9) for name in GATHERING},
            }
            for _ in range(366)
        ]
        for n in range(10)
    }
    summaries, daily = _figures(data)
    days = [FIRST + timedelta(days=n) for n in range(366)]
    new = sum(row["new_members"] for row in daily["s3"].values())
    values, identities = report_family(
        summaries, daily, {"unduplicated_members": new + 30, "new_members": new}, days, "s3"
    )
    hidden = withheld_cells(values, identities, 20)
    assert {cell for cell, value in values.items() if 0 < value < 20} <= hidden
    assert len(hidden) > 3_000
    assert disclosed(identities, hidden) == set()


async def test_the_choice_runs_in_the_app_s_thread_and_a_too_large_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summaries, daily = _figures(
        {
            "s1": [
                {
                    "purposes": dict.fromkeys(PURPOSES, 3),
                    "new": 2,
                    "attendance": 0,
                    "gathering": dict.fromkeys(GATHERING, 1),
                }
            ]
            * 3
        }
    )
    days = [FIRST + timedelta(days=n) for n in range(3)]
    members = {"unduplicated_members": 6, "new_members": 6}
    threads: list[str] = []

    def choose(*args: Any) -> set[Any]:
        threads.append(threading.current_thread().name)
        return withheld_cells(*args)

    monkeypatch.setattr(handlers, "withheld_cells", choose)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="suppression") as executor:
        hidden = await Withholder(executor, max_cells=1_000)(summaries, daily, members, days, "s1", 5)
        assert threads == ["suppression_0"]
        assert hidden == withheld_cells(*report_family(summaries, daily, members, days, "s1"), 5)
        # 2 scopes x (21 summary counts + 2 x 3 daily ones) = 54 counts
        with pytest.raises(InvalidInput) as refused:
            await Withholder(executor, max_cells=53)(summaries, daily, members, days, "s1", 5)
        assert refused.value.code == "suppression_too_large"
        assert threads == ["suppression_0"]
