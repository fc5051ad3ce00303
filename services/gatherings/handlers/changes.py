"""Changes to a gathering of either kind: its capacity (more seats promote waiting parties at once) and its
cancellation (its registrations end with it)."""

from __future__ import annotations

from datetime import datetime

from services.gatherings import domain
from services.gatherings.commands import CancelGathering, Cancelled, ChangeCapacity, GatheringChanged
from services.gatherings.domain import Party
from services.gatherings.handlers.seats import locked, promote
from services.gatherings.models import GatheringRow, GatheringsUnitOfWork, RegistrationRow
from shared.clock import Clock
from shared.contracts.gatherings import EventCancelled, EventScheduled, SessionCancelled, SessionScheduled
from shared.errors import Conflict


async def change_capacity(cmd: ChangeCapacity, *, uow: GatheringsUnitOfWork, clock: Clock) -> GatheringChanged:
    """More seats promote waiting parties at once; fewer seats than are taken, or fewer than a waiting party needs
    (it would wait forever), are refused."""
    now = clock.now()
    gathering = await locked(uow, cmd.gathering_type, cmd.gathering_id, cmd.site_id)
    capacity = cmd.capacity if cmd.capacity is not None else gathering.capacity
    child_care_seats = cmd.child_care_seats if cmd.child_care_seats is not None else gathering.child_care_seats
    promoted: list[RegistrationRow] = []
    if (capacity, child_care_seats) != (gathering.capacity, gathering.child_care_seats):
        waiting = await uow.gatherings.waiting(gathering.gathering_id)
        problem = domain.capacity_change_problem(
            capacity=capacity,
            child_care_seats=child_care_seats,
            taken_adults=gathering.taken_adults,
            taken_children=gathering.taken_children,
            waiting=[w.party for w in waiting],
        )
        if problem == "capacity_below_confirmed":
            raise Conflict(
                "Fewer seats than are taken: cancel registrations first.",
                code="capacity_below_confirmed",
                taken_adults=gathering.taken_adults,
                taken_children=gathering.taken_children,
            )
        if problem == "capacity_below_waiting_party":
            raise Conflict(
                "A waiting party would never fit: cancel its registration first.",
                code="capacity_below_waiting_party",
                registration_ids=[
                    str(w.registration_id)
                    for w in waiting
                    if not domain.can_ever_fit(w.party, capacity, child_care_seats)
                ],
            )
        await uow.gatherings.set_capacity(gathering.gathering_id, capacity, child_care_seats, now)
        # The new capacity first, then the promotions it caused: the event stream replays in causal order.
        _emit_rescheduled(uow, gathering, capacity, child_care_seats, now, cmd.actor_id)
        room = domain.room_left(capacity, child_care_seats, gathering.taken_adults, gathering.taken_children)
        promoted = await promote(uow, gathering, waiting, room, now, "capacity_increase", cmd.actor_id)
        if promoted:
            await uow.gatherings.set_taken(
                gathering.gathering_id,
                gathering.taken_adults + sum(r.adults for r in promoted),
                gathering.taken_children + sum(r.children for r in promoted),
            )
    taken = Party(
        gathering.taken_adults + sum(r.adults for r in promoted),
        gathering.taken_children + sum(r.children for r in promoted),
    )
    return GatheringChanged(
        gathering_id=gathering.gathering_id,
        starts_at=gathering.starts_at,
        ends_at=gathering.ends_at,
        capacity=capacity,
        child_care_seats=child_care_seats,
        seats_left=capacity - taken.adults,
        child_care_seats_left=child_care_seats - taken.children,
        promoted=[r.registration_id for r in promoted],
    )


def _emit_rescheduled(
    uow: GatheringsUnitOfWork,
    gathering: GatheringRow,
    capacity: int,
    child_care_seats: int,
    now: datetime,
    actor_id: str,
) -> None:
    data: SessionScheduled | EventScheduled
    if gathering.gathering_type == "session":
        assert gathering.group_id is not None
        data = SessionScheduled(
            session_id=gathering.gathering_id,
            group_id=gathering.group_id,
            support_type=gathering.support_type,
            starts_at=gathering.starts_at,
            ends_at=gathering.ends_at,
            capacity=capacity,
            child_care_seats=child_care_seats,
            change="capacity_changed",
            previous_starts_at=None,
        )
    else:
        assert gathering.kind is not None
        data = EventScheduled(
            event_id=gathering.gathering_id,
            kind=gathering.kind,
            support_type=gathering.support_type,
            starts_at=gathering.starts_at,
            ends_at=gathering.ends_at,
            capacity=capacity,
            child_care_seats=child_care_seats,
            family_friendly=gathering.family_friendly,
            registration_opens_at=gathering.registration_opens_at,
            registration_closes_at=domain.registration_closes_at(gathering.starts_at, gathering.registration_closes_at),
            change="capacity_changed",
        )
    uow.emit(data, subject=gathering.gathering_id, site_id=gathering.site_id, actor_id=actor_id, at=now)


async def cancel_gathering(cmd: CancelGathering, *, uow: GatheringsUnitOfWork, clock: Clock) -> Cancelled:
    """The gathering and its registrations end; ``SessionCancelled``/``EventCancelled`` name who had a seat or
    waited (ids), so they can be told."""
    now = clock.now()
    gathering = await locked(uow, cmd.gathering_type, cmd.gathering_id, cmd.site_id, allow_cancelled=True)
    if gathering.cancelled_at is not None:
        raise Conflict(f"This {cmd.gathering_type} was cancelled already.", code="already_cancelled")
    affected = await uow.gatherings.cancel_gathering(gathering.gathering_id, now, cmd.actor_id)
    confirmed = [r.member_id for r in affected if r.previous_status == "confirmed"]
    waitlisted = [r.member_id for r in affected if r.previous_status == "waitlisted"]
    data: SessionCancelled | EventCancelled
    if gathering.gathering_type == "session":
        assert gathering.group_id is not None
        data = SessionCancelled(
            session_id=gathering.gathering_id,
            group_id=gathering.group_id,
            support_type=gathering.support_type,
            starts_at=gathering.starts_at,
            cancelled_at=now,
            confirmed_member_ids=confirmed,
            waitlisted_member_ids=waitlisted,
        )
    else:
        assert gathering.kind is not None
        data = EventCancelled(
            event_id=gathering.gathering_id,
            kind=gathering.kind,
            support_type=gathering.support_type,
            starts_at=gathering.starts_at,
            cancelled_at=now,
            confirmed_member_ids=confirmed,
            waitlisted_member_ids=waitlisted,
        )
    uow.emit(data, subject=gathering.gathering_id, site_id=gathering.site_id, actor_id=cmd.actor_id, at=now)
    return Cancelled(gathering_id=gathering.gathering_id, cancelled_at=now, registrations_cancelled=len(affected))
