"""The event handlers of notify (services/notify/messages.py) against an in-memory unit of work: who is told what,
which reminders are planned, moved or deleted."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notify import messages
from services.notify.domain import DEFAULT_REMINDER_OFFSETS
from services.notify.models import NewDelivery
from services.notify.outgoing import NewReminder, Recipient, SiteSettingsRow
from shared.clock import FixedClock
from shared.contracts import EventData
from shared.contracts.notify import MessagePurpose, Purpose
from shared.contracts.volunteering import Dropped, ShiftChanged, ShiftMissed, SignedUp
from shared.events import Event
from shared.inbox import Delivered
from shared.uow import Recorder

SITE = "downtown"
AT = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)


@dataclass
class FakeNotify:
    queued: list[NewDelivery] = field(default_factory=list)

    async def queue_delivery(self, delivery: NewDelivery) -> bool:
        if any(d.message_id == delivery.message_id for d in self.queued):
            return False
        self.queued.append(delivery)
        return True


@dataclass
class FakeMessages:
    contacts: dict[uuid.UUID, list[tuple[uuid.UUID, tuple[str, ...]]]] = field(default_factory=dict)
    given: dict[uuid.UUID, int] = field(default_factory=dict)
    cap: int = 10
    reminders: list[NewReminder] = field(default_factory=list)
    moved: list[tuple[uuid.UUID, datetime]] = field(default_factory=list)
    deleted: list[tuple[uuid.UUID, uuid.UUID | None]] = field(default_factory=list)
    coordinator_ids: list[uuid.UUID] = field(default_factory=list)
    pending_keys: set[tuple[uuid.UUID, str]] = field(default_factory=set)

    async def site_settings(self, site_id: str) -> SiteSettingsRow:
        return SiteSettingsRow(site_id, None, DEFAULT_REMINDER_OFFSETS, self.cap, None)

    async def recipients(self, member_id: uuid.UUID, site_id: str, kind: Purpose, since: datetime) -> list[Recipient]:
        return [
            Recipient(contact_id, member_id, self.given.get(contact_id, 0))
            for contact_id, kinds in self.contacts.get(member_id, [])
            if kind in kinds
        ]

    async def coalesce(self, contact_id: uuid.UUID, key: str, **_: Any) -> bool:
        if (contact_id, key) in self.pending_keys:
            return True
        self.pending_keys.add((contact_id, key))
        return False

    async def coalesce_inapp(self, member_id: uuid.UUID, key: str, **_: Any) -> bool:
        return await self.coalesce(member_id, key)

    async def schedule_reminders(self, planned: list[NewReminder]) -> None:
        self.reminders += planned

    async def move_reminders(self, subject_id: uuid.UUID, starts_at: datetime, cause_id: uuid.UUID) -> int:
        self.moved.append((subject_id, starts_at))
        return 2

    async def delete_reminders(self, subject_id: uuid.UUID, member_id: uuid.UUID | None = None) -> int:
        self.deleted.append((subject_id, member_id))
        return 2

    async def coordinators(self, site_id: str) -> list[uuid.UUID]:
        return self.coordinator_ids


class FakeUnitOfWork(Recorder):
    sender = "mail@center.example"

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.notify = FakeNotify()
        self.messages = FakeMessages()


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


def delivered(data: EventData) -> Delivered[Any]:
    return Delivered(data=data, id=uuid.uuid4(), site_id=SITE, time=AT, subject=None)


def _shift(member_id: uuid.UUID, starts_at: datetime, **extra: Any) -> dict[str, Any]:
    return {"signup_id": uuid.uuid4(), "shift_id": extra.pop("shift_id", uuid.uuid4()), "member_id": member_id,
            "role_id": "front_desk", "starts_at": starts_at, **extra}  # fmt: skip


def _told(uow: FakeUnitOfWork) -> list[tuple[str, MessagePurpose, str]]:
    return [(d.channel, d.purpose, d.status) for d in uow.notify.queued]


async def test_a_sign_up_is_told_in_app_and_to_each_contact_wanting_confirmations_with_two_reminders(
    uow: FakeUnitOfWork,
) -> None:
    member, wants, does_not = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    uow.messages.contacts[member] = [(wants, ("confirmations",)), (does_not, ("reminders",))]
    starts = AT + timedelta(days=2)
    event = delivered(SignedUp(**_shift(member, starts, ends_at=starts + timedelta(hours=2), signed_up_by="self")))
    await messages.on_signed_up(event, uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert _told(uow) == [("inapp", "shift_confirmed", "sent"), ("email", "shift_confirmed", "pending")]
    email = uow.notify.queued[1]
    assert email.contact_id == wants and email.message_id == f"<shift_confirmed.{event.id}.{wants}@center.example>"
    assert email.unsubscribe_hash and email.links["unsubscribe"] and "@" not in str(email.template_values)
    assert [(r.offset_minutes, r.due_at) for r in uow.messages.reminders] == [
        (1440, starts - timedelta(days=1)),
        (120, starts - timedelta(hours=2)),
    ]
    # Delivered again (past the inbox): the same ids, nothing new.
    await messages.on_signed_up(event, uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert len(uow.notify.queued) == 2


async def test_past_the_daily_cap_a_message_is_dropped_with_its_reason(uow: FakeUnitOfWork) -> None:
    member, contact = uuid.uuid4(), uuid.uuid4()
    uow.messages.contacts[member] = [(contact, ("confirmations",))]
    uow.messages.given[contact] = 10
    starts = AT + timedelta(days=2)
    event = delivered(SignedUp(**_shift(member, starts, ends_at=starts, signed_up_by="self")))
    await messages.on_signed_up(event, uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    [inapp, email] = uow.notify.queued
    assert (inapp.status, email.status, email.drop_reason) == ("sent", "dropped", "daily_cap")


async def test_leaving_oneself_deletes_reminders_and_tells_nothing_a_coordinator_drop_is_told(
    uow: FakeUnitOfWork,
) -> None:
    member, shift_id = uuid.uuid4(), uuid.uuid4()
    base = _shift(member, AT + timedelta(days=1), shift_id=shift_id, previous_status="confirmed", within_cutoff=False)
    await messages.on_dropped(delivered(Dropped(**base, dropped_by="self")), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert uow.notify.queued == [] and uow.messages.deleted == [(shift_id, member)]
    await messages.on_dropped(delivered(Dropped(**base, dropped_by="coordinator")), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert _told(uow) == [("inapp", "shift_dropped", "sent")]


async def test_a_missed_shift_goes_to_the_coordinators_never_the_volunteer(uow: FakeUnitOfWork) -> None:
    volunteer, lead = uuid.uuid4(), uuid.uuid4()
    uow.messages.coordinator_ids = [lead, volunteer]  # a coordinator who missed a shift is not told of themself
    starts = AT - timedelta(hours=4)
    missed = ShiftMissed(**_shift(volunteer, starts, ends_at=starts + timedelta(hours=3), follow_up=True))
    await messages.on_shift_missed(delivered(missed), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert [(d.member_id, d.purpose) for d in uow.notify.queued] == [(lead, "shift_missed")]


async def test_a_new_time_moves_reminders_and_a_burst_is_one_message(uow: FakeUnitOfWork) -> None:
    member, contact, shift_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    uow.messages.contacts[member] = [(contact, ("changes",))]
    starts = AT + timedelta(days=3)

    def change(fields: list[str], minutes: int) -> ShiftChanged:
        moved = starts + timedelta(minutes=minutes)
        return ShiftChanged(
            shift_id=shift_id, role_id="front_desk", changed=fields, starts_at=moved,  # type: ignore[arg-type]
            ends_at=moved + timedelta(hours=2), capacity=3, needs_supervisor=False, confirmed=1, waitlisted=0,
            affected_member_ids=[member],
        )  # fmt: skip

    await messages.on_shift_changed(delivered(change(["capacity"], 0)), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert uow.notify.queued == [] and uow.messages.moved == []
    for minutes in (30, 60):
        await messages.on_shift_changed(delivered(change(["starts_at"], minutes)), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert [m for _, m in uow.messages.moved] == [starts + timedelta(minutes=30), starts + timedelta(minutes=60)]
    assert _told(uow) == [("inapp", "shift_changed", "sent"), ("email", "shift_changed", "pending")]
    assert uow.notify.queued[1].send_at == AT + timedelta(minutes=1)  # held a minute for the rest of the burst
