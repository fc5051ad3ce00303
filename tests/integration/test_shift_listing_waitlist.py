"""Volunteers see full shifts too (``include_full=true``), with the waitlist's length and their own place on it,
and leave a waitlist by dropping their sign-up: the others' places close up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.volunteering import CENTER_ZONE, Center, Volunteer

pytestmark = pytest.mark.integration


async def listed(center: Center, token: str, query: str) -> dict[str, dict[str, Any]]:
    body = await center.ok("GET", f"/shifts?{query}", token=token)
    return {item["shift_id"]: item for item in body["items"]}


async def test_a_full_shift_is_listed_with_the_waitlist_and_each_volunteers_own_place(center: Center) -> None:
    role = await center.role(required=["orientation"])
    first, second, third = await center.volunteers(3, [role], trainings={"orientation": None})
    [unqualified] = await center.volunteers(1, [role])
    full = await center.shift(role, starts_in=timedelta(days=3), capacity=1)
    roomy = await center.shift(role, starts_in=timedelta(days=4), capacity=4)
    past = await center.shift(role, starts_in=timedelta(days=-2), capacity=1)
    statuses = [(await center.sign_up(full, person)).body["status"] for person in (first, second, third)]
    assert statuses == ["confirmed", "waitlisted", "waitlisted"]

    # open=true lists only seats left, as before: the full shift is not there.
    assert set(await listed(center, second.token, "open=true")) == {roomy}

    async def mine(person: Volunteer) -> dict[str, dict[str, Any]]:
        return await listed(center, person.token, "include_full=true")

    by_first, by_second, by_third = await mine(first), await mine(second), await mine(third)
    assert set(by_second) == {full, roomy}, "ahead only, full ones included; the past shift is not listed"
    assert past not in by_second
    for view in (by_first, by_second, by_third):
        assert (view[full]["spots_left"], view[full]["waitlisted"]) == (0, 2)
        assert (view[roomy]["spots_left"], view[roomy]["waitlisted"]) == (4, 0)
        assert view[roomy]["my_signup"] is None
    assert by_first[full]["my_signup"] == {"status": "confirmed", "position": None}
    assert by_second[full]["my_signup"] == {"status": "waitlisted", "position": 1}
    assert by_third[full]["my_signup"] == {"status": "waitlisted", "position": 2}
    assert await mine(unqualified) == {}, "only shifts the volunteer is qualified for"

    # Staff see the seats and the waitlist on every shift, past and full ones included.
    staff = await listed(center, center.coordinator, f"from={_day(-3)}&to={_day(5)}")
    assert {full, roomy, past} <= set(staff)
    assert (staff[full]["spots_left"], staff[full]["waitlisted"]) == (0, 2)
    assert staff[full]["my_signup"] is None

    # The second volunteer leaves the waitlist (their own sign-up); the third moves up, nobody is seated.
    left = await center.drop(full, second)
    assert left.status == 200, left.body
    assert (left.body["previous_status"], left.body["promoted"]) == ("waitlisted", 0)
    by_second, by_third = await mine(second), await mine(third)
    assert by_second[full]["my_signup"] is None
    assert by_third[full]["my_signup"] == {"status": "waitlisted", "position": 1}
    assert (by_third[full]["spots_left"], by_third[full]["waitlisted"]) == (0, 1)
    assert [(r.member_id, r.status) for r in await center.signups(full)] == [
        (first.member_id, "confirmed"),
        (second.member_id, "dropped"),
        (third.member_id, "waitlisted"),
    ]

    # Someone else's waitlist place is not theirs to give up.
    refused = await center.call("DELETE", f"/shifts/{full}/signups/{third.member_id}", token=first.token)
    assert (refused.status, refused.body["code"]) == (403, "not_yours")


def _day(days: int) -> str:
    """A local date of the center's site, ``days`` from today."""
    return (datetime.now(UTC) + timedelta(days=days)).astimezone(CENTER_ZONE).date().isoformat()
