"""Gatherings rules that need no I/O: recurrence in a site's zone (DST weeks, second Tuesdays, exceptions), how
parties fit, waitlist promotion order, capacity changes, registration windows, support types, the iCalendar feed."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest

from services.gatherings import domain
from services.gatherings.domain import CalendarEntry, Party, Room, WaitingParty
from shared.errors import InvalidInput

CHICAGO = ZoneInfo("America/Chicago")
NINETY_MINUTES = timedelta(minutes=90)
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
FAR_AHEAD = datetime(2030, 1, 1, tzinfo=UTC)


def plan(rule: str, first: datetime, **kw: object) -> list:
    kw = {"zone": CHICAGO, "duration": NINETY_MINUTES, "after": None, "until": FAR_AHEAD, "now": LONG_AGO} | kw
    return domain.plan_sessions(rule, first_local_start=first, **kw)  # type: ignore[arg-type]


def local(o) -> datetime:
    return o.starts_at.astimezone(CHICAGO)


# Recurrence


def test_weekly_tuesday_6pm_stays_6pm_local_across_the_march_change() -> None:
    # Chicago springs forward on Sunday 2027-03-14.
    sessions = plan("FREQ=WEEKLY;BYDAY=TU;COUNT=4", datetime(2027, 3, 2, 18, 0))
    assert [local(s).replace(tzinfo=None) for s in sessions] == [
        datetime(2027, 3, 2, 18),
        datetime(2027, 3, 9, 18),
        datetime(2027, 3, 16, 18),
        datetime(2027, 3, 23, 18),
    ]
    # The instants move by an hour: 00:00Z under CST (UTC-6), 23:00Z under CDT (UTC-5).
    assert [s.starts_at.astimezone(UTC).hour for s in sessions] == [0, 0, 23, 23]
    assert [local(s).utcoffset() for s in sessions] == [timedelta(hours=-6)] * 2 + [timedelta(hours=-5)] * 2
    assert all(s.ends_at - s.starts_at == NINETY_MINUTES for s in sessions)


def test_weekly_tuesday_6pm_stays_6pm_local_across_the_november_change() -> None:
    # Chicago falls back on Sunday 2027-11-07.
    sessions = plan("FREQ=WEEKLY;BYDAY=TU", datetime(2027, 10, 26, 18, 0), until=datetime(2027, 11, 17, tzinfo=UTC))
    assert [(local(s).date(), local(s).hour, local(s).minute) for s in sessions] == [
        (date(2027, 10, 26), 18, 0),
        (date(2027, 11, 2), 18, 0),
        (date(2027, 11, 9), 18, 0),
        (date(2027, 11, 16), 18, 0),
    ]
    assert [s.starts_at.astimezone(UTC).hour for s in sessions] == [23, 23, 0, 0]


def test_a_session_that_spans_the_change_lasts_its_length_in_exact_time() -> None:
    # Saturday 23:00 for 4 hours across spring-forward: RFC 5545 hours are exact, so it ends at 04:00 by the wall.
    [session] = plan("FREQ=WEEKLY;COUNT=1", datetime(2027, 3, 13, 23, 0), duration=timedelta(hours=4))
    assert session.ends_at.astimezone(CHICAGO).hour == 4
    assert session.ends_at - session.starts_at == timedelta(hours=4)


def test_monthly_on_the_second_tuesday() -> None:
    sessions = plan("FREQ=MONTHLY;BYDAY=2TU;COUNT=6", datetime(2027, 1, 12, 18, 30))
    assert [local(s).date() for s in sessions] == [
        date(2027, 1, 12),
        date(2027, 2, 9),
        date(2027, 3, 9),
        date(2027, 4, 13),
        date(2027, 5, 11),
        date(2027, 6, 8),
    ]
    assert {(local(s).hour, local(s).minute) for s in sessions} == {(18, 30)}
    assert all(local(s).weekday() == 1 and 8 <= local(s).day <= 14 for s in sessions)


def test_exceptions_by_date_and_by_local_start_time() -> None:
    sessions = plan(
        "FREQ=WEEKLY;BYDAY=TU;COUNT=5",
        datetime(2026, 12, 1, 18, 0),
        exceptions=[date(2026, 12, 22), datetime(2026, 12, 29, 18, 0), datetime(2026, 12, 8, 9, 0)],
    )
    # The 22nd goes by date, the 29th by its start time; 09:00 on the 8th matches no session, so the 8th stays.
    assert [local(s).date() for s in sessions] == [date(2026, 12, 1), date(2026, 12, 8), date(2026, 12, 15)]


def test_an_exception_names_the_local_wall_clock_time_not_utc() -> None:
    # 18:00 in Chicago is 00:00 UTC the next day; an exception for that UTC day must not remove it.
    sessions = plan("FREQ=WEEKLY;BYDAY=TU;COUNT=2", datetime(2026, 12, 1, 18, 0), exceptions=[date(2026, 12, 2)])
    assert [local(s).date() for s in sessions] == [date(2026, 12, 1), date(2026, 12, 8)]


def test_a_missing_local_time_on_the_spring_forward_day_moves_forward_by_the_gap() -> None:
    [session] = plan("FREQ=DAILY;COUNT=1", datetime(2027, 3, 14, 2, 30))
    assert (local(session).hour, local(session).minute) == (3, 30)


def test_a_repeated_local_time_on_the_fall_back_day_is_its_first_instance() -> None:
    [session] = plan("FREQ=DAILY;COUNT=1", datetime(2027, 11, 7, 1, 30))
    assert local(session).utcoffset() == timedelta(hours=-5)  # still CDT


def test_only_sessions_after_what_exists_and_not_yet_over_are_planned() -> None:
    first = datetime(2026, 12, 1, 18, 0)
    now = datetime(2026, 12, 9, 0, 45, tzinfo=UTC)  # the 8th's session (00:00-01:30Z on the 9th) is under way
    sessions = plan("FREQ=WEEKLY;BYDAY=TU", first, now=now, until=datetime(2026, 12, 31, tzinfo=UTC))
    assert [local(s).date() for s in sessions] == [
        date(2026, 12, 8),
        date(2026, 12, 15),
        date(2026, 12, 22),
        date(2026, 12, 29),
    ]
    later = plan(
        "FREQ=WEEKLY;BYDAY=TU", first, now=now, after=sessions[-1].starts_at, until=datetime(2027, 1, 14, tzinfo=UTC)
    )
    assert [local(s).date() for s in later] == [date(2027, 1, 5), date(2027, 1, 12)]


def test_until_and_count_in_the_rule_end_the_group() -> None:
    assert len(plan("FREQ=WEEKLY;COUNT=3", datetime(2026, 12, 1, 18))) == 3
    until = plan("FREQ=WEEKLY;UNTIL=20261216T000000", datetime(2026, 12, 1, 18))
    assert [local(s).date() for s in until] == [date(2026, 12, 1), date(2026, 12, 8), date(2026, 12, 15)]


def test_a_rule_that_fills_the_calendar_is_refused() -> None:
    with pytest.raises(domain.TooManySessions):
        plan(
            "FREQ=DAILY;BYHOUR=8,9,10,11,12,13,14,15,16,17",
            datetime(2026, 12, 1, 8),
            until=datetime(2027, 6, 1, tzinfo=UTC),
        )


@pytest.mark.parametrize("rule", ["FREQ=HOURLY", "FREQ=WEEKLY;BYDAY=XX", "DTSTART:20261201T180000\nFREQ=WEEKLY", ""])
def test_bad_rules_are_invalid_input(rule: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        plan(rule, datetime(2026, 12, 1, 18))
    assert raised.value.code == "bad_rrule"


def test_stored_exceptions_read_back_as_dates_or_times() -> None:
    assert domain.parse_exception("2026-12-22") == date(2026, 12, 22)
    assert domain.parse_exception("2026-12-29T18:00:00") == datetime(2026, 12, 29, 18, 0)


# Parties and seats


def test_adults_count_against_capacity_and_children_against_child_care_seats() -> None:
    room = domain.room_left(capacity=10, child_care_seats=4, taken_adults=8, taken_children=1)
    assert room == Room(2, 3)
    assert room.fits(Party(2, 3))
    assert not room.fits(Party(3, 0))
    assert not room.fits(Party(1, 4))
    assert room.after_seating(Party(2, 1)) == Room(0, 2)


def test_a_session_without_child_care_seats_takes_no_children() -> None:
    room = domain.room_left(capacity=12, child_care_seats=0, taken_adults=0, taken_children=0)
    assert room.fits(Party(1, 0))
    assert not room.fits(Party(1, 1))
    assert not domain.can_ever_fit(Party(1, 1), 12, 0)


def test_a_party_bigger_than_the_whole_gathering_can_never_fit() -> None:
    assert domain.can_ever_fit(Party(10, 4), 10, 4)
    assert not domain.can_ever_fit(Party(11, 0), 10, 4)
    assert not domain.can_ever_fit(Party(1, 5), 10, 4)


def waiting(*parties: tuple[int, int]) -> list[WaitingParty[str]]:
    return [WaitingParty(f"p{i}", Party(a, c)) for i, (a, c) in enumerate(parties, start=1)]


def test_promotion_takes_waiting_parties_in_order_while_they_fit() -> None:
    assert domain.promote(waiting((1, 0), (1, 0), (1, 0)), Room(2, 0)) == ["p1", "p2"]


def test_a_big_party_that_does_not_fit_is_skipped_but_keeps_its_place() -> None:
    line = waiting((4, 0), (1, 0), (2, 0), (1, 0))
    # Three seats free: the family of four cannot sit; the next ones that fit do, in order.
    assert domain.promote(line, Room(3, 0)) == ["p2", "p3"]
    still_waiting = [w for w in line if w.key not in {"p2", "p3"}]
    assert [w.key for w in still_waiting] == ["p1", "p4"]
    # When four more seats free up, the family (still first in line) goes before the later single.
    assert domain.promote(still_waiting, Room(4, 0)) == ["p1"]
    assert domain.promote(still_waiting, Room(5, 0)) == ["p1", "p4"]


def test_children_need_child_care_seats_to_be_promoted() -> None:
    line = waiting((1, 2), (1, 0), (1, 1))
    assert domain.promote(line, Room(3, 1)) == ["p2", "p3"]
    assert domain.promote(line, Room(3, 2)) == ["p1", "p2"]


def test_nothing_is_promoted_without_an_adult_seat() -> None:
    assert domain.promote(waiting((1, 0)), Room(0, 5)) == []
    assert domain.promote([], Room(5, 5)) == []


def test_after_promotion_no_waiting_party_fits_the_room_left() -> None:
    """The invariant that lets a new registration be seated exactly when it fits."""
    rng = random.Random(20261126)
    for _ in range(500):
        line = [WaitingParty(i, Party(rng.randint(1, 4), rng.randint(0, 3))) for i in range(rng.randint(0, 12))]
        room = Room(rng.randint(0, 10), rng.randint(0, 5))
        promoted = domain.promote(line, room)
        for key in promoted:
            room = room.after_seating(line[key].party)
        assert room.adults >= 0 and room.children >= 0
        assert promoted == sorted(promoted), "promotion follows the waitlist order"
        assert not any(room.fits(w.party) for w in line if w.key not in promoted)


def test_promotion_equals_seating_the_first_party_that_fits_again_and_again() -> None:
    rng = random.Random(7)
    for _ in range(300):
        line = [WaitingParty(i, Party(rng.randint(1, 3), rng.randint(0, 2))) for i in range(rng.randint(0, 10))]
        room = Room(rng.randint(0, 8), rng.randint(0, 4))
        expected, left, remaining = [], room, list(line)
        while (first := next((w for w in remaining if left.fits(w.party)), None)) is not None:
            expected.append(first.key)
            left = left.after_seating(first.party)
            remaining.remove(first)
        assert domain.promote(line, room) == expected


# Capacity changes


def test_capacity_cannot_drop_below_the_seats_taken() -> None:
    kw = {"taken_adults": 8, "taken_children": 2, "waiting": []}
    assert domain.capacity_change_problem(capacity=8, child_care_seats=2, **kw) is None
    assert domain.capacity_change_problem(capacity=7, child_care_seats=2, **kw) == "capacity_below_confirmed"
    assert domain.capacity_change_problem(capacity=9, child_care_seats=1, **kw) == "capacity_below_confirmed"


def test_capacity_cannot_drop_below_what_a_waiting_party_needs() -> None:
    problem = domain.capacity_change_problem(
        capacity=5, child_care_seats=3, taken_adults=5, taken_children=0, waiting=[Party(1, 0), Party(6, 0)]
    )
    assert problem == "capacity_below_waiting_party"


# Registration windows


def test_registration_closes_at_the_start_unless_the_coordinator_says_otherwise() -> None:
    starts = datetime(2026, 12, 20, 18, tzinfo=UTC)
    assert domain.registration_closes_at(starts, None) == starts
    earlier = starts - timedelta(days=1)
    assert domain.registration_closes_at(starts, earlier) == earlier


def test_window_state() -> None:
    opens = datetime(2026, 12, 1, tzinfo=UTC)
    closes = datetime(2026, 12, 20, tzinfo=UTC)
    assert domain.window_state(opens - timedelta(seconds=1), opens, closes) == "not_open_yet"
    assert domain.window_state(opens, opens, closes) == "open"
    assert domain.window_state(closes - timedelta(seconds=1), None, closes) == "open"
    assert domain.window_state(closes, opens, closes) == "closed"


# Support types


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("sober_social", "affiliational"),
        ("payday", "affiliational"),
        ("holiday", "affiliational"),
        ("sports", "affiliational"),
        ("education", "informational"),
        ("other", None),
    ],
)
def test_events_count_as_a_support_type_by_kind_unless_given(kind: str, expected: str | None) -> None:
    assert domain.sober_event_support_type(kind, None) == expected  # type: ignore[arg-type]
    assert domain.sober_event_support_type(kind, "instrumental") == "instrumental"  # type: ignore[arg-type]


# The public calendar


def test_calendar_has_one_vevent_per_entry_in_the_site_zone() -> None:
    sessions = plan("FREQ=WEEKLY;BYDAY=TU;COUNT=4", datetime(2027, 3, 2, 18, 0))
    entries = [
        CalendarEntry(
            uid=f"{uuid.uuid4()}@test",
            summary="Tuesday re-entry group; all welcome",
            starts_at=s.starts_at,
            ends_at=s.ends_at,
            location="Room 2",
            categories=("recovery group", "emotional"),
            revision=i,
            updated_at=datetime(2027, 1, 4, 12, 30, tzinfo=CHICAGO),
            cancelled=i == 3,
        )
        for i, s in enumerate(sessions)
    ]
    feed = domain.build_calendar(entries, zone=CHICAGO, calendar_name="Test center", now=LONG_AGO)
    parsed = icalendar.Calendar.from_ical(feed)
    events = list(parsed.walk("VEVENT"))
    assert len(events) == 4
    assert [e.decoded("dtstart").replace(tzinfo=None) for e in events] == [
        datetime(2027, 3, 2, 18),
        datetime(2027, 3, 9, 18),
        datetime(2027, 3, 16, 18),
        datetime(2027, 3, 23, 18),
    ]
    assert all(e["dtstart"].params["TZID"] == "America/Chicago" for e in events)
    assert [e.decoded("dtstart").astimezone(UTC) for e in events] == [s.starts_at for s in sessions]
    assert str(events[0]["summary"]) == "Tuesday re-entry group; all welcome"
    assert [e.decoded("sequence") for e in events] == [0, 1, 2, 3]
    assert [str(e["status"]) for e in events] == ["CONFIRMED"] * 3 + ["CANCELLED"]
    # LAST-MODIFIED is a UTC time (RFC 5545 3.8.7.3).
    assert all(e["last-modified"].to_ical() == b"20270104T183000Z" for e in events)
    assert [tz["tzid"] for tz in parsed.walk("VTIMEZONE")] == ["America/Chicago"]


def test_an_empty_calendar_is_still_a_calendar() -> None:
    parsed = icalendar.Calendar.from_ical(
        domain.build_calendar([], zone=CHICAGO, calendar_name="Test center", now=LONG_AGO)
    )
    assert list(parsed.walk("VEVENT")) == []
