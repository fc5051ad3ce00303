"""What notify consumes: check-in's member registrations and erasures (an erasure deletes the member's addresses;
the pseudonymous delivery history stays), and the volunteering and gatherings events that people are told of
(services/notify/messages.py)."""

from __future__ import annotations

from aiohttp import web

from services.notify import handlers, messages
from services.notify.views import CLOCK, SENDER, UOW
from shared.contracts.checkin import MemberErased, MemberRegistered
from shared.contracts.gatherings import (
    EventCancelled,
    GatheringPromotedFromWaitlist,
    GatheringRegistered,
    GatheringRegistrationCancelled,
    GatheringWaitlisted,
    SessionCancelled,
    SessionScheduled,
)
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
from shared.events import ReceivedEvent
from shared.inbox import Subscriptions, inbox_consumer
from shared.messaging import ProcessBatch

QUEUE = "notify"
SUBSCRIPTIONS = Subscriptions(
    {
        MemberRegistered: handlers.record_member_registered,
        MemberErased: handlers.record_member_erased,
        SignedUp: messages.on_signed_up,
        Waitlisted: messages.on_waitlisted,
        PromotedFromWaitlist: messages.on_promoted,
        Dropped: messages.on_dropped,
        ShiftChanged: messages.on_shift_changed,
        ShiftCancelled: messages.on_shift_cancelled,
        ShiftMissed: messages.on_shift_missed,
        HoursApproved: messages.on_hours_approved,
        HoursRejected: messages.on_hours_rejected,
        StipendPaid: messages.on_stipend_paid,
        GatheringRegistered: messages.on_registered,
        GatheringWaitlisted: messages.on_gathering_waitlisted,
        GatheringPromotedFromWaitlist: messages.on_gathering_promoted,
        GatheringRegistrationCancelled: messages.on_registration_cancelled,
        SessionCancelled: messages.on_session_cancelled,
        EventCancelled: messages.on_event_cancelled,
        SessionScheduled: messages.on_session_scheduled,
    }
)
BINDINGS = SUBSCRIPTIONS.bindings


def process(app: web.Application) -> ProcessBatch:
    apply = inbox_consumer(QUEUE, app[UOW], app[CLOCK], SUBSCRIPTIONS)

    async def process_and_wake(events: list[ReceivedEvent]) -> None:
        await apply(events)
        app[SENDER].wake()  # committed: what it queued goes now, not at the sender's next tick

    return process_and_wake
