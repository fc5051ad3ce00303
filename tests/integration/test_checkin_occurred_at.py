"""A check-in or check-out a kiosk saved offline carries ``occurred_at``, its clock at the tap: accepted within
bounds, stored beside the receive time, flagged, and the visit's time everywhere downstream (the events, the audit
report's visit facts, volunteer hours). And the kiosk's cheap code check, before the visitor picks why they came."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.checkin import domain
from services.checkin.models import Base as CheckinBase
from shared import access
from shared.errors import InvalidInput
from shared.outbox import cloudevent_from_row
from shared.settings import Settings
from tests.support.stack import Client, eventually, make_site
from tests.support.volunteering import Center

pytestmark = pytest.mark.integration


def iso(at: datetime) -> str:
    return at.isoformat()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def site_closing(engine: AsyncEngine, site_id: str, ago: timedelta) -> None:
    """The site (in UTC, so the wall clock is the instant) last closed ``ago`` before now, whatever the time of day
    the test runs: the closing bound is then known. Set before any service has read (and cached) the site."""
    closes_at = (datetime.now(UTC) - ago).time().replace(second=0, microsecond=0)
    async with engine.begin() as conn:
        await conn.execute(
            update(access.sites).where(access.sites.c.site_id == site_id).values(timezone="UTC", closes_at=closes_at)
        )


@pytest.fixture
async def center(settings: Settings, vstack: Client, engine: AsyncEngine) -> Center:
    site = await make_site(settings)
    await site_closing(engine, site.site_id, timedelta(hours=4))
    return Center(vstack, settings, site, engine)


async def checkin_events(engine: AsyncEngine, visit_id: str) -> list[dict[str, Any]]:
    outbox = CheckinBase.metadata.tables["checkin.outbox"]
    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox).where(outbox.c.subject == visit_id).order_by(outbox.c.sequence))
        return [cloudevent_from_row(row, "/rcc/checkin") for row in rows]


async def register(center: Center) -> str:
    reply = await center.call("POST", "/members", token=center.site.tokens["kiosk"], json={}, service="checkin")
    assert reply.status == 201, reply.body
    return str(reply.body["kiosk_code"])


async def visit_row(center: Center, visit_id: str) -> Any:
    [row] = await center.rows("SELECT * FROM checkin.visits WHERE visit_id = :v", v=uuid.UUID(visit_id))
    return row


async def test_an_offline_check_in_and_out_keep_the_kiosk_times_in_the_visit_its_events_and_the_visit_list(
    center: Center,
) -> None:
    kiosk = center.site.tokens["kiosk"]
    code = await register(center)
    tapped_in = (datetime.now(UTC) - timedelta(minutes=50)).replace(microsecond=123000)
    tapped_out = tapped_in + timedelta(minutes=35)
    before = datetime.now(UTC)

    visit = await center.call(
        "POST",
        "/visits",
        token=kiosk,
        service="checkin",
        json={"kiosk_code": code, "purpose": "drop_in", "occurred_at": iso(tapped_in)},
    )
    assert visit.status == 201, visit.body
    assert instant(visit.body["checked_in_at"]) == tapped_in
    visit_id = visit.body["visit_id"]
    out = await center.call(
        "POST",
        "/checkouts",
        token=kiosk,
        service="checkin",
        json={"kiosk_code": code, "occurred_at": iso(tapped_out)},
    )
    assert out.status == 200, out.body
    assert (instant(out.body["checked_in_at"]), instant(out.body["checked_out_at"]), out.body["minutes"]) == (
        tapped_in,
        tapped_out,
        35,
    )

    row = await visit_row(center, visit_id)
    assert (row.checked_in_at, row.checked_out_at) == (tapped_in, tapped_out)
    assert row.checked_in_offline and row.checked_out_offline
    assert before <= row.checked_in_received_at <= row.checked_out_received_at <= datetime.now(UTC)

    listed = await center.call("GET", "/visits?limit=200", token=center.coordinator, service="checkin")
    assert listed.status == 200, listed.body
    [item] = [i for i in listed.body["items"] if i["visit_id"] == visit_id]
    assert instant(item["checked_in_at"]) == tapped_in and item["recorded_offline"] is True
    assert instant(item["checked_in_received_at"]) == row.checked_in_received_at

    checked_in, checked_out = await checkin_events(center.engine, visit_id)
    assert (instant(checked_in["time"]), instant(checked_in["data"]["checked_in_at"])) == (tapped_in, tapped_in)
    assert checked_in["data"]["recorded_offline"] is True
    assert instant(checked_out["data"]["checked_out_at"]) == tapped_out and checked_out["data"]["recorded_offline"]
    assert checked_out["data"]["minutes"] == 35


async def test_an_online_check_in_is_at_its_receive_time_and_not_flagged(center: Center) -> None:
    code = await register(center)
    before = datetime.now(UTC)
    visit = await center.call(
        "POST",
        "/visits",
        token=center.site.tokens["kiosk"],
        service="checkin",
        json={"kiosk_code": code, "purpose": "drop_in"},
    )
    assert visit.status == 201, visit.body
    row = await visit_row(center, visit.body["visit_id"])
    assert before <= row.checked_in_at == row.checked_in_received_at <= datetime.now(UTC)
    assert not row.checked_in_offline
    [event] = await checkin_events(center.engine, visit.body["visit_id"])
    assert event["data"]["recorded_offline"] is False


@pytest.mark.parametrize(
    ("offset", "code"),
    [
        (timedelta(minutes=3), "occurred_in_future"),
        (-timedelta(hours=25), "occurred_too_long_ago"),
    ],
)
async def test_an_occurred_at_out_of_bounds_is_refused_with_its_code_and_writes_nothing(
    center: Center, offset: timedelta, code: str
) -> None:
    kiosk = center.site.tokens["kiosk"]
    member_code = await register(center)
    refused = await center.call(
        "POST",
        "/visits",
        token=kiosk,
        service="checkin",
        json={"kiosk_code": member_code, "purpose": "drop_in", "occurred_at": iso(datetime.now(UTC) + offset)},
    )
    assert refused.status == 422, refused.body
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert refused.body["code"] == code
    # Nothing was written: the same member checks in now.
    now = await center.call(
        "POST", "/visits", token=kiosk, service="checkin", json={"kiosk_code": member_code, "purpose": "drop_in"}
    )
    assert now.status == 201, now.body
    # A check-out is bounded the same way.
    out = await center.call(
        "POST",
        f"/visits/{now.body['visit_id']}/checkout",
        token=kiosk,
        service="checkin",
        json={"occurred_at": iso(datetime.now(UTC) + offset)},
    )
    assert (out.status, out.body["code"]) == (422, code)


async def test_a_check_in_saved_before_the_site_closed_is_recorded_as_a_visit_the_closing_ended(
    center: Center,
) -> None:
    kiosk = center.site.tokens["kiosk"]
    member_code = await register(center)
    # The member is here now; the kiosk that was offline last evening sends what it saved then.
    today = await center.call(
        "POST", "/visits", token=kiosk, service="checkin", json={"kiosk_code": member_code, "purpose": "drop_in"}
    )
    assert today.status == 201, today.body
    # The site last closed 4 hours ago (the fixture).
    closing = (datetime.now(UTC) - timedelta(hours=4)).replace(second=0, microsecond=0)
    tapped = closing - timedelta(minutes=45)
    saved = await center.call(
        "POST",
        "/visits",
        token=kiosk,
        service="checkin",
        headers={"Idempotency-Key": str(uuid.uuid4())},
        json={"kiosk_code": member_code, "purpose": "education", "occurred_at": iso(tapped)},
    )
    assert saved.status == 201, saved.body
    assert (instant(saved.body["checked_in_at"]), instant(saved.body["checked_out_at"])) == (tapped, closing)
    row = await visit_row(center, saved.body["visit_id"])
    assert (row.checked_in_at, row.checked_out_at, row.closed_by) == (tapped, closing, "auto_close")
    assert row.checked_in_offline and not row.checked_out_offline
    assert (await visit_row(center, today.body["visit_id"])).checked_out_at is None
    checked_in, checked_out = await checkin_events(center.engine, saved.body["visit_id"])  # in this order
    assert checked_in["type"] == "checkin.visitor_checked_in"
    assert (checked_out["type"], checked_out["data"]["closed_by"], checked_out["data"]["minutes"]) == (
        "checkin.visitor_checked_out",
        "auto_close",
        45,
    )
    assert checked_out["data"]["member_id"] == checked_in["data"]["member_id"] == today.body["member_id"]

    # The same without a key (no transaction of the key's to ride on), anonymous.
    anonymous = await center.call(
        "POST",
        "/visits",
        token=kiosk,
        service="checkin",
        json={"anonymous": True, "purpose": "drop_in", "occurred_at": iso(tapped)},
    )
    assert anonymous.status == 201, anonymous.body
    assert [e["type"] for e in await checkin_events(center.engine, anonymous.body["visit_id"])] == [
        "checkin.visitor_checked_in",
        "checkin.visitor_checked_out",
    ]

    # A check-out saved then would close the visit begun since: refused, the visit stays open.
    out = await center.call(
        "POST",
        "/checkouts",
        token=kiosk,
        service="checkin",
        json={"kiosk_code": member_code, "occurred_at": iso(tapped + timedelta(minutes=30))},
    )
    assert (out.status, out.body["code"]) == (422, "occurred_before_closing")
    assert (await visit_row(center, today.body["visit_id"])).checked_out_at is None


async def test_a_little_kiosk_clock_skew_ahead_is_accepted_as_now_and_a_time_without_zone_is_refused(
    center: Center,
) -> None:
    kiosk = center.site.tokens["kiosk"]
    code = await register(center)
    naive = await center.call(
        "POST",
        "/visits",
        token=kiosk,
        service="checkin",
        json={"kiosk_code": code, "purpose": "drop_in", "occurred_at": "2026-01-01T10:00:00"},
    )
    assert naive.status == 422, naive.body
    ahead = datetime.now(UTC) + timedelta(seconds=60)
    visit = await center.call(
        "POST",
        "/visits",
        token=kiosk,
        service="checkin",
        json={"kiosk_code": code, "purpose": "drop_in", "occurred_at": iso(ahead)},
    )
    assert visit.status == 201, visit.body
    # Never later than it reached the server.
    assert instant(visit.body["checked_in_at"]) < ahead


async def test_volunteer_hours_and_the_visit_report_use_the_times_the_kiosk_recorded(center: Center) -> None:
    kiosk = center.site.tokens["kiosk"]
    registered = await center.call("POST", "/members", token=kiosk, json={}, service="checkin")
    member_id = uuid.UUID(registered.body["member_id"])
    role = await center.role(title="Front desk")
    await center.volunteers(1, [role], member_ids=[member_id])
    shift_id = await center.shift(role, starts_in=-timedelta(minutes=120), hours=3)
    # Not signed up (a shift that started cannot be taken any more): the hours still count, flagged for review.
    shift = await center.rows("SELECT starts_at FROM volunteering.shifts WHERE shift_id = :s", s=uuid.UUID(shift_id))
    starts_at = shift[0].starts_at
    tapped_in, tapped_out = starts_at, starts_at + timedelta(minutes=90)

    visit = await center.call(
        "POST",
        "/visits",
        token=kiosk,
        service="checkin",
        json={
            "member_id": str(member_id),
            "purpose": "volunteer_shift",
            "ref": shift_id,
            "occurred_at": iso(tapped_in),
        },
    )
    assert visit.status == 201, visit.body
    visit_id = visit.body["visit_id"]
    out = await center.call(
        "POST",
        f"/visits/{visit_id}/checkout",
        token=kiosk,
        service="checkin",
        json={"occurred_at": iso(tapped_out)},
    )
    assert out.status == 200, out.body

    async def hours() -> list[Any]:
        return await center.rows("SELECT * FROM volunteering.hours WHERE visit_id = :v", v=uuid.UUID(visit_id))

    async def reported() -> list[Any]:
        return await center.rows(
            "SELECT * FROM audit.rp_visit WHERE visit_id = :v AND checked_in AND checked_out_at IS NOT NULL",
            v=uuid.UUID(visit_id),
        )

    await eventually(lambda: _some(hours))
    await eventually(lambda: _some(reported))
    # Sent at the same moment, the two would have given 0 minutes: the hours are the 90 the kiosk recorded.
    [record] = await hours()
    assert record.minutes == 90
    [attendance] = await center.rows("SELECT * FROM volunteering.attendance WHERE visit_id = :v", v=uuid.UUID(visit_id))
    assert (attendance.checked_in_at, attendance.checked_out_at) == (tapped_in, tapped_out)
    [report_row] = await reported()
    assert (report_row.checked_in_at, report_row.checked_out_at) == (tapped_in, tapped_out)


async def _some(rows: Any) -> bool:
    return bool(await rows())


async def test_a_kiosk_checks_a_code_first_and_learns_only_whether_it_exists(
    settings: Settings, center: Center, other_site: Any
) -> None:
    kiosk = center.site.tokens["kiosk"]
    code = await register(center)

    async def check(typed: str, token: str = kiosk) -> Any:
        return await center.call("POST", "/code-checks", token=token, service="checkin", json={"kiosk_code": typed})

    found = await check(code.lower()[:3] + "-" + code.lower()[3:])
    assert (found.status, found.body) == (200, {"exists": True})
    assert (await check("ZZZZZZ" if code != "ZZZZZZ" else "YYYYYY")).body == {"exists": False}
    assert (await check("0O1I")).body == {"exists": False}
    # Another site's kiosk does not find this site's member.
    assert (await check(code, other_site.tokens["kiosk"])).body == {"exists": False}
    # Not for staff: only a kiosk asks.
    assert (await check(code, center.site.tokens["coordinator"])).status == 403


async def test_code_checks_are_rate_limited_per_kiosk(settings: Settings, vstack: Client) -> None:
    site = await make_site(settings)
    replies = [
        await vstack.call("checkin", "POST", "/code-checks", token=site.tokens["kiosk"], json={"kiosk_code": "ABCDEF"})
        for _ in range(15)
    ]
    statuses = [r.status for r in replies]
    # A burst of 10 (CheckinSettings.code_checks_burst), then refused with a code and a Retry-After.
    assert statuses[:10] == [200] * 10
    assert 429 in statuses[10:]
    refused = next(r for r in replies if r.status == 429)
    assert refused.body["code"] == "rate_limited"


async def test_a_queued_retry_stating_its_time_is_the_same_check_in_as_a_first_try_that_arrived(center: Center) -> None:
    """The kiosk tries at once without occurred_at; with no answer it queues the check-in and sends it again under
    the same key, now with the time of the tap. The first try had arrived: the retry gets its answer, nothing new."""
    kiosk = center.site.tokens["kiosk"]
    code = await register(center)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"kiosk_code": code, "purpose": "drop_in"}
    first = await center.call("POST", "/visits", token=kiosk, service="checkin", json=body, headers=key)
    assert first.status == 201, first.body
    stated = {**body, "occurred_at": iso(datetime.now(UTC) - timedelta(seconds=30))}
    again = await center.call("POST", "/visits", token=kiosk, service="checkin", json=stated, headers=key)
    assert (again.status, again.body, again.headers.get("Idempotent-Replayed")) == (201, first.body, "true")
    assert not (await visit_row(center, first.body["visit_id"])).checked_in_offline
    # Anything else under that key is still another request.
    other = {**stated, "purpose": "education"}
    reused = await center.call("POST", "/visits", token=kiosk, service="checkin", json=other, headers=key)
    assert reused.body["code"] == "idempotency_key_reused", reused.body


# The bounds themselves, without I/O.


NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def test_the_last_closing_is_today_once_past_it_and_yesterday_before_it() -> None:
    closes = time(21, 0)
    evening = datetime(2026, 3, 10, 22, 0, tzinfo=NEW_YORK)
    morning = datetime(2026, 3, 10, 9, 0, tzinfo=NEW_YORK)
    assert domain.last_closing_before(evening, NEW_YORK, closes) == datetime(2026, 3, 10, 21, 0, tzinfo=NEW_YORK)
    assert domain.last_closing_before(morning, NEW_YORK, closes) == datetime(2026, 3, 9, 21, 0, tzinfo=NEW_YORK)


def test_on_a_fall_back_night_the_last_closing_is_the_later_of_the_two() -> None:
    # 2026-11-01 01:30 happens twice in New York; a site closing at 01:30 last closed at the second one.
    after_both = datetime(2026, 11, 1, 7, 0, tzinfo=UTC)
    last = domain.last_closing_before(after_both, NEW_YORK, time(1, 30))
    assert last.astimezone(UTC) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


def test_a_time_within_the_skew_counts_as_now_and_one_beyond_it_is_refused() -> None:
    now = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    assert domain.occurred_time(now, now + domain.OCCURRED_AHEAD_SKEW) == now
    assert domain.occurred_time(now, now - timedelta(hours=3)) == now - timedelta(hours=3)
    with pytest.raises(InvalidInput) as ahead:
        domain.occurred_time(now, now + domain.OCCURRED_AHEAD_SKEW + timedelta(seconds=1))
    assert ahead.value.code == "occurred_in_future"


def test_a_check_in_before_the_last_closing_ends_at_the_closing_after_it_and_a_check_out_then_is_refused() -> None:
    closes = time(21, 0)
    now = datetime(2026, 3, 11, 9, 0, tzinfo=NEW_YORK)
    evening = datetime(2026, 3, 10, 20, 15, tzinfo=NEW_YORK)
    morning = datetime(2026, 3, 11, 8, 30, tzinfo=NEW_YORK)
    assert domain.check_in_time(now, evening, NEW_YORK, closes) == (
        evening,
        datetime(2026, 3, 10, 21, 0, tzinfo=NEW_YORK),
    )
    assert domain.check_in_time(now, morning, NEW_YORK, closes) == (morning, None)
    assert domain.check_out_time(now, morning, NEW_YORK, closes) == morning
    with pytest.raises(InvalidInput) as refused:
        domain.check_out_time(now, evening, NEW_YORK, closes)
    assert refused.value.code == "occurred_before_closing"
