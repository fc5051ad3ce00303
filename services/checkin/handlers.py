"""Check-in handlers: plain async functions ``(cmd, *, uow, clock)``; no HTTP, no broker."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import time

from services.checkin import domain
from services.checkin.commands import (
    CheckedIn,
    CheckedOut,
    CheckInVisitor,
    CheckOutVisitor,
    ClosedVisits,
    CloseVisitsAtClosingTime,
    DiscloseDisplayNames,
    DisplayNameOut,
    DisplayNames,
    EraseMember,
    MemberErasedResult,
    MemberRegisteredResult,
    RegisterMember,
    RemoveDisplayName,
    SetDisplayName,
)
from services.checkin.models import CheckinUnitOfWork, NewVisit, VisitRecord
from shared.clock import Clock
from shared.contracts.checkin import (
    MemberErased,
    MemberRegistered,
    NamesDisclosed,
    VisitorCheckedIn,
    VisitorCheckedOut,
)
from shared.errors import Conflict, NotFound
from shared.uow import single_statement

KIOSK_CODE_ATTEMPTS = 20


async def register_member(cmd: RegisterMember, *, uow: CheckinUnitOfWork, clock: Clock) -> MemberRegisteredResult:
    member_id = uuid.uuid4()
    now = clock.now()
    for _ in range(KIOSK_CODE_ATTEMPTS):
        code = domain.new_kiosk_code(cmd.code_length)
        if await uow.checkin.add_member(member_id, cmd.site_id, cmd.nickname, code, now):
            break
    else:
        raise Conflict("Could not draw a free kiosk code; try again.", code="kiosk_codes_exhausted")
    uow.emit(
        MemberRegistered(member_id=member_id, registered_at=now, registered_by=cmd.registered_by),
        subject=member_id,
        site_id=cmd.site_id,
        actor_id=cmd.actor_id,
        at=now,
    )
    return MemberRegisteredResult(member_id=member_id, kiosk_code=code)


def _closing_of(cmd: CheckInVisitor | CheckOutVisitor) -> tuple[zoneinfo.ZoneInfo, time]:
    assert cmd.site is not None, "occurred_at is bounded by the site's closing time"
    return cmd.site.zone, cmd.site.closes_at


# One statement, except for a check-in the kiosk saved offline: one from before the site last closed also records
# its visit's end, an event the usual way (see domain.check_in_time).
@single_statement(unless=lambda cmd: cmd.occurred_at is not None)
async def check_in_visitor(cmd: CheckInVisitor, *, uow: CheckinUnitOfWork, clock: Clock) -> CheckedIn:
    received = clock.now()
    offline = cmd.occurred_at is not None
    now, ended = received, None
    if cmd.occurred_at is not None:
        now, ended = domain.check_in_time(received, cmd.occurred_at, *_closing_of(cmd))
    code = None
    if cmd.kiosk_code is not None:
        code = domain.normalize_kiosk_code(cmd.kiosk_code)
        if not domain.is_well_formed_code(code):
            raise NotFound("No member has that code here.", code="member_not_found")
    visit = NewVisit(
        visit_id=uuid.uuid4(),
        site_id=cmd.site_id,
        purpose=cmd.purpose,
        support_type=domain.support_type_of(cmd.purpose),
        ref=cmd.ref,
        checked_in_at=now,
        received_at=received,
        recorded_offline=offline,
        # Ended already (the site closed since): it claims no open visit, so a member checked in now is no obstacle.
        checked_out_at=ended,
    )
    # Written by the same statement as the visit (one round trip), with the member id it resolves.
    event = uow.emit(
        VisitorCheckedIn(
            visit_id=visit.visit_id,
            member_id=cmd.member_id,
            anonymous=cmd.anonymous,
            purpose=cmd.purpose,
            support_type=visit.support_type,
            ref=cmd.ref,
            checked_in_at=now,
            recorded_offline=offline,
        ),
        subject=visit.visit_id,
        site_id=cmd.site_id,
        actor_id=cmd.actor_id,
        at=now,
        by_statement=True,
    )
    if cmd.anonymous:
        await uow.checkin.start_visit(visit, event)
        member_id = None
    else:
        started, member_id = await uow.checkin.start_visit(visit, event, member_id=cmd.member_id, kiosk_code=code)
        if not started:
            await _explain_refused_check_in(cmd, code, uow)
    if ended is not None:
        record = VisitRecord(visit.visit_id, cmd.site_id, member_id, cmd.purpose, cmd.ref, now, ended)
        _emit_checked_out(uow, record, "auto_close", None)
    return CheckedIn(
        visit_id=visit.visit_id,
        member_id=member_id,
        purpose=cmd.purpose,
        support_type=visit.support_type,
        checked_in_at=now,
        checked_out_at=ended,
    )


async def _explain_refused_check_in(cmd: CheckInVisitor, code: str | None, uow: CheckinUnitOfWork) -> None:
    member_id = await uow.checkin.find_member_id(cmd.site_id, kiosk_code=code, member_id=cmd.member_id)
    if member_id is None:
        raise NotFound("No member has that code here.", code="member_not_found")
    open_visit = await uow.checkin.open_visit_of(member_id)
    raise Conflict("Already checked in.", code="already_checked_in", visit_id=str(open_visit) if open_visit else None)


async def check_out_visitor(cmd: CheckOutVisitor, *, uow: CheckinUnitOfWork, clock: Clock) -> CheckedOut:
    received = clock.now()
    offline = cmd.occurred_at is not None
    now = received
    if cmd.occurred_at is not None:
        now = domain.check_out_time(received, cmd.occurred_at, *_closing_of(cmd))
    visit_id = cmd.visit_id
    if visit_id is None:
        code = domain.normalize_kiosk_code(cmd.kiosk_code) if cmd.kiosk_code is not None else None
        member_id = await uow.checkin.find_member_id(cmd.site_id, kiosk_code=code, member_id=cmd.member_id)
        visit_id = await uow.checkin.open_visit_of(member_id) if member_id is not None else None
        if visit_id is None:
            raise Conflict("Not checked in.", code="not_checked_in")
    visit = await uow.checkin.close_visit(
        visit_id, cmd.site_id, now, "kiosk", received_at=received, recorded_offline=offline
    )
    if visit is None:
        existing = await uow.checkin.get_visit(visit_id, cmd.site_id)
        if existing is None:
            raise NotFound("No such visit here.", code="visit_not_found")
        raise Conflict("This visit is already checked out.", code="already_checked_out")
    _emit_checked_out(uow, visit, "kiosk", cmd.actor_id, recorded_offline=offline)
    assert visit.checked_out_at is not None
    return CheckedOut(
        visit_id=visit.visit_id,
        checked_in_at=visit.checked_in_at,
        checked_out_at=visit.checked_out_at,
        minutes=domain.minutes_between(visit.checked_in_at, visit.checked_out_at),
    )


async def close_visits_at_closing_time(
    cmd: CloseVisitsAtClosingTime, *, uow: CheckinUnitOfWork, clock: Clock
) -> ClosedVisits:
    """Visits nobody checked out end at the site's closing time (not when we noticed), so minutes stay honest."""
    now = clock.now()
    site = cmd.site
    closed = 0
    for visit in await uow.checkin.open_visits(site.site_id):
        closing = domain.closing_instant_after(visit.checked_in_at, site.zone, site.closes_at)
        if closing > now:
            continue
        record = await uow.checkin.close_visit(visit.visit_id, site.site_id, closing, "auto_close", received_at=now)
        if record is not None:
            _emit_checked_out(uow, record, "auto_close", None)
            closed += 1
    return ClosedVisits(closed=closed)


def _emit_checked_out(
    uow: CheckinUnitOfWork,
    visit: VisitRecord,
    closed_by: domain.ClosedBy,
    actor_id: str | None,
    *,
    recorded_offline: bool = False,
) -> None:
    assert visit.checked_out_at is not None
    uow.emit(
        VisitorCheckedOut(
            visit_id=visit.visit_id,
            member_id=visit.member_id,
            purpose=visit.purpose,
            ref=visit.ref,
            checked_in_at=visit.checked_in_at,
            checked_out_at=visit.checked_out_at,
            minutes=domain.minutes_between(visit.checked_in_at, visit.checked_out_at),
            closed_by=closed_by,
            recorded_offline=recorded_offline,
        ),
        subject=visit.visit_id,
        site_id=visit.site_id,
        actor_id=actor_id,
        at=visit.checked_out_at,
    )


async def erase_member(cmd: EraseMember, *, uow: CheckinUnitOfWork, clock: Clock) -> MemberErasedResult:
    now = clock.now()
    site_id = await uow.checkin.site_of_member(cmd.member_id)
    if site_id is None or (cmd.site_id is not None and site_id != cmd.site_id):
        raise NotFound("No such member here.", code="member_not_found")
    if not await uow.checkin.erase_member(cmd.member_id, now):
        raise Conflict("This member was already erased.", code="already_erased")
    uow.emit(
        MemberErased(member_id=cmd.member_id, erased_at=now),
        subject=cmd.member_id,
        site_id=site_id,
        actor_id=cmd.actor_id,
        at=now,
    )
    return MemberErasedResult(member_id=cmd.member_id, erased_at=now)


# Display names: a volunteer's own (set, remove), and staff look-ups, each recorded as a disclosure.


async def set_display_name(cmd: SetDisplayName, *, uow: CheckinUnitOfWork, clock: Clock) -> DisplayNameOut:
    name = domain.clean_display_name(cmd.display_name)
    if not await uow.checkin.is_current_member(cmd.member_id, cmd.site_id):
        raise NotFound("No such member here.", code="member_not_found")
    now = clock.now()
    await uow.checkin.set_display_name(cmd.member_id, name, now)
    return DisplayNameOut(member_id=cmd.member_id, display_name=name, updated_at=now)


async def remove_display_name(cmd: RemoveDisplayName, *, uow: CheckinUnitOfWork, clock: Clock) -> DisplayNameOut:
    if not await uow.checkin.is_current_member(cmd.member_id, cmd.site_id):
        raise NotFound("No such member here.", code="member_not_found")
    await uow.checkin.remove_display_name(cmd.member_id)
    return DisplayNameOut(member_id=cmd.member_id, display_name=None, updated_at=None)


async def disclose_display_names(cmd: DiscloseDisplayNames, *, uow: CheckinUnitOfWork, clock: Clock) -> DisplayNames:
    """The names of the members asked for who belong to the caller's site; others are null, as if they had none,
    so a look-up tells nothing about another site. A look-up that shows a name is recorded (who saw whose name,
    when; never the name) in the transaction of the read."""
    asked = list(dict.fromkeys(cmd.member_ids))
    found = await uow.checkin.display_names_at(cmd.site_id, asked)
    if found:
        now = clock.now()
        uow.emit(
            NamesDisclosed(
                viewer_id=cmd.actor_id,
                viewer_role=cmd.viewer_role,
                member_ids=sorted(found, key=str),
                disclosed_at=now,
            ),
            subject=cmd.actor_id,
            site_id=cmd.site_id,
            actor_id=cmd.actor_id,
            at=now,
        )
    return DisplayNames(names={member_id: found.get(member_id) for member_id in asked})
