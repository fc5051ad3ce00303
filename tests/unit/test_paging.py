"""The one parser of from/to ranges (shared/paging.py)."""

from __future__ import annotations

import base64
import uuid
import zoneinfo
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import InvalidInput
from shared.paging import decode_cursor, decode_time_cursor, encode_cursor, end_of, instant_range, local_dates, start_of

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
UTC_ZONE = zoneinfo.ZoneInfo("UTC")


def code_of(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(InvalidInput) as refused:
        call(*args, **kwargs)  # type: ignore[operator]
    assert refused.value.status == 422
    return refused.value.code


def test_a_local_date_is_the_whole_day_in_the_zone() -> None:
    between = instant_range(date(2027, 1, 1), date(2027, 1, 1), NEW_YORK)
    assert between.start == datetime(2027, 1, 1, 5, tzinfo=UTC)
    assert between.end == datetime(2027, 1, 2, 5, tzinfo=UTC)


def test_an_instant_is_taken_as_it_is_and_to_is_exclusive() -> None:
    at = datetime(2027, 1, 1, 18, tzinfo=timezone(timedelta(hours=-5)))
    assert start_of(at, NEW_YORK) == at
    assert end_of(at, NEW_YORK) == at


def test_open_sides_stay_open() -> None:
    assert instant_range(None, None, NEW_YORK).start is None
    only_to = instant_range(None, date(2027, 1, 1), NEW_YORK)
    assert only_to.start is None and only_to.end == datetime(2027, 1, 2, 5, tzinfo=UTC)


def test_defaults_fill_a_bounded_window() -> None:
    now = datetime(2027, 1, 1, 12, tzinfo=UTC)
    between = instant_range(None, None, NEW_YORK, default_start=now, default_span=timedelta(days=28))
    assert (between.start, between.end) == (now, now + timedelta(days=28))


@pytest.mark.parametrize(
    ("from_", "to"),
    [
        (date(2027, 1, 10), date(2027, 1, 1)),
        (date(2027, 1, 2), date(2027, 1, 1)),  # the day before ends where 'from' starts: reversed all the same
        (datetime(2027, 1, 2, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2027, 1, 10, tzinfo=UTC), date(2027, 1, 1)),
        (date(2027, 1, 10), datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_a_reversed_range_is_refused(from_: date, to: date) -> None:
    assert code_of(instant_range, from_, to, NEW_YORK) == "range_reversed"


def test_a_reversed_range_of_local_dates_is_refused() -> None:
    assert code_of(local_dates, date(2027, 1, 10), date(2027, 1, 1)) == "range_reversed"


@pytest.mark.parametrize(
    "bound",
    [
        date(1, 1, 1),
        date(9999, 12, 31),
        date(1899, 12, 31),
        date(3000, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
        datetime(1, 1, 1, tzinfo=UTC),
    ],
)
def test_bounds_outside_the_years_are_refused(bound: date) -> None:
    assert code_of(instant_range, bound, None, NEW_YORK) == "date_out_of_range"
    assert code_of(instant_range, None, bound, NEW_YORK) == "date_out_of_range"


def test_the_edges_of_the_years_are_fine() -> None:
    assert instant_range(date(1900, 1, 1), date(2999, 12, 31), zoneinfo.ZoneInfo("Pacific/Kiritimati")).end
    assert local_dates(date(2999, 12, 31), date(2999, 12, 31)) == [date(2999, 12, 31)]


def test_an_instant_without_an_offset_is_refused() -> None:
    assert code_of(instant_range, datetime(2027, 1, 1, 10), None, NEW_YORK) == "naive_datetime"


def test_the_span_is_bounded_where_the_route_asks() -> None:
    assert instant_range(date(2027, 1, 1), date(2027, 1, 31), UTC_ZONE, max_days=31).end is not None
    assert code_of(instant_range, date(2027, 1, 1), date(2027, 2, 1), UTC_ZONE, max_days=31) == "range_too_long"
    assert len(local_dates(date(2025, 3, 2), date(2026, 3, 2), max_days=366)) == 366
    assert code_of(local_dates, date(2025, 3, 1), date(2026, 3, 2), max_days=366) == "range_too_long"


@settings(deadline=None)
@given(st.dates(date(1900, 1, 1), date(2999, 12, 31)), st.dates(date(1900, 1, 1), date(2999, 12, 31)))
def test_two_dates_are_a_range_exactly_when_in_order(first: date, last: date) -> None:
    if last < first:
        assert code_of(instant_range, first, last, NEW_YORK) == "range_reversed"
        assert code_of(local_dates, first, last) == "range_reversed"
    else:
        between = instant_range(first, last, NEW_YORK)
        assert between.start is not None and between.end is not None and between.start < between.end
        if (last - first).days > 1000:
            assert code_of(local_dates, first, last, max_days=1000) == "range_too_long"
            return
        days = local_dates(first, last, max_days=1000)
        assert days[0] == first and days[-1] == last and len(days) == (last - first).days + 1


# Cursors


@given(st.datetimes(timezones=st.timezones()), st.uuids())
def test_a_time_cursor_gives_back_its_instant_and_id(at: datetime, key: uuid.UUID) -> None:
    back, back_key = decode_time_cursor(encode_cursor(at, key))
    # Compared as text: Python never calls two zones' instants equal in a gap or fold, even when they are.
    assert (back.isoformat(), back_key) == (at.isoformat(), key)


@given(st.text(), st.uuids())
def test_a_text_cursor_gives_back_its_text_and_id_whatever_the_text_holds(text: str, key: uuid.UUID) -> None:
    assert decode_cursor(encode_cursor(text, key)) == (text, key)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64 at all!",
        "é",
        base64.urlsafe_b64encode(b"\xff\xfe|x").decode(),
        _b64("2027-01-01T00:00:00+00:00"),
        _b64("2027-01-01T00:00:00+00:00|not-a-uuid"),
        _b64(f"yesterday|{uuid.uuid4()}"),
        _b64(f"2027-01-01T00:00:00|{uuid.uuid4()}"),  # naive: not one we gave out
    ],
)
def test_a_cursor_we_did_not_give_out_is_bad_cursor(cursor: str) -> None:
    assert code_of(decode_time_cursor, cursor) == "bad_cursor"


def test_a_text_cursor_needs_only_an_id_after_its_last_bar() -> None:
    key = uuid.uuid4()
    assert decode_cursor(_b64(f"a|b|{key}")) == ("a|b", key)
    assert code_of(decode_cursor, _b64("no id here")) == "bad_cursor"
