"""Registrations: a party is seated or waits, first come first served; a cancelled seat goes to the waitlist."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.gatherings import domain
from services.gatherings.commands import CancelRegistration, Register, RegistrationCancelled, RegistrationResult
from services.gatherings.domain import Party, Room
from services.gatherings.handlers.seats import locked, present, promote, seat_fields
from services.gatherings.models import GatheringRow, GatheringsUnitOfWork, NewRegistration, RegistrationRow
from shared.clock import Clock
from shared.contracts.gatherings import GatheringRegistered, GatheringRegistrationCancelled, GatheringWaitlisted
from shared.errors import Conflict, DomainError, Forbidden, NotFound
from shared.groupcommit import alone, each_decided, refuses_without_writing
from shared.members import MemberStanding


async def register_run(
    cmds: Sequence[Register], *, uow: GatheringsUnitOfWork, clock: Clock
) -> list[RegistrationResult | DomainError]:
    """Registrations for one gathering, decided in arrival order under its row lock as one run: what the run costs
    under the lock is paid in series by every sign-up waiting behind it, so it is four statements whatever its length
    (the lock with the members' standings; their registrations and the waitlist, read after the lock; one insert of
    the run's registrations; their events at commit) and the decisions in Python between. Each answer is a result
    or the refusal of that one registration; a refused one writes nothing. The view runs sign-ups that arrive
    together as one run (``shared.groupcommit``)."""
    gathering_id = cmds[0].gathering_id
    assert all(cmd.gathering_id == gathering_id for cmd in cmds), "a run is one gathering's"
    members = list(dict.fromkeys(cmd.member_id for cmd in cmds))
    locked = await uow.gatherings.lock_for_run(gathering_id, members)
    run: _Run | None = None
    if locked is not None:
        gathering, standings = locked
        held = await uow.gatherings.seats_held(gathering_id, members)
        run = _Run(gathering, standings, dict(held.registration_of), held.waiting, gathering.room_left)
    answers = each_decided(cmds, lambda cmd: _decide(cmd, run, clock.now(), uow))
    if run is not None and run.placed:
        await uow.gatherings.place_run(gathering_id, run.placed, run.confirmed)
    return answers


@dataclass(slots=True)
class _Run:
    """The gathering as a run leaves it so far: the registrations and waiting parties it added, the room left."""

    gathering: GatheringRow
    standings: dict[uuid.UUID, MemberStanding]
    registration_of: dict[uuid.UUID, uuid.UUID]  # member → their active registration
    waiting: int
    room: Room
    placed: list[NewRegistration] = field(default_factory=list)
    confirmed: list[bool] = field(default_factory=list)


def _decide(cmd: Register, run: _Run | None, now: datetime, uow: GatheringsUnitOfWork) -> RegistrationResult:
    """One registration of a run: refused (raises), or seated or waiting, added to ``run`` with its event emitted."""
    if cmd.acting_member_id is not None and cmd.member_id != cmd.acting_member_id:
        raise Forbidden("A volunteer token registers only its own member.", code="not_yours")
    found = run.gathering if run is not None else None
    if found is not None and (found.gathering_type != cmd.gathering_type or cmd.site_id not in (None, found.site_id)):
        found = None
    gathering = present(found, cmd.gathering_type)
    assert run is not None  # present() refused otherwise
    domain.require_member(run.standings.get(cmd.member_id), "member")
    closes_at = domain.registration_closes_at(gathering.starts_at, gathering.registration_closes_at)
    if domain.window_state(now, gathering.registration_opens_at, closes_at) != "open":
        raise Conflict(
            "Registration is not open now.",
            code="registration_closed",
            opens_at=gathering.registration_opens_at.isoformat() if gathering.registration_opens_at else None,
            closes_at=closes_at.isoformat(),
        )
    party = Party(cmd.adults, cmd.children)
    if not domain.can_ever_fit(party, gathering.capacity, gathering.child_care_seats):
        raise Conflict(
            "This party is bigger than the whole gathering (adults against capacity, children against child-care "
            "seats).",
            code="party_too_large",
            capacity=gathering.capacity,
            child_care_seats=gathering.child_care_seats,
        )
    existing = run.registration_of.get(cmd.member_id)
    if existing is not None:
        raise Conflict(
            f"This member is registered for this {cmd.gathering_type} already.",
            code="already_registered",
            registration_id=str(existing),
        )
    # No waiting party fits the room left (promotion guarantees it), so a party that fits is the one a
    # first-come-first-served walk of the waitlist would seat: seat it; otherwise it waits at the end.
    registration_id = uuid.uuid4()
    common = seat_fields(gathering, registration_id, cmd.member_id, party)
    data: GatheringRegistered | GatheringWaitlisted
    seated = run.room.fits(party)
    position = None
    if seated:
        run.room = run.room.after_seating(party)
        data = GatheringRegistered(**common, registered_by=cmd.role, registered_at=now)
    else:
        run.waiting += 1
        position = run.waiting
        data = GatheringWaitlisted(**common, registered_by=cmd.role, registered_at=now, position=position)
    uow.emit(data, subject=registration_id, site_id=gathering.site_id, actor_id=cmd.actor_id, at=now)
    run.registration_of[cmd.member_id] = registration_id
    run.placed.append(
        NewRegistration(registration_id, gathering.gathering_id, gathering.site_id, cmd.member_id, party, cmd.role, now)
    )
    run.confirmed.append(seated)
    return RegistrationResult(
        registration_id=registration_id, status="confirmed" if seated else "waitlisted", position=position
    )


@refuses_without_writing
async def register(cmd: Register, *, uow: GatheringsUnitOfWork, clock: Clock) -> RegistrationResult:
    """One registration: a run of one (a request with an Idempotency-Key, or a run done again with savepoints)."""
    result: RegistrationResult = await alone(register_run, cmd, uow=uow, clock=clock)
    return result


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
