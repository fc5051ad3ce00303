"""The pure rules of the reports: local dates and ranges across zones and DST, day bitmaps, the occupancy sweep,
hours as decimals, small-cell suppression, and reading event data strictly (a malformed event is skipped, never
fatal to the audit append)."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import UTC, date, datetime, timedelta

import pytest

from services.audit.reports.facts import LoggedEvent, extract
from services.audit.reports.rules import (
    HOUR,
    LONG_VISIT,
    bits_to_dates,
    contiguous_runs,
    day_bit,
    day_start,
    days_of,
    floor_hour,
    hours_overlapping,
    hours_text,
    local_date,
    merged,
    open_peaks,
    overlapping,
    peak_open,
    range_masks,
    window,
    zone_named,
)
from services.audit.reports.suppression import Suppressor, suppressed
from services.audit.reports.tables import MEMBER_BLOCK, bits_text, bits_value

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")
SANTIAGO = zoneinfo.ZoneInfo("America/Santiago")  # its DST starts at midnight: 00:00 does not exist that day


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- zones and dates ---------------------------------------------------------------------------------------------


def test_local_date_is_the_instant_in_the_sites_zone() -> None:
    late_evening = utc(2026, 3, 2, 4, 30)  # 22:30 on March 1 in Chicago, 10:00 on March 2 in Kolkata
    assert local_date(late_evening, CHICAGO) == date(2026, 3, 1)
    assert local_date(late_evening, KOLKATA) == date(2026, 3, 2)


def test_an_unknown_or_missing_zone_is_utc() -> None:
    assert zone_named(None).key == "UTC"
    assert zone_named("Not/AZone").key == "UTC"
    assert zone_named("America").key == "UTC"  # a directory, not a zone
    assert zone_named("Asia/Kolkata") == KOLKATA


def test_a_range_is_inclusive_local_dates_as_instants() -> None:
    start, end = window(date(2026, 3, 1), date(2026, 3, 31), CHICAGO)
    assert start == utc(2026, 3, 1, 6)  # CST, UTC-6
    assert end == utc(2026, 4, 1, 5)  # CDT, UTC-5: the clocks went forward on March 8
    assert end - start == timedelta(days=31) - HOUR


def test_days_with_a_clock_change_are_23_or_25_hours() -> None:
    spring = window(date(2026, 3, 8), date(2026, 3, 8), CHICAGO)
    autumn = window(date(2026, 11, 1), date(2026, 11, 1), CHICAGO)
    assert spring[1] - spring[0] == timedelta(hours=23)
    assert autumn[1] - autumn[0] == timedelta(hours=25)


def test_a_day_whose_midnight_does_not_exist_starts_at_the_first_instant_it_has() -> None:
    # In Santiago on 2026-09-06 the clocks jump from 00:00 to 01:00.
    start = day_start(date(2026, 9, 6), SANTIAGO)
    assert local_date(start, SANTIAGO) == date(2026, 9, 6)
    assert local_date(start - timedelta(microseconds=1), SANTIAGO) == date(2026, 9, 5)
    assert start.astimezone(SANTIAGO).hour == 1


def test_a_half_hour_zone_starts_its_day_off_the_hour() -> None:
    start = day_start(date(2026, 3, 1), KOLKATA)
    assert start == utc(2026, 2, 28, 18, 30)
    assert floor_hour(start) == utc(2026, 2, 28, 18)


def test_a_range_of_366_days_has_366_days() -> None:
    assert len(days_of(date(2025, 3, 2), date(2026, 3, 2))) == 366


def test_hours_overlapping_an_interval() -> None:
    hours = hours_overlapping(utc(2026, 3, 1, 9, 30), utc(2026, 3, 1, 11, 0))
    assert hours == [utc(2026, 3, 1, 9), utc(2026, 3, 1, 10)]
    assert hours_overlapping(utc(2026, 3, 1, 9), utc(2026, 3, 1, 9)) == []
    assert hours_overlapping(utc(2026, 3, 1, 9), None) == []
    assert contiguous_runs([utc(2026, 3, 1, 10), utc(2026, 3, 1, 9), utc(2026, 3, 1, 12), utc(2026, 3, 1, 9)]) == [
        (utc(2026, 3, 1, 9), utc(2026, 3, 1, 11)),
        (utc(2026, 3, 1, 12), utc(2026, 3, 1, 13)),
    ]


def test_windows_merge_when_they_touch_or_overlap() -> None:
    a, b, c = utc(2026, 3, 1, 9), utc(2026, 3, 1, 10), utc(2026, 3, 1, 12)
    assert merged([(b, c), (a, b), (c + HOUR, c + 2 * HOUR)]) == [(a, c), (c + HOUR, c + 2 * HOUR)]
    assert merged([]) == []


def test_visits_open_in_runs_of_hours_are_found_by_bounded_ranges() -> None:
    from sqlalchemy import column
    from sqlalchemy.dialects import postgresql

    runs = [(utc(2026, 3, 1, 9), utc(2026, 3, 1, 11)), (utc(2026, 3, 2, 9), utc(2026, 3, 2, 10))]
    short = overlapping(column("checked_in_at"), column("checked_out_at"), runs, short=True)
    sql = str(short.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    assert sql.count(" OR ") == 1
    assert f"checked_in_at >= '{(runs[0][0] - LONG_VISIT).isoformat(sep=' ')}'" in sql  # bounded by the lookback
    long = overlapping(column("checked_in_at"), column("checked_out_at"), runs, short=False)
    assert "checked_out_at >" in str(long.compile(dialect=postgresql.dialect()))


# --- day bitmaps -------------------------------------------------------------------------------------------------


def test_a_day_is_one_bit_of_its_year() -> None:
    assert day_bit(date(2026, 1, 1)) == (2026, 1)
    assert day_bit(date(2026, 1, 3)) == (2026, 4)
    assert day_bit(date(2024, 12, 31)) == (2024, 1 << 365)  # a leap year has 366 days


def test_range_masks_split_at_the_new_year() -> None:
    masks = range_masks(date(2025, 12, 30), date(2026, 1, 2))
    assert bits_to_dates(2025, masks[2025]) == [date(2025, 12, 30), date(2025, 12, 31)]
    assert bits_to_dates(2026, masks[2026]) == [date(2026, 1, 1), date(2026, 1, 2)]
    assert range_masks(date(2026, 3, 1), date(2026, 3, 1)) == {2026: day_bit(date(2026, 3, 1))[1]}


def test_bitmaps_travel_as_text_with_bit_zero_leftmost() -> None:
    bits = day_bit(date(2026, 1, 1))[1] | day_bit(date(2026, 1, 3))[1]
    text = bits_text(bits, 366)
    assert len(text) == 366 and text.startswith("101") and set(text[3:]) == {"0"}
    assert bits_value(text) == bits
    member = bits_text(1 << 8191, MEMBER_BLOCK)  # SQL's get_bit(members, 8191) is the last character
    assert len(member) == MEMBER_BLOCK and member.endswith("1") and bits_value(member) == 1 << 8191


# --- occupancy ---------------------------------------------------------------------------------------------------

T = utc(2026, 3, 1, 15)


def at(minutes: int) -> datetime:
    return T + timedelta(minutes=minutes)


def test_overlapping_visits_count_together() -> None:
    assert peak_open([(at(0), at(60)), (at(30), at(90)), (at(45), at(50))]) == 3


def test_a_check_out_and_a_check_in_at_the_same_instant_do_not_overlap() -> None:
    assert peak_open([(at(0), at(30)), (at(30), at(60))]) == 1
    assert peak_open([(at(0), at(30)), (at(30), at(60)), (at(30), at(40))]) == 2


def test_a_visit_of_zero_length_is_never_open() -> None:
    assert peak_open([(at(10), at(10))]) == 0
    assert peak_open([(at(0), at(30)), (at(10), at(10))]) == 1


def test_a_visit_without_check_out_stays_open() -> None:
    assert peak_open([(at(0), None), (at(500), at(510))]) == 2


def test_peaks_per_hour_count_what_is_open_at_the_hours_start() -> None:
    intervals = [(at(-30), at(20)), (at(10), at(70)), (at(65), at(80))]
    hours = [(T, T + HOUR), (T + HOUR, T + 2 * HOUR), (T + 2 * HOUR, T + 3 * HOUR)]
    assert open_peaks(intervals, hours) == [2, 2, 0]


def test_no_visits_no_peak() -> None:
    assert peak_open([]) == 0
    assert open_peaks([], [(T, T + HOUR)]) == [0]


# --- numbers as reported -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "text"), [(0, "0.00"), (30, "0.50"), (61, "1.02"), (1, "0.02"), (125, "2.08"), (-45, "-0.75")]
)
def test_hours_are_two_decimals_half_up_from_the_exact_minutes(minutes: int, text: str) -> None:
    assert hours_text(minutes) == text


def test_small_counts_are_withheld_but_zero_is_not() -> None:
    assert suppressed(3, 5) and suppressed(1, 5)
    assert not suppressed(0, 5) and not suppressed(5, 5) and not suppressed(3, None)
    count = Suppressor(10)
    assert [count(v) for v in (0, 9, 10, 250)] == [0, None, 10, 250]
    assert count.any
    untouched = Suppressor(None)
    assert untouched(1) == 1 and not untouched.any


# --- reading events strictly -------------------------------------------------------------------------------------


def logged(type_: str, **data: object) -> LoggedEvent:
    return LoggedEvent(uuid.uuid4(), type_, "site-a", T, data)


def test_each_known_type_becomes_a_fact_and_others_are_ignored() -> None:
    visit = str(uuid.uuid4())
    batch = extract(
        [
            logged(
                "checkin.visitor_checked_in",
                visit_id=visit,
                member_id=None,
                anonymous=True,
                purpose="drop_in",
                support_type="affiliational",
                checked_in_at=T.isoformat(),
            ),
            logged("volunteering.stipend_paid", payout_id=str(uuid.uuid4()), amount_cents=2500),
            logged("audit.report_requested", report="summary"),
            logged("checkin.member_registered", member_id=str(uuid.uuid4())),
        ]
    )
    assert batch.projected == 2 and batch.skipped == 0
    assert batch.visits[0].anonymous and batch.visits[0].checked_in
    assert batch.counters[0].column == "stipends_paid_cents" and batch.counters[0].amount == 2500


def test_a_stipend_reversal_takes_its_positive_amount_off_the_accrued_sum() -> None:
    batch = extract([logged("volunteering.stipend_reversed", entry_id=str(uuid.uuid4()), amount_cents=1200)])
    assert (batch.counters[0].column, batch.counters[0].amount) == ("stipends_accrued_cents", -1200)


@pytest.mark.parametrize(
    "event",
    [
        logged("checkin.visitor_checked_in", visit_id="not-a-uuid", checked_in_at=T.isoformat()),
        logged("checkin.visitor_checked_in", visit_id=str(uuid.uuid4())),  # no checked_in_at
        logged(
            "checkin.visitor_checked_in",
            visit_id=str(uuid.uuid4()),
            member_id=None,
            checked_in_at="2026-03-01T10:00:00",
        ),  # no offset
        logged(
            "volunteering.hours_approved",
            hours_id=str(uuid.uuid4()),
            member_id=str(uuid.uuid4()),
            role_id="front_desk",
            shift_starts_at=T.isoformat(),
            minutes="90",
        ),
        logged("volunteering.stipend_accrued", amount_cents=True),
        logged(
            "gatherings.attended",
            attendance_id=str(uuid.uuid4()),
            session_id=None,
            event_id=None,
            starts_at=T.isoformat(),
        ),
    ],
)
def test_malformed_event_data_is_skipped_not_fatal(event: LoggedEvent) -> None:
    batch = extract([event])
    assert (batch.projected, batch.skipped) == (0, 1)


def test_a_logged_event_reads_the_canonical_body() -> None:
    body = (
        '{"data":{"x":1},"id":"6f1c2a52-8d4e-4c1a-9a57-2b0d7e1f3c11","siteid":"s","source":"/rcc/x",'
        '"specversion":"1.0","time":"2026-03-01T15:00:00.000000Z","type":"t"}'
    )
    event = LoggedEvent.from_body(body)
    assert event.event_id == uuid.UUID("6f1c2a52-8d4e-4c1a-9a57-2b0d7e1f3c11")
    assert (event.type, event.site_id, event.time, dict(event.data)) == ("t", "s", T, {"x": 1})
