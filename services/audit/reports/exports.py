"""Reports as files a director can use: CSV (summary and daily) and the daily series as an SVG chart.

Both are rendered from the report's JSON body, so every format says exactly the same numbers.

Summary CSV: ``metric,value`` rows: first site, timezone, from, to, min_cell, suppressed, then every figure in the
JSON's order, nested ones flattened with a dot (``visits_by_purpose.drop_in``, ``volunteer_hours_by_role.<role>``).
Daily CSV: ``date,visits,unduplicated_members,new_members,volunteer_hours,attendance``, one row per day.
A withheld count is an empty cell; hours are plain decimals ("12.50"); booleans are true/false.

The chart is hand-written SVG 1.1 with no external resources (no fonts, scripts or images to fetch): bars of
visits and a line of unduplicated members per day, with axes, ticks, a legend, a title and a description that
screen readers announce (``role="img"``, ``aria-labelledby``)."""

from __future__ import annotations

import csv
import io
import math
from datetime import date
from typing import Any
from xml.sax.saxutils import escape

DAILY_COLUMNS = ("date", "visits", "unduplicated_members", "new_members", "volunteer_hours", "attendance")
SUMMARY_HEADER_KEYS = ("site", "timezone", "from", "to", "min_cell", "suppressed")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [pair for key, inner in value.items() for pair in _flatten(f"{prefix}.{key}", inner)]
    return [(prefix, value)]


def summary_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["metric", "value"])
    for key in SUMMARY_HEADER_KEYS:
        writer.writerow([key, _cell(report.get(key))])
    for key, value in report.items():
        if key in SUMMARY_HEADER_KEYS:
            continue
        for name, cell in _flatten(key, value):
            writer.writerow([name, _cell(cell)])
    return out.getvalue()


def daily_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(DAILY_COLUMNS)
    for row in report["days"]:
        writer.writerow([_cell(row[column]) for column in DAILY_COLUMNS])
    return out.getvalue()


def filename(report: str, body: dict[str, Any], extension: str) -> str:
    return f"rcc-{report}-{body['site']}-{body['from']}-{body['to']}.{extension}"


# --- the chart -------------------------------------------------------------------------------------------------

WIDTH, HEIGHT = 960, 420
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 64, 72
BAR_COLOUR, LINE_COLOUR, AXIS_COLOUR, GRID_COLOUR = "#4e79a7", "#e15759", "#333333", "#dddddd"


def nice_step(maximum: int, ticks: int = 5) -> int:
    """A tick step of 1, 2 or 5 times a power of ten that puts about ``ticks`` ticks up to ``maximum``."""
    if maximum <= ticks:
        return 1
    raw = maximum / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)


def _label_every(days: int) -> int:
    for every in (1, 2, 7, 14, 31):
        if days / every <= 16:
            return every
    return 31


def daily_svg(report: dict[str, Any]) -> str:
    days = report["days"]
    count = len(days)
    visits = [row["visits"] for row in days]
    members = [row["unduplicated_members"] for row in days]
    shown = [value for value in visits + members if value is not None]
    top = max(shown, default=0)
    step = nice_step(top)
    y_max = max(step, math.ceil(top / step) * step)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / count
    bar_w = max(slot * 0.7, 0.5)

    def x_mid(index: int) -> float:
        return LEFT + slot * (index + 0.5)

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / y_max

    site = "all sites" if report["site"] == "all" else f"site {report['site']}"
    title = f"Visits and unduplicated members per day, {site}, {report['from']} to {report['to']}"
    withheld = sum(1 for row in days if row["visits"] is None or row["unduplicated_members"] is None)
    total_visits = sum(value for value in visits if value is not None)
    busiest = max(
        ((value, row["date"]) for value, row in zip(visits, days, strict=True) if value is not None), default=None
    )
    desc = [f"Bar chart of visits per day with a line of unduplicated members per day over {count} days."]
    desc.append(f"Visits shown total {total_visits}.")
    if busiest is not None:
        desc.append(f"The busiest day was {busiest[1]} with {busiest[0]} visits.")
    if report.get("timezone"):
        desc.append(f"Dates are local to {report['timezone']}.")
    else:
        desc.append("Dates are local to each site.")
    if withheld:
        desc.append(f"Counts below {report['min_cell']} are withheld on {withheld} days and not drawn.")

    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" '
            'font-family="Helvetica, Arial, sans-serif" font-size="12">'
        ),
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(" ".join(desc))}</desc>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        (
            f'<text x="{WIDTH / 2:.1f}" y="24" text-anchor="middle" font-size="16" font-weight="bold">'
            f"{escape(title)}</text>"
        ),
    ]
    # grid and y axis
    for tick in range(0, y_max + 1, step):
        ty = y(tick)
        parts.append(f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{WIDTH - RIGHT}" y2="{ty:.1f}" stroke="{GRID_COLOUR}"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{ty + 4:.1f}" text-anchor="end">{tick}</text>')
    parts.append(
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="{AXIS_COLOUR}"/>'
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="{AXIS_COLOUR}"/>'
    )
    parts.append(
        f'<text x="16" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 16 {TOP + plot_h / 2:.1f})">people / visits</text>'
    )
    # bars
    parts.append(f'<g fill="{BAR_COLOUR}">')
    for index, (row, value) in enumerate(zip(days, visits, strict=True)):
        if value is None or value == 0:
            continue
        top_y = y(value)
        parts.append(
            f'<rect x="{x_mid(index) - bar_w / 2:.2f}" y="{top_y:.2f}" width="{bar_w:.2f}" '
            f'height="{TOP + plot_h - top_y:.2f}"><title>{escape(row["date"])}: {value} visits</title></rect>'
        )
    parts.append("</g>")
    # line (broken where a value is withheld)
    segments: list[list[str]] = [[]]
    for index, value in enumerate(members):
        if value is None:
            segments.append([])
            continue
        segments[-1].append(f"{x_mid(index):.2f},{y(value):.2f}")
    for segment in segments:
        if len(segment) > 1:
            points = " ".join(segment)
            parts.append(f'<polyline fill="none" stroke="{LINE_COLOUR}" stroke-width="2" points="{points}"/>')
        elif segment:
            cx, cy = segment[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{LINE_COLOUR}"/>')
    # x axis labels
    every = _label_every(count)
    for index, row in enumerate(days):
        day = date.fromisoformat(row["date"])
        if count > 62 and day.day != 1 and index != 0:
            continue
        if count <= 62 and index % every and index != count - 1:
            continue
        lx, ly = x_mid(index), TOP + plot_h + 14
        parts.append(
            f'<line x1="{lx:.1f}" y1="{TOP + plot_h}" x2="{lx:.1f}" y2="{TOP + plot_h + 4}" stroke="{AXIS_COLOUR}"/>'
        )
        parts.append(
            f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="end" '
            f'transform="rotate(-45 {lx:.1f} {ly:.1f})">{escape(row["date"])}</text>'
        )
    # legend
    legend_y = HEIGHT - 14
    parts.append(
        f'<rect x="{LEFT}" y="{legend_y - 10}" width="12" height="12" fill="{BAR_COLOUR}"/>'
        f'<text x="{LEFT + 18}" y="{legend_y}">visits</text>'
        f'<line x1="{LEFT + 90}" y1="{legend_y - 4}" x2="{LEFT + 114}" y2="{legend_y - 4}" '
        f'stroke="{LINE_COLOUR}" stroke-width="2"/>'
        f'<text x="{LEFT + 120}" y="{legend_y}">unduplicated members</text>'
    )
    if withheld:
        note = f"counts below {report['min_cell']} withheld ({withheld} days)"
        parts.append(f'<text x="{WIDTH - RIGHT}" y="{legend_y}" text-anchor="end">{escape(note)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
