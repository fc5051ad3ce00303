"""The pure rules of the reports (no I/O): local dates and ranges, day bitmaps, the occupancy sweep and hours as
decimals. The definitions they implement are in services/audit/reports/__init__.py; small-cell suppression is in
services/audit/reports/suppression.py."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, get_args

from sqlalchemy import and_, or_

from shared.contracts import SupportType
from shared.contracts.checkin import Purpose

NETWORK = "*"  # the scope of network-wide projection rows; site ids never contain "*"
ALL_SITES = "all"  # how a request and the report name the network
PURPOSES: tuple[str, ...] = get_args(Purpose)
SUPPORT_TYPES: tuple[str, ...] = get_args(SupportType)
MAX_RANGE_DAYS = 366
HOUR = timedelta(hours=1)
# A visit is "short" when it closed before the next local midnight and within LONG_VISIT; every other visit
# (``rp_visit.spills``: past midnight, long, or never closed) is found through its own small index.
LONG_VISIT = timedelta(hours=6)


# --- zones and dates -----------------------------------------------------------------------------------------


def zone_named(name: str | None) -> zoneinfo.ZoneInfo:
    """A site's zone; UTC for a site the log mentions but ``access.sites`` does not know (or a bad name)."""
    if name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    return zoneinfo.ZoneInfo("UTC")


def local_date(instant: datetime, zone: zoneinfo.ZoneInfo) -> date:
    return instant.astimezone(zone).date()


def day_start(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    """The first instant (UTC) whose local date in ``zone`` is ``day``; also when midnight falls in a DST gap
    (fold=0 reads a missing 00:00 with the offset before the gap, which is the instant the day begins)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def window(first: date, last: date, zone: zoneinfo.ZoneInfo) -> tuple[datetime, datetime]:
    """The instants of the inclusive local-date range [first, last]: [start of first, start of the day after)."""
    return day_start(first, zone), day_start(last + timedelta(days=1), zone)


def days_of(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def floor_hour(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hours_overlapping(start: datetime, end: datetime | None, limit: datetime | None = None) -> list[datetime]:
    """UTC hours [h, h+1h) that intersect [start, end) (``end`` None: up to ``limit``)."""
    stop = end if end is not None else limit
    if stop is None or stop <= start:
        return []
    hours = []
    hour = floor_hour(start)
    while hour < stop:
        hours.append(hour)
        hour += HOUR
    return hours


def merged(windows: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Overlapping or touching windows [lo, hi) merged into disjoint ones, in order."""
    result: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(windows):
        if result and lo <= result[-1][1]:
            result[-1] = (result[-1][0], max(hi, result[-1][1]))
        else:
            result.append((lo, hi))
    return result


def overlapping(
    checked_in_at: Any, checked_out_at: Any, runs: Sequence[tuple[datetime, datetime]], *, short: bool
) -> Any:
    """SQL: a visit is open at some instant of one of the runs of hours [lo, hi). Spelled out as OR'd ranges (not
    a join with an array) so the planner sees every bound. A short visit checked in at most LONG_VISIT before the
    run began, which bounds the index range on check-in; the long ones have an index of their own (check-out,
    check-in)."""
    if short:
        return or_(
            *(and_(checked_in_at >= lo - LONG_VISIT, checked_in_at < hi, checked_out_at > lo) for lo, hi in runs)
        )
    return or_(*(and_(checked_out_at > lo, checked_in_at < hi) for lo, hi in runs))


def contiguous_runs(hours: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted distinct hours grouped into runs [lo, hi) of consecutive hours."""
    runs: list[tuple[datetime, datetime]] = []
    for hour in sorted(set(hours)):
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + HOUR)
        else:
            runs.append((hour, hour + HOUR))
    return runs


# --- day bitmaps: the days of one year as the bits of an int (bit i = day i of the year) ------------------------


def day_bit(day: date) -> tuple[int, int]:
    """(year, bit) of a date: bit 0 is January 1."""
    return day.year, 1 << (day - date(day.year, 1, 1)).days


def range_masks(first: date, last: date) -> dict[int, int]:
    """For each year the range touches (at most two for 366 days), the bits of its days in the range."""
    masks: dict[int, int] = {}
    for year in range(first.year, last.year + 1):
        lo = max(first, date(year, 1, 1))
        hi = min(last, date(year, 12, 31))
        low_bit = (lo - date(year, 1, 1)).days
        count = (hi - lo).days + 1
        masks[year] = ((1 << count) - 1) << low_bit
    return masks


def bits_to_dates(year: int, bits: int) -> list[date]:
    start = date(year, 1, 1)
    return [start + timedelta(days=i) for i in range(bits.bit_length()) if bits >> i & 1]


# --- occupancy -------------------------------------------------------------------------------------------------

Interval = tuple[datetime, datetime | None]  # a visit is open on [check-in, check-out); None: never checked out


def open_peaks(intervals: Iterable[Interval], buckets: Sequence[tuple[datetime, datetime]]) -> list[int]:
    """For each bucket [lo, hi) (sorted, not overlapping), the most intervals open at any one instant in it.

    An interval is open on [start, end): a check-in at t counts from t, a check-out at t ends at t, so a
    check-out and a check-in at the same instant do not overlap, and a visit of zero length is never open.
    An interval without an end stays open."""
    events: list[tuple[datetime, int]] = []
    for start, end in intervals:
        if end is not None and end <= start:
            continue
        events.append((start, 1))
        if end is not None:
            events.append((end, -1))
    events.sort()
    peaks: list[int] = []
    count = 0
    index = 0
    for lo, hi in buckets:
        while index < len(events) and events[index][0] <= lo:
            count += events[index][1]
            index += 1
        best = count  # open at lo itself
        while index < len(events) and events[index][0] < hi:
            instant = events[index][0]
            while index < len(events) and events[index][0] == instant:  # every change at one instant, then look
                count += events[index][1]
                index += 1
            best = max(best, count)
        peaks.append(best)
    return peaks


def peak_open(intervals: Iterable[Interval]) -> int:
    """The most intervals open at any one instant."""
    materialized = list(intervals)
    if not materialized:
        return 0
    lo = min(start for start, _ in materialized)
    hi = max([start for start, _ in materialized] + [end for _, end in materialized if end is not None])
    return open_peaks(materialized, [(lo, hi + HOUR)])[0]


# --- numbers as reported -----------------------------------------------------------------------------------------


def hours_text(minutes: int) -> str:
    """Minutes as hours with two decimals (half up), computed once from the exact total: '12.50'."""
    return str((Decimal(minutes) / Decimal(60)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
