"""Gatherings handlers: plain async functions ``(cmd, *, uow, clock)``; no HTTP, no broker, no commit.

Every change of seats (register, cancel a registration, change capacity) locks the gathering's row first and
decides from what it reads there; waitlist promotion happens in the same transaction as the change that freed the
seats (``seats``). By responsibility: ``schedule`` (groups, their sessions, sober events), ``changes`` (capacity
and cancellation of either kind), ``registrations``, ``attendance`` (and the members check-in tells us about)."""

from services.gatherings.handlers.attendance import (
    mark_attendance,
    record_check_in_attendance,
    record_member_erased,
    record_member_registered,
)
from services.gatherings.handlers.changes import cancel_gathering, change_capacity
from services.gatherings.handlers.registrations import cancel_registration, register, register_run
from services.gatherings.handlers.schedule import create_group, extend_schedules, move_session, schedule_sober_event

__all__ = [
    "cancel_gathering",
    "cancel_registration",
    "change_capacity",
    "create_group",
    "extend_schedules",
    "mark_attendance",
    "move_session",
    "record_check_in_attendance",
    "record_member_erased",
    "record_member_registered",
    "register",
    "register_run",
    "schedule_sober_event",
]
