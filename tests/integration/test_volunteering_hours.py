"""Hours worked, from the kiosk to approval, against the real PostgreSQL and RabbitMQ: check-in events become
attendance and hours exactly once, coordinators add, correct, approve and reject, no-shows are flagged kindly, and
every step reaches the audit log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest
from sqlalchemy import select

from services.checkin.models import Base as CheckinBase
from services.volunteering import attendance, handlers
from services.volunteering.commands import MarkMissedShifts
from shared import access
from shared.clock import FixedClock
from shared.contracts.checkin import VisitorCheckedIn, VisitorCheckedOut
from shared.events import ReceivedEvent, canonical_json, envelope
from shared.inbox import Subscriptions, inbox_consumer
from shared.outbox import amqp_message, cloudevent_from_row
from shared.settings import Settings
from shared.uow import execute
from tests.support.stack import eventually
from tests.support.volunteering import Center

pytestmark = pytest.mark.integration

VOLUNTEERING_EVENTS = {
    "volunteering.shift_scheduled",
    "volunteering.shift_changed",
    "volunteering.shift_cancelled",
    "volunteering.signed_up",
    "volunteering.waitlisted",
    "volunteering.promoted_from_waitlist",
    "volunteering.dropped",
    "volunteering.shift_worked",
    "volunteering.shift_missed",
    "volunteering.hours_approved",
    "volunteering.hours_rejected",
}


async def republish(settings: Settings, events: list[dict[str, Any]]) -> None:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(settings.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        for ce in events:
            await exchange.publish(amqp_message(ce), routing_key=ce["type"], mandatory=True)
    finally:
        await connection.close()


async def checkin_events_of(center: Center, visit_id: str) -> list[dict[str, Any]]:
    """The check-in service's own CloudEvents for a visit, rebuilt from its outbox exactly as they were sent."""
    outbox = CheckinBase.metadata.tables["checkin.outbox"]
    async with center.engine.connect() as conn:
        rows = await conn.execute(select(outbox).where(outbox.c.subject == visit_id).order_by(outbox.c.sequence))
        return [cloudevent_from_row(row, "/rcc/checkin") for row in rows]


async def hours_of_visit(center: Center, visit_id: str) -> list[Any]:
    return await center.rows("SELECT * FROM volunteering.hours WHERE visit_id = :v", v=uuid.UUID(visit_id))


async def test_a_kiosk_visit_for_a_shift_yields_hours_once_a_coordinator_approves_and_the_audit_log_shows_it(
    settings: Settings, center: Center
) -> None:
    kiosk = center.site.tokens["kiosk"]
    registered = await center.call("POST", "/members", token=kiosk, json={}, service="checkin")
    member_id = uuid.UUID(registered.body["member_id"])
    role = await center.role(title="Front desk")
    [me] = await center.volunteers(1, [role], member_ids=[member_id])
    shift_id = await center.shift(role, starts_in=timedelta(minutes=5), hours=2)
    spare = await center.shift(role, starts_in=timedelta(days=3), hours=2)
    # The volunteer, with their own token, finds the shifts open to them, takes both, and drops one.
    found = await center.ok("GET", "/shifts?open=true", token=me.token)
    assert [i["shift_id"] for i in found["items"]] == [shift_id, spare]
    assert (await center.sign_up(shift_id, me)).body["status"] == "confirmed"
    assert (await center.sign_up(spare, me)).body["status"] == "confirmed"
    assert (await center.drop(spare, me)).body["status"] == "dropped"

    visit = await center.call(
        "POST",
        "/visits",
        token=kiosk,
        service="checkin",
        json={"member_id": str(member_id), "purpose": "volunteer_shift", "ref": shift_id},
    )
    assert visit.status == 201, visit.body
    visit_id = visit.body["visit_id"]
    out = await center.call("POST", f"/visits/{visit_id}/checkout", token=kiosk, service="checkin")
    assert out.status == 200, out.body

    async def hours_recorded() -> bool:
        return len(await hours_of_visit(center, visit_id)) == 1

    await eventually(hours_recorded)

    # The same two CloudEvents again (a redelivery), and the check-out once more under a new event id.
    sent = await checkin_events_of(center, visit_id)
    assert [e["type"] for e in sent] == ["checkin.visitor_checked_in", "checkin.visitor_checked_out"]
    sentinel = {**sent[1], "id": str(uuid.uuid4())}
    await republish(settings, [*sent, *sent, sentinel])

    async def sentinel_processed() -> bool:
        rows = await center.rows("SELECT 1 FROM volunteering.inbox WHERE event_id = :id", id=uuid.UUID(sentinel["id"]))
        return len(rows) == 1

    await eventually(sentinel_processed)
    [record] = await hours_of_visit(center, visit_id)
    worked = [e for e in await center.outbox("volunteering.shift_worked") if e["visit_id"] == visit_id]
    assert len(worked) == 1
    assert (worked[0]["entry"], worked[0]["member_id"], worked[0]["shift_id"], worked[0]["signed_up"]) == (
        "check_in",
        str(member_id),
        shift_id,
        True,
    )
    assert (record.status, record.source, record.role_id, record.minutes) == ("pending", "check_in", role, 0)
    [attendance] = await center.rows("SELECT * FROM volunteering.attendance WHERE visit_id = :v", v=uuid.UUID(visit_id))
    assert attendance.checked_out_at is not None and attendance.signed_up

    pending = await center.ok("GET", "/hours?status=pending")
    assert [i["hours_id"] for i in pending["items"]] == [str(record.hours_id)]

    # Nobody approves their own hours: not even a coordinator who is also this volunteer.
    [own_coordinator] = await center.tokens_for([member_id], role=access.Role.COORDINATOR)
    own = await center.call("POST", f"/hours/{record.hours_id}/approve", token=own_coordinator)
    assert (own.status, own.body["code"]) == (403, "own_hours")
    approved = await center.ok("POST", f"/hours/{record.hours_id}/approve")
    assert approved["status"] == "approved"
    twice = await center.call("POST", f"/hours/{record.hours_id}/approve", token=center.coordinator)
    assert (twice.status, twice.body["code"], twice.body["hours_status"]) == (409, "hours_not_pending", "approved")

    mine = await center.ok("GET", "/me/hours", token=me.token)
    assert [(i["hours_id"], i["status"]) for i in mine["items"]] == [(str(record.hours_id), "approved")]
    assert (await center.ok("GET", f"/hours/{record.hours_id}", token=me.token))["status"] == "approved"
    past_and_coming = await center.ok("GET", "/me/shifts", token=me.token)
    assert past_and_coming["upcoming"][0]["worked_minutes"] == 0

    steps = {
        "checkin.member_registered",
        "checkin.visitor_checked_in",
        "checkin.visitor_checked_out",
        "volunteering.shift_scheduled",
        "volunteering.signed_up",
        "volunteering.dropped",
        "volunteering.shift_worked",
        "volunteering.hours_approved",
    }

    async def all_steps_audited() -> bool:
        return steps <= await center.audit_types()

    await eventually(all_steps_audited)
    verdict = await center.client.call("audit", "GET", "/audit/verify", token=center.site.tokens["admin"])
    assert verdict.body["ok"] is True


def check_in_event(
    site_id: str,
    visit_id: uuid.UUID,
    member_id: uuid.UUID | None,
    at: datetime,
    *,
    purpose: str = "volunteer_shift",
    ref: str | None = None,
    event_id: uuid.UUID | None = None,
) -> ReceivedEvent:
    return _received(
        site_id,
        "checkin.visitor_checked_in",
        visit_id,
        event_id,
        {
            "visit_id": str(visit_id),
            "member_id": str(member_id) if member_id else None,
            "anonymous": member_id is None,
            "purpose": purpose,
            "support_type": None,
            "ref": ref,
            "checked_in_at": at.isoformat(),
        },
    )


def check_out_event(
    site_id: str,
    visit_id: uuid.UUID,
    member_id: uuid.UUID | None,
    checked_in: datetime,
    checked_out: datetime,
    *,
    ref: str,
    closed_by: str = "kiosk",
    purpose: str = "volunteer_shift",
    event_id: uuid.UUID | None = None,
) -> ReceivedEvent:
    return _received(
        site_id,
        "checkin.visitor_checked_out",
        visit_id,
        event_id,
        {
            "visit_id": str(visit_id),
            "member_id": str(member_id) if member_id else None,
            "purpose": purpose,
            "ref": ref,
            "checked_in_at": checked_in.isoformat(),
            "checked_out_at": checked_out.isoformat(),
            "minutes": int((checked_out - checked_in).total_seconds() // 60),
            "closed_by": closed_by,
        },
    )


def _received(
    site_id: str, type_: str, visit_id: uuid.UUID, event_id: uuid.UUID | None, data: dict[str, Any]
) -> ReceivedEvent:
    ce = envelope(
        event_id=event_id or uuid.uuid4(),
        source="/rcc/checkin",
        type_=type_,
        time=datetime.now(UTC),
        subject=str(visit_id),
        site_id=site_id,
        data=data,
        dataschema=f"/rcc/schemas/{type_}/v1",
        classification="sensitive",
        sequence=1,
    )
    return ReceivedEvent.from_body(canonical_json(ce))


def attendance_consumer(center: Center, clock: FixedClock) -> Any:
    """The service's own consumer logic (inbox + handlers), fed directly, so times can be exact."""
    return inbox_consumer(
        f"it-{uuid.uuid4().hex[:6]}",
        center.uow,
        clock,
        Subscriptions({VisitorCheckedIn: attendance.record_check_in, VisitorCheckedOut: attendance.record_check_out}),
    )


async def test_check_in_events_become_clipped_rounded_hours_exactly_once(center: Center) -> None:
    role = await center.role()
    signed_up, walk_in = await center.volunteers(2, [role])
    start = (datetime.now(UTC) + timedelta(days=10)).replace(hour=18, minute=0, second=0, microsecond=0)
    shift_id = await center.shift(role, starts_in=timedelta(0), starts_at=start, hours=3)
    await center.sign_up(shift_id, signed_up)
    site = center.site.site_id
    process = attendance_consumer(center, FixedClock(start + timedelta(hours=4)))

    # Early by 40 minutes (30 count), 7 minutes late out: 3 h 37 min → 3 h 30 min.
    visit = uuid.uuid4()
    came, left = start - timedelta(minutes=40), start + timedelta(hours=3, minutes=7)
    check_in = check_in_event(site, visit, signed_up.member_id, came, ref=shift_id)
    check_out = check_out_event(site, visit, signed_up.member_id, came, left, ref=shift_id)
    await process([check_in])
    await process([check_in, check_out, check_out])
    await process([check_out_event(site, visit, signed_up.member_id, came, left, ref=shift_id)])  # new id, same visit
    [record] = await hours_of_visit(center, str(visit))
    assert (record.minutes, record.signed_up, list(record.review_codes), record.status) == (210, True, [], "pending")

    # A walk-in volunteer without a sign-up, whose visit the kiosk closed at closing time: counted (3 h 10 min up to
    # half an hour after the end → 3 h 15 min), flagged.
    visit = uuid.uuid4()
    came, left = start + timedelta(minutes=20), start + timedelta(hours=5)
    await process([check_out_event(site, visit, walk_in.member_id, came, left, ref=shift_id, closed_by="auto_close")])
    [flagged] = await hours_of_visit(center, str(visit))
    assert (flagged.minutes, flagged.signed_up, list(flagged.review_codes)) == (
        195,
        False,
        ["auto_closed", "no_signup"],
    )

    # Visits that are not a volunteer's shift here are ignored.
    ignored = [
        check_out_event(site, uuid.uuid4(), walk_in.member_id, came, left, ref=shift_id, purpose="drop_in"),
        check_out_event(site, uuid.uuid4(), walk_in.member_id, came, left, ref="not-a-shift"),
        check_out_event(site, uuid.uuid4(), walk_in.member_id, came, left, ref=str(uuid.uuid4())),
        check_out_event("another-site", uuid.uuid4(), walk_in.member_id, came, left, ref=shift_id),
        check_in_event(site, uuid.uuid4(), None, came, ref=shift_id),
    ]
    await process(ignored)
    assert len(await center.rows("SELECT 1 FROM volunteering.hours WHERE shift_id = :s", s=uuid.UUID(shift_id))) == 2
    worked = await center.outbox("volunteering.shift_worked")
    assert sorted(e["minutes"] for e in worked) == [195, 210]


async def test_a_confirmed_volunteer_who_does_not_come_is_marked_missed_once_for_a_friendly_follow_up(
    center: Center,
) -> None:
    role = await center.role()
    absent, present, covered, waiting = await center.volunteers(4, [role])
    start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    shift_id = await center.shift(role, starts_in=timedelta(0), starts_at=start, hours=2, capacity=3)
    for person in (absent, present, covered, waiting):
        await center.sign_up(shift_id, person)
    end = start + timedelta(hours=2)
    process = attendance_consumer(center, FixedClock(start))
    await process([check_in_event(center.site.site_id, uuid.uuid4(), present.member_id, start, ref=shift_id)])
    # The kiosk was down for this one: a coordinator entered the hours.
    await center.ok(
        "POST",
        "/hours",
        status=201,
        json={"member_id": str(covered.member_id), "shift_id": shift_id, "minutes": 120, "reason": "kiosk down"},
    )

    async def mark(at: datetime) -> int:
        cmd = MarkMissedShifts(site_id=center.site.site_id, grace=timedelta(minutes=15))
        outcome = await execute(handlers.mark_missed_shifts, cmd, uow=center.uow(), clock=FixedClock(at))
        return outcome.body["marked"]

    assert await mark(end + timedelta(minutes=10)) == 0  # the check-in may still be on its way
    assert await mark(end + timedelta(minutes=16)) == 1
    assert await mark(end + timedelta(hours=5)) == 0  # once
    [missed] = await center.outbox("volunteering.shift_missed", shift_id)
    assert (missed["member_id"], missed["follow_up"]) == (str(absent.member_id), True)
    mine = await center.ok("GET", "/me/shifts", token=absent.token)
    assert (mine["upcoming"][0]["status"], mine["upcoming"][0]["missed"]) == ("confirmed", True)

    # Their check-in arrives late (the broker was down): the flag goes away.
    await process([check_in_event(center.site.site_id, uuid.uuid4(), absent.member_id, start, ref=shift_id)])
    mine = await center.ok("GET", "/me/shifts", token=absent.token)
    assert mine["upcoming"][0]["missed"] is False


async def test_coordinators_add_correct_reject_and_approve_hours_and_reasons_stay_out_of_events(
    center: Center,
) -> None:
    role = await center.role()
    [me] = await center.volunteers(1, [role])
    shift_id = await center.shift(role, starts_in=timedelta(days=2))
    added = await center.ok(
        "POST",
        "/hours",
        status=201,
        json={
            "member_id": str(me.member_id),
            "shift_id": shift_id,
            "minutes": 90,
            "reason": "Covered the phones for Sam",
        },
    )
    assert (added["status"], added["source"], added["review_codes"]) == ("pending", "coordinator", ["no_signup"])
    hours_id = added["hours_id"]
    corrected = await center.ok(
        "POST", f"/hours/{hours_id}/correct", json={"minutes": 120, "reason": "Stayed for the evening group"}
    )
    assert (corrected["minutes"], corrected["status"]) == (120, "pending")
    rejected = await center.ok("POST", f"/hours/{hours_id}/reject", json={"reason": "Was a drop-in, not a shift"})
    assert (rejected["status"], rejected["decision_reason"]) == ("rejected", "Was a drop-in, not a shift")
    reopened = await center.ok("POST", f"/hours/{hours_id}/correct", json={"minutes": 60, "reason": "Agreed: one hour"})
    assert reopened["status"] == "pending"
    approved = await center.ok("POST", f"/hours/{hours_id}/approve")
    assert (approved["status"], approved["minutes"]) == ("approved", 60)

    worked = await center.outbox("volunteering.shift_worked", hours_id)
    assert [(e["entry"], e["minutes"], e["previous_minutes"]) for e in worked] == [
        ("added", 90, None),
        ("corrected", 120, 90),
        ("corrected", 60, 120),
    ]
    assert len(await center.outbox("volunteering.hours_rejected", hours_id)) == 1
    everything = str(
        await center.rows("SELECT data FROM volunteering.outbox WHERE site_id = :s", s=center.site.site_id)
    )
    for words in ("phones", "Sam", "drop-in", "evening", "one hour"):
        assert words not in everything

    listed = await center.ok("GET", f"/hours?status=approved&member_id={me.member_id}")
    assert [(i["hours_id"], i["minutes"]) for i in listed["items"]] == [(hours_id, 60)]
    assert listed["total_minutes"] == {"approved": 60}
    profile = await center.ok("GET", f"/volunteers/{me.member_id}", token=me.token)
    assert profile["this_month"]["approved_minutes"] in (0, 60)  # the shift may fall in next month

    [own_coordinator] = await center.tokens_for([me.member_id], role=access.Role.COORDINATOR)
    for path, body in (
        (f"/hours/{hours_id}/correct", {"minutes": 600, "reason": "x"}),
        (f"/hours/{hours_id}/reject", {"reason": "x"}),
    ):
        own = await center.call("POST", path, token=own_coordinator, json=body)
        assert (own.status, own.body["code"]) == (403, "own_hours")
    own_add = await center.call(
        "POST",
        "/hours",
        token=own_coordinator,
        json={"member_id": str(me.member_id), "shift_id": shift_id, "minutes": 600, "reason": "x"},
    )
    assert (own_add.status, own_add.body["code"]) == (403, "own_hours")


async def test_every_volunteering_event_reaches_the_audit_log(center: Center) -> None:
    role = await center.role()
    first, second = await center.volunteers(2, [role])
    start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    shift_id = await center.shift(role, starts_in=timedelta(0), starts_at=start, capacity=1)  # shift_scheduled
    await center.sign_up(shift_id, first)  # signed_up
    await center.sign_up(shift_id, second)  # waitlisted
    await center.drop(shift_id, first)  # dropped, promoted_from_waitlist
    await center.ok("PATCH", f"/shifts/{shift_id}", json={"capacity": 3})  # shift_changed
    await center.sign_up(shift_id, first)
    other = await center.shift(role, starts_in=timedelta(days=5))
    await center.ok("POST", f"/shifts/{other}/cancel")  # shift_cancelled
    for decision in ("approve", "reject"):  # shift_worked, hours_approved, hours_rejected
        added = await center.ok(
            "POST",
            "/hours",
            status=201,
            json={"member_id": str(first.member_id), "shift_id": shift_id, "minutes": 30, "reason": "test"},
        )
        body = {"reason": "test"} if decision == "reject" else None
        await center.ok("POST", f"/hours/{added['hours_id']}/{decision}", json=body)
    cmd = MarkMissedShifts(site_id=center.site.site_id, grace=timedelta(minutes=15))
    clock = FixedClock(start + timedelta(hours=4))
    # shift_missed: `second` never came (`first` has hours a coordinator entered).
    assert (await execute(handlers.mark_missed_shifts, cmd, uow=center.uow(), clock=clock)).body["marked"] == 1

    async def all_audited() -> bool:
        return await center.audit_types() >= VOLUNTEERING_EVENTS

    await eventually(all_audited)
