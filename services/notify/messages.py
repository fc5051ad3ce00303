"""What the events of the other services mean for people here: a message for each person concerned (at most one
per verified, consenting contact wanting its kind, plus the in-app entry everyone gets), and the reminders of the
shifts and gatherings they hold a place at.

Handlers take ``Delivered[Contract]`` (shared/inbox.py). A message's Message-ID comes from (the event, the contact,
the message): an event delivered again asks for ids the delivery table already holds, and queues nothing new."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services.notify import domain
from services.notify.models import NewDelivery, NotifyUnitOfWork
from services.notify.outgoing import NewReminder
from shared.clock import Clock
from shared.contracts.gatherings import (
    EventCancelled,
    GatheringPromotedFromWaitlist,
    GatheringRegistered,
    GatheringRegistrationCancelled,
    GatheringWaitlisted,
    SessionCancelled,
    SessionScheduled,
)
from shared.contracts.notify import MessagePurpose
from shared.contracts.volunteering import (
    Dropped,
    HoursApproved,
    HoursRejected,
    PromotedFromWaitlist,
    ShiftCancelled,
    ShiftChanged,
    ShiftMissed,
    SignedUp,
    StipendPaid,
    Waitlisted,
)
from shared.inbox import Delivered


async def tell(
    uow: NotifyUnitOfWork,
    *,
    purpose: MessagePurpose,
    member_ids: Iterable[uuid.UUID],
    site_id: str,
    cause_id: uuid.UUID,
    values: dict[str, Any],
    at: datetime,
    coalesce_key: str | None = None,
    not_after: datetime | None = None,
) -> None:
    """Queue the message for each member: an in-app entry, and one delivery per contact that may receive its kind
    (dropped at once, with its reason, past the site's daily cap)."""
    kind = domain.KIND_OF[purpose]
    settings = await uow.messages.site_settings(site_id)
    for member_id in dict.fromkeys(member_ids):
        inapp_key = f"inapp.{purpose}.{cause_id}.{member_id}"
        folded = coalesce_key is not None and await uow.messages.coalesce_inapp(
            member_id,
            coalesce_key,
            since=at - domain.COALESCE_WINDOW,
            message_id=inapp_key,
            purpose=purpose,
            cause_id=cause_id,
            values=values,
        )
        if not folded:
            await uow.notify.queue_delivery(
                NewDelivery(
                    delivery_id=uuid.uuid4(),
                    message_id=inapp_key,
                    contact_id=None,
                    member_id=member_id,
                    site_id=site_id,
                    purpose=purpose,
                    created_at=at,
                    links={},
                    kind=kind,
                    channel="inapp",
                    cause_id=cause_id,
                    template_values=values,
                    coalesce_key=coalesce_key,
                    status="sent",
                )
            )
        for recipient in await uow.messages.recipients(member_id, site_id, kind, at - domain.CAP_WINDOW):
            message_id = domain.event_message_id(purpose, cause_id, recipient.contact_id, uow.sender)
            if coalesce_key is not None and await uow.messages.coalesce(
                recipient.contact_id,
                coalesce_key,
                message_id=message_id,
                purpose=purpose,
                cause_id=cause_id,
                values=values,
                not_after=not_after,
            ):
                continue
            capped = domain.over_daily_cap(recipient.given_lately, settings.daily_cap)
            unsubscribe_key = domain.new_secret()
            await uow.notify.queue_delivery(
                NewDelivery(
                    delivery_id=uuid.uuid4(),
                    message_id=message_id,
                    contact_id=recipient.contact_id,
                    member_id=member_id,
                    site_id=site_id,
                    purpose=purpose,
                    created_at=at,
                    links={"unsubscribe": unsubscribe_key},
                    kind=kind,
                    cause_id=cause_id,
                    template_values=values,
                    not_after=not_after,
                    coalesce_key=coalesce_key,
                    # Held a minute when later changes may follow, so that a burst is one message.
                    send_at=at + domain.COALESCE_WINDOW if coalesce_key is not None else at,
                    status="dropped" if capped else "pending",
                    drop_reason="daily_cap" if capped else None,
                    unsubscribe_hash=domain.hash_secret(unsubscribe_key),
                )
            )


async def _tell(
    event: Delivered[Any],
    purpose: MessagePurpose,
    member_ids: Iterable[uuid.UUID],
    values: dict[str, Any],
    *,
    uow: NotifyUnitOfWork,
    clock: Clock,
) -> None:
    """:func:`tell` of a consumed event: its site, its id as the cause, now."""
    await tell(
        uow,
        purpose=purpose,
        member_ids=member_ids,
        site_id=event.site_id,
        cause_id=event.id,
        values=values,
        at=clock.now(),
    )


async def plan_reminders(
    uow: NotifyUnitOfWork,
    *,
    member_id: uuid.UUID,
    site_id: str,
    subject: domain.Subject,
    subject_id: uuid.UUID,
    starts_at: datetime,
    cause_id: uuid.UUID,
    now: datetime,
) -> None:
    """The person holds a place: reminders at the site's offsets before the start (none for a past start)."""
    if starts_at <= now:
        return
    settings = await uow.messages.site_settings(site_id)
    await uow.messages.schedule_reminders(
        [
            NewReminder(
                reminder_id=uuid.uuid4(),
                member_id=member_id,
                site_id=site_id,
                subject=subject,
                subject_id=subject_id,
                starts_at=starts_at,
                offset_minutes=minutes,
                due_at=due_at,
                cause_id=cause_id,
                created_at=now,
            )
            for minutes, due_at in domain.reminder_due(settings.reminder_offsets, starts_at)
        ]
    )


def _when(starts_at: datetime, **more: Any) -> dict[str, Any]:
    return {"starts_at": starts_at.isoformat(), **more}


# Volunteering


async def on_signed_up(event: Delivered[SignedUp], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    e = event.data
    await _seated(event, "shift_confirmed", e.member_id, "shift", e.shift_id, e.starts_at, uow=uow, clock=clock)


async def on_waitlisted(event: Delivered[Waitlisted], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    e = event.data
    await _tell(
        event,
        "shift_waitlisted",
        [e.member_id],
        _when(e.starts_at, what="shift", position=e.position),
        uow=uow,
        clock=clock,
    )


async def on_promoted(event: Delivered[PromotedFromWaitlist], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    e = event.data
    await _seated(event, "shift_promoted", e.member_id, "shift", e.shift_id, e.starts_at, uow=uow, clock=clock)


async def on_dropped(event: Delivered[Dropped], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    """Leaving a shift oneself needs no message (the person knows); being taken off by a coordinator does."""
    e = event.data
    await uow.messages.delete_reminders(e.shift_id, e.member_id)
    if e.dropped_by == "coordinator":
        await _tell(event, "shift_dropped", [e.member_id], _when(e.starts_at, what="shift"), uow=uow, clock=clock)


async def on_shift_changed(event: Delivered[ShiftChanged], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    """A new time moves the reminders and tells the people signed up; several changes within a minute are one
    message (the latest). Capacity or supervision changes are the coordinators' business, not a message."""
    e = event.data
    if "starts_at" in e.changed:
        await uow.messages.move_reminders(e.shift_id, e.starts_at, event.id)
    if "starts_at" in e.changed or "ends_at" in e.changed:
        await tell(
            uow,
            purpose="shift_changed",
            member_ids=e.affected_member_ids,
            site_id=event.site_id,
            cause_id=event.id,
            values=_when(e.starts_at, what="shift", ends_at=e.ends_at.isoformat()),
            at=clock.now(),
            coalesce_key=f"shift_changed.{e.shift_id}",
        )


async def on_shift_cancelled(event: Delivered[ShiftCancelled], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    e = event.data
    await uow.messages.delete_reminders(e.shift_id)
    await _tell(event, "shift_cancelled", e.affected_member_ids, _when(e.starts_at, what="shift"), uow=uow, clock=clock)


async def on_shift_missed(event: Delivered[ShiftMissed], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    """To the site's coordinators (members marked so here), as the friendly follow-up the event asks for; never to
    the volunteer."""
    e = event.data
    if not e.follow_up:
        return
    coordinators = [m for m in await uow.messages.coordinators(event.site_id) if m != e.member_id]
    await _tell(event, "shift_missed", coordinators, _when(e.starts_at, what="shift"), uow=uow, clock=clock)


async def on_hours_approved(event: Delivered[HoursApproved], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    e = event.data
    await _tell(
        event,
        "hours_approved",
        [e.member_id],
        _when(e.shift_starts_at, what="shift", minutes=e.minutes),
        uow=uow,
        clock=clock,
    )


async def on_hours_rejected(event: Delivered[HoursRejected], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    e = event.data
    await _tell(
        event,
        "hours_rejected",
        [e.member_id],
        _when(e.shift_starts_at, what="shift", minutes=e.minutes),
        uow=uow,
        clock=clock,
    )


async def on_stipend_paid(event: Delivered[StipendPaid], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    e = event.data
    await _tell(
        event, "stipend_paid", [e.member_id], {"period": e.period, "amount_cents": e.amount_cents}, uow=uow, clock=clock
    )


# Gatherings


def _gathering(
    e: GatheringRegistered | GatheringWaitlisted | GatheringPromotedFromWaitlist | GatheringRegistrationCancelled,
) -> tuple[domain.Subject, uuid.UUID]:
    if e.session_id is not None:
        return "session", e.session_id
    assert e.event_id is not None, "a seat fact names a session or an event"
    return "event", e.event_id


async def on_registered(event: Delivered[GatheringRegistered], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    e = event.data
    subject, subject_id = _gathering(e)
    await _seated(event, "gathering_confirmed", e.member_id, subject, subject_id, e.starts_at, uow=uow, clock=clock)


async def on_gathering_waitlisted(
    event: Delivered[GatheringWaitlisted], *, uow: NotifyUnitOfWork, clock: Clock
) -> None:
    e = event.data
    subject, _ = _gathering(e)
    await _tell(
        event,
        "gathering_waitlisted",
        [e.member_id],
        _when(e.starts_at, what=subject, position=e.position),
        uow=uow,
        clock=clock,
    )


async def on_gathering_promoted(
    event: Delivered[GatheringPromotedFromWaitlist], *, uow: NotifyUnitOfWork, clock: Clock
) -> None:
    e = event.data
    subject, subject_id = _gathering(e)
    await _seated(event, "gathering_promoted", e.member_id, subject, subject_id, e.starts_at, uow=uow, clock=clock)


async def _seated(
    event: Delivered[Any],
    purpose: MessagePurpose,
    member_id: uuid.UUID,
    subject: domain.Subject,
    subject_id: uuid.UUID,
    starts_at: datetime,
    *,
    uow: NotifyUnitOfWork,
    clock: Clock,
) -> None:
    """A place on a shift, at a session or an event, at once or from the waitlist: the person is told, and
    reminded before it starts."""
    await _tell(event, purpose, [member_id], _when(starts_at, what=subject), uow=uow, clock=clock)
    await plan_reminders(
        uow,
        member_id=member_id,
        site_id=event.site_id,
        subject=subject,
        subject_id=subject_id,
        starts_at=starts_at,
        cause_id=event.id,
        now=clock.now(),
    )


async def on_registration_cancelled(
    event: Delivered[GatheringRegistrationCancelled], *, uow: NotifyUnitOfWork, clock: Clock
) -> None:
    e = event.data
    subject, subject_id = _gathering(e)
    await uow.messages.delete_reminders(subject_id, e.member_id)
    await _tell(event, "gathering_cancelled", [e.member_id], _when(e.starts_at, what=subject), uow=uow, clock=clock)


async def on_session_cancelled(event: Delivered[SessionCancelled], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    e = event.data
    await uow.messages.delete_reminders(e.session_id)
    await _tell(
        event,
        "session_cancelled",
        [*e.confirmed_member_ids, *e.waitlisted_member_ids],
        _when(e.starts_at, what="session"),
        uow=uow,
        clock=clock,
    )


async def on_event_cancelled(event: Delivered[EventCancelled], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    e = event.data
    await uow.messages.delete_reminders(e.event_id)
    await _tell(
        event,
        "event_cancelled",
        [*e.confirmed_member_ids, *e.waitlisted_member_ids],
        _when(e.starts_at, what="event"),
        uow=uow,
        clock=clock,
    )


async def on_session_scheduled(event: Delivered[SessionScheduled], *, uow: NotifyUnitOfWork, clock: Clock) -> None:
    """A session moved to another time: its reminders move with it."""
    e = event.data
    if e.change == "moved":
        await uow.messages.move_reminders(e.session_id, e.starts_at, event.id)
