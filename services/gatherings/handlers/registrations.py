"""Registrations: a party is seated or waits, first come first served; a cancelled seat goes to the waitlist."""

from __future__ import annotations

import uuid

from services.gatherings import domain
from services.gatherings.commands import CancelRegistration, Register, RegistrationCancelled, RegistrationResult
from services.gatherings.domain import Party
from services.gatherings.handlers.seats import locked, present, promote, seat_fields
from services.gatherings.models import GatheringsUnitOfWork, NewRegistration, RegistrationRow
from shared.clock import Clock
from shared.contracts.gatherings import GatheringRegistered, GatheringRegistrationCancelled, GatheringWaitlisted
from shared.errors import Conflict, Forbidden, NotFound
from shared.groupcommit import refuses_without_writing


@refuses_without_writing
async def register(cmd: Register, *, uow: GatheringsUnitOfWork, clock: Clock) -> RegistrationResult:
    """Sign-ups for one gathering are decided one at a time under its row lock, so what each costs under the lock
    is paid in series: two prepared statements on the raw connection (lock and read, a no-op wait when the run's
    transaction holds the lock already; place with its outbox row) and only the Python that needs the row between.
    The view runs sign-ups that arrive together in one transaction (``shared.groupcommit``)."""
    if cmd.acting_member_id is not None and cmd.member_id != cmd.acting_member_id:
        raise Forbidden("A volunteer token registers only its own member.", code="not_yours")
    now = clock.now()
    party = Party(cmd.adults, cmd.children)
    locked = await uow.gatherings.lock_for_registration(
        cmd.gathering_id, cmd.gathering_type, cmd.site_id, cmd.member_id
    )
    gathering = present(locked[0] if locked else None, cmd.gathering_type)
    domain.require_member(locked[1] if locked else None, "member")
    closes_at = domain.registration_closes_at(gathering.starts_at, gathering.registration_closes_at)
    if domain.window_state(now, gathering.registration_opens_at, closes_at) != "open":
        raise Conflict(
            "Registration is not open now.",
            code="registration_closed",
            opens_at=gathering.registration_opens_at.isoformat() if gathering.registration_opens_at else None,
            closes_at=closes_at.isoformat(),
        )
    if not domain.can_ever_fit(party, gathering.capacity, gathering.child_care_seats):
        raise Conflict(
            "This party is bigger than the whole gathering (adults against capacity, children against child-care "
            "seats).",
            code="party_too_large",
            capacity=gathering.capacity,
            child_care_seats=gathering.child_care_seats,
        )
    # No waiting party fits the room left (promotion guarantees it), so a party that fits is the one a
    # first-come-first-served walk of the waitlist would seat: seat it; otherwise it waits at the end.
    confirmed = gathering.room_left.fits(party)
    registration_id = uuid.uuid4()
    common = seat_fields(gathering, registration_id, cmd.member_id, party)
    data: GatheringRegistered | GatheringWaitlisted
    if confirmed:
        data = GatheringRegistered(**common, registered_by=cmd.role, registered_at=now)
    else:
        # The statement that places it knows the position and writes it into the outbox row's data.
        data = GatheringWaitlisted(**common, registered_by=cmd.role, registered_at=now, position=1)
    registration = NewRegistration(
        registration_id, gathering.gathering_id, gathering.site_id, cmd.member_id, party, cmd.role, now
    )
    event = uow.emit(
        data, subject=registration_id, site_id=gathering.site_id, actor_id=cmd.actor_id, at=now, by_statement=True
    )
    placed = await uow.gatherings.place(registration, confirmed=confirmed, event=event)
    if placed is None:
        existing = await uow.gatherings.active_registration_of(gathering.gathering_id, cmd.member_id)
        raise Conflict(
            f"This member is registered for this {cmd.gathering_type} already.",
            code="already_registered",
            registration_id=str(existing.registration_id) if existing else None,
        )
    return RegistrationResult(
        registration_id=registration_id,
        status="confirmed" if confirmed else "waitlisted",
        position=placed.position,
    )


async def cancel_registration(
    cmd: CancelRegistration, *, uow: GatheringsUnitOfWork, clock: Clock
) -> RegistrationCancelled:
    """Cancel a seat or a place in the waitlist; freed seats go to waiting parties in order, in this transaction."""
    now = clock.now()
    found = await uow.gatherings.get_registration(cmd.registration_id)
    if found is None or (cmd.site_id is not None and found.site_id != cmd.site_id):
        raise NotFound("No such registration here.", code="registration_not_found")
    if cmd.acting_member_id is not None and found.member_id != cmd.acting_member_id:
        raise Forbidden("A volunteer token cancels only its own registrations.", code="not_yours")
    gathering = await locked(uow, None, found.gathering_id, None, allow_cancelled=True)
    # Read again under the lock: a concurrent cancel or promotion may have changed it while we waited.
    registration = await uow.gatherings.get_registration(cmd.registration_id)
    assert registration is not None
    if registration.status == "cancelled":
        raise Conflict("This registration was cancelled already.", code="already_cancelled")
    await uow.gatherings.mark_cancelled(registration.registration_id, now, cmd.actor_id)
    uow.emit(
        GatheringRegistrationCancelled(
            **seat_fields(gathering, registration.registration_id, registration.member_id, registration.party),
            previous_status=registration.status,
            cancelled_at=now,
            cancelled_by=cmd.role,
        ),
        subject=registration.registration_id,
        site_id=gathering.site_id,
        actor_id=cmd.actor_id,
        at=now,
    )
    promoted: list[RegistrationRow] = []
    if registration.status == "confirmed":
        taken_adults = gathering.taken_adults - registration.adults
        taken_children = gathering.taken_children - registration.children
        room = domain.room_left(gathering.capacity, gathering.child_care_seats, taken_adults, taken_children)
        waiting = await uow.gatherings.waiting(gathering.gathering_id) if room.adults > 0 else []
        promoted = await promote(uow, gathering, waiting, room, now, "cancellation", cmd.actor_id)
        await uow.gatherings.set_taken(
            gathering.gathering_id,
            taken_adults + sum(r.adults for r in promoted),
            taken_children + sum(r.children for r in promoted),
        )
    return RegistrationCancelled(
        registration_id=registration.registration_id,
        status="cancelled",
        promoted=[r.registration_id for r in promoted],
    )
