"""Sign-ups for a shift: a seat while one is left, else the waitlist, first come first served.

Sign-ups of one shift are decided one after another under its row lock, so what each costs under the lock is paid in
series by every sign-up waiting behind it. The view runs the sign-ups that arrive together as one run
(``shared.groupcommit``), and ``sign_up_run`` decides a run in four statements whatever its length: the locks (the
shift's, then each member's) with every fact the checks need; the members' sign-ups, here and on overlapping shifts,
and the waitlist, read after the locks; one insert of the run's sign-ups; their events at commit."""

from __future__ import annotations

import contextlib
import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.volunteering import domain
from services.volunteering.commands import SignUp, SignUpResult
from services.volunteering.models import VolunteeringUnitOfWork
from services.volunteering.records import ActiveStatus, NewSignup, SignedUpAlready, SignUpFacts
from shared.clock import Clock
from shared.contracts.volunteering import ActingAs, SignedUp, Waitlisted
from shared.errors import Conflict, DomainError, NotFound
from shared.groupcommit import alone, each_decided, refuses_without_writing


async def sign_up_run(
    cmds: Sequence[SignUp], *, uow: VolunteeringUnitOfWork, clock: Clock
) -> list[SignUpResult | DomainError]:
    """Each answer is a result or the refusal of that one sign-up; a refused one writes nothing."""
    shift_id = cmds[0].shift_id
    assert all(cmd.shift_id == shift_id for cmd in cmds), "a run is one shift's"
    members: dict[uuid.UUID, None] = {}
    for cmd in cmds:
        with contextlib.suppress(DomainError):  # refused again below, in its turn
            members[_member_of(cmd)] = None
    facts = await uow.shifts.lock_for_sign_ups(shift_id, list(members))
    run: _Run | None = None
    if facts is not None:
        held = await uow.shifts.signed_up(facts.shift, list(members))
        run = _Run(facts, held, dict(held.existing), held.waiting, facts.shift.confirmed)
    answers = each_decided(cmds, lambda cmd: _decide(cmd, run, clock.now(), uow))
    if run is not None and run.placed:
        await uow.shifts.add_sign_ups(run.facts.shift, run.placed, run.statuses)
    return answers


@refuses_without_writing
async def sign_up(cmd: SignUp, *, uow: VolunteeringUnitOfWork, clock: Clock) -> SignUpResult:
    """One sign-up: a run of one (a request with an Idempotency-Key, or a run done again with savepoints)."""
    result: SignUpResult = await alone(sign_up_run, cmd, uow=uow, clock=clock)
    return result


@dataclass(slots=True)
class _Run:
    """The shift as a run leaves it so far: the sign-ups and waiting volunteers it added, the seats taken."""

    facts: SignUpFacts
    held: SignedUpAlready
    existing: dict[uuid.UUID, ActiveStatus]  # member → their active sign-up here
    waiting: int
    confirmed: int
    placed: list[NewSignup] = field(default_factory=list)
    statuses: list[ActiveStatus] = field(default_factory=list)


def _member_of(cmd: SignUp) -> uuid.UUID:
    actor = cmd.actor
    return domain.member_acted_on(is_staff=actor.is_staff, own_member_id=actor.member_id, requested=cmd.member_id)


def _decide(cmd: SignUp, run: _Run | None, now: datetime, uow: VolunteeringUnitOfWork) -> SignUpResult:
    """One sign-up of a run: refused (raises), or seated or waiting, added to ``run`` with its event emitted."""
    actor = cmd.actor
    member_id = _member_of(cmd)
    if run is None or actor.scope not in (None, run.facts.shift.site_id):
        raise NotFound("No such shift here.", code="shift_not_found")
    shift = run.facts.shift
    domain.require_member(run.facts.standings.get(member_id))
    if shift.status == "cancelled":
        raise Conflict("This shift was cancelled.", code="shift_cancelled")
    if now >= shift.ends_at:
        raise Conflict("This shift is over.", code="shift_over")
    if now >= shift.starts_at and not actor.is_staff:
        raise Conflict("This shift has started; ask a coordinator.", code="shift_started")
    verdict = domain.qualification(
        run.facts.profiles.get(member_id),
        site_id=shift.site_id,
        role_id=shift.role_id,
        required_trainings=shift.required_trainings,
        trainings=run.facts.trainings.get(member_id, []),
        on=domain.local_date(shift.starts_at, zoneinfo.ZoneInfo(shift.timezone)),
    )
    if verdict.code == "volunteer_paused":
        raise Conflict(
            "This volunteer is paused.",
            code="volunteer_paused",
            reason=verdict.reason,
            missing_trainings=list(verdict.missing_trainings),
        )
    if verdict.code == "not_qualified":
        raise Conflict(
            "Not qualified for this role.",
            code="not_qualified",
            reason=verdict.reason,
            missing_trainings=list(verdict.missing_trainings),
        )
    existing = run.existing.get(member_id)
    if existing is not None:
        raise Conflict("Already signed up for this shift.", code="already_signed_up", signup_status=existing)
    clash = run.held.clash.get(member_id)
    if clash is not None:
        raise Conflict("This overlaps another shift you hold.", code="overlap", shift_id=str(clash))
    signup_id = uuid.uuid4()
    by: ActingAs = "coordinator" if actor.is_staff else "self"
    seated = SignedUp(
        signup_id=signup_id,
        shift_id=shift.shift_id,
        member_id=member_id,
        role_id=shift.role_id,
        starts_at=shift.starts_at,
        ends_at=shift.ends_at,
        signed_up_by=by,
    )
    status: ActiveStatus
    position = None
    if run.confirmed < shift.capacity:
        status = "confirmed"
        run.confirmed += 1
        uow.emit(seated, subject=shift.shift_id, site_id=shift.site_id, actor_id=actor.actor_id, at=now)
    else:
        status = "waitlisted"
        run.waiting += 1
        position = run.waiting
        waiting = Waitlisted(**seated.model_dump(), position=position)
        uow.emit(waiting, subject=shift.shift_id, site_id=shift.site_id, actor_id=actor.actor_id, at=now)
    run.existing[member_id] = status
    run.placed.append(NewSignup(signup_id, shift.shift_id, shift.site_id, member_id, now, by, actor.actor_id))
    run.statuses.append(status)
    return SignUpResult(
        signup_id=signup_id, shift_id=shift.shift_id, member_id=member_id, status=status, position=position
    )
