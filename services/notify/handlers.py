"""Notify handlers: plain async functions ``(cmd, *, uow, clock)``; no HTTP, no SMTP, no broker."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal

from services.notify import domain
from services.notify.commands import (
    AddContact,
    ContactOut,
    Coordinator,
    DeliveryOutcome,
    DeliveryOutcomes,
    Done,
    OutcomeRecorded,
    OutcomesRecorded,
    QuietHours,
    SetCoordinator,
    SetSiteMessages,
    SettleInterrupted,
    SiteMessages,
    Unsubscribe,
    UpdateContact,
    Verified,
    VerifyContact,
    WithdrawContact,
    Withdrawn,
)
from services.notify.models import (
    ContactRow,
    DeliveryChange,
    DeliveryRow,
    NewContact,
    NewDelivery,
    NotifyUnitOfWork,
    Preferences,
)
from shared.clock import Clock
from shared.contracts.checkin import MemberErased, MemberRegistered
from shared.contracts.notify import (
    ConsentWithdrawn,
    ContactAdded,
    ContactVerified,
    NotificationFailed,
    NotificationSent,
)
from shared.errors import NotFound
from shared.inbox import Delivered


def contact_out(row: ContactRow, *, show_address: bool) -> ContactOut:
    quiet = None
    if row.quiet_start is not None and row.quiet_end is not None:
        quiet = QuietHours(start=row.quiet_start, end=row.quiet_end)
    return ContactOut(
        contact_id=row.contact_id,
        member_id=row.member_id,
        channel=row.channel,
        address=row.address if show_address else None,
        locale=row.locale,
        quiet_hours=quiet,
        kinds=list(row.kinds),
        verified=row.verified_at is not None,
        verified_at=row.verified_at,
        consent_at=row.consent_at,
        consent_source=row.consent_source,
    )


async def add_contact(cmd: AddContact, *, uow: NotifyUnitOfWork, clock: Clock) -> ContactOut:
    """Record the contact with its consent and queue its verification message; nothing else is sent to it until
    the link in that message is followed."""
    domain.require_member_here(await uow.notify.member_standing(cmd.member_id, cmd.site_id))
    address = domain.normalize_address(cmd.channel, cmd.address)
    domain.check_quiet_hours(cmd.quiet_start, cmd.quiet_end)
    now = clock.now()
    contact_id = uuid.uuid4()
    unsubscribe_key, token = domain.new_secret(), domain.new_secret()
    contact = NewContact(
        contact_id=contact_id,
        member_id=cmd.member_id,
        site_id=cmd.site_id,
        channel=cmd.channel,
        address=address,
        locale=cmd.locale,
        quiet_start=cmd.quiet_start,
        quiet_end=cmd.quiet_end,
        kinds=tuple(dict.fromkeys(cmd.kinds)),
        consent_at=now,
        consent_by=cmd.actor_id,
        consent_source=cmd.source,
        unsubscribe_hash=domain.hash_secret(unsubscribe_key),
    )
    if not await uow.notify.add_contact(contact):
        raise domain.contact_exists()
    await uow.notify.add_verification(
        domain.hash_secret(token), contact_id, now + timedelta(hours=cmd.verification_ttl_h)
    )
    await uow.notify.queue_delivery(
        NewDelivery(
            delivery_id=uuid.uuid4(),
            message_id=domain.message_id("verification", contact_id, cmd.sender),
            contact_id=contact_id,
            member_id=cmd.member_id,
            site_id=cmd.site_id,
            purpose="verification",
            created_at=now,
            links={"verify": token, "unsubscribe": unsubscribe_key},
        )
    )
    uow.emit(
        ContactAdded(contact_id=contact_id, member_id=cmd.member_id, channel=cmd.channel, added_at=now),
        subject=cmd.member_id,
        site_id=cmd.site_id,
        actor_id=cmd.actor_id,
        at=now,
    )
    row = await uow.notify.contact_of(contact_id, cmd.member_id)
    assert row is not None
    # Not echoed: the answer is kept under an Idempotency-Key, and the address lives in one column only.
    return contact_out(row, show_address=False)


async def update_contact(cmd: UpdateContact, *, uow: NotifyUnitOfWork, clock: Clock) -> ContactOut:
    row = await uow.notify.contact_of(cmd.contact_id, cmd.member_id)
    if row is None or row.site_id != cmd.site_id:
        raise domain.contact_not_found()
    start, end = cmd.quiet_hours if cmd.quiet_hours is not None else (row.quiet_start, row.quiet_end)
    domain.check_quiet_hours(start, end)
    preferences = Preferences(
        locale=cmd.locale or row.locale,
        quiet_start=start,
        quiet_end=end,
        kinds=tuple(dict.fromkeys(cmd.kinds)) if cmd.kinds is not None else tuple(row.kinds),
    )
    return contact_out(await uow.notify.set_preferences(row.contact_id, preferences), show_address=cmd.show_address)


async def withdraw_contact(cmd: WithdrawContact, *, uow: NotifyUnitOfWork, clock: Clock) -> Withdrawn:
    row = await uow.notify.contact_of(cmd.contact_id, cmd.member_id)
    if row is None or row.site_id != cmd.site_id:
        raise domain.contact_not_found()
    now = clock.now()
    for withdrawn in await uow.notify.withdraw(now, contact_id=row.contact_id):
        _emit_withdrawn(uow, withdrawn, now, "withdrawn", cmd.actor_id)
    return Withdrawn(contact_id=row.contact_id, withdrawn=True)


async def verify_contact(cmd: VerifyContact, *, uow: NotifyUnitOfWork, clock: Clock) -> Verified:
    token_hash = domain.hash_secret(cmd.token)
    verification = await uow.notify.verification(token_hash)
    if verification is None:
        raise domain.verification_unknown()
    now = clock.now()
    domain.check_verification(verification.used_at, verification.expires_at, now)
    row = await uow.notify.mark_verified(token_hash, verification.contact_id, now)
    if row is None:
        raise domain.verification_unknown()
    uow.emit(
        ContactVerified(contact_id=row.contact_id, member_id=row.member_id, channel=row.channel, verified_at=now),
        subject=row.member_id,
        site_id=row.site_id,
        at=now,
    )
    return Verified(contact_id=row.contact_id, verified_at=row.verified_at or now)


async def unsubscribe(cmd: Unsubscribe, *, uow: NotifyUnitOfWork, clock: Clock) -> Done:
    """One-click (RFC 8058). A message's link names the message, so it stops that kind of message (the contact
    keeps the others); the verification message's link names the contact, whose address is then deleted (someone
    who did not ask for it says so)."""
    key_hash = domain.hash_secret(cmd.key)
    if await uow.messages.remove_kind(key_hash) is not None:
        return Done()
    row = await uow.notify.contact_by_unsubscribe(key_hash)
    if row is None:
        raise NotFound("No such unsubscribe link (or it was used already).", code="unsubscribe_unknown")
    now = clock.now()
    for withdrawn in await uow.notify.withdraw(now, contact_id=row.contact_id):
        _emit_withdrawn(uow, withdrawn, now, "unsubscribed", None)
    return Done()


async def record_outcomes(cmd: DeliveryOutcomes, *, uow: NotifyUnitOfWork, clock: Clock) -> OutcomesRecorded:
    """What the relay said about a round's messages (sent, refused for good, to be tried again up to a limit, or
    unknown: interrupted), or what the rules said before one was tried (wait for the end of quiet hours, give it
    back untried, or drop it): all in one transaction. A message that is no longer pending stays as it ended."""
    rows = await uow.notify.deliveries_for_update(list(dict.fromkeys(o.delivery_id for o in cmd.outcomes)))
    now = clock.now()
    changes: list[DeliveryChange] = []
    bounced: list[uuid.UUID] = []
    recorded: list[OutcomeRecorded] = []
    for outcome in cmd.outcomes:
        delivery = rows.pop(outcome.delivery_id, None)
        if delivery is None:
            continue
        change = _settle(delivery, outcome, cmd, now)
        recorded.append(
            OutcomeRecorded(delivery_id=delivery.delivery_id, purpose=delivery.purpose, status=change.status)
        )
        if delivery.status != "pending":
            continue
        changes.append(change)
        if change.status == "sent":
            _emit_sent(uow, delivery, now)
        elif change.status == "failed":
            reason = _failure_reason(outcome)
            if reason == "refused":
                bounced.append(delivery.contact_id)
            _emit_failed(uow, delivery, now, reason)
    await uow.notify.apply_changes(changes)
    await uow.notify.count_bounces(bounced)
    return OutcomesRecorded(items=recorded)


async def record_outcome(cmd: DeliveryOutcome, *, uow: NotifyUnitOfWork, clock: Clock) -> OutcomeRecorded:
    """:func:`record_outcomes` of one message."""
    result = await record_outcomes(
        DeliveryOutcomes(outcomes=(cmd,), max_attempts=cmd.max_attempts, retry_base_s=cmd.retry_base_s),
        uow=uow,
        clock=clock,
    )
    if not result.items:
        raise NotFound("No such delivery.", code="delivery_not_found")
    return result.items[0]


async def settle_interrupted(cmd: SettleInterrupted, *, uow: NotifyUnitOfWork, clock: Clock) -> OutcomesRecorded:
    """Messages whose sender died between marking them handed to the relay and recording its answer: they may have
    arrived, so they are not sent again (at most once); they end failed, reason ``interrupted``."""
    now = clock.now()
    found = await uow.notify.interrupted(now, cmd.limit)
    outcomes = tuple(
        DeliveryOutcome(d.delivery_id, "failed", "interrupted", cmd.max_attempts, cmd.retry_base_s) for d in found
    )
    if not outcomes:
        return OutcomesRecorded(items=[])
    return await record_outcomes(
        DeliveryOutcomes(outcomes=outcomes, max_attempts=cmd.max_attempts, retry_base_s=cmd.retry_base_s),
        uow=uow,
        clock=clock,
    )


def _settle(delivery: DeliveryRow, cmd: DeliveryOutcome, batch: DeliveryOutcomes, now: datetime) -> DeliveryChange:
    """The row after this outcome (a row no longer pending is given as it is)."""
    if delivery.status != "pending":
        return DeliveryChange(delivery.delivery_id, delivery.status, delivery.attempts)
    if cmd.defer_until is not None:
        # Not tried (quiet hours, or a sender stopping gives it back): the lease's attempt is given back.
        return DeliveryChange(
            delivery.delivery_id, "pending", max(delivery.attempts - 1, 0), next_attempt_at=cmd.defer_until
        )
    if cmd.outcome == "dropped":
        return DeliveryChange(
            delivery.delivery_id,
            "dropped",
            delivery.attempts,
            finished_at=now,
            drop_reason=cmd.drop_reason or "too_late",
        )
    if cmd.outcome is None and delivery.attempts < batch.max_attempts:
        delay = domain.retry_delay(delivery.attempts, batch.retry_base_s, max_s=batch.retry_max_s)
        return DeliveryChange(
            delivery.delivery_id,
            "pending",
            delivery.attempts,
            next_attempt_at=now + delay,
            error=cmd.error or "temporary",
        )
    if cmd.outcome == "sent":
        return DeliveryChange(delivery.delivery_id, "sent", delivery.attempts, finished_at=now)
    return DeliveryChange(delivery.delivery_id, "failed", delivery.attempts, finished_at=now, error=cmd.error)


FailureReason = Literal["refused", "retries_exhausted", "withdrawn", "interrupted"]


def _failure_reason(cmd: DeliveryOutcome) -> FailureReason:
    if cmd.outcome == "failed" and cmd.error in ("withdrawn", "interrupted"):
        return "withdrawn" if cmd.error == "withdrawn" else "interrupted"
    if cmd.outcome == "failed":
        return "refused"
    return "retries_exhausted"


def _emit_sent(uow: NotifyUnitOfWork, delivery: DeliveryRow, now: datetime) -> None:
    uow.emit(
        NotificationSent(
            delivery_id=delivery.delivery_id,
            contact_id=delivery.contact_id,
            member_id=delivery.member_id,
            channel=delivery.channel,
            purpose=delivery.kind,
            sent_at=now,
            attempts=delivery.attempts,
            message=delivery.purpose,
        ),
        subject=delivery.member_id,
        site_id=delivery.site_id,
        at=now,
    )


def _emit_failed(uow: NotifyUnitOfWork, delivery: DeliveryRow, now: datetime, reason: FailureReason) -> None:
    uow.emit(
        NotificationFailed(
            delivery_id=delivery.delivery_id,
            contact_id=delivery.contact_id,
            member_id=delivery.member_id,
            channel=delivery.channel,
            purpose=delivery.kind,
            failed_at=now,
            attempts=delivery.attempts,
            reason=reason,
            message=delivery.purpose,
        ),
        subject=delivery.member_id,
        site_id=delivery.site_id,
        at=now,
    )


async def set_site_messages(cmd: SetSiteMessages, *, uow: NotifyUnitOfWork, clock: Clock) -> SiteMessages:
    name = domain.check_message_name(cmd.message_name)
    offsets = domain.check_reminder_offsets(cmd.reminder_offsets)
    cap = domain.check_daily_cap(cmd.daily_cap)
    row = await uow.messages.set_site_settings(cmd.site_id, name, offsets, cap, clock.now(), cmd.actor_id)
    return SiteMessages(
        site_id=row.site_id,
        message_name=row.message_name,
        shown_as=row.message_name or cmd.default_name,
        reminder_offsets=list(row.reminder_offsets),
        daily_cap=row.daily_cap,
        updated_at=row.updated_at,
    )


async def set_coordinator(cmd: SetCoordinator, *, uow: NotifyUnitOfWork, clock: Clock) -> Coordinator:
    """Mark (or unmark) a member as one of the site's coordinators: they are told of follow-ups."""
    standing = await uow.notify.member_standing(cmd.member_id, cmd.site_id)
    if cmd.coordinator:
        domain.require_member_here(standing)
        await uow.messages.add_coordinator(cmd.site_id, cmd.member_id, clock.now(), cmd.actor_id)
    else:
        domain.require_known_here(standing)  # an erased member may still be unmarked
        await uow.messages.remove_coordinator(cmd.site_id, cmd.member_id)
    return Coordinator(site_id=cmd.site_id, member_id=cmd.member_id, coordinator=cmd.coordinator)


async def record_member_registered(event: Delivered[MemberRegistered], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    await uow.notify.know_member(event.data.member_id, event.site_id, event.data.registered_at)


async def record_member_erased(event: Delivered[MemberErased], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    """Erasure deletes every address of the member; the pseudonymous delivery history stays."""
    erased = event.data
    await uow.notify.mark_member_erased(erased.member_id, event.site_id, erased.erased_at)
    await uow.messages.forget_member(erased.member_id)
    for withdrawn in await uow.notify.withdraw(erased.erased_at, member_id=erased.member_id):
        _emit_withdrawn(uow, withdrawn, erased.erased_at, "member_erased", None, correlation_id=str(event.id))


def _emit_withdrawn(
    uow: NotifyUnitOfWork,
    row: ContactRow,
    at: datetime,
    reason: Literal["withdrawn", "unsubscribed", "member_erased"],
    actor_id: str | None,
    correlation_id: str | None = None,
) -> None:
    uow.emit(
        ConsentWithdrawn(
            contact_id=row.contact_id, member_id=row.member_id, channel=row.channel, withdrawn_at=at, reason=reason
        ),
        subject=row.member_id,
        site_id=row.site_id,
        actor_id=actor_id,
        correlation_id=correlation_id,
        at=at,
    )
