"""Sign-ups against the real PostgreSQL and RabbitMQ: capacity under concurrency, waitlist order, and the rules
(qualification, overlap, cutoff) as the HTTP API applies them."""

from __future__ import annotations

import asyncio
import uuid
import zoneinfo
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.volunteering import handlers
from services.volunteering.commands import ExtendSeries
from shared.clock import FixedClock
from shared.uow import execute
from tests.support.volunteering import Center

pytestmark = pytest.mark.integration

ROUNDS = 3


async def test_200_concurrent_sign_ups_for_5_seats_confirm_5_and_queue_195_in_order_every_time(
    center: Center,
) -> None:
    role = await center.role(required=["orientation"])
    people = await center.volunteers(200, [role], trainings={"orientation": None})
    for round_ in range(ROUNDS):
        shift_id = await center.shift(role, starts_in=timedelta(days=3 + round_), capacity=5)
        # Round 0: every volunteer with their own token; then a coordinator for all of them at once.
        replies = await asyncio.gather(
            *(center.sign_up(shift_id, person, by_coordinator=round_ > 0) for person in people)
        )
        assert [r.status for r in replies] == [201] * 200, [r.body for r in replies if r.status != 201][:3]
        assert Counter(r.body["status"] for r in replies) == {"confirmed": 5, "waitlisted": 195}
        assert all(r.body["position"] is None for r in replies if r.body["status"] == "confirmed")
        assert sorted(r.body["position"] for r in replies if r.body["status"] == "waitlisted") == list(range(1, 196))

        # The database agrees: the first five to get the lock hold the seats, the rest wait in arrival order.
        rows = await center.signups(shift_id)
        assert [r.status for r in rows] == ["confirmed"] * 5 + ["waitlisted"] * 195
        position_of = {str(r.body["member_id"]): r.body["position"] for r in replies}
        assert [position_of[str(r.member_id)] for r in rows[5:]] == list(range(1, 196))
        shift = await center.ok("GET", f"/shifts/{shift_id}")
        assert (shift["confirmed"], shift["waitlisted"], shift["spots_left"]) == (5, 195, 0)
        listed = await center.ok("GET", f"/shifts/{shift_id}/signups")
        assert [i["position"] for i in listed["items"] if i["status"] == "waitlisted"] == list(range(1, 196))

    assert len(await center.outbox("volunteering.signed_up")) == 5 * ROUNDS
    assert len(await center.outbox("volunteering.waitlisted")) == 195 * ROUNDS


async def _watch_capacity(center: Center, shift_id: str, capacity: int, stop: asyncio.Event) -> int:
    """Until ``stop``: the seat counter and the confirmed rows, read in one snapshot, never exceed capacity."""
    looks = 0
    while not stop.is_set():
        [row] = await center.rows(
            "SELECT s.confirmed, (SELECT count(*) FROM volunteering.signups g WHERE g.shift_id = s.shift_id "
            "AND g.status = 'confirmed') AS counted FROM volunteering.shifts s WHERE s.shift_id = :shift",
            shift=uuid.UUID(shift_id),
        )
        assert row.confirmed == row.counted <= capacity
        looks += 1
        await asyncio.sleep(0)
    return looks


async def test_concurrent_drops_and_sign_ups_never_exceed_capacity_and_promote_in_waitlist_order(
    center: Center,
) -> None:
    role = await center.role()
    people = await center.volunteers(40, [role])
    shift_id = await center.shift(role, starts_in=timedelta(days=4), capacity=5)
    first = people[:20]
    for person in first:  # one by one: a known order (5 confirmed, w1..w15 waiting)
        assert (await center.sign_up(shift_id, person)).status == 201
    confirmed, waiting = first[:5], first[5:]
    leaving_queue = [waiting[7], waiting[9], waiting[11]]  # far enough back never to be promoted here
    newcomers = people[20:]

    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_capacity(center, shift_id, 5, stop))
    replies = await asyncio.gather(
        *(center.drop(shift_id, p) for p in confirmed[:4]),
        *(center.drop(shift_id, p) for p in leaving_queue),
        *(center.sign_up(shift_id, p) for p in newcomers),
    )
    stop.set()
    assert await watcher > 0
    drops, joins = replies[:7], replies[7:]
    assert [r.status for r in drops] == [200] * 7, [r.body for r in drops]
    assert sum(r.body["promoted"] for r in drops) == 4
    # A freed seat is refilled in the same transaction, so a newcomer never finds one free.
    assert [r.body["status"] for r in joins] == ["waitlisted"] * 20

    rows = await center.signups(shift_id)
    now_confirmed = [r.member_id for r in rows if r.status == "confirmed"]
    assert now_confirmed == [confirmed[4].member_id] + [p.member_id for p in waiting[:4]]
    promoted = await center.outbox("volunteering.promoted_from_waitlist", shift_id)
    assert [uuid.UUID(e["member_id"]) for e in promoted] == [p.member_id for p in waiting[:4]]
    assert {e["trigger"] for e in promoted} == {"seat_freed"}

    left = {p.member_id for p in leaving_queue}
    expected_queue = [p.member_id for p in waiting[4:] if p.member_id not in left]
    listed = (await center.ok("GET", f"/shifts/{shift_id}/signups"))["items"]
    queue = [i for i in listed if i["status"] == "waitlisted"]
    assert [uuid.UUID(i["member_id"]) for i in queue][: len(expected_queue)] == expected_queue
    assert [i["position"] for i in queue] == list(range(1, len(expected_queue) + 21))


async def test_racing_drops_and_sign_ups_on_an_unqueued_shift_seat_the_earliest_arrivals(center: Center) -> None:
    role = await center.role()
    people = await center.volunteers(25, [role])
    shift_id = await center.shift(role, starts_in=timedelta(days=5), capacity=5)
    for person in people[:5]:
        assert (await center.sign_up(shift_id, person)).body["status"] == "confirmed"
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_capacity(center, shift_id, 5, stop))
    replies = await asyncio.gather(
        *(center.drop(shift_id, p) for p in people[:5]), *(center.sign_up(shift_id, p) for p in people[5:])
    )
    stop.set()
    await watcher
    assert all(r.status in (200, 201) for r in replies), [r.body for r in replies]
    rows = [r for r in await center.signups(shift_id) if r.status in ("confirmed", "waitlisted")]
    # First come, first served: the seats belong to the five earliest arrivals still signed up.
    assert [r.status for r in rows] == ["confirmed"] * 5 + ["waitlisted"] * 15
    [shift] = await center.rows("SELECT confirmed FROM volunteering.shifts WHERE shift_id = :s", s=uuid.UUID(shift_id))
    assert shift.confirmed == 5


async def test_a_volunteer_cannot_sign_up_twice_or_for_overlapping_shifts(center: Center) -> None:
    role = await center.role()
    [me] = await center.volunteers(1, [role])
    start = (datetime.now(UTC) + timedelta(days=6)).replace(microsecond=0)
    morning = await center.shift(role, starts_in=timedelta(0), starts_at=start, hours=4)
    overlapping = await center.shift(role, starts_in=timedelta(0), starts_at=start + timedelta(hours=3), hours=3)
    back_to_back = await center.shift(role, starts_in=timedelta(0), starts_at=start + timedelta(hours=4), hours=3)

    taken = await center.sign_up(morning, me)
    [row] = await center.signups(morning)
    assert (taken.status, taken.body) == (
        201,
        {
            "signup_id": str(row.signup_id),
            "shift_id": morning,
            "member_id": str(me.member_id),
            "status": "confirmed",
            "position": None,
        },
    )
    again = await center.sign_up(morning, me)
    assert (again.status, again.body["code"], again.body["signup_status"]) == (409, "already_signed_up", "confirmed")
    clash = await center.sign_up(overlapping, me)
    assert (clash.status, clash.body["code"], clash.body["shift_id"]) == (409, "overlap", morning)
    assert clash.headers["Content-Type"].startswith("application/problem+json")
    assert (await center.sign_up(back_to_back, me)).body["status"] == "confirmed"
    # Dropping frees the time again.
    assert (await center.drop(morning, me)).status == 200
    assert (await center.sign_up(overlapping, me)).status == 409  # still clashes with back_to_back
    assert (await center.drop(back_to_back, me)).status == 200
    assert (await center.sign_up(overlapping, me)).body["status"] == "confirmed"


async def test_the_same_volunteer_twice_in_one_burst_gets_one_sign_up(center: Center) -> None:
    """Sign-ups that arrive together are decided as one run: the same volunteer's second and third in it are
    refused as they would be one after another, and the seats and the line count the first only."""
    role = await center.role()
    people = await center.volunteers(20, [role])
    shift_id = await center.shift(role, starts_in=timedelta(days=3), capacity=5)
    twice = people[8]
    replies = await asyncio.gather(
        *(center.sign_up(shift_id, person, by_coordinator=True) for person in [*people, twice, twice])
    )
    assert Counter(r.status for r in replies) == {201: 20, 409: 2}
    rows = await center.signups(shift_id)
    held = next(r.status for r in rows if r.member_id == twice.member_id)
    refused = [(r.body["code"], r.body["signup_status"]) for r in replies if r.status == 409]
    assert refused == [("already_signed_up", held)] * 2
    assert [r.status for r in rows] == ["confirmed"] * 5 + ["waitlisted"] * 15
    [shift] = await center.rows("SELECT confirmed FROM volunteering.shifts WHERE shift_id = :s", s=uuid.UUID(shift_id))
    assert shift.confirmed == 5


async def test_a_waitlisted_spot_holds_no_time_and_promotion_skips_who_is_busy_then(center: Center) -> None:
    role = await center.role()
    holder, busy, next_in_line = await center.volunteers(3, [role])
    start = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    full = await center.shift(role, starts_in=timedelta(0), starts_at=start, capacity=1)
    elsewhere = await center.shift(role, starts_in=timedelta(0), starts_at=start + timedelta(hours=1), capacity=1)
    assert (await center.sign_up(full, holder)).body["status"] == "confirmed"
    assert (await center.sign_up(full, busy)).body["position"] == 1
    rows = await center.signups(full)
    assert [r.status for r in rows] == ["confirmed", "waitlisted"]
    assert (await center.sign_up(full, next_in_line)).body["position"] == 2
    # Waiting for `full` does not stop `busy` from taking an overlapping shift...
    assert (await center.sign_up(elsewhere, busy)).body["status"] == "confirmed"
    # ...so when the seat frees, `busy` is skipped but keeps the first place in line.
    dropped = await center.drop(full, holder)
    assert dropped.body["promoted"] == 1
    listed = (await center.ok("GET", f"/shifts/{full}/signups"))["items"]
    by_member = {uuid.UUID(i["member_id"]): i for i in listed}
    assert by_member[next_in_line.member_id]["status"] == "confirmed"
    assert (by_member[busy.member_id]["status"], by_member[busy.member_id]["position"]) == ("waitlisted", 1)


async def test_qualification_is_checked_on_the_shift_date(center: Center) -> None:
    role = await center.role(required=["cprs", "orientation"])
    in_ten_days = date.today() + timedelta(days=10)
    current, expiring, missing = (
        await center.volunteers(1, [role], trainings={"cprs": None, "orientation": None}),
        await center.volunteers(1, [role], trainings={"cprs": in_ten_days, "orientation": None}),
        await center.volunteers(1, [role], trainings={"orientation": None}),
    )
    [other_role_only] = await center.volunteers(1, [await center.role()])
    soon = await center.shift(role, starts_in=timedelta(days=3))
    later = await center.shift(role, starts_in=timedelta(days=20))

    assert (await center.sign_up(soon, current[0])).status == 201
    assert (await center.sign_up(later, current[0])).status == 201
    assert (await center.sign_up(soon, expiring[0])).status == 201
    expired = await center.sign_up(later, expiring[0])
    assert (expired.status, expired.body["code"], expired.body["missing_trainings"]) == (409, "not_qualified", ["cprs"])
    lacking = await center.sign_up(soon, missing[0])
    assert (lacking.status, lacking.body["code"], lacking.body["reason"]) == (
        409,
        "not_qualified",
        "training_missing_or_expired",
    )
    wrong_role = await center.sign_up(soon, other_role_only)
    assert (wrong_role.status, wrong_role.body["reason"]) == (409, "role_not_assigned")
    # Even a coordinator cannot seat someone unqualified.
    assert (await center.sign_up(later, expiring[0], by_coordinator=True)).body["code"] == "not_qualified"

    # The volunteer's list shows only what they could take.
    listed = await center.ok("GET", "/shifts?open=true", token=expiring[0].token)
    assert [i["shift_id"] for i in listed["items"]] == [soon]
    assert listed["items"][0]["my_signup"] == {"status": "confirmed", "position": None}
    assert [i["shift_id"] for i in (await center.ok("GET", "/shifts", token=current[0].token))["items"]] == [
        soon,
        later,
    ]


async def test_a_paused_volunteer_cannot_sign_up(center: Center) -> None:
    role = await center.role()
    [me] = await center.volunteers(1, [role])
    shift_id = await center.shift(role, starts_in=timedelta(days=3))
    await center.ok("PUT", f"/volunteers/{me.member_id}", json={"roles": [role], "active": False})
    paused = await center.sign_up(shift_id, me)
    assert (paused.status, paused.body["code"]) == (409, "volunteer_paused")
    assert (await center.ok("GET", "/shifts", token=me.token))["items"] == []
    await center.ok("PUT", f"/volunteers/{me.member_id}", json={"roles": [role], "active": True})
    assert (await center.sign_up(shift_id, me)).status == 201


async def test_open_shifts_are_those_ahead_with_seats_the_volunteer_may_take(center: Center) -> None:
    role, other_role = await center.role(), await center.role()
    me, filler = await center.volunteers(2, [role])
    open_shift = await center.shift(role, starts_in=timedelta(days=2), capacity=3)
    full_shift = await center.shift(role, starts_in=timedelta(days=2, hours=5), capacity=1)
    await center.shift(other_role, starts_in=timedelta(days=2, hours=1))
    cancelled = await center.shift(role, starts_in=timedelta(days=2, hours=2))
    await center.ok("POST", f"/shifts/{cancelled}/cancel")
    assert (await center.sign_up(full_shift, filler)).status == 201

    listed = await center.ok("GET", "/shifts?open=true", token=me.token)
    assert [(i["shift_id"], i["spots_left"]) for i in listed["items"]] == [(open_shift, 3)]
    everything = await center.ok("GET", "/shifts", token=me.token)
    assert [i["shift_id"] for i in everything["items"]] == [open_shift, full_shift]
    staff_view = await center.ok("GET", "/shifts")
    assert len(staff_view["items"]) == 4
    assert {i["status"] for i in staff_view["items"]} == {"scheduled", "cancelled"}

    page = await center.ok("GET", "/shifts?limit=1", token=me.token)
    assert [i["shift_id"] for i in page["items"]] == [open_shift]
    rest = await center.ok("GET", f"/shifts?limit=1&cursor={page['next_cursor']}", token=me.token)
    assert [i["shift_id"] for i in rest["items"]] == [full_shift]
    assert rest["next_cursor"] is None


async def test_only_a_coordinator_drops_a_confirmed_seat_within_the_cutoff(center: Center) -> None:
    role = await center.role()
    holder, waiting = await center.volunteers(2, [role])
    shift_id = await center.shift(role, starts_in=timedelta(hours=2), capacity=1)
    assert (await center.sign_up(shift_id, holder)).body["status"] == "confirmed"
    assert (await center.sign_up(shift_id, waiting)).body["status"] == "waitlisted"

    late = await center.drop(shift_id, holder)
    assert (late.status, late.body["code"]) == (409, "cutoff_passed")
    # Leaving a waitlist is always fine.
    assert (await center.drop(shift_id, waiting)).body["previous_status"] == "waitlisted"
    assert (await center.sign_up(shift_id, waiting)).body["position"] == 1
    by_coordinator = await center.drop(shift_id, holder, by_coordinator=True)
    assert by_coordinator.body == {
        "shift_id": shift_id,
        "member_id": str(holder.member_id),
        "status": "dropped",
        "previous_status": "confirmed",
        "promoted": 1,
    }
    dropped = await center.outbox("volunteering.dropped", shift_id)
    assert [(d["dropped_by"], d["within_cutoff"], d["previous_status"]) for d in dropped] == [
        ("self", True, "waitlisted"),
        ("coordinator", True, "confirmed"),
    ]
    not_there = await center.drop(shift_id, holder, by_coordinator=True)
    assert (not_there.status, not_there.body["code"]) == (404, "not_signed_up")


async def test_capacity_changes_promote_in_order_and_never_go_below_the_confirmed(center: Center) -> None:
    role = await center.role()
    people = await center.volunteers(6, [role])
    shift_id = await center.shift(role, starts_in=timedelta(days=3), capacity=2)
    for person in people:
        await center.sign_up(shift_id, person)
    too_small = await center.call("PATCH", f"/shifts/{shift_id}", token=center.coordinator, json={"capacity": 1})
    assert (too_small.status, too_small.body["code"], too_small.body["confirmed"]) == (
        409,
        "capacity_below_confirmed",
        2,
    )
    bigger = await center.ok("PATCH", f"/shifts/{shift_id}", json={"capacity": 4, "needs_supervisor": True})
    assert (bigger["promoted"], bigger["confirmed"], sorted(bigger["changed"])) == (
        2,
        4,
        ["capacity", "needs_supervisor"],
    )
    rows = await center.signups(shift_id)
    assert [r.status for r in rows] == ["confirmed"] * 4 + ["waitlisted"] * 2
    [changed] = await center.outbox("volunteering.shift_changed", shift_id)
    assert (changed["confirmed"], changed["waitlisted"]) == (4, 2)
    assert changed["affected_member_ids"] == [str(p.member_id) for p in people]
    promoted = await center.outbox("volunteering.promoted_from_waitlist", shift_id)
    assert [(e["member_id"], e["trigger"]) for e in promoted] == [
        (str(people[2].member_id), "capacity_increased"),
        (str(people[3].member_id), "capacity_increased"),
    ]


async def test_moving_or_cancelling_a_shift_tells_everyone_signed_up(center: Center) -> None:
    role = await center.role()
    people = await center.volunteers(3, [role])
    shift_id = await center.shift(role, starts_in=timedelta(days=3), capacity=2)
    for person in people:
        await center.sign_up(shift_id, person)
    await center.drop(shift_id, people[2])
    new_start = (datetime.now(UTC) + timedelta(days=3, hours=1)).replace(microsecond=0)
    moved = await center.ok(
        "PATCH",
        f"/shifts/{shift_id}",
        json={"starts_at": new_start.isoformat(), "ends_at": (new_start + timedelta(hours=4)).isoformat()},
    )
    assert sorted(moved["changed"]) == ["ends_at", "starts_at"]
    [changed] = await center.outbox("volunteering.shift_changed", shift_id)
    assert changed["affected_member_ids"] == [str(people[0].member_id), str(people[1].member_id)]

    cancelled = await center.ok("POST", f"/shifts/{shift_id}/cancel")
    assert cancelled == {"shift_id": shift_id, "status": "cancelled", "affected": 2}
    [event] = await center.outbox("volunteering.shift_cancelled", shift_id)
    assert event["affected_member_ids"] == [str(people[0].member_id), str(people[1].member_id)]
    assert {r.status for r in await center.signups(shift_id)} == {"cancelled", "dropped"}
    again = await center.sign_up(shift_id, people[2])
    assert (again.status, again.body["code"]) == (409, "shift_cancelled")
    twice = await center.call("POST", f"/shifts/{shift_id}/cancel", token=center.coordinator)
    assert (twice.status, twice.body["code"]) == (409, "shift_cancelled")


async def test_a_shift_needing_a_supervisor_shows_whether_one_is_on_duty(center: Center) -> None:
    peer, supervisor_role = await center.role(), await center.role(supervisor=True, title="Supervisor")
    [supervisor] = await center.volunteers(1, [supervisor_role])
    start = (datetime.now(UTC) + timedelta(days=8)).replace(microsecond=0)
    needs_one = await center.shift(peer, starts_in=timedelta(0), starts_at=start, needs_supervisor=True)
    plain = await center.shift(peer, starts_in=timedelta(0), starts_at=start)
    supervising = await center.shift(supervisor_role, starts_in=timedelta(0), starts_at=start + timedelta(hours=1))
    assert (await center.ok("GET", f"/shifts/{needs_one}"))["supervisor_on_duty"] is False
    assert (await center.ok("GET", f"/shifts/{plain}"))["supervisor_on_duty"] is None
    await center.sign_up(supervising, supervisor)
    assert (await center.ok("GET", f"/shifts/{needs_one}"))["supervisor_on_duty"] is True


def _next_offset_change(zone: zoneinfo.ZoneInfo, after: datetime) -> datetime:
    day = after.replace(hour=12, minute=0, second=0, microsecond=0)
    offset = day.astimezone(zone).utcoffset()
    while day.astimezone(zone).utcoffset() == offset:
        day += timedelta(days=1)
    return day


async def test_a_weekly_series_stays_at_1800_local_across_the_next_daylight_saving_change(center: Center) -> None:
    role = await center.role()
    zone = zoneinfo.ZoneInfo("America/New_York")  # the site's zone
    now = datetime.now(UTC)
    change = _next_offset_change(zone, now + timedelta(days=15))
    first = datetime.combine(change.astimezone(zone).date() - timedelta(days=14), time(18, 0))
    series = await center.ok(
        "POST",
        "/shift-series",
        status=201,
        json={
            "role_id": role,
            "first_start": first.isoformat(),
            "duration_minutes": 150,
            "rrule": "FREQ=WEEKLY;COUNT=5",
            "exceptions": [(first + timedelta(weeks=3)).date().isoformat()],
            "capacity": 4,
        },
    )
    # Occurrences beyond the horizon are made as it moves on: run that periodic step as of a later day.
    later = FixedClock(max(now, change + timedelta(weeks=3) - timedelta(weeks=26)))
    await execute(handlers.extend_series, ExtendSeries(timedelta(weeks=26)), uow=center.uow(), clock=later)
    rows = await center.rows(
        "SELECT shift_id FROM volunteering.shifts WHERE series_id = :s ORDER BY starts_at",
        s=uuid.UUID(series["series_id"]),
    )
    shifts = [await center.ok("GET", f"/shifts/{row.shift_id}") for row in rows]
    assert [s["local_start"] for s in shifts] == [(first + timedelta(weeks=week)).isoformat() for week in (0, 1, 2, 4)]
    assert len({s["starts_at"][11:13] for s in shifts}) == 2  # the UTC hour moves with daylight saving
    assert all(s["series_id"] == series["series_id"] and s["capacity"] == 4 for s in shifts)
    assert len(await center.outbox("volunteering.shift_scheduled")) == 4
    bad = await center.call(
        "POST",
        "/shift-series",
        token=center.coordinator,
        json={
            "role_id": role,
            "first_start": first.isoformat(),
            "duration_minutes": 60,
            "rrule": "FREQ=HOURLY",
            "capacity": 1,
        },
    )
    assert (bad.status, bad.body["code"]) == (422, "bad_rrule")
    over = await center.call(
        "POST",
        "/shift-series",
        token=center.coordinator,
        json={
            "role_id": role,
            "first_start": "2020-01-07T18:00",
            "duration_minutes": 60,
            "rrule": "FREQ=WEEKLY;COUNT=3",
            "capacity": 1,
        },
    )
    assert (over.status, over.body["code"]) == (422, "no_occurrences")


async def test_my_shifts_and_a_private_calendar_feed(center: Center) -> None:
    role = await center.role(title="Peer mentor")
    [me] = await center.volunteers(1, [role])
    upcoming = await center.shift(role, starts_in=timedelta(days=2))
    other = await center.shift(role, starts_in=timedelta(days=9))
    await center.sign_up(upcoming, me)
    await center.sign_up(other, me)
    await center.drop(other, me)
    mine = await center.ok("GET", "/me/shifts", token=me.token)
    assert [(s["shift_id"], s["status"], s["role_title"]) for s in mine["upcoming"]] == [
        (upcoming, "confirmed", "Peer mentor"),
        (other, "dropped", "Peer mentor"),
    ]
    assert mine["past"] == []

    feed = await center.ok("POST", "/me/calendar-feed", token=me.token, status=201)
    assert feed["url"].startswith("/calendar/") and feed["url"].endswith(".ics")
    async with center.client.http.get(center.client.urls["volunteering"] + feed["url"]) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/calendar")
        calendar = await response.text()
    assert calendar.count("BEGIN:VEVENT") == 1
    assert "SUMMARY:Peer mentor shift" in calendar
    assert str(me.member_id) not in calendar
    rotated = await center.ok("POST", "/me/calendar-feed", token=me.token, status=201)
    assert rotated["url"] != feed["url"]
    stale = await center.call("GET", feed["url"])
    assert (stale.status, stale.body["code"]) == (404, "calendar_not_found")
    async with center.client.http.get(center.client.urls["volunteering"] + rotated["url"]) as response:
        assert response.status == 200
