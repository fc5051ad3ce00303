"""Attendance from the front desk: a check-in for a recovery group or a sober event (``ref`` = the session or
event id) is recorded as attendance, once, however often the event is delivered. Members check-in registers
(and erases) feed this service's own view of who may be named in a registration or as a facilitator."""

from __future__ import annotations

from aiohttp import web

from services.gatherings import handlers
from services.gatherings.views import CLOCK, UOW
from shared.messaging import ProcessBatch
from shared.uow import inbox_consumer

QUEUE = "gatherings"
BINDINGS = ("checkin.visitor_checked_in", "checkin.member_registered", "checkin.member_erased")


def process(app: web.Application) -> ProcessBatch:
    return inbox_consumer(
        QUEUE,
        app[UOW],
        app[CLOCK],
        {
            "checkin.visitor_checked_in": handlers.record_check_in_attendance,
            "checkin.member_registered": handlers.record_member_registered,
            "checkin.member_erased": handlers.record_member_erased,
        },
    )
