"""Attendance from the front desk: a check-in for a recovery group or a sober event (``ref`` = the session or
sober event id) is recorded as attendance, once, however often the check-in is delivered. Members check-in registers
(and erases) feed this service's own view of who may be named in a registration or as a facilitator."""

from __future__ import annotations

from aiohttp import web

from services.gatherings import handlers
from services.gatherings.views import CLOCK, UOW
from shared.contracts.checkin import MemberErased, MemberRegistered, VisitorCheckedIn
from shared.inbox import Subscriptions, inbox_consumer
from shared.messaging import ProcessBatch

QUEUE = "gatherings"
SUBSCRIPTIONS = Subscriptions(
    {
        VisitorCheckedIn: handlers.record_check_in_attendance,
        MemberRegistered: handlers.record_member_registered,
        MemberErased: handlers.record_member_erased,
    }
)
BINDINGS = SUBSCRIPTIONS.bindings


def process(app: web.Application) -> ProcessBatch:
    return inbox_consumer(QUEUE, app[UOW], app[CLOCK], SUBSCRIPTIONS)
