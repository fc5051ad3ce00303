"""Volunteering rules without I/O: qualification, overlap, cutoff, hours rounding, recurrence across DST, who acts
on whom, and the request bodies' validation."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

import pytest
from pydantic import ValidationError

from services.volunteering import domain
from services.volunteering.commands import SeriesBody, ShiftBody, ShiftPatchBody, SignUpBody, TrainingBody
from shared.errors import Forbidden, InvalidInput

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
SITE = "downtown"
MEMBER = uuid.uuid4()
SHIFT_DAY = date(2026, 6, 10)


def profile(*roles: str, active: bool = True, site_id: str = SITE) -> domain.Profile:
    return domain.Profile(MEMBER, site_id, roles, active)


def trained(training_id: str, completed: date, expires: date | None) -> domain.TrainingRecord:
    return domain.TrainingRecord(training_id, completed, expires)


def qualify(
    p: domain.Profile | None,
    trainings: list[domain.TrainingRecord],
    *,
    required: tuple[str, ...] = ("cprs",),
    role: str = "peer_mentor",
    on: date = SHIFT_DAY,
) -> domain.Qualification:
    return domain.qualification(p, site_id=SITE, role_id=role, required_trainings=required, trainings=trainings, on=on)


# Qualification


def test_a_volunteer_with_the_role_and_a_current_certification_is_qualified() -> None:
    verdict = qualify(profile("peer_mentor"), [trained("cprs", date(2025, 1, 1), date(2027, 1, 1))])
    assert verdict.ok
    assert verdict.code is None


def test_a_missing_training_blocks_the_role() -> None:
    verdict = qualify(profile("peer_mentor"), [trained("first_aid", date(2025, 1, 1), None)])
    assert (verdict.code, verdict.reason, verdict.missing_trainings) == (
        "not_qualified",
        "training_missing_or_expired",
        ("cprs",),
    )


def test_a_certification_that_expired_before_the_shift_date_blocks_it() -> None:
    verdict = qualify(profile("peer_mentor"), [trained("cprs", date(2024, 1, 1), SHIFT_DAY - timedelta(days=1))])
    assert verdict.code == "not_qualified"
    assert verdict.missing_trainings == ("cprs",)


def test_a_certification_valid_through_the_shift_date_counts_and_one_expiring_later_too() -> None:
    assert qualify(profile("peer_mentor"), [trained("cprs", date(2024, 1, 1), SHIFT_DAY)]).ok
    assert qualify(profile("peer_mentor"), [trained("cprs", date(2024, 1, 1), SHIFT_DAY + timedelta(days=1))]).ok


def test_qualification_is_judged_on_the_shift_date_not_today() -> None:
    expires_next_week = [trained("cprs", date(2024, 1, 1), SHIFT_DAY + timedelta(days=7))]
    assert qualify(profile("peer_mentor"), expires_next_week, on=SHIFT_DAY + timedelta(days=6)).ok
    assert not qualify(profile("peer_mentor"), expires_next_week, on=SHIFT_DAY + timedelta(days=8)).ok


def test_a_training_completed_after_the_shift_does_not_qualify_for_it() -> None:
    assert not qualify(profile("peer_mentor"), [trained("cprs", SHIFT_DAY + timedelta(days=1), None)]).ok


def test_a_renewal_counts_even_when_an_older_record_expired() -> None:
    records = [trained("cprs", date(2022, 1, 1), date(2024, 1, 1)), trained("cprs", date(2024, 1, 1), None)]
    assert qualify(profile("peer_mentor"), records).ok


def test_every_required_training_is_needed() -> None:
    verdict = qualify(
        profile("peer_mentor"), [trained("cprs", date(2024, 1, 1), None)], required=("cprs", "naloxone", "orientation")
    )
    assert verdict.missing_trainings == ("naloxone", "orientation")


def test_a_role_without_requirements_needs_only_the_role() -> None:
    assert qualify(profile("front_desk"), [], required=(), role="front_desk").ok
    assert qualify(profile("peer_mentor"), [], required=(), role="front_desk").reason == "role_not_assigned"


def test_no_profile_a_paused_one_or_one_at_another_site_blocks_sign_up() -> None:
    current = [trained("cprs", date(2024, 1, 1), None)]
    assert qualify(None, current).reason == "no_profile"
    assert qualify(profile("peer_mentor", site_id="uptown"), current).reason == "no_profile"
    paused = qualify(profile("peer_mentor", active=False), current)
    assert (paused.code, paused.reason) == ("volunteer_paused", "paused")


def test_the_local_date_decides_not_the_utc_date() -> None:
    late_evening = datetime(2026, 6, 11, 2, 30, tzinfo=UTC)  # 22:30 on June 10 in New York
    assert domain.local_date(late_evening, NEW_YORK) == date(2026, 6, 10)


# Overlap


def at(hour: int, minute: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((at(9), at(12)), (at(11), at(14)), True),  # partly
        ((at(9), at(17)), (at(11), at(12)), True),  # contains
        ((at(11), at(12)), (at(9), at(17)), True),  # inside
        ((at(9), at(12)), (at(9), at(12)), True),  # the same
        ((at(9), at(12)), (at(12), at(15)), False),  # back to back
        ((at(12), at(15)), (at(9), at(12)), False),
        ((at(9), at(12)), (at(13), at(15)), False),  # apart
        ((at(22, day=10), at(2, day=11)), (at(1, day=11), at(3, day=11)), True),  # across midnight
    ],
)
def test_overlap_is_of_half_open_intervals(a: tuple, b: tuple, expected: bool) -> None:
    assert domain.overlaps(*a, *b) is expected
    assert domain.overlaps(*b, *a) is expected


# Cutoff


def test_the_drop_cutoff_starts_exactly_cutoff_before_the_start() -> None:
    starts = at(18, day=12)
    cutoff = timedelta(hours=24)
    assert not domain.within_cutoff(starts - timedelta(hours=24, seconds=1), starts, cutoff)
    assert domain.within_cutoff(starts - timedelta(hours=24), starts, cutoff)
    assert domain.within_cutoff(starts - timedelta(hours=1), starts, cutoff)
    assert domain.within_cutoff(starts + timedelta(hours=1), starts, cutoff)


def test_a_zero_cutoff_lets_volunteers_drop_until_the_start() -> None:
    starts = at(18)
    assert not domain.within_cutoff(starts - timedelta(seconds=1), starts, timedelta(0))
    assert domain.within_cutoff(starts, starts, timedelta(0))


def test_shift_times_must_make_sense() -> None:
    with pytest.raises(InvalidInput) as raised:
        domain.check_shift_times(at(12), at(12))
    assert raised.value.code == "ends_before_start"
    with pytest.raises(InvalidInput) as raised:
        domain.check_shift_times(at(8, day=10), at(9, day=11))
    assert raised.value.code == "shift_too_long"
    domain.check_shift_times(at(8, day=10), at(8, day=11))


# Hours worked


@pytest.mark.parametrize(
    ("checked_in", "checked_out", "minutes"),
    [
        (at(18), at(21), 180),
        (at(18, 5), at(21), 180),  # 175 min → nearest quarter hour is 180
        (at(18, 8), at(21), 165),  # 172 min → 165
        (at(18), at(20, 7), 120),  # 127 min → 120 (7 min rounds down)
        (at(18), at(20, 8), 135),  # 128 min → 135 (8 min rounds up)
        (at(17), at(21), 210),  # arrived an hour early: only 30 min of setting up count
        (at(18), at(23), 210),  # stayed two hours: only 30 min of wrapping up count
        (at(15), at(16), 0),  # a visit entirely before the shift
        (at(21, 45), at(22), 0),  # a visit entirely after it
        (at(18), at(18, 7), 0),
    ],
)
def test_worked_minutes_are_clipped_to_the_shift_window_and_rounded_to_quarter_hours(
    checked_in: datetime, checked_out: datetime, minutes: int
) -> None:
    assert domain.worked_minutes(checked_in, checked_out, at(18), at(21)) == minutes


def test_half_a_quarter_hour_rounds_up() -> None:
    start = at(18)
    assert domain.worked_minutes(start, start + timedelta(minutes=7, seconds=30), start, at(21)) == 15
    assert domain.worked_minutes(start, start + timedelta(minutes=7, seconds=29), start, at(21)) == 0
    assert domain.worked_minutes(start, start + timedelta(minutes=22, seconds=30), start, at(21)) == 30


def test_review_codes_flag_auto_close_walk_ins_and_visits_outside_the_shift() -> None:
    def codes(closed_by: str = "kiosk", signed_up: bool = True, span: tuple = (at(18), at(21))) -> list[str]:
        minutes = domain.worked_minutes(*span, at(18), at(21))
        return domain.review_codes(
            closed_by=closed_by,
            signed_up=signed_up,
            minutes=minutes,
            checked_in_at=span[0],
            checked_out_at=span[1],
            shift_starts_at=at(18),
            shift_ends_at=at(21),
        )

    assert codes() == []
    assert codes(closed_by="auto_close") == ["auto_closed"]
    assert codes(signed_up=False) == ["no_signup"]
    assert codes(span=(at(13), at(14))) == ["zero_minutes", "outside_shift"]
    assert codes(span=(at(18), at(18, 5))) == ["zero_minutes"]


# Recurrence across daylight-saving changes


def weekly_at_six(first: datetime, weeks: int) -> list:
    return domain.occurrences_between(
        "FREQ=WEEKLY",
        first_local_start=first,
        duration=timedelta(hours=2),
        zone=NEW_YORK,
        exceptions=[],
        after=datetime(2000, 1, 1, tzinfo=UTC),
        until=first.replace(tzinfo=UTC) + timedelta(weeks=weeks),
    )


def test_a_weekly_1800_shift_stays_at_1800_local_across_the_march_change() -> None:
    # DST starts in New York on Sunday 8 March 2026.
    occurrences = weekly_at_six(datetime(2026, 2, 24, 18, 0), 4)
    local = [o.starts_at.astimezone(NEW_YORK) for o in occurrences]
    assert [d.date() for d in local] == [date(2026, 2, 24), date(2026, 3, 3), date(2026, 3, 10), date(2026, 3, 17)]
    assert {(d.hour, d.minute) for d in local} == {(18, 0)}
    assert [o.starts_at.hour for o in occurrences] == [23, 23, 22, 22]  # EST is UTC-5, EDT UTC-4
    assert all(o.ends_at - o.starts_at == timedelta(hours=2) for o in occurrences)


def test_a_weekly_1800_shift_stays_at_1800_local_across_the_november_change() -> None:
    # DST ends in New York on Sunday 1 November 2026.
    occurrences = weekly_at_six(datetime(2026, 10, 20, 18, 0), 4)
    local = [o.starts_at.astimezone(NEW_YORK) for o in occurrences]
    assert [d.date() for d in local] == [date(2026, 10, 20), date(2026, 10, 27), date(2026, 11, 3), date(2026, 11, 10)]
    assert {(d.hour, d.minute) for d in local} == {(18, 0)}
    assert [o.starts_at.hour for o in occurrences] == [22, 22, 23, 23]


def test_a_shift_spanning_the_night_of_the_change_lasts_its_length_in_exact_time() -> None:
    # 22:00 Saturday for 8 hours across the spring-forward night: 8 hours in fact, so 07:00 by the wall.
    [night] = domain.occurrences_between(
        "FREQ=WEEKLY;COUNT=1",
        first_local_start=datetime(2026, 3, 7, 22, 0),
        duration=timedelta(hours=8),
        zone=NEW_YORK,
        exceptions=[],
        after=datetime(2000, 1, 1, tzinfo=UTC),
        until=datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert night.ends_at.astimezone(NEW_YORK).hour == 7
    assert night.ends_at - night.starts_at == timedelta(hours=8)


def test_exceptions_skip_a_day_or_one_start_and_only_occurrences_after_now_are_kept() -> None:
    first = datetime(2026, 12, 1, 18, 0)
    occurrences = domain.occurrences_between(
        "FREQ=DAILY;COUNT=6",
        first_local_start=first,
        duration=timedelta(hours=2),
        zone=NEW_YORK,
        exceptions=[date(2026, 12, 3), datetime(2026, 12, 5, 18, 0)],
        after=datetime(2026, 12, 1, 23, 30, tzinfo=UTC),
        until=datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert [o.local_start.day for o in occurrences] == [2, 4, 6]


def test_aware_exceptions_are_read_on_the_sites_wall_clock() -> None:
    assert domain.local_exceptions([datetime(2026, 12, 24, 23, 0, tzinfo=UTC), date(2026, 12, 25)], NEW_YORK) == [
        datetime(2026, 12, 24, 18, 0),
        date(2026, 12, 25),
    ]


def test_a_new_series_needs_occurrences_and_not_too_many() -> None:
    with pytest.raises(InvalidInput) as raised:
        domain.check_new_series([], occurs_later=False)
    assert raised.value.code == "no_occurrences"
    domain.check_new_series([], occurs_later=True)  # starts beyond the horizon: materialized later
    daily = domain.occurrences_between(
        "FREQ=DAILY;BYHOUR=9,13,17",
        first_local_start=datetime(2026, 1, 1, 9, 0),
        duration=timedelta(hours=1),
        zone=NEW_YORK,
        exceptions=[],
        after=datetime(2000, 1, 1, tzinfo=UTC),
        until=datetime(2026, 7, 1, tzinfo=UTC),
    )
    assert len(daily) > 400
    domain.check_new_series(daily[:400], occurs_later=True)
    with pytest.raises(InvalidInput) as raised:
        domain.check_new_series(daily, occurs_later=True)
    assert raised.value.code == "too_many_occurrences"


def test_a_rule_that_never_occurs_again_is_told_apart_from_one_that_starts_later() -> None:
    kwargs = {"first_local_start": datetime(2026, 12, 1, 18, 0), "zone": NEW_YORK, "exceptions": []}
    assert domain.occurs_after("FREQ=WEEKLY;COUNT=3", after=datetime(2026, 12, 1, tzinfo=UTC), **kwargs)
    assert not domain.occurs_after("FREQ=WEEKLY;COUNT=3", after=datetime(2026, 12, 20, tzinfo=UTC), **kwargs)
    assert not domain.occurs_after(
        "FREQ=WEEKLY;COUNT=3",
        after=datetime(2026, 12, 10, tzinfo=UTC),
        **{**kwargs, "exceptions": [date(2026, 12, 15)]},
    )
    assert domain.occurs_after("FREQ=YEARLY", after=datetime(2030, 1, 1, tzinfo=UTC), **kwargs)


def test_series_length_from_minutes_or_a_local_end_time_past_midnight() -> None:
    first = datetime(2026, 12, 1, 22, 0)
    assert domain.series_duration(first, 90, None) == timedelta(minutes=90)
    assert domain.series_duration(first, None, time(2, 0)) == timedelta(hours=4)
    assert domain.series_duration(datetime(2026, 12, 1, 9, 0), None, time(13, 30)) == timedelta(hours=4, minutes=30)
    with pytest.raises(InvalidInput):
        domain.series_duration(first, 90, time(23, 0))


# Who acts on whom


def test_a_volunteer_acts_only_as_themself() -> None:
    me, someone = uuid.uuid4(), uuid.uuid4()
    assert domain.member_acted_on(is_staff=False, own_member_id=me, requested=None) == me
    assert domain.member_acted_on(is_staff=False, own_member_id=me, requested=me) == me
    with pytest.raises(Forbidden) as raised:
        domain.member_acted_on(is_staff=False, own_member_id=me, requested=someone)
    assert raised.value.code == "not_yours"


def test_a_coordinator_names_whom_they_act_for() -> None:
    someone = uuid.uuid4()
    assert domain.member_acted_on(is_staff=True, own_member_id=None, requested=someone) == someone
    with pytest.raises(InvalidInput) as raised:
        domain.member_acted_on(is_staff=True, own_member_id=None, requested=None)
    assert raised.value.code == "member_required"


def test_nobody_decides_their_own_hours() -> None:
    me = uuid.uuid4()
    with pytest.raises(Forbidden) as raised:
        domain.may_decide_hours(approver_member_id=me, hours_member_id=me)
    assert raised.value.code == "own_hours"
    domain.may_decide_hours(approver_member_id=None, hours_member_id=me)
    domain.may_decide_hours(approver_member_id=uuid.uuid4(), hours_member_id=me)


def test_query_dates_are_whole_local_days_and_instants_need_an_offset() -> None:
    assert domain.range_start(date(2026, 3, 8), NEW_YORK) == datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    assert domain.range_end(date(2026, 3, 8), NEW_YORK) == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)
    with pytest.raises(InvalidInput) as raised:
        domain.range_start(datetime(2026, 3, 8, 12, 0), NEW_YORK)
    assert raised.value.code == "naive_datetime"


def test_feed_secrets_are_long_and_kept_only_as_a_hash() -> None:
    secret = domain.new_feed_secret()
    assert len(secret) >= 43  # 256 bits in URL-safe base64
    assert domain.hash_feed_secret(secret) != secret
    assert len(domain.hash_feed_secret(secret)) == 64
    assert domain.new_feed_secret() != secret


# Request bodies


def test_a_single_shift_needs_times_with_an_offset() -> None:
    good = {
        "role_id": "front_desk",
        "starts_at": "2026-12-01T18:00:00-05:00",
        "ends_at": "2026-12-01T20:00:00Z",
        "capacity": 3,
    }
    assert ShiftBody.model_validate(good).capacity == 3
    with pytest.raises(ValidationError):
        ShiftBody.model_validate({**good, "starts_at": "2026-12-01T18:00:00"})
    with pytest.raises(ValidationError):
        ShiftBody.model_validate({**good, "capacity": 0})
    with pytest.raises(ValidationError):
        ShiftBody.model_validate({**good, "volunteer_name": "x"})


def test_a_series_reads_exceptions_as_local_days_or_local_start_times() -> None:
    body = SeriesBody.model_validate(
        {
            "role_id": "front_desk",
            "first_start": "2026-12-01T18:00",
            "duration_minutes": 120,
            "rrule": "FREQ=WEEKLY;BYDAY=TU",
            "capacity": 2,
            "exceptions": ["2026-12-22", "2026-12-29T00:00:00", "2026-12-15T18:00"],
        }
    )
    assert body.exceptions == [date(2026, 12, 22), datetime(2026, 12, 29, 0, 0), datetime(2026, 12, 15, 18, 0)]
    with pytest.raises(ValidationError):  # the first start is a wall-clock time
        SeriesBody.model_validate({**body.model_dump(), "first_start": "2026-12-01T18:00:00Z"})
    with pytest.raises(ValidationError):
        SeriesBody.model_validate({**body.model_dump(), "end": "20:00"})
    with pytest.raises(ValidationError):
        SeriesBody.model_validate({**body.model_dump(), "exceptions": ["next tuesday"]})


def test_a_patch_changes_something_and_a_training_expires_after_it_was_completed() -> None:
    with pytest.raises(ValidationError):
        ShiftPatchBody.model_validate({})
    assert ShiftPatchBody.model_validate({"capacity": 4}).capacity == 4
    with pytest.raises(ValidationError):
        TrainingBody.model_validate({"training_id": "cprs", "completed_on": "2026-05-01", "expires_on": "2026-04-30"})
    with pytest.raises(ValidationError):
        TrainingBody.model_validate({"training_id": "Peer Mentor!", "completed_on": "2026-05-01"})
    assert SignUpBody.model_validate({}).member_id is None
