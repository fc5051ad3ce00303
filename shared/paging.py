"""The one parser of ``from``/``to`` ranges for every list route and report.

A bound is a local date (a whole day in the site's zone: ``from`` is its first instant, ``to`` includes the whole
day) or an instant with an offset (``to`` exclusive). Every route answers the same mistakes the same way, with a 422
and a machine code:

- ``naive_datetime``: an instant without an offset (whose zone would be a guess);
- ``date_out_of_range``: a bound outside 1900–2999 (local dates are turned into instants in the site's zone, and
  the ends of the calendar overflow that; no center lists or reports on them);
- ``range_reversed``: ``to`` before ``from``;
- ``range_too_long``: more than the route's ``max_days`` (where the route bounds its span).

It also holds the one cursor of keyset pagination (:func:`encode_cursor`, :func:`decode_cursor`): the sort value of
the last row given and its id, opaque to clients; anything we did not hand out is ``bad_cursor``.

Views keep their pydantic query models (``from_: date | datetime | None = Field(alias="from")``, or
:data:`Bound`) and hand the two fields to :func:`instant_range` (lists: instants to compare with) or
:func:`local_dates` (reports: inclusive local dates)."""

from __future__ import annotations

import base64
import binascii
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from shared.errors import InvalidInput

EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2999, 12, 31)
# The instants of those dates in any zone (UTC offsets stay within a day).
_EARLIEST = datetime.combine(EARLIEST_DATE - timedelta(days=1), time.min, tzinfo=UTC)
_LATEST = datetime.combine(LATEST_DATE + timedelta(days=2), time.min, tzinfo=UTC)

Bound = date | datetime


@dataclass(frozen=True, slots=True)
class InstantRange:
    """[start, end) as aware instants; None where the request left that side open."""

    start: datetime | None
    end: datetime | None


def instant_range(
    from_: Bound | None,
    to: Bound | None,
    zone: zoneinfo.ZoneInfo,
    *,
    max_days: int | None = None,
    default_start: datetime | None = None,
    default_span: timedelta | None = None,
) -> InstantRange:
    """``from``/``to`` of a list route as instants in ``zone``.

    ``default_start`` stands for a missing ``from``, and ``default_span`` (after the start) for a missing ``to``,
    for routes that always list a bounded window; ``max_days`` bounds the span of the result."""
    start = start_of(from_, zone) if from_ is not None else default_start
    end = end_of(to, zone) if to is not None else None
    if end is None and start is not None and default_span is not None:
        end = start + default_span
    if start is not None and end is not None:
        if end < start or _dates_reversed(from_, to):
            raise InvalidInput("'to' is before 'from'.", code="range_reversed")
        if max_days is not None and end - start > timedelta(days=max_days):
            raise InvalidInput(f"Ask for at most {max_days} days at a time.", code="range_too_long")
    return InstantRange(start, end)


def local_dates(first: date, last: date, *, max_days: int | None = None) -> list[date]:
    """An inclusive range of local dates, validated; its days in order."""
    for day in (first, last):
        _check_date(day)
    if last < first:
        raise InvalidInput("'to' is before 'from'.", code="range_reversed")
    days = (last - first).days + 1
    if max_days is not None and days > max_days:
        raise InvalidInput(f"Ask for at most {max_days} days at a time.", code="range_too_long")
    return [first + timedelta(days=n) for n in range(days)]


def start_of(value: Bound, zone: zoneinfo.ZoneInfo) -> datetime:
    """The first instant a ``from`` bound includes."""
    if isinstance(value, datetime):
        return _instant(value)
    _check_date(value)
    return datetime.combine(value, time.min, tzinfo=zone)


def end_of(value: Bound, zone: zoneinfo.ZoneInfo) -> datetime:
    """The first instant after a ``to`` bound: inclusive for a date (the whole local day), exclusive for an
    instant."""
    if isinstance(value, datetime):
        return _instant(value)
    _check_date(value)
    return datetime.combine(value + timedelta(days=1), time.min, tzinfo=zone)


def _dates_reversed(from_: Bound | None, to: Bound | None) -> bool:
    # 'to' the day before 'from' ends exactly where 'from' starts: an empty range of instants, but a reversed one.
    dates = [bound for bound in (from_, to) if bound is not None and not isinstance(bound, datetime)]
    return len(dates) == 2 and dates[1] < dates[0]


def _check_date(day: date) -> None:
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise InvalidInput(f"Dates run from {EARLIEST_DATE} to {LATEST_DATE}.", code="date_out_of_range")


def _instant(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("Times need an offset, e.g. 2026-11-26T18:00:00Z.", code="naive_datetime")
    try:
        in_utc = value.astimezone(UTC)  # 9999-12-31T23:00-05:00 is a datetime whose UTC instant is not
    except OverflowError:
        in_utc = None
    if in_utc is None or not _EARLIEST <= in_utc < _LATEST:
        raise InvalidInput(f"Times run from {EARLIEST_DATE} to {LATEST_DATE}.", code="date_out_of_range")
    return value


__all__ = [
    "EARLIEST_DATE",
    "LATEST_DATE",
    "Bound",
    "InstantRange",
    "decode_cursor",
    "decode_time_cursor",
    "encode_cursor",
    "end_of",
    "instant_range",
    "local_dates",
    "start_of",
]


def encode_cursor(position: datetime | str, key: uuid.UUID) -> str:
    """The next page starts after the row sorted at ``position`` (a time, or a text such as a name) with id ``key``."""
    value = position.isoformat() if isinstance(position, datetime) else position
    return base64.urlsafe_b64encode(f"{value}|{key}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, uuid.UUID]:
    """The text position and the id of a cursor from :func:`encode_cursor` (the text may itself hold ``|``)."""
    try:
        value, key = base64.urlsafe_b64decode(cursor.encode("ascii")).decode().rsplit("|", 1)
        return value, uuid.UUID(key)
    except (ValueError, binascii.Error) as exc:  # UnicodeError is a ValueError
        raise _bad_cursor() from exc


def decode_time_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """A cursor whose position is an instant (it must carry an offset, as every one we give out does)."""
    value, key = decode_cursor(cursor)
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _bad_cursor() from exc
    if at.tzinfo is None:
        raise _bad_cursor()
    return at, key


def _bad_cursor() -> InvalidInput:
    return InvalidInput("The cursor is not one we gave out.", code="bad_cursor")
