"""Complementary suppression (services/audit/reporting.py) against a reader who subtracts (tests/support/adversary.py):
with randomised counts, no withheld cell of any site's or the network's summary and daily series is recovered."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.audit.reporting import (
    NETWORK,
    PURPOSES,
    SUPPORT_OF_PURPOSE,
    SUPPORT_TYPES,
    Identity,
    Suppressor,
    daily_cell,
    disclosed,
    report_family,
    summary_cell,
    withheld_cells,
)
from tests.support.adversary import recovered

FIRST = date(2026, 12, 7)
GATHERING = ("session_held", "session_attendance", "event_held", "event_registrations", "event_attendance")
SHOWN_KEYS = {"group_sessions_held": "session_held", "group_attendance": "session_attendance",
              "events_held": "event_held", "event_registrations": "event_registrations",
              "event_attendance": "event_attendance"}

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
            {"purposes": {p: draw(small) for p in PURPOSES}, "new": draw(small), "attendance": draw(small),
             "gathering": {name: draw(small) for name in GATHERING}}
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
            counts = {"visits": visits, "anonymous_visits": 0, "shifts_filled": 0, "shifts_missed": 0,
                      "waitlist_promotions": 0, **{f"purpose_{p}": v for p, v in day["purposes"].items()},
                      **{f"support_{t}": sum(v for p, v in day["purposes"].items() if SUPPORT_OF_PURPOSE[p] == t)
                         for t in SUPPORT_TYPES},
                      **day["gathering"]}
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
        values, identities = report_family(summaries, daily, {"unduplicated_members": unduplicated,
                                                              "new_members": new}, days, scope)
        count = Suppressor(min_cell, withheld_cells(values, identities, min_cell))
        totals = summaries[scope]
        label = "all" if scope == NETWORK else scope
        summary_bodies[label] = {
            "visits": count(totals["visits"], summary_cell(scope, "visits")),
            "anonymous_visits": count(0, summary_cell(scope, "anonymous_visits")),
            "unduplicated_members": count(unduplicated, summary_cell(scope, "unduplicated_members")),
            "new_members": count(new, summary_cell(scope, "new_members")),
            "returning_members": count(unduplicated - new, summary_cell(scope, "returning_members")),
            "visits_by_purpose": {p: count(totals[f"purpose_{p}"], summary_cell(scope, f"purpose_{p}"))
                                  for p in PURPOSES},
            "visits_by_support_type": {t: count(totals[f"support_{t}"], summary_cell(scope, f"support_{t}"))
                                       for t in SUPPORT_TYPES},
            **{key: count(totals[name], summary_cell(scope, name)) for key, name in SHOWN_KEYS.items()},
        }
        daily_bodies[label] = {"days": [
            {"date": day.isoformat(),
             **{key: count(daily[scope][day][key], daily_cell(scope, key, day))
                for key in ("visits", "new_members", "attendance")}}
            for day in days
        ]}
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
    data = {"s2": [{"purposes": {"drop_in": 20, "peer_mentoring": 7, "recovery_group": 9, "sober_event": 0,
                                 "resource_connecting": 6, "education": 2, "volunteer_shift": 5},
                    "new": 5, "attendance": 0, "gathering": dict.fromkeys(GATHERING, 0)}]}
    summaries, dailies = _reports(data, 5)
    assert summaries["s2"]["visits_by_purpose"]["education"] is None
    assert summaries["s2"]["visits_by_support_type"]["informational"] is None
    assert recovered(summaries, dailies) == {}

    primary_only = {scope: {**body, "visits_by_purpose": dict(body["visits_by_purpose"])}
                    for scope, body in summaries.items()}
    primary_only["s2"]["visits_by_purpose"] = {p: (None if 0 < v < 5 else v)
                                               for p, v in data["s2"][0]["purposes"].items()}
    primary_only["s2"]["visits"] = 49
    primary_only["s2"]["visits_by_support_type"] = {"emotional": 16, "informational": None, "instrumental": 6,
                                                    "affiliational": 20}
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
