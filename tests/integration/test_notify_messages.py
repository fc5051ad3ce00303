"""What people are told, against the real PostgreSQL, RabbitMQ and a real SMTP server (aiosmtpd): events of
volunteering and gatherings become messages (through the broker, or the consumer's own ``process``), reminders are
scheduled, moved, cancelled and caught up, quiet hours defer, the cap and coalescing hold, and nothing is sent
twice."""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import aio_pika
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.notify import consumers, domain, reminders
from services.notify.models import Base, NotifyUnitOfWork
from services.notify.settings import NotifySettings
from shared.clock import SystemClock
from shared.contracts import EventData
from shared.contracts.checkin import MemberErased
from shared.contracts.gatherings import GatheringPromotedFromWaitlist, SessionCancelled
from shared.contracts.volunteering import (
    HoursApproved,
    PromotedFromWaitlist,
    ShiftCancelled,
    ShiftChanged,
    ShiftMissed,
    SignedUp,
)
from shared.db import make_connector
from shared.events import ReceivedEvent, canonical_json, envelope
from shared.inbox import inbox_consumer
from shared.messaging import declare_exchanges
from shared.outbox import amqp_message
from shared.settings import Settings
from tests.support import members
from tests.support.smtp import Inbox, Received, smtp_server
from tests.support.stack import Client, SiteUnderTest, eventually, make_site, services

pytestmark = pytest.mark.integration

FROM = "center@notify.example"
ZONE = zoneinfo.ZoneInfo("America/Chicago")


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
def configured(settings: Settings, inbox: Inbox) -> NotifySettings:
    return NotifySettings(
        **{
            **settings.model_dump(),
            "rate_limit_per_minute": 0,
            "smtp_url": inbox.url,
            "notify_from": FROM,
            "send_interval_s": 0.05,
            "remind_interval_s": 0.1,
            "retry_base_s": 0.1,
            "max_attempts": 12,
        }
    )


@pytest.fixture(scope="module")
async def nstack(configured: NotifySettings) -> AsyncIterator[Client]:
    async with services(configured, ["checkin", "notify"]) as client:
        yield client


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
def uow(engine: AsyncEngine) -> Any:
    connect = make_connector(engine)

    def unit_of_work() -> NotifyUnitOfWork:
        work = NotifyUnitOfWork(connect, Base.metadata)
        work.sender = FROM
        return work

    return unit_of_work


@pytest.fixture
async def place(settings: Settings, nstack: Client) -> SiteUnderTest:
    return await make_site(settings, timezone="America/Chicago")


def _address() -> str:
    return f"person-{uuid.uuid4().hex[:10]}@mail.example"


async def _contact(
    engine: AsyncEngine,
    site: SiteUnderTest,
    member_id: uuid.UUID,
    address: str,
    *,
    verified: bool = True,
    withdrawn: bool = False,
    locale: str = "en",
    quiet: tuple[time, time] | None = None,
    kinds: tuple[str, ...] = domain.ALL_KINDS,
) -> uuid.UUID:
    """A contact as adding and verifying it over HTTP leaves it (those flows are test_notify_contacts.py's)."""
    contact_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO notify.contacts (contact_id, member_id, site_id, channel, address, locale, quiet_start,"
                " quiet_end, kinds, consent_at, consent_by, consent_source, verified_at, withdrawn_at)"
                " VALUES (:c, :m, :s, 'email', :a, :l, :qs, :qe, :k, now(), 'token:test', 'test', :v, :w)"
            ),
            {
                "c": contact_id,
                "m": member_id,
                "s": site.site_id,
                "a": None if withdrawn else address,
                "l": locale,
                "qs": quiet[0] if quiet else None,
                "qe": quiet[1] if quiet else None,
                "k": list(kinds),
                "v": datetime.now(UTC) if verified else None,
                "w": datetime.now(UTC) if withdrawn else None,
            },
        )
    return contact_id


def _event(contract: type[EventData], site: SiteUnderTest, **data: Any) -> dict[str, Any]:
    payload = contract(**data)
    return envelope(
        event_id=uuid.uuid4(),
        source="/rcc/volunteering",
        type_=contract.event_type,
        time=datetime.now(UTC),
        subject=str(uuid.uuid4()),
        site_id=site.site_id,
        data=payload.model_dump(mode="json", by_alias=True),
        dataschema=contract.dataschema(),
        classification=contract.classification,
        sequence=1,
    )


async def _process(uow: Any, *events: dict[str, Any]) -> None:
    """The notify consumer's own ``process``, as its queue consumer runs it."""
    process = inbox_consumer(consumers.QUEUE, uow, SystemClock(), consumers.SUBSCRIPTIONS)
    await process([ReceivedEvent.from_body(canonical_json(ce)) for ce in events])


async def _publish(settings: Settings, ce: dict[str, Any], times: int = 1) -> None:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange, _ = await declare_exchanges(channel, settings)
        for _ in range(times):
            await exchange.publish(amqp_message(ce), routing_key=ce["type"], timeout=5)
    finally:
        await connection.close()


def _to(inbox: Inbox, address: str) -> list[Received]:
    return [m for m in inbox.messages if address in m.rcpt_tos]


async def _arrived(inbox: Inbox, address: str, count: int = 1) -> list[Received]:
    async def enough() -> bool:
        return len(_to(inbox, address)) >= count

    await eventually(enough)
    return _to(inbox, address)


async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


def _shift(starts_at: datetime, member_id: uuid.UUID, **extra: Any) -> dict[str, Any]:
    return {
        "signup_id": uuid.uuid4(),
        "shift_id": extra.pop("shift_id", uuid.uuid4()),
        "member_id": member_id,
        "role_id": "front_desk",
        "starts_at": starts_at,
        "ends_at": starts_at + timedelta(hours=3),
        **extra,
    }


async def test_a_promotion_reaches_the_inbox_and_the_in_app_list(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine, settings: Settings
) -> None:
    member = place.volunteer_member_id
    assert member is not None
    address = _address()
    contact_id = await _contact(engine, place, member, address)
    [no_email] = await members.new_known(engine, place.site_id, 1)
    starts = datetime.now(UTC) + timedelta(days=3)
    promoted = _event(PromotedFromWaitlist, place, **_shift(starts, member, trigger="seat_freed"))
    await _publish(settings, promoted)
    other = _event(PromotedFromWaitlist, place, **_shift(starts, no_email, trigger="seat_freed"))
    await _publish(settings, other)
    [received] = await _arrived(inbox, address)
    message = received.message
    assert message["Message-ID"] == f"<shift_promoted.{promoted['id']}.{contact_id}@notify.example>"
    assert message["Subject"].startswith("your center: A place opened up: you are on a volunteer shift, ")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/volunteer" in message.get_body(preferencelist=("plain",)).get_content()
    listed = await nstack.call(
        "notify", "GET", f"/members/{member}/notifications?limit=5", token=place.tokens["volunteer"]
    )
    assert listed.status == 200, listed.body
    [item] = listed.body["items"]
    assert set(item) == {"delivery_id", "purpose", "kind", "status", "created_at", "sent_at", "summary"}
    assert (item["purpose"], item["kind"], item["status"]) == ("shift_promoted", "confirmations", "sent")
    assert item["summary"].startswith("A place opened up: you are on a volunteer shift, ")

    async def listed_without_email() -> bool:
        reply = await nstack.call(
            "notify", "GET", f"/members/{no_email}/notifications", token=place.tokens["coordinator"]
        )
        return reply.status == 200 and [i["purpose"] for i in reply.body["items"]] == ["shift_promoted"]

    await eventually(listed_without_email)
    other_member = await nstack.call(
        "notify", "GET", f"/members/{no_email}/notifications", token=place.tokens["volunteer"]
    )
    assert (other_member.status, other_member.body["code"]) == (403, "not_own_member")
    bad_limit = await nstack.call(
        "notify", "GET", f"/members/{member}/notifications?limit=0", token=place.tokens["volunteer"]
    )
    assert (bad_limit.status, bad_limit.body["code"]) == (422, "invalid_request")


async def test_two_hundred_redeliveries_of_one_event_send_one_message(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine, settings: Settings, uow: Any
) -> None:
    [member] = await members.new_known(engine, place.site_id, 1)
    address = _address()
    await _contact(engine, place, member, address)
    approved = _event(
        HoursApproved,
        place,
        hours_id=uuid.uuid4(),
        shift_id=uuid.uuid4(),
        member_id=member,
        role_id="front_desk",
        shift_starts_at=datetime.now(UTC) - timedelta(days=1),
        minutes=135,
        approved_at=datetime.now(UTC),
    )
    await _publish(settings, approved, times=100)
    for _ in range(10):
        await _process(uow, *[approved] * 10)
    await _arrived(inbox, address)
    await asyncio.sleep(1.0)  # a second copy, if any, would arrive by now
    assert len(_to(inbox, address)) == 1
    rows = await _rows(engine, "SELECT channel FROM notify.deliveries WHERE cause_id = :e", e=approved["id"])
    assert sorted(r.channel for r in rows) == ["email", "inapp"]


async def test_unverified_and_withdrawn_contacts_receive_nothing(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine, uow: Any
) -> None:
    unverified, withdrawn = await members.new_known(engine, place.site_id, 2)
    first, second = _address(), _address()
    await _contact(engine, place, unverified, first, verified=False)
    await _contact(engine, place, withdrawn, second, withdrawn=True)
    starts = datetime.now(UTC) + timedelta(days=2)
    await _process(
        uow,
        _event(SignedUp, place, **_shift(starts, unverified, signed_up_by="self")),
        _event(SignedUp, place, **_shift(starts, withdrawn, signed_up_by="self")),
    )
    rows = await _rows(
        engine,
        "SELECT channel FROM notify.deliveries WHERE member_id IN (:a, :b)",
        a=unverified,
        b=withdrawn,
    )
    assert [r.channel for r in rows] == ["inapp", "inapp"]
    await asyncio.sleep(0.5)
    assert _to(inbox, first) == [] and _to(inbox, second) == []


async def test_a_spanish_contact_gets_spanish_text(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine, uow: Any
) -> None:
    [member] = await members.new_known(engine, place.site_id, 1)
    address = _address()
    await _contact(engine, place, member, address, locale="es")
    starts = datetime(2027, 3, 6, 15, 0, tzinfo=UTC)  # Saturday 9:00 in Chicago
    await _process(uow, _event(SignedUp, place, **_shift(starts, member, signed_up_by="self")))
    [received] = await _arrived(inbox, address)
    assert received.message["Subject"] == "your center: Tiene un lugar en un turno de voluntariado, sáb 6 mar 9:00"
    plain = received.message.get_body(preferencelist=("plain",)).get_content()
    assert plain.splitlines()[0] == "Tiene un lugar en un turno de voluntariado, sáb 6 mar 9:00"
    assert "sábado, 6 de marzo de 2027" in plain and "Para dejar de recibir" in plain


def _quiet_around_now() -> tuple[time, time, datetime]:
    """Quiet hours from an hour ago to two hours ahead on the site's clock, and when they end."""
    now = datetime.now(UTC)
    end = (now + timedelta(hours=2)).astimezone(ZONE).replace(second=0, microsecond=0)
    start = (now - timedelta(hours=1)).astimezone(ZONE)
    return time(start.hour, start.minute), time(end.hour, end.minute), end.astimezone(UTC)


async def test_quiet_hours_defer_a_message_and_drop_a_reminder_they_outlast(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine, uow: Any
) -> None:
    [member] = await members.new_known(engine, place.site_id, 1)
    address = _address()
    start, end, ends_at = _quiet_around_now()
    contact_id = await _contact(engine, place, member, address, quiet=(start, end))
    # A shift in 100 minutes: the 2-hour reminder is due at once, and the quiet hours outlast the shift's start.
    soon = datetime.now(UTC) + timedelta(minutes=100)
    await _process(uow, _event(SignedUp, place, **_shift(soon, member, signed_up_by="self")))

    async def settled() -> bool:
        rows = await _rows(
            engine,
            "SELECT purpose, status, drop_reason, next_attempt_at FROM notify.deliveries WHERE contact_id = :c",
            c=contact_id,
        )
        return {r.purpose for r in rows} == {"shift_confirmed", "shift_reminder"} and all(
            r.status == "dropped" or r.next_attempt_at >= ends_at - timedelta(minutes=1) for r in rows
        )

    await eventually(settled)
    rows = {
        r.purpose: r
        for r in await _rows(
            engine,
            "SELECT purpose, status, drop_reason, next_attempt_at FROM notify.deliveries WHERE contact_id = :c",
            c=contact_id,
        )
    }
    assert (rows["shift_confirmed"].status, rows["shift_confirmed"].next_attempt_at) == ("pending", ends_at)
    assert (rows["shift_reminder"].status, rows["shift_reminder"].drop_reason) == ("dropped", "quiet_hours")
    assert _to(inbox, address) == []


async def _reminders(engine: AsyncEngine, subject_id: uuid.UUID) -> list[Any]:
    return await _rows(
        engine,
        "SELECT reminder_id, offset_minutes, starts_at, due_at, status FROM notify.reminders"
        " WHERE subject_id = :s ORDER BY offset_minutes DESC",
        s=subject_id,
    )


async def test_moving_a_shift_moves_its_reminders_and_cancelling_removes_them(
    nstack: Client, place: SiteUnderTest, engine: AsyncEngine, uow: Any
) -> None:
    [member] = await members.new_known(engine, place.site_id, 1)
    shift_id = uuid.uuid4()
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    await _process(uow, _event(SignedUp, place, **_shift(starts, member, shift_id=shift_id, signed_up_by="self")))
    before = await _reminders(engine, shift_id)
    assert [(r.offset_minutes, r.due_at, r.status) for r in before] == [
        (1440, starts - timedelta(days=1), "scheduled"),
        (120, starts - timedelta(hours=2), "scheduled"),
    ]
    moved = starts + timedelta(days=1, hours=2)
    change = {
        "shift_id": shift_id,
        "role_id": "front_desk",
        "changed": ["starts_at", "ends_at"],
        "starts_at": moved,
        "ends_at": moved + timedelta(hours=3),
        "capacity": 3,
        "needs_supervisor": False,
        "confirmed": 1,
        "waitlisted": 0,
        "affected_member_ids": [member],
    }
    await _process(uow, _event(ShiftChanged, place, **change))
    after = await _reminders(engine, shift_id)
    assert [(r.offset_minutes, r.due_at, r.status) for r in after] == [
        (1440, moved - timedelta(days=1), "scheduled"),
        (120, moved - timedelta(hours=2), "scheduled"),
    ]
    assert not {r.reminder_id for r in before} & {r.reminder_id for r in after}
    cancelled = {
        "shift_id": shift_id,
        "series_id": None,
        "role_id": "front_desk",
        "starts_at": moved,
        "ends_at": moved + timedelta(hours=3),
        "cancelled_at": datetime.now(UTC),
        "affected_member_ids": [member],
    }
    await _process(uow, _event(ShiftCancelled, place, **cancelled))
    assert await _reminders(engine, shift_id) == []


async def test_after_downtime_only_the_latest_reminder_still_ahead_is_sent(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine, uow: Any
) -> None:
    [member] = await members.new_known(engine, place.site_id, 1)
    address = _address()
    await _contact(engine, place, member, address, kinds=("reminders",))
    shift_id = uuid.uuid4()
    # The 24-hour and the 2-hour reminder of a shift in 90 minutes are both overdue (as after a day down).
    soon = datetime.now(UTC) + timedelta(minutes=90)
    await _process(uow, _event(SignedUp, place, **_shift(soon, member, shift_id=shift_id, signed_up_by="self")))
    [received] = await _arrived(inbox, address)
    assert "Reminder: your volunteer shift" in received.message["Subject"]

    async def settled() -> bool:
        return [r.status for r in await _reminders(engine, shift_id)] == ["skipped", "sent"]

    await eventually(settled)
    await asyncio.sleep(0.5)
    assert len(_to(inbox, address)) == 1


async def test_two_schedulers_racing_send_each_reminder_once(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine, configured: NotifySettings, uow: Any
) -> None:
    """The service's own scheduler and three more (as replicas would run) over the same due reminders."""
    people = await members.new_known(engine, place.site_id, 20)
    addresses = [_address() for _ in people]
    for member, address in zip(people, addresses, strict=True):
        await _contact(engine, place, member, address, kinds=("reminders",))
    starts = datetime.now(UTC) + timedelta(minutes=30)
    async with engine.begin() as conn:
        for member in people:
            await conn.execute(
                text(
                    "INSERT INTO notify.reminders (reminder_id, member_id, site_id, subject, subject_id, starts_at,"
                    " offset_minutes, due_at, status, cause_id, created_at)"
                    " VALUES (:r, :m, :s, 'event', :e, :t, 120, :d, 'scheduled', :r, now())"
                ),
                {
                    "r": uuid.uuid4(),
                    "m": member,
                    "s": place.site_id,
                    "e": uuid.uuid4(),
                    "t": starts,
                    "d": starts - timedelta(hours=2),
                },
            )
    small = configured.model_copy(update={"remind_batch_size": 3})
    await asyncio.gather(*(reminders.remind_due(small, uow, SystemClock()) for _ in range(3)))
    for address in addresses:
        await _arrived(inbox, address)
    await asyncio.sleep(0.5)
    assert [len(_to(inbox, address)) for address in addresses] == [1] * len(addresses)


async def test_smtp_down_for_a_while_then_back_sends_each_message_once(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine, uow: Any
) -> None:
    people = await members.new_known(engine, place.site_id, 5)
    addresses = [_address() for _ in people]
    for member, address in zip(people, addresses, strict=True):
        await _contact(engine, place, member, address)
    inbox.stop()
    try:
        starts = datetime.now(UTC) + timedelta(days=2)
        await _process(uow, *(_event(SignedUp, place, **_shift(starts, m, signed_up_by="self")) for m in people))

        async def tried() -> bool:
            rows = await _rows(
                engine,
                "SELECT attempts FROM notify.deliveries WHERE member_id = ANY(:m) AND channel = 'email'",
                m=people,
            )
            return len(rows) == 5 and all(r.attempts >= 2 for r in rows)

        await eventually(tried)
    finally:
        inbox.start()
    for address in addresses:
        await _arrived(inbox, address)
    await asyncio.sleep(1.0)
    assert [len(_to(inbox, address)) for address in addresses] == [1] * 5


async def test_one_click_unsubscribe_stops_that_kind_only(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine, uow: Any
) -> None:
    [member] = await members.new_known(engine, place.site_id, 1)
    address = _address()
    contact_id = await _contact(engine, place, member, address)
    starts = datetime.now(UTC) + timedelta(days=2)
    await _process(uow, _event(SignedUp, place, **_shift(starts, member, signed_up_by="self")))
    [received] = await _arrived(inbox, address)
    link = urllib.parse.urlsplit(received.message["List-Unsubscribe"].strip("<>"))
    reply = await nstack.call("notify", "POST", f"{link.path}?{link.query}")
    assert reply.status == 200, reply.body
    [row] = await _rows(engine, "SELECT address, kinds FROM notify.contacts WHERE contact_id = :c", c=contact_id)
    assert row.address == address and "confirmations" not in row.kinds and "approvals" in row.kinds
    await _process(uow, _event(SignedUp, place, **_shift(starts, member, signed_up_by="self")))
    approved = _event(
        HoursApproved,
        place,
        hours_id=uuid.uuid4(),
        shift_id=uuid.uuid4(),
        member_id=member,
        role_id="front_desk",
        shift_starts_at=starts,
        minutes=60,
        approved_at=datetime.now(UTC),
    )
    await _process(uow, approved)
    [_, second] = await _arrived(inbox, address, 2)
    assert "approved" in second.message["Subject"]
    await asyncio.sleep(0.5)
    assert len(_to(inbox, address)) == 2


async def test_a_burst_of_changes_is_one_message_and_the_cap_stops_a_storm(
    nstack: Client, place: SiteUnderTest, engine: AsyncEngine, uow: Any
) -> None:
    [member] = await members.new_known(engine, place.site_id, 1)
    contact_id = await _contact(engine, place, member, _address())
    shift_id = uuid.uuid4()
    first = datetime.now(UTC) + timedelta(days=5)
    for minutes in (0, 30, 60):
        moved = first + timedelta(minutes=minutes)
        change = {
            "shift_id": shift_id,
            "role_id": "front_desk",
            "changed": ["starts_at"],
            "starts_at": moved,
            "ends_at": moved + timedelta(hours=3),
            "capacity": 3,
            "needs_supervisor": False,
            "confirmed": 1,
            "waitlisted": 0,
            "affected_member_ids": [member],
        }
        await _process(uow, _event(ShiftChanged, place, **change))
    rows = await _rows(
        engine,
        "SELECT channel, template_values->>'starts_at' AS starts FROM notify.deliveries WHERE member_id = :m",
        m=member,
    )
    latest = (first + timedelta(minutes=60)).isoformat()
    assert sorted((r.channel, r.starts) for r in rows) == [("email", latest), ("inapp", latest)]
    put = await nstack.call(
        "notify",
        "PUT",
        "/site/messages",
        token=place.tokens["coordinator"],
        json={"message_name": None, "reminder_offsets": [1440, 120], "daily_cap": 3},
    )
    assert put.status == 200, put.body
    for _ in range(4):
        await _process(
            uow,
            _event(
                HoursApproved,
                place,
                hours_id=uuid.uuid4(),
                shift_id=uuid.uuid4(),
                member_id=member,
                role_id="front_desk",
                shift_starts_at=first,
                minutes=60,
                approved_at=datetime.now(UTC),
            ),
        )
    statuses = await _rows(
        engine,
        "SELECT status, drop_reason FROM notify.deliveries WHERE contact_id = :c AND purpose = 'hours_approved'",
        c=contact_id,
    )
    assert sorted((r.status == "dropped", r.drop_reason) for r in statuses) == [
        (False, None),
        (False, None),
        (True, "daily_cap"),
        (True, "daily_cap"),
    ]


async def test_site_settings_and_coordinators_and_a_missed_shift_goes_to_coordinators_only(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine, uow: Any
) -> None:
    coordinator = place.tokens["coordinator"]
    got = await nstack.call("notify", "GET", "/site/messages", token=coordinator)
    assert got.status == 200 and (got.body["shown_as"], got.body["reminder_offsets"], got.body["daily_cap"]) == (
        "your center",
        [1440, 120],
        10,
    )
    for body, code in [
        ({"message_name": "Riverside Recovery Center"}, "message_name_not_neutral"),
        ({"message_name": "x" * 80}, "bad_message_name"),
        # Bounds the schema states are refused by it; what it cannot enforce (each time once) by the handler.
        ({"reminder_offsets": [0]}, "invalid_request"),
        ({"reminder_offsets": [60, 60]}, "bad_reminder_offsets"),
        ({"daily_cap": 0}, "invalid_request"),
        ({"daily_cap": "ten"}, "invalid_request"),
    ]:
        reply = await nstack.call("notify", "PUT", "/site/messages", token=coordinator, json=body)
        assert (reply.status, reply.body["code"]) == (422, code), body
        assert reply.headers["Content-Type"].startswith("application/problem+json")
    volunteer = await nstack.call("notify", "PUT", "/site/messages", token=place.tokens["volunteer"], json={})
    assert (volunteer.status, volunteer.body["code"]) == (403, "wrong_role")
    put = await nstack.call(
        "notify", "PUT", "/site/messages", token=coordinator, json={"message_name": "Riverside Center"}
    )
    assert put.status == 200 and put.body["shown_as"] == "Riverside Center"

    lead, volunteer_member = await members.new_known(engine, place.site_id, 2)
    lead_address, volunteer_address = _address(), _address()
    await _contact(engine, place, lead, lead_address)
    await _contact(engine, place, volunteer_member, volunteer_address)
    marked = await nstack.call("notify", "PUT", f"/site/coordinators/{lead}", token=coordinator)
    assert marked.status == 200 and marked.body["coordinator"] is True
    unknown = await nstack.call("notify", "PUT", f"/site/coordinators/{uuid.uuid4()}", token=coordinator)
    assert (unknown.status, unknown.body["code"]) == (404, "member_not_found")
    listed = await nstack.call("notify", "GET", "/site/coordinators", token=coordinator)
    assert listed.body["items"] == [str(lead)]
    missed = _event(
        ShiftMissed,
        place,
        signup_id=uuid.uuid4(),
        shift_id=uuid.uuid4(),
        member_id=volunteer_member,
        role_id="front_desk",
        starts_at=datetime.now(UTC) - timedelta(hours=4),
        ends_at=datetime.now(UTC) - timedelta(hours=1),
        follow_up=True,
    )
    await _process(uow, missed)
    [received] = await _arrived(inbox, lead_address)
    assert received.message["Subject"].startswith("Riverside Center: A volunteer may welcome a friendly check-in")
    await asyncio.sleep(0.5)
    assert _to(inbox, volunteer_address) == []
    rows = await _rows(engine, "SELECT member_id FROM notify.deliveries WHERE cause_id = :e", e=missed["id"])
    assert {r.member_id for r in rows} == {lead}


async def test_a_gathering_promotion_is_told_and_reminded_and_a_cancelled_session_removes_its_reminders(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine, uow: Any
) -> None:
    [member] = await members.new_known(engine, place.site_id, 1)
    address = _address()
    await _contact(engine, place, member, address, locale="es")
    session_id, group_id = uuid.uuid4(), uuid.uuid4()
    starts = (datetime.now(UTC) + timedelta(days=4)).replace(microsecond=0)
    seat = {
        "registration_id": uuid.uuid4(),
        "member_id": member,
        "session_id": session_id,
        "group_id": group_id,
        "event_id": None,
        "support_type": "emotional",
        "starts_at": starts,
        "adults": 1,
        "children": 0,
    }
    promoted = _event(
        GatheringPromotedFromWaitlist,
        place,
        **seat,
        waiting_since=datetime.now(UTC) - timedelta(days=1),
        promoted_at=datetime.now(UTC),
        reason="cancellation",
    )
    await _process(uow, promoted)
    [received] = await _arrived(inbox, address)
    subject = " ".join(received.message["Subject"].split())
    assert subject.startswith("your center: Se liberó un lugar: tiene un lugar en una sesión, ")
    assert [r.status for r in await _reminders(engine, session_id)] == ["scheduled", "scheduled"]
    cancelled = _event(
        SessionCancelled,
        place,
        session_id=session_id,
        group_id=group_id,
        support_type="emotional",
        starts_at=starts,
        cancelled_at=datetime.now(UTC),
        confirmed_member_ids=[member],
        waitlisted_member_ids=[],
    )
    await _process(uow, cancelled)
    assert await _reminders(engine, session_id) == []
    [_, told] = await _arrived(inbox, address, 2)
    assert " ".join(told.message["Subject"].split()).startswith("your center: Se canceló una sesión en la que tenía")


async def test_erasure_deletes_a_members_reminders_and_coordinator_mark(
    nstack: Client, place: SiteUnderTest, engine: AsyncEngine, uow: Any
) -> None:
    [member] = await members.new_known(engine, place.site_id, 1)
    shift_id = uuid.uuid4()
    starts = datetime.now(UTC) + timedelta(days=3)
    await _process(uow, _event(SignedUp, place, **_shift(starts, member, shift_id=shift_id, signed_up_by="self")))
    marked = await nstack.call("notify", "PUT", f"/site/coordinators/{member}", token=place.tokens["coordinator"])
    assert marked.status == 200, marked.body
    assert len(await _reminders(engine, shift_id)) == 2
    await _process(uow, _event(MemberErased, place, member_id=member, erased_at=datetime.now(UTC)))
    assert await _reminders(engine, shift_id) == []
    listed = await nstack.call("notify", "GET", "/site/coordinators", token=place.tokens["coordinator"])
    assert listed.body["items"] == []


def _moved(shift_id: uuid.UUID, starts_at: datetime, member: uuid.UUID) -> dict[str, Any]:
    return {
        "shift_id": shift_id,
        "role_id": "front_desk",
        "changed": ["starts_at"],
        "starts_at": starts_at,
        "ends_at": starts_at + timedelta(hours=3),
        "capacity": 3,
        "needs_supervisor": False,
        "confirmed": 1,
        "waitlisted": 0,
        "affected_member_ids": [member],
    }


async def test_a_withdrawn_contacts_queued_message_is_dropped_and_an_unverified_one_gets_only_its_verification(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine, uow: Any
) -> None:
    member = place.volunteer_member_id
    assert member is not None
    withdrawing = _address()
    contact_id = await _contact(engine, place, member, withdrawing)
    # A change is held a minute (more may follow): queued, not sent, when the person withdraws.
    await _process(
        uow, _event(ShiftChanged, place, **_moved(uuid.uuid4(), datetime.now(UTC) + timedelta(days=5), member))
    )
    [queued] = await _rows(
        engine, "SELECT delivery_id, status FROM notify.deliveries WHERE contact_id = :c", c=contact_id
    )
    assert queued.status == "pending"
    reply = await nstack.call(
        "notify", "DELETE", f"/members/{member}/contacts/{contact_id}", token=place.tokens["volunteer"]
    )
    assert reply.status == 200, reply.body
    async with engine.begin() as conn:  # due now rather than in a minute
        await conn.execute(
            text("UPDATE notify.deliveries SET next_attempt_at = now() WHERE delivery_id = :d"),
            {"d": queued.delivery_id},
        )

    async def settled() -> bool:
        [row] = await _rows(engine, "SELECT status FROM notify.deliveries WHERE delivery_id = :d", d=queued.delivery_id)
        return bool(row.status != "pending")

    await eventually(settled)
    [row] = await _rows(
        engine,
        "SELECT status, drop_reason, attempts, links::text FROM notify.deliveries WHERE delivery_id = :d",
        d=queued.delivery_id,
    )
    assert (row.status, row.drop_reason, row.links) == ("dropped", "withdrawn", "{}")

    # Unverified: added the real way, its verification arrives; what happens to the person then sends it nothing.
    [other] = await members.new_known(engine, place.site_id, 1)
    unverified = _address()
    added = await nstack.call(
        "notify", "POST", f"/members/{other}/contacts", token=place.tokens["coordinator"], json={"address": unverified}
    )
    assert added.status == 201, added.body
    [verification] = await _arrived(inbox, unverified)
    assert str(verification.message["Subject"]).startswith("Please confirm your email")
    starts = datetime.now(UTC) + timedelta(days=2)
    await _process(
        uow,
        _event(SignedUp, place, **_shift(starts, other, signed_up_by="self")),
        _event(ShiftChanged, place, **_moved(uuid.uuid4(), starts, other)),
        _event(
            HoursApproved,
            place,
            hours_id=uuid.uuid4(),
            shift_id=uuid.uuid4(),
            member_id=other,
            role_id="front_desk",
            shift_starts_at=starts,
            minutes=60,
            approved_at=datetime.now(UTC),
        ),
    )
    rows = await _rows(engine, "SELECT channel, purpose FROM notify.deliveries WHERE member_id = :m", m=other)
    assert sorted((r.channel, r.purpose) for r in rows) == [
        ("email", "verification"),
        ("inapp", "hours_approved"),
        ("inapp", "shift_changed"),
        ("inapp", "shift_confirmed"),
    ]
    assert _to(inbox, withdrawing) == [] and len(_to(inbox, unverified)) == 1


async def test_the_daily_cap_counts_a_persons_messages_over_all_their_addresses(
    nstack: Client, place: SiteUnderTest, engine: AsyncEngine, uow: Any
) -> None:
    """Two addresses, each wanting different kinds: per address neither reaches a cap of 3, the person does."""
    put = await nstack.call(
        "notify",
        "PUT",
        "/site/messages",
        token=place.tokens["coordinator"],
        json={"message_name": None, "reminder_offsets": [1440, 120], "daily_cap": 3},
    )
    assert put.status == 200, put.body
    [member, neighbour] = await members.new_known(engine, place.site_id, 2)
    approvals = await _contact(engine, place, member, _address(), kinds=("approvals",))
    confirmations = await _contact(engine, place, member, _address(), kinds=("confirmations",))
    both = await _contact(engine, place, neighbour, _address())
    starts = datetime.now(UTC) + timedelta(days=3)

    def approved(who: uuid.UUID) -> dict[str, Any]:
        return _event(
            HoursApproved,
            place,
            hours_id=uuid.uuid4(),
            shift_id=uuid.uuid4(),
            member_id=who,
            role_id="front_desk",
            shift_starts_at=starts,
            minutes=60,
            approved_at=datetime.now(UTC),
        )

    for event in (
        approved(member),
        approved(member),
        _event(SignedUp, place, **_shift(starts, member, signed_up_by="self")),
        _event(SignedUp, place, **_shift(starts + timedelta(days=1), member, signed_up_by="self")),
        # Another person's messages are theirs: two of them, under the cap.
        approved(neighbour),
        _event(SignedUp, place, **_shift(starts, neighbour, signed_up_by="self")),
    ):
        await _process(uow, event)
    rows = await _rows(
        engine,
        "SELECT contact_id, purpose, status, drop_reason FROM notify.deliveries"
        " WHERE member_id IN (:a, :b) AND channel = 'email' ORDER BY created_at",
        a=member,
        b=neighbour,
    )
    mine = [(r.contact_id, r.purpose, r.drop_reason) for r in rows if r.contact_id in (approvals, confirmations)]
    assert mine == [
        (approvals, "hours_approved", None),
        (approvals, "hours_approved", None),
        (confirmations, "shift_confirmed", None),
        (confirmations, "shift_confirmed", "daily_cap"),
    ]
    assert [r.drop_reason for r in rows if r.contact_id == both] == [None, None]
