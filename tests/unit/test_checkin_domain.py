"""Check-in rules that need no I/O: kiosk codes, support types, occupancy, closing times."""

from __future__ import annotations

import typing
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from services.checkin import domain
from shared.contracts.checkin import SUPPORT_TYPE_OF_PURPOSE, Purpose

NEW_YORK = ZoneInfo("America/New_York")
NINE_PM = time(21, 0)


# Kiosk codes


def test_alphabet_leaves_out_characters_that_are_easy_to_confuse() -> None:
    for ambiguous in "0O1I":
        assert ambiguous not in domain.KIOSK_CODE_ALPHABET


def test_alphabet_has_no_duplicates_and_only_upper_case() -> None:
    alphabet = domain.KIOSK_CODE_ALPHABET
    assert len(set(alphabet)) == len(alphabet)
    assert alphabet == alphabet.upper()


@pytest.mark.parametrize("length", [4, 6, 8, 12])
def test_new_code_has_the_asked_length_and_uses_only_the_alphabet(length: int) -> None:
    for _ in range(50):
        code = domain.new_kiosk_code(length)
        assert len(code) == length
        assert set(code) <= set(domain.KIOSK_CODE_ALPHABET)
        assert domain.is_well_formed_code(code)


def test_default_code_length_is_six() -> None:
    assert len(domain.new_kiosk_code()) == 6


def test_new_codes_are_random() -> None:
    assert len({domain.new_kiosk_code(8) for _ in range(50)}) > 45


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("abc234", "ABC234"),
        ("AbC-234", "ABC234"),
        ("abc 234", "ABC234"),
        (" abc-2 34 ", "ABC234"),
        ("ab_c.234", "ABC234"),
        ("ABC234", "ABC234"),
    ],
)
def test_normalize_ignores_case_and_separators(typed: str, stored: str) -> None:
    assert domain.normalize_kiosk_code(typed) == stored


@pytest.mark.parametrize("code", ["ABCD", "23456789ABCD", "XYZ234"])
def test_well_formed_codes(code: str) -> None:
    assert domain.is_well_formed_code(code)


@pytest.mark.parametrize(
    "code",
    [
        "",
        "ABC",  # too short
        "23456789ABCDE",  # 13: too long
        "ABC0DE",  # zero is not in the alphabet
        "ABCODE",  # nor O
        "ABC1DE",  # nor 1
        "ABCIDE",  # nor I
        "abcdef",  # lower case is normalized before, not accepted here
        "ABC-DE",
    ],
)
def test_malformed_codes(code: str) -> None:
    assert not domain.is_well_formed_code(code)


# Support types (SAMHSA)

EXPECTED_SUPPORT = {
    "volunteer_shift": None,
    "drop_in": "affiliational",
    "sober_event": "affiliational",
    "peer_mentoring": "emotional",
    "recovery_group": "emotional",
    "education": "informational",
    "resource_connecting": "instrumental",
}


def test_every_purpose_has_a_support_type_entry() -> None:
    assert set(typing.get_args(Purpose)) == set(EXPECTED_SUPPORT) == set(SUPPORT_TYPE_OF_PURPOSE)


@pytest.mark.parametrize("purpose", typing.get_args(Purpose))
def test_purpose_maps_to_its_support_type(purpose: str) -> None:
    assert domain.support_type_of(purpose) == EXPECTED_SUPPORT[purpose]  # type: ignore[arg-type]


# Occupancy


@pytest.mark.parametrize(
    ("present", "capacity", "expected"),
    [
        (0, 40, "ok"),
        (35, 40, "ok"),  # 35 < 36
        (36, 40, "near"),  # exactly 90 %
        (39, 40, "near"),
        (40, 40, "full"),
        (45, 40, "full"),  # over capacity is still full
        (0, 1, "ok"),
        (1, 1, "full"),
    ],
)
def test_occupancy_status_boundaries(present: int, capacity: int, expected: str) -> None:
    assert domain.occupancy_status(present, capacity, near_ratio=0.9) == expected


# Closing time


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)  # type: ignore[misc]


def test_check_in_before_closing_closes_the_same_day() -> None:
    closing = domain.closing_instant_after(local(2026, 6, 10, 14, 0), NEW_YORK, NINE_PM)
    assert closing == local(2026, 6, 10, 21, 0)
    assert closing.astimezone(UTC) == datetime(2026, 6, 11, 1, 0, tzinfo=UTC)  # EDT is UTC-4


def test_check_in_after_closing_closes_the_next_day() -> None:
    closing = domain.closing_instant_after(local(2026, 6, 10, 22, 30), NEW_YORK, NINE_PM)
    assert closing == local(2026, 6, 11, 21, 0)


def test_check_in_exactly_at_closing_closes_the_next_day() -> None:
    closing = domain.closing_instant_after(local(2026, 6, 10, 21, 0), NEW_YORK, NINE_PM)
    assert closing == local(2026, 6, 11, 21, 0)


def test_check_in_given_in_utc_uses_the_site_local_date() -> None:
    # 2026-06-11 00:30Z is 20:30 on the 10th in New York: closing is 21:00 on the 10th.
    closing = domain.closing_instant_after(datetime(2026, 6, 11, 0, 30, tzinfo=UTC), NEW_YORK, NINE_PM)
    assert closing.astimezone(UTC) == datetime(2026, 6, 11, 1, 0, tzinfo=UTC)


def test_closing_across_the_spring_forward_change_keeps_the_wall_clock_time() -> None:
    # 2026-03-08 is the US change to daylight time: 21:00 that evening is EDT (UTC-4).
    closing = domain.closing_instant_after(local(2026, 3, 7, 22, 30), NEW_YORK, NINE_PM)
    assert closing.astimezone(NEW_YORK).replace(tzinfo=None) == datetime(2026, 3, 8, 21, 0)
    assert closing.astimezone(UTC) == datetime(2026, 3, 9, 1, 0, tzinfo=UTC)


def test_closing_across_the_fall_back_change_keeps_the_wall_clock_time() -> None:
    # 2026-11-01 is the US change back to standard time: 21:00 that evening is EST (UTC-5).
    closing = domain.closing_instant_after(local(2026, 10, 31, 22, 30), NEW_YORK, NINE_PM)
    assert closing.astimezone(NEW_YORK).replace(tzinfo=None) == datetime(2026, 11, 1, 21, 0)
    assert closing.astimezone(UTC) == datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


def test_closing_instant_is_after_a_check_in_in_the_repeated_fall_back_hour() -> None:
    # 06:15Z on 2026-11-01 is 01:15 EST, the *second* 01:15 of that night. The site closes at 01:30, so the
    # first closing after this check-in is 01:30 EST (06:30Z); 01:30 EDT (05:30Z) was 45 minutes earlier.
    checked_in_at = datetime(2026, 11, 1, 6, 15, tzinfo=UTC)
    closing = domain.closing_instant_after(checked_in_at, NEW_YORK, time(1, 30))
    assert closing.astimezone(UTC) > checked_in_at
    assert closing.astimezone(UTC) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


SAMPLE_CHECK_INS = [
    datetime(2026, month, day, hour, 17, tzinfo=UTC)
    for month in (1, 3, 7, 11)
    for day in (1, 8, 15)
    for hour in (0, 5, 13, 23)
]


@pytest.mark.parametrize("checked_in_at", SAMPLE_CHECK_INS)
def test_closing_instant_is_always_after_the_check_in_and_at_closing_wall_time(checked_in_at: datetime) -> None:
    closing = domain.closing_instant_after(checked_in_at, NEW_YORK, NINE_PM)
    assert closing.astimezone(UTC) > checked_in_at
    assert (closing.astimezone(UTC) - checked_in_at).total_seconds() <= 25 * 3600
    assert closing.astimezone(NEW_YORK).time() == NINE_PM


# Minutes


@pytest.mark.parametrize(
    ("start", "end", "minutes"),
    [
        (datetime(2026, 1, 1, 10, 0, tzinfo=UTC), datetime(2026, 1, 1, 10, 0, tzinfo=UTC), 0),
        (datetime(2026, 1, 1, 10, 0, tzinfo=UTC), datetime(2026, 1, 1, 10, 0, 59, tzinfo=UTC), 0),
        (datetime(2026, 1, 1, 10, 0, tzinfo=UTC), datetime(2026, 1, 1, 10, 1, tzinfo=UTC), 1),
        (datetime(2026, 1, 1, 10, 0, tzinfo=UTC), datetime(2026, 1, 1, 11, 35, 30, tzinfo=UTC), 95),
        (datetime(2026, 1, 1, 10, 0, tzinfo=UTC), datetime(2026, 1, 1, 9, 0, tzinfo=UTC), 0),  # never negative
    ],
)
def test_minutes_between(start: datetime, end: datetime, minutes: int) -> None:
    assert domain.minutes_between(start, end) == minutes


def test_minutes_between_a_utc_check_in_and_a_local_closing_instant_counts_real_time() -> None:
    # What auto-close does: check-in from the clock (UTC), checkout at the site's closing instant (local zone).
    # 21:30 EST on 03-07 (02:30Z on 03-08) to 21:00 EDT on 03-08 (01:00Z on 03-09) is 22.5 hours, not 23.5.
    checked_in_at = datetime(2026, 3, 8, 2, 30, tzinfo=UTC)
    closing = domain.closing_instant_after(checked_in_at, NEW_YORK, NINE_PM)
    assert domain.minutes_between(checked_in_at, closing) == 22 * 60 + 30
