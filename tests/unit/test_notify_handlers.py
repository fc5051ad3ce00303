"""The notify handlers against an in-memory unit of work (the NotifyRepository methods they call, dicts inside)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta

import pytest

from services.notify import domain, handlers
from services.notify.commands import AddContact, DeliveryOutcome, UpdateContact, VerifyContact, WithdrawContact
from services.notify.models import (
    ContactRow,
    DeliveryChange,
    DeliveryRow,
    NewContact,
    NewDelivery,
    Preferences,
    VerificationRow,
)
from shared.clock import FixedClock
from shared.errors import Conflict, NotFound
from shared.events import Event
from shared.members import MemberStanding
from shared.uow import Recorder

SITE = "downtown"
AT = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)
ADDRESS = "ana@mail.example"


@dataclass
class FakeRepository:
    known: dict[uuid.UUID, str] = field(default_factory=dict)
    contacts: dict[uuid.UUID, ContactRow] = field(default_factory=dict)
    verifications: dict[str, VerificationRow] = field(default_factory=dict)
    deliveries: dict[uuid.UUID, NewDelivery] = field(default_factory=dict)
    delivery_state: dict[uuid.UUID, tuple[str, int, str | None]] = field(default_factory=dict)
    retries: list[datetime] = field(default_factory=list)
    bounces: int = 0

    async def member_standing(self, member_id: uuid.UUID, site_id: str) -> MemberStanding:
        return "known" if self.known.get(member_id) == site_id else None

    async def add_contact(self, c: NewContact) -> bool:
        if any(r.address == c.address and r.member_id == c.member_id for r in self.contacts.values()):
            return False
        self.contacts[c.contact_id] = ContactRow(
            c.contact_id, c.member_id, c.site_id, c.channel, c.address, c.locale, c.quiet_start, c.quiet_end,
            list(c.kinds), c.consent_at, c.consent_by, c.consent_source, None, None, 0,
        )  # fmt: skip
        return True

    async def contact_of(self, contact_id: uuid.UUID, member_id: uuid.UUID) -> ContactRow | None:
        row = self.contacts.get(contact_id)
        return row if row and row.member_id == member_id and row.withdrawn_at is None else None

    async def set_preferences(self, contact_id: uuid.UUID, p: Preferences) -> ContactRow:
        row = replace(
            self.contacts[contact_id],
            locale=p.locale,
            quiet_start=p.quiet_start,
            quiet_end=p.quiet_end,
            kinds=list(p.kinds),
        )
        self.contacts[contact_id] = row
        return row

    async def withdraw(
        self, at: datetime, *, contact_id: uuid.UUID | None = None, member_id: uuid.UUID | None = None
    ) -> list[ContactRow]:
        done = []
        for row in list(self.contacts.values()):
            if row.withdrawn_at is None and (row.contact_id == contact_id or row.member_id == member_id):
                self.contacts[row.contact_id] = replace(row, address=None, withdrawn_at=at)
                done.append(self.contacts[row.contact_id])
        return done

    async def add_verification(self, token_hash: str, contact_id: uuid.UUID, expires_at: datetime) -> None:
        self.verifications[token_hash] = VerificationRow(contact_id, expires_at, None)

    async def verification(self, token_hash: str) -> VerificationRow | None:
        return self.verifications.get(token_hash)

    async def mark_verified(self, token_hash: str, contact_id: uuid.UUID, at: datetime) -> ContactRow | None:
        self.verifications[token_hash] = replace(self.verifications[token_hash], used_at=at)
        self.contacts[contact_id] = replace(self.contacts[contact_id], verified_at=at)
        return self.contacts[contact_id]

    async def queue_delivery(self, d: NewDelivery) -> bool:
        self.deliveries[d.delivery_id] = d
        self.delivery_state[d.delivery_id] = ("pending", 1, None)
        return True

    async def deliveries_for_update(self, delivery_ids: list[uuid.UUID]) -> dict[uuid.UUID, DeliveryRow]:
        rows = {}
        for delivery_id in delivery_ids:
            d = self.deliveries[delivery_id]
            status, attempts, _ = self.delivery_state[delivery_id]
            rows[delivery_id] = DeliveryRow(
                d.delivery_id,
                d.contact_id,
                d.member_id,
                d.site_id,
                d.purpose,
                status,
                attempts,
                "email",  # type: ignore[arg-type]
            )
        return rows

    async def apply_changes(self, changes: list[DeliveryChange]) -> None:
        for c in changes:
            if c.status == "pending" and c.error is not None and c.next_attempt_at is not None:
                self.retries.append(c.next_attempt_at)
            self.delivery_state[c.delivery_id] = (c.status, c.attempts, c.error)

    async def count_bounces(self, contact_ids: list[uuid.UUID]) -> None:
        self.bounces += len(contact_ids)


class FakeUnitOfWork(Recorder):
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.notify = FakeRepository()


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


def _add(member_id: uuid.UUID, **overrides: object) -> AddContact:
    values: dict[str, object] = dict(
        site_id=SITE, actor_id="token:v", member_id=member_id, channel="email", address=ADDRESS, locale="en",
        quiet_start=None, quiet_end=None, kinds=domain.ALL_KINDS, source="volunteer-page", verification_ttl_h=24.0,
        sender="mail@center.example",
    )  # fmt: skip
    values.update(overrides)
    return AddContact(**values)  # type: ignore[arg-type]


async def _added(uow: FakeUnitOfWork) -> tuple[uuid.UUID, uuid.UUID, str]:
    member = uuid.uuid4()
    uow.notify.known[member] = SITE
    out = await handlers.add_contact(_add(member), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    [delivery] = uow.notify.deliveries.values()
    return member, out.contact_id, delivery.links["verify"]


async def test_adding_records_consent_queues_one_verification_and_emits_no_address(uow: FakeUnitOfWork) -> None:
    _, contact_id, token = await _added(uow)
    row = uow.notify.contacts[contact_id]
    assert (row.consent_at, row.consent_by, row.consent_source, row.verified_at) == (
        AT,
        "token:v",
        "volunteer-page",
        None,
    )
    [delivery] = uow.notify.deliveries.values()
    assert delivery.purpose == "verification" and delivery.message_id == f"<verification.{contact_id}@center.example>"
    assert uow.notify.verifications[domain.hash_secret(token)].expires_at == AT + timedelta(hours=24)
    assert token not in uow.notify.verifications  # stored hashed only
    [event] = uow.events
    assert event.type == "notify.contact_added" and ADDRESS not in event.data.model_dump_json()


async def test_unknown_member_and_duplicate_address_are_refused(uow: FakeUnitOfWork) -> None:
    with pytest.raises(NotFound) as unknown:
        await handlers.add_contact(_add(uuid.uuid4()), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert (unknown.value.status, unknown.value.code) == (404, "member_not_found")
    member, _, _ = await _added(uow)
    with pytest.raises(Conflict) as twice:
        await handlers.add_contact(_add(member), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert twice.value.code == "contact_exists"


async def test_verify_once_within_a_day(uow: FakeUnitOfWork) -> None:
    _, contact_id, token = await _added(uow)
    later = FixedClock(AT + timedelta(hours=23))
    verified = await handlers.verify_contact(VerifyContact(token=token), uow=uow, clock=later)  # type: ignore[arg-type]
    assert verified.contact_id == contact_id and uow.events[-1].type == "notify.contact_verified"
    with pytest.raises(domain.LinkGone) as again:
        await handlers.verify_contact(VerifyContact(token=token), uow=uow, clock=later)  # type: ignore[arg-type]
    assert again.value.code == "verification_used"
    with pytest.raises(NotFound):
        await handlers.verify_contact(VerifyContact(token="made-up"), uow=uow, clock=later)  # type: ignore[arg-type]


async def test_a_link_expires_after_a_day(uow: FakeUnitOfWork) -> None:
    _, _, token = await _added(uow)
    with pytest.raises(domain.LinkGone) as expired:
        await handlers.verify_contact(VerifyContact(token=token), uow=uow, clock=FixedClock(AT + timedelta(hours=24)))  # type: ignore[arg-type]
    assert expired.value.code == "verification_expired"


async def test_preferences_change_and_withdrawal_deletes_the_address(uow: FakeUnitOfWork) -> None:
    member, contact_id, _ = await _added(uow)
    update = UpdateContact(SITE, "token:v", member, contact_id, "es", (time(22), time(7)), ("reminders",), True)
    out = await handlers.update_contact(update, uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert (out.locale, out.kinds, out.quiet_hours and out.quiet_hours.start) == ("es", ["reminders"], time(22))
    hidden = await handlers.update_contact(replace(update, show_address=False), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert hidden.address is None
    await handlers.withdraw_contact(WithdrawContact(SITE, "token:v", member, contact_id), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert uow.notify.contacts[contact_id].address is None
    assert uow.events[-1].type == "notify.consent_withdrawn" and uow.events[-1].data.reason == "withdrawn"  # type: ignore[attr-defined]
    with pytest.raises(NotFound):
        await handlers.withdraw_contact(
            WithdrawContact(SITE, "token:v", member, contact_id), uow=uow, clock=FixedClock(AT)
        )  # type: ignore[arg-type]


def _outcome(delivery_id: uuid.UUID, outcome: str | None, error: str | None = None) -> DeliveryOutcome:
    return DeliveryOutcome(delivery_id, outcome, error, max_attempts=3, retry_base_s=5.0)  # type: ignore[arg-type]


async def test_temporary_failures_retry_then_give_up(uow: FakeUnitOfWork) -> None:
    await _added(uow)
    [delivery_id] = uow.notify.deliveries
    recorded = await handlers.record_outcome(_outcome(delivery_id, None, "smtp 451"), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert recorded.status == "pending" and AT < uow.notify.retries[0] <= AT + timedelta(seconds=5)
    uow.notify.delivery_state[delivery_id] = ("pending", 3, None)
    recorded = await handlers.record_outcome(_outcome(delivery_id, None, "smtp 451"), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert recorded.status == "failed"
    assert uow.events[-1].type == "notify.notification_failed"
    assert uow.events[-1].data.reason == "retries_exhausted"  # type: ignore[attr-defined]


async def test_sent_and_refused_are_final_and_emit_ids_only(uow: FakeUnitOfWork) -> None:
    await _added(uow)
    [delivery_id] = uow.notify.deliveries
    sent = await handlers.record_outcome(_outcome(delivery_id, "sent"), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert sent.status == "sent" and uow.events[-1].type == "notify.notification_sent"
    assert ADDRESS not in uow.events[-1].data.model_dump_json()
    again = await handlers.record_outcome(_outcome(delivery_id, "failed", "smtp 550"), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert again.status == "sent" and uow.notify.bounces == 0  # a finished message stays as it ended


async def test_permanent_refusal_counts_a_bounce(uow: FakeUnitOfWork) -> None:
    await _added(uow)
    [delivery_id] = uow.notify.deliveries
    failed = await handlers.record_outcome(_outcome(delivery_id, "failed", "smtp 550"), uow=uow, clock=FixedClock(AT))  # type: ignore[arg-type]
    assert failed.status == "failed" and uow.notify.bounces == 1
    assert uow.events[-1].data.reason == "refused"  # type: ignore[attr-defined]
