"""Attendance, from a coordinator's roster or a kiosk check-in, and the members check-in registers and erases."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.gatherings import domain
from services.gatherings.commands import AttendanceResult, MarkAttendance
from services.gatherings.domain import Party
from services.gatherings.models import GatheringRow, GatheringsUnitOfWork, NewAttendance, RegistrationRow
from shared.clock import Clock
from shared.contracts.checkin import MemberErased, MemberRegistered, VisitorCheckedIn
from shared.contracts.gatherings import AttendanceSource, GatheringAttended
from shared.inbox import Delivered


async def mark_attendance(cmd: MarkAttendance, *, uow: GatheringsUnitOfWork, clock: Clock) -> AttendanceResult:
    """A coordinator's roster mark; marking the same member twice (or after a check-in) records nothing new."""
    now = clock.now()
    gathering = await uow.gatherings.find_gathering(cmd.gathering_id, cmd.site_id, cmd.gathering_type)
    if gathering is None:
        raise domain.gathering_not_found(cmd.gathering_type)
    if gathering.cancelled_at is not None:
        raise domain.gathering_cancelled(cmd.gathering_type)
    standing = await uow.gatherings.member_standing(cmd.member_id, gathering.site_id)
    domain.require_member(standing, "member", erased_ok=True)
    registration = await _confirmed_registration(uow, gathering, cmd.member_id)
    default = registration.party if registration is not None else Party(1, 0)
    party = Party(
        cmd.adults if cmd.adults is not None else default.adults,
        cmd.children if cmd.children is not None else default.children,
    )
    attendance_id = await _record_attendance(
        uow,
        gathering,
        member_id=cmd.member_id,
        visit_id=None,
        registration=registration,
        party=party,
        source="roster",
        at=now,
        actor_id=cmd.actor_id,
        correlation_id=None,
    )
    if attendance_id is None:
        attendance_id = await uow.gatherings.attendance_of(gathering.gathering_id, cmd.member_id)
        return AttendanceResult(attendance_id=attendance_id, recorded=False, registered=registration is not None)
    return AttendanceResult(attendance_id=attendance_id, recorded=True, registered=registration is not None)


async def record_check_in_attendance(
    event: Delivered[VisitorCheckedIn], *, uow: GatheringsUnitOfWork, clock: Clock
) -> None:
    """A kiosk check-in for a recovery group or a sober event is attendance at the session or sober event in its ref.

    Other purposes, refs that are not one of this site's gatherings, and cancelled gatherings are ignored. A
    member is recorded once per gathering, an anonymous walk-in once per visit: a redelivery adds nothing."""
    visit = event.data
    gathering_type = domain.PURPOSE_GATHERING.get(visit.purpose)
    if gathering_type is None or visit.ref is None:
        return
    try:
        gathering_id = uuid.UUID(visit.ref)
    except ValueError:
        return
    gathering = await uow.gatherings.find_gathering(gathering_id, event.site_id, gathering_type)
    if gathering is None or gathering.cancelled_at is not None:
        return
    registration = None
    if visit.member_id is not None:
        registration = await _confirmed_registration(uow, gathering, visit.member_id)
    await _record_attendance(
        uow,
        gathering,
        member_id=visit.member_id,
        visit_id=visit.visit_id,
        registration=registration,
        party=registration.party if registration is not None else Party(1, 0),
        source="checkin",
        at=visit.checked_in_at,
        actor_id=None,
        correlation_id=str(event.id),
    )


async def record_member_registered(
    event: Delivered[MemberRegistered], *, uow: GatheringsUnitOfWork, clock: Clock
) -> None:
    """Check-in registered a member at the site the event came from: from now on they can be named here."""
    registered = event.data
    await uow.gatherings.know_member(registered.member_id, event.site_id, registered.registered_at)


async def record_member_erased(event: Delivered[MemberErased], *, uow: GatheringsUnitOfWork, clock: Clock) -> None:
    erased = event.data
    await uow.gatherings.mark_member_erased(erased.member_id, event.site_id, erased.erased_at)


async def _confirmed_registration(
    uow: GatheringsUnitOfWork, gathering: GatheringRow, member_id: uuid.UUID
) -> RegistrationRow | None:
    registration = await uow.gatherings.active_registration_of(gathering.gathering_id, member_id)
    return registration if registration is not None and registration.status == "confirmed" else None


async def _record_attendance(
    uow: GatheringsUnitOfWork,
    gathering: GatheringRow,
    *,
    member_id: uuid.UUID | None,
    visit_id: uuid.UUID | None,
    registration: RegistrationRow | None,
    party: Party,
    source: AttendanceSource,
    at: datetime,
    actor_id: str | None,
    correlation_id: str | None,
) -> uuid.UUID | None:
    attendance_id = uuid.uuid4()
    recorded = await uow.gatherings.add_attendance(
        NewAttendance(
            attendance_id=attendance_id,
            gathering_id=gathering.gathering_id,
            site_id=gathering.site_id,
            member_id=member_id,
            visit_id=visit_id,
            registration_id=registration.registration_id if registration else None,
            party=party,
            source=source,
            attended_at=at,
        )
    )
    if not recorded:
        return None
    uow.emit(
        GatheringAttended(
            attendance_id=attendance_id,
            session_id=gathering.session_id,
            group_id=gathering.group_id,
            event_id=gathering.sober_event_id,
            support_type=gathering.support_type,
            starts_at=gathering.starts_at,
            member_id=member_id,
            anonymous=member_id is None,
            visit_id=visit_id,
            registered=registration is not None,
            registration_id=registration.registration_id if registration else None,
            adults=party.adults,
            children=party.children,
            source=source,
            attended_at=at,
        ),
        subject=attendance_id,
        site_id=gathering.site_id,
        actor_id=actor_id,
        correlation_id=correlation_id,
        at=at,
    )
    return attendance_id
