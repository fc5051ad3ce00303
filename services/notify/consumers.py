"""Members check-in registers feed this service's view of who may be given a contact; an erasure deletes the
member's addresses (the pseudonymous delivery history stays)."""

from __future__ import annotations

from aiohttp import web

from services.notify import handlers
from services.notify.views import CLOCK, UOW
from shared.contracts.checkin import MemberErased, MemberRegistered
from shared.inbox import Subscriptions, inbox_consumer
from shared.messaging import ProcessBatch

QUEUE = "notify"
SUBSCRIPTIONS = Subscriptions(
    {
        MemberRegistered: handlers.record_member_registered,
        MemberErased: handlers.record_member_erased,
    }
)
BINDINGS = SUBSCRIPTIONS.bindings


def process(app: web.Application) -> ProcessBatch:
    return inbox_consumer(QUEUE, app[UOW], app[CLOCK], SUBSCRIPTIONS)
