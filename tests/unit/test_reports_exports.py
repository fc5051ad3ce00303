"""The files a director gets: CSV of the summary (metric,value, nested keys flattened) and of the daily series
(one row per day), and the daily chart as self-contained, well-formed, accessible SVG."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from typing import Any

import pytest

from services.audit.reports.exports import (
    DAILY_COLUMNS,
    daily_csv,
    daily_svg,
    filename,
    nice_step,
    summary_csv,
)

SVG = "{http://www.w3.org/2000/svg}"


def summary_body(**changes: Any) -> dict[str, Any]:
    body = {
        "site": "downtown",
        "timezone": "America/Chicago",
        "from": "2026-03-01",
        "to": "2026-03-31",
        "min_cell": None,
        "suppressed": False,
        "unduplicated_members": 42,
        "visits": 310,
        "anonymous_visits": 55,
        "new_members": 7,
        "returning_members": 35,
        "visits_by_purpose": {
            "drop_in": 120,
            "peer_mentoring": 40,
            "recovery_group": 50,
            "sober_event": 10,
            "resource_connecting": 30,
            "education": 20,
            "volunteer_shift": 40,
        },
        "visits_by_support_type": {"emotional": 90, "informational": 20, "instrumental": 30, "affiliational": 130},
        "peak_occupancy": 17,
        "volunteer_hours_approved": "123.50",
        "volunteer_hours_by_role": {"front_desk": "100.00", "peer_mentor": "23.50"},
        "volunteers_active": 9,
        "shifts_filled": 60,
        "shifts_missed": 4,
        "stipends_accrued_cents": 45000,
        "stipends_paid_cents": 30000,
        "group_sessions_held": 8,
        "group_attendance": 64,
        "events_held": 2,
        "event_registrations": 30,
        "event_attendance": 41,
        "waitlist_promotions": 3,
    }
    body.update(changes)
    return body


def daily_body(days: int = 31, **changes: Any) -> dict[str, Any]:
    rows = [
        {
            "date": (date(2026, 3, 1) + timedelta(days=n)).isoformat(),
            "visits": 10 + n % 7,
            "unduplicated_members": 8 + n % 5,
            "new_members": n % 3,
            "volunteer_hours": f"{n % 4}.25",
            "attendance": n % 6,
        }
        for n in range(days)
    ]
    body = {
        "site": "downtown",
        "timezone": "America/Chicago",
        "from": rows[0]["date"],
        "to": rows[-1]["date"],
        "min_cell": None,
        "suppressed": False,
        "days": rows,
    }
    body.update(changes)
    return body


def test_summary_csv_is_one_metric_per_row_with_nested_keys_flattened() -> None:
    rows = list(csv.reader(io.StringIO(summary_csv(summary_body()))))
    assert rows[0] == ["metric", "value"]
    assert rows[1:7] == [
        ["site", "downtown"],
        ["timezone", "America/Chicago"],
        ["from", "2026-03-01"],
        ["to", "2026-03-31"],
        ["min_cell", ""],
        ["suppressed", "false"],
    ]
    values = dict(rows[1:])
    assert values["visits_by_purpose.drop_in"] == "120"
    assert values["visits_by_support_type.affiliational"] == "130"
    assert values["volunteer_hours_by_role.peer_mentor"] == "23.50"
    assert values["volunteer_hours_approved"] == "123.50"
    assert values["stipends_paid_cents"] == "30000"
    assert len(rows) == 1 + 6 + 18 + 7 + 4 + 2  # header, meta, figures, purposes, types, roles


def test_a_withheld_count_is_an_empty_cell() -> None:
    body = summary_body(
        min_cell=10,
        suppressed=True,
        new_members=None,
        returning_members=None,
        visits_by_purpose={**summary_body()["visits_by_purpose"], "sober_event": None},
    )
    values = dict(list(csv.reader(io.StringIO(summary_csv(body))))[1:])
    assert values["min_cell"] == "10" and values["suppressed"] == "true"
    assert values["new_members"] == "" and values["returning_members"] == ""
    assert values["visits_by_purpose.sober_event"] == ""


def test_daily_csv_has_one_row_per_day_with_the_documented_columns() -> None:
    body = daily_body(3)
    body["days"][1]["visits"] = None
    rows = list(csv.reader(io.StringIO(daily_csv(body))))
    assert rows[0] == list(DAILY_COLUMNS)
    assert rows[1] == ["2026-03-01", "10", "8", "0", "0.25", "0"]
    assert rows[2][1] == ""
    assert len(rows) == 4
    assert daily_csv(body).endswith("\r\n")


def test_file_names_say_what_and_when() -> None:
    assert filename("summary", summary_body(), "csv") == "rcc-summary-downtown-2026-03-01-2026-03-31.csv"


@pytest.mark.parametrize("days", [1, 7, 31, 90, 366])
def test_the_chart_is_well_formed_svg_with_a_title_and_description(days: int) -> None:
    text = daily_svg(daily_body(days))
    root = ET.fromstring(text.encode())
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img" and root.get("aria-labelledby") == "chart-title chart-desc"
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and "downtown" in (title.text or "")
    assert desc is not None and "America/Chicago" in (desc.text or "")
    bars = root.findall(f"{SVG}g/{SVG}rect")
    assert len(bars) == days  # every day had visits
    assert root.find(f"{SVG}polyline") is not None or days == 1
    assert "href" not in text and "<script" not in text  # nothing external, nothing active


def test_withheld_days_are_not_drawn_and_the_chart_says_so() -> None:
    body = daily_body(5, min_cell=11, suppressed=True)
    body["days"][0]["visits"] = None
    body["days"][2]["unduplicated_members"] = None
    root = ET.fromstring(daily_svg(body).encode())
    assert len(root.findall(f"{SVG}g/{SVG}rect")) == 4
    desc = root.find(f"{SVG}desc")
    assert desc is not None and "withheld on 2 days" in (desc.text or "")


def test_an_empty_range_still_draws_axes() -> None:
    body = daily_body(3)
    for row in body["days"]:
        row.update(visits=0, unduplicated_members=0)
    root = ET.fromstring(daily_svg(body).encode())
    assert root.findall(f"{SVG}g/{SVG}rect") == []
    assert len(root.findall(f"{SVG}line")) >= 2


def test_names_are_escaped() -> None:
    body = daily_body(2, site="a<b&c")
    ET.fromstring(daily_svg(body).encode())


@pytest.mark.parametrize(("maximum", "step"), [(0, 1), (4, 1), (9, 2), (23, 5), (140, 50), (900, 200)])
def test_axis_steps_are_round(maximum: int, step: int) -> None:
    assert nice_step(maximum) == step
