"""The volunteering service consumes check-in events: a kiosk visit with purpose ``volunteer_shift`` and ``ref`` =
a shift id starts (check-in) and ends (check-out) an attendance record, and the check-out yields hours.

Each batch runs in one transaction that records the event ids in the inbox, so a redelivered event changes
nothing; attendance is also keyed by the visit id, so the same visit sent again under a new event id cannot
count twice either. Members check-in registers (and erases) feed this service's own view of who may be named in
a volunteer profile, a sign-up or hours."""

from __future__ import annotations

from aiohttp import web

from services.volunteering import handlers
from services.volunteering.attendance import record_check_in, record_check_out
from services.volunteering.views import CLOCK, UOW
from shared.contracts.checkin import MemberErased, MemberRegistered, VisitorCheckedIn, VisitorCheckedOut
from shared.inbox import Subscriptions, inbox_consumer
from shared.messaging import ProcessBatch

QUEUE = "volunteering"
SUBSCRIPTIONS = Subscriptions(
    {
        VisitorCheckedIn: record_check_in,
        VisitorCheckedOut: record_check_out,
        MemberRegistered: handlers.record_member_registered,
        MemberErased: handlers.record_member_erased,
    }
)
BINDINGS = SUBSCRIPTIONS.bindings


def attendance(app: web.Application) -> ProcessBatch:
    return inbox_consumer(QUEUE, app[UOW], app[CLOCK], SUBSCRIPTIONS)
