"""The volunteering handlers against an in-memory unit of work (the same methods as the repositories in
``services.volunteering.models``, dicts inside): seats, waitlists and promotions, shift changes, attendance and
hours, missed shifts, and which members may be named."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.volunteering import attendance, handlers, signups
from services.volunteering.commands import (
    Actor,
    AddHours,
    ApproveHours,
    CancelShift,
    ChangeShift,
    CorrectHours,
    DropSignup,
    MarkMissedShifts,
    RecordTraining,
    RejectHours,
    ScheduleShift,
    SetVolunteerProfile,
    SignUp,
)
from services.volunteering.domain import Profile, TrainingRecord
from services.volunteering.records import (
    ActiveSignup,
    ActiveStatus,
    HoursRow,
    MissedSignup,
    NewHours,
    NewShift,
    NewSignup,
    NewTraining,
    RoleRecord,
    SeriesRecord,
    ShiftRecord,
    ShiftTerms,
    SignedUpAlready,
    SignUpFacts,
    VisitAttendance,
    VolunteerProfile,
)
from shared.access import Role
from shared.clock import FixedClock
from shared.contracts.checkin import MemberRegistered, VisitorCheckedIn, VisitorCheckedOut
from shared.errors import Conflict, Forbidden, InvalidInput
from shared.events import Event
from shared.inbox import Delivered
from shared.members import MemberStanding
from shared.uow import Recorder

SITE = "downtown"
OTHER_SITE = "uptown"
ZONE = "America/New_York"
NOW = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)
COORDINATOR = Actor("token:coordinator-1", Role.COORDINATOR, SITE, None)
CUTOFF = timedelta(hours=24)


@dataclass
class StoredShift:
    record: ShiftRecord
    revision: int = 0
    cancelled_at: datetime | None = None


@dataclass
class StoredSignup:
    signup_id: uuid.UUID
    seq: int
    shift_id: uuid.UUID
    member_id: uuid.UUID
    status: str
    signed_up_by: str
    promoted: bool = False
    dropped_by: str | None = None
    missed_at: datetime | None = None


@dataclass
class StoredHours:
    row: HoursRow
    reason: str | None
    decided_by: str | None = None
    decision_reason: str | None = None


class FakePeople:
    def __init__(self) -> None:
        self.roles: dict[tuple[str, str], RoleRecord] = {}
        self.profiles: dict[uuid.UUID, VolunteerProfile] = {}
        self.trainings: list[NewTraining] = []
        self.members: dict[uuid.UUID, tuple[str, datetime | None]] = {}
        self.feeds: dict[uuid.UUID, str] = {}

    async def add_role(self, role: RoleRecord, at: datetime) -> bool:
        if (role.site_id, role.role_id) in self.roles:
            return False
        self.roles[role.site_id, role.role_id] = role
        return True

    async def update_role(self, role: RoleRecord, at: datetime) -> bool:
        if (role.site_id, role.role_id) not in self.roles:
            return False
        self.roles[role.site_id, role.role_id] = role
        return True

    async def get_role(self, site_id: str, role_id: str) -> RoleRecord | None:
        return self.roles.get((site_id, role_id))

    async def known_role_ids(self, site_id: str, role_ids: list[str]) -> set[str]:
        return {r for r in role_ids if (site_id, r) in self.roles}

    async def get_profile(self, member_id: uuid.UUID) -> Profile | None:
        p = self.profiles.get(member_id)
        return None if p is None else Profile(p.member_id, p.site_id, p.roles, p.active)

    async def upsert_profile(self, profile: VolunteerProfile, at: datetime) -> None:
        existing = self.profiles.get(profile.member_id)
        self.profiles[profile.member_id] = profile if existing is None else replace(profile, site_id=existing.site_id)

    async def add_training(self, record: NewTraining) -> None:
        self.trainings.append(record)

    async def qualification_facts(self, member_id: uuid.UUID) -> tuple[Profile | None, list[TrainingRecord]]:
        held = [TrainingRecord(t.training_id, t.completed_on, t.expires_on) for t in self.trainings]
        return await self.get_profile(member_id), [
            h for t, h in zip(self.trainings, held, strict=True) if t.member_id == member_id
        ]

    async def set_calendar_feed(self, member_id: uuid.UUID, site_id: str, secret_hash: str, at: datetime) -> None:
        self.feeds[member_id] = secret_hash

    async def know_member(self, member_id: uuid.UUID, site_id: str, registered_at: datetime) -> None:
        self.members.setdefault(member_id, (site_id, None))

    async def mark_member_erased(self, member_id: uuid.UUID, site_id: str, erased_at: datetime) -> None:
        site, erased = self.members.get(member_id, (site_id, None))
        self.members[member_id] = (site, erased or erased_at)

    async def member_standing(self, member_id: uuid.UUID, site_id: str) -> MemberStanding:
        known = self.members.get(member_id)
        if known is None or known[0] != site_id:
            return None
        return "known" if known[1] is None else "erased"


class FakeShifts:
    """What ShiftRepository promises; the seat counter's CHECK constraint is asserted."""

    def __init__(self, people: FakePeople, hours: FakeHours, outbox: list[Event]) -> None:
        self.people, self.hours, self.outbox = people, hours, outbox
        self.shifts: dict[uuid.UUID, StoredShift] = {}
        self.signups: dict[uuid.UUID, StoredSignup] = {}
        self.series: dict[uuid.UUID, SeriesRecord] = {}
        self._seq = 0

    def _check(self, shift_id: uuid.UUID) -> None:
        record = self.shifts[shift_id].record
        assert 0 <= record.confirmed <= record.capacity, "confirmed_within_capacity"

    def _set(self, shift_id: uuid.UUID, **changes: Any) -> None:
        stored = self.shifts[shift_id]
        stored.record = replace(stored.record, **changes)
        self._check(shift_id)

    async def add_series(self, new: SeriesRecord, at: datetime, by: str) -> None:
        self.series[new.series_id] = new

    async def add_shifts(self, new: list[NewShift]) -> set[uuid.UUID]:
        for s in new:
            role = self.people.roles[s.site_id, s.role_id]
            self.shifts[s.shift_id] = StoredShift(
                ShiftRecord(
                    s.shift_id,
                    s.site_id,
                    s.role_id,
                    s.series_id,
                    s.starts_at,
                    s.ends_at,
                    s.timezone,
                    s.capacity,
                    0,
                    s.needs_supervisor,
                    "scheduled",
                    role.required_trainings,
                )
            )
        return {s.shift_id for s in new}

    async def lock(self, shift_id: uuid.UUID, site_id: str | None) -> ShiftRecord | None:
        stored = self.shifts.get(shift_id)
        if stored is None or (site_id is not None and stored.record.site_id != site_id):
            return None
        return stored.record

    get = lock

    async def lock_for_sign_ups(self, shift_id: uuid.UUID, members: list[uuid.UUID]) -> SignUpFacts | None:
        shift = await self.lock(shift_id, None)
        if shift is None:
            return None
        facts = SignUpFacts(shift, {}, {}, {})
        for member_id in members:
            facts.standings[member_id] = await self.people.member_standing(member_id, shift.site_id)
            profile, records = await self.people.qualification_facts(member_id)
            if profile is not None:
                facts.profiles[member_id], facts.trainings[member_id] = profile, records
        return facts

    def _active(self, shift_id: uuid.UUID) -> list[StoredSignup]:
        return sorted(
            (g for g in self.signups.values() if g.shift_id == shift_id and g.status in ("confirmed", "waitlisted")),
            key=lambda g: g.seq,
        )

    async def signed_up(self, shift: ShiftRecord, members: list[uuid.UUID]) -> SignedUpAlready:
        existing, clash = {}, {}
        for member_id in members:
            active = [g for g in self._active(shift.shift_id) if g.member_id == member_id]
            if active:
                existing[member_id] = active[0].status
            found = await self.overlapping_confirmed(member_id, shift.starts_at, shift.ends_at, besides=shift.shift_id)
            if found is not None:
                clash[member_id] = found
        waiting = sum(1 for g in self._active(shift.shift_id) if g.status == "waitlisted")
        return SignedUpAlready(existing, clash, waiting)

    async def add_sign_ups(self, shift: ShiftRecord, placed: list[NewSignup], statuses: list[ActiveStatus]) -> None:
        for signup, status in zip(placed, statuses, strict=True):
            assert not [g for g in self._active(shift.shift_id) if g.member_id == signup.member_id], "one active"
            self._seq += 1
            self.signups[signup.signup_id] = StoredSignup(
                signup.signup_id, self._seq, signup.shift_id, signup.member_id, status, signup.signed_up_by
            )
        confirmed = self.shifts[shift.shift_id].record.confirmed + statuses.count("confirmed")
        self._set(shift.shift_id, confirmed=confirmed)

    async def change_terms(self, shift_id: uuid.UUID, terms: ShiftTerms, at: datetime, *, revised: bool) -> None:
        self._set(
            shift_id,
            starts_at=terms.starts_at,
            ends_at=terms.ends_at,
            capacity=terms.capacity,
            needs_supervisor=terms.needs_supervisor,
        )
        self.shifts[shift_id].revision += revised

    async def cancel(self, shift_id: uuid.UUID, at: datetime) -> None:
        for g in self._active(shift_id):
            g.status = "cancelled"
        self._set(shift_id, status="cancelled", confirmed=0)
        self.shifts[shift_id].cancelled_at = at
        self.shifts[shift_id].revision += 1

    async def lock_member(self, member_id: uuid.UUID) -> None:
        pass

    async def active_signup(self, shift_id: uuid.UUID, member_id: uuid.UUID) -> ActiveSignup | None:
        for g in self._active(shift_id):
            if g.member_id == member_id:
                return ActiveSignup(g.signup_id, g.member_id, g.status, g.seq)
        return None

    async def overlapping_confirmed(
        self, member_id: uuid.UUID, starts_at: datetime, ends_at: datetime, *, besides: uuid.UUID
    ) -> uuid.UUID | None:
        for g in self.signups.values():
            shift = self.shifts[g.shift_id].record
            if (
                g.member_id == member_id
                and g.status == "confirmed"
                and shift.status == "scheduled"
                and shift.shift_id != besides
                and shift.starts_at < ends_at
                and shift.ends_at > starts_at
            ):
                return shift.shift_id
        return None

    async def drop(self, signup_id: uuid.UUID, at: datetime, by: str) -> None:
        g = self.signups[signup_id]
        g.status, g.dropped_by = "dropped", by

    async def release_seat(self, shift_id: uuid.UUID) -> None:
        self._set(shift_id, confirmed=self.shifts[shift_id].record.confirmed - 1)

    async def waitlist(self, shift_id: uuid.UUID, *, after_seq: int = 0, limit: int = 50) -> list[ActiveSignup]:
        waiting = [g for g in self._active(shift_id) if g.status == "waitlisted" and g.seq > after_seq]
        return [ActiveSignup(g.signup_id, g.member_id, "waitlisted", g.seq) for g in waiting[:limit]]

    async def promote(self, shift_id: uuid.UUID, signup_id: uuid.UUID, at: datetime) -> bool:
        shift, g = self.shifts[shift_id].record, self.signups[signup_id]
        if shift.confirmed >= shift.capacity or g.status != "waitlisted":
            return False
        g.status, g.promoted = "confirmed", True
        self._set(shift_id, confirmed=shift.confirmed + 1)
        return True

    async def active_members(self, shift_id: uuid.UUID) -> tuple[list[uuid.UUID], int, int]:
        active = self._active(shift_id)
        confirmed = sum(1 for g in active if g.status == "confirmed")
        return [g.member_id for g in active], confirmed, len(active) - confirmed

    async def has_confirmed(self, shift_id: uuid.UUID, member_id: uuid.UUID) -> bool:
        return any(g.member_id == member_id and g.status == "confirmed" for g in self._active(shift_id))

    async def clear_missed(self, shift_id: uuid.UUID, member_id: uuid.UUID) -> None:
        for g in self.signups.values():
            if g.shift_id == shift_id and g.member_id == member_id:
                g.missed_at = None

    async def mark_missed(self, site_id: str, ended_before: datetime, at: datetime, limit: int) -> list[MissedSignup]:
        missed = []
        for g in sorted(self.signups.values(), key=lambda g: g.seq):
            shift = self.shifts[g.shift_id].record
            came = any((a.shift_id, a.member_id) == (g.shift_id, g.member_id) for a in self.hours.attendance.values())
            worked = any(
                (h.row.shift_id, h.row.member_id) == (g.shift_id, g.member_id) and h.row.status != "rejected"
                for h in self.hours.records.values()
            )
            if (
                shift.site_id == site_id
                and shift.status == "scheduled"
                and shift.ends_at < ended_before
                and g.status == "confirmed"
                and g.missed_at is None
                and not came
                and not worked
            ):
                g.missed_at = at
                missed.append(
                    MissedSignup(
                        g.signup_id, g.shift_id, site_id, g.member_id, shift.role_id, shift.starts_at, shift.ends_at
                    )
                )
        return missed[:limit]


class FakeHours:
    def __init__(self) -> None:
        self.attendance: dict[uuid.UUID, VisitAttendance] = {}
        self.records: dict[uuid.UUID, StoredHours] = {}

    async def start_attendance(self, visit: VisitAttendance) -> bool:
        if visit.visit_id in self.attendance:
            return False
        self.attendance[visit.visit_id] = visit
        return True

    async def close_attendance(self, visit: VisitAttendance) -> bool:
        known = self.attendance.get(visit.visit_id)
        if known is not None and known.checked_out_at is not None:
            return False
        self.attendance[visit.visit_id] = visit
        return True

    async def add(self, new: NewHours) -> None:
        row = HoursRow(
            new.hours_id,
            new.site_id,
            new.member_id,
            new.shift_id,
            new.role_id,
            new.shift_starts_at,
            new.minutes,
            new.source,
            new.visit_id,
            new.signed_up,
            new.review_codes,
            "pending",
        )
        self.records[new.hours_id] = StoredHours(row, new.reason)

    async def lock(self, hours_id: uuid.UUID, site_id: str | None) -> HoursRow | None:
        stored = self.records.get(hours_id)
        if stored is None or (site_id is not None and stored.row.site_id != site_id):
            return None
        return stored.row

    async def correct(self, hours_id: uuid.UUID, minutes: int, reason: str, codes: list[Any], at: datetime) -> None:
        stored = self.records[hours_id]
        stored.row = replace(stored.row, minutes=minutes, status="pending", review_codes=tuple(codes))
        stored.reason, stored.decided_by, stored.decision_reason = reason, None, None

    async def approve(self, hours_id: uuid.UUID, at: datetime, by: str) -> None:
        stored = self.records[hours_id]
        stored.row, stored.decided_by = replace(stored.row, status="approved"), by

    async def reject(self, hours_id: uuid.UUID, at: datetime, by: str, reason: str) -> None:
        stored = self.records[hours_id]
        stored.row, stored.decided_by, stored.decision_reason = replace(stored.row, status="rejected"), by, reason


class FakeStipends:
    def __init__(self) -> None:
        self.booked: dict[uuid.UUID, uuid.UUID] = {}

    async def booking_entry(self, hours_id: uuid.UUID) -> uuid.UUID | None:
        return self.booked.get(hours_id)


class FakeUnitOfWork(Recorder):
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.people = FakePeople()
        self.hours = FakeHours()
        self.shifts = FakeShifts(self.people, self.hours, self.events)
        self.stipends = FakeStipends()

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def data(self, index: int = -1) -> dict[str, Any]:
        return self.events[index].data.model_dump(mode="json")


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


# Builders


def volunteer_actor(member_id: uuid.UUID) -> Actor:
    return Actor(f"token:{member_id.hex[:8]}", Role.VOLUNTEER, SITE, member_id)


async def role(uow: FakeUnitOfWork, role_id: str = "greeter", trainings: tuple[str, ...] = ()) -> str:
    await uow.people.add_role(RoleRecord(SITE, role_id, role_id.title(), trainings, False), NOW)
    return role_id


async def volunteer(
    uow: FakeUnitOfWork, clock: FixedClock, roles: tuple[str, ...] = ("greeter",), *, active: bool = True
) -> uuid.UUID:
    member_id = uuid.uuid4()
    uow.people.members[member_id] = (SITE, None)
    cmd = SetVolunteerProfile(COORDINATOR, member_id, roles, None, True, active)
    await handlers.set_volunteer_profile(cmd, uow=uow, clock=clock)
    return member_id


async def shift(
    uow: FakeUnitOfWork,
    clock: FixedClock,
    *,
    capacity: int = 1,
    starts_in: timedelta = timedelta(days=3),
    hours: int = 3,
    role_id: str = "greeter",
) -> uuid.UUID:
    if (SITE, role_id) not in uow.people.roles:
        await role(uow, role_id)
    starts_at = NOW + starts_in
    cmd = ScheduleShift(COORDINATOR, ZONE, role_id, starts_at, starts_at + timedelta(hours=hours), capacity, False)
    result = await handlers.schedule_shift(cmd, uow=uow, clock=clock)
    uow.events.clear()
    return result.shift_id


async def sign_up(uow: FakeUnitOfWork, clock: FixedClock, shift_id: uuid.UUID, member_id: uuid.UUID) -> Any:
    return await signups.sign_up(SignUp(COORDINATOR, shift_id, member_id), uow=uow, clock=clock)


EARLIER = FixedClock(NOW - timedelta(days=2))  # to sign up for a shift that is over by NOW


def status_of(uow: FakeUnitOfWork, shift_id: uuid.UUID, member_id: uuid.UUID) -> str:
    return next(g.status for g in uow.shifts.signups.values() if (g.shift_id, g.member_id) == (shift_id, member_id))


def delivered(data: Any) -> Delivered[Any]:
    return Delivered(data=data, id=uuid.uuid4(), site_id=SITE, time=NOW, subject=None)


def visit_out(
    member_id: uuid.UUID, shift_id: uuid.UUID, checked_in_at: datetime, checked_out_at: datetime, **extra: Any
) -> Delivered[VisitorCheckedOut]:
    values: dict[str, Any] = {
        "visit_id": uuid.uuid4(),
        "member_id": member_id,
        "purpose": "volunteer_shift",
        "ref": str(shift_id),
        "checked_in_at": checked_in_at,
        "checked_out_at": checked_out_at,
        "minutes": int((checked_out_at - checked_in_at).total_seconds() // 60),
        "closed_by": "kiosk",
    }
    return delivered(VisitorCheckedOut(**{**values, **extra}))


# Sign-ups


async def test_a_free_seat_confirms_and_emits_signed_up(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, capacity=2)
    member_id = await volunteer(uow, clock)

    result = await signups.sign_up(SignUp(volunteer_actor(member_id), shift_id, None), uow=uow, clock=clock)

    assert (result.status, result.position) == ("confirmed", None)
    assert uow.shifts.shifts[shift_id].record.confirmed == 1
    assert uow.types() == ["volunteering.signed_up"]
    assert uow.data()["member_id"] == str(member_id)
    assert uow.data()["signed_up_by"] == "self"
    assert uow.events[0].subject == str(shift_id)


async def test_a_full_shift_waitlists_with_the_real_position(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, capacity=1)
    first, second, third = [await volunteer(uow, clock) for _ in range(3)]
    await sign_up(uow, clock, shift_id, first)
    await sign_up(uow, clock, shift_id, second)

    result = await sign_up(uow, clock, shift_id, third)

    assert (result.status, result.position) == ("waitlisted", 2)
    assert uow.types() == ["volunteering.signed_up", "volunteering.waitlisted", "volunteering.waitlisted"]
    assert uow.data()["position"] == 2
    assert uow.data()["signed_up_by"] == "coordinator"
    assert uow.shifts.shifts[shift_id].record.confirmed == 1


async def test_an_overlapping_confirmed_shift_refuses_the_sign_up(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    morning = await shift(uow, clock, hours=4)
    overlapping = await shift(uow, clock, starts_in=timedelta(days=3, hours=2))
    member_id = await volunteer(uow, clock)
    await sign_up(uow, clock, morning, member_id)
    uow.events.clear()

    with pytest.raises(Conflict) as refused:
        await sign_up(uow, clock, overlapping, member_id)

    assert refused.value.code == "overlap"
    assert uow.events == []
    assert uow.shifts.shifts[overlapping].record.confirmed == 0


async def test_a_second_sign_up_for_the_same_shift_is_refused(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock)
    member_id = await volunteer(uow, clock)
    await sign_up(uow, clock, shift_id, member_id)

    with pytest.raises(Conflict) as refused:
        await sign_up(uow, clock, shift_id, member_id)

    assert refused.value.code == "already_signed_up"


async def test_unknown_and_erased_members_cannot_sign_up(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock)
    erased = await volunteer(uow, clock)
    uow.people.members[erased] = (SITE, NOW)

    with pytest.raises(InvalidInput) as unknown:
        await sign_up(uow, clock, shift_id, uuid.uuid4())
    with pytest.raises(InvalidInput) as gone:
        await sign_up(uow, clock, shift_id, erased)

    assert (unknown.value.code, gone.value.code) == ("unknown_member", "member_erased")
    assert uow.shifts.signups == {}


async def test_a_missing_training_or_a_pause_refuses_the_sign_up(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await role(uow, "driver", ("first_aid",))
    shift_id = await shift(uow, clock, role_id="driver")
    untrained = await volunteer(uow, clock, ("driver",))
    paused = await volunteer(uow, clock, ("driver",), active=False)

    with pytest.raises(Conflict) as not_qualified:
        await sign_up(uow, clock, shift_id, untrained)
    with pytest.raises(Conflict) as on_pause:
        await sign_up(uow, clock, shift_id, paused)

    assert not_qualified.value.code == "not_qualified"
    assert not_qualified.value.extra["missing_trainings"] == ["first_aid"]
    assert on_pause.value.code == "volunteer_paused"


async def test_a_volunteer_signs_up_only_themself(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock)
    member_id, other = await volunteer(uow, clock), await volunteer(uow, clock)

    with pytest.raises(Forbidden):
        await signups.sign_up(SignUp(volunteer_actor(member_id), shift_id, other), uow=uow, clock=clock)


# Drops and promotions


async def test_a_drop_hands_the_seat_to_the_first_eligible_waiting(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, capacity=1)
    elsewhere = await shift(uow, clock, starts_in=timedelta(days=3, hours=1))
    holder, paused, busy, next_in_line = [await volunteer(uow, clock) for _ in range(4)]
    for member_id in (holder, paused, busy, next_in_line):
        await sign_up(uow, clock, shift_id, member_id)
    await sign_up(uow, clock, elsewhere, busy)  # now holds an overlapping confirmed shift
    uow.people.profiles[paused] = replace(uow.people.profiles[paused], active=False)
    uow.events.clear()

    result = await handlers.drop_signup(DropSignup(COORDINATOR, shift_id, holder, CUTOFF), uow=uow, clock=clock)

    assert (result.previous_status, result.promoted) == ("confirmed", 1)
    assert uow.types() == ["volunteering.dropped", "volunteering.promoted_from_waitlist"]
    assert uow.data(0)["dropped_by"] == "coordinator"
    assert uow.data(1)["member_id"] == str(next_in_line)
    assert uow.data(1)["trigger"] == "seat_freed"
    assert status_of(uow, shift_id, paused) == status_of(uow, shift_id, busy) == "waitlisted"
    assert uow.shifts.shifts[shift_id].record.confirmed == 1


async def test_dropping_a_waitlisted_sign_up_promotes_no_one(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, capacity=1)
    holder, waiting = await volunteer(uow, clock), await volunteer(uow, clock)
    await sign_up(uow, clock, shift_id, holder)
    await sign_up(uow, clock, shift_id, waiting)
    uow.events.clear()

    result = await handlers.drop_signup(DropSignup(COORDINATOR, shift_id, waiting, CUTOFF), uow=uow, clock=clock)

    assert (result.previous_status, result.promoted) == ("waitlisted", 0)
    assert uow.types() == ["volunteering.dropped"]
    assert uow.data()["previous_status"] == "waitlisted"


async def test_within_the_cutoff_only_a_coordinator_drops(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, starts_in=timedelta(hours=5))
    member_id = await volunteer(uow, clock)
    await sign_up(uow, clock, shift_id, member_id)
    uow.events.clear()

    with pytest.raises(Conflict) as refused:
        await handlers.drop_signup(
            DropSignup(volunteer_actor(member_id), shift_id, member_id, CUTOFF), uow=uow, clock=clock
        )
    await handlers.drop_signup(DropSignup(COORDINATOR, shift_id, member_id, CUTOFF), uow=uow, clock=clock)

    assert refused.value.code == "cutoff_passed"
    assert uow.data()["within_cutoff"] is True


# Shift changes


async def test_more_capacity_promotes_the_waitlist_in_order(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, capacity=1)
    members = [await volunteer(uow, clock) for _ in range(4)]
    for member_id in members:
        await sign_up(uow, clock, shift_id, member_id)
    uow.events.clear()

    result = await handlers.change_shift(ChangeShift(COORDINATOR, shift_id, None, None, 3, None), uow=uow, clock=clock)

    assert (result.changed, result.promoted, result.confirmed) == (["capacity"], 2, 3)
    assert uow.types() == ["volunteering.shift_changed", *["volunteering.promoted_from_waitlist"] * 2]
    assert uow.data(0)["confirmed"] == 3
    assert uow.data(0)["waitlisted"] == 1
    assert [uow.data(i)["member_id"] for i in (1, 2)] == [str(members[1]), str(members[2])]
    assert uow.data(1)["trigger"] == "capacity_increased"
    assert status_of(uow, shift_id, members[3]) == "waitlisted"


async def test_capacity_below_the_confirmed_count_is_refused(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, capacity=2)
    for _ in range(2):
        await sign_up(uow, clock, shift_id, await volunteer(uow, clock))

    with pytest.raises(Conflict) as refused:
        await handlers.change_shift(ChangeShift(COORDINATOR, shift_id, None, None, 1, None), uow=uow, clock=clock)

    assert refused.value.code == "capacity_below_confirmed"
    assert uow.shifts.shifts[shift_id].record.capacity == 2


async def test_moving_a_shift_tells_everyone_signed_up(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, capacity=1)
    holder, waiting = await volunteer(uow, clock), await volunteer(uow, clock)
    await sign_up(uow, clock, shift_id, holder)
    await sign_up(uow, clock, shift_id, waiting)
    uow.events.clear()
    later = NOW + timedelta(days=4)

    result = await handlers.change_shift(
        ChangeShift(COORDINATOR, shift_id, later, later + timedelta(hours=2), None, None), uow=uow, clock=clock
    )

    assert result.changed == ["starts_at", "ends_at"]
    assert uow.types() == ["volunteering.shift_changed"]
    assert uow.data()["affected_member_ids"] == [str(holder), str(waiting)]
    assert uow.shifts.shifts[shift_id].revision == 1  # calendars pick the move up


async def test_a_change_that_changes_nothing_emits_nothing(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, capacity=2)

    result = await handlers.change_shift(ChangeShift(COORDINATOR, shift_id, None, None, 2, None), uow=uow, clock=clock)

    assert result.changed == []
    assert uow.events == []


async def test_cancelling_frees_every_seat_once(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, capacity=1)
    holder, waiting = await volunteer(uow, clock), await volunteer(uow, clock)
    await sign_up(uow, clock, shift_id, holder)
    await sign_up(uow, clock, shift_id, waiting)
    uow.events.clear()

    result = await handlers.cancel_shift(CancelShift(COORDINATOR, shift_id), uow=uow, clock=clock)
    with pytest.raises(Conflict) as again:
        await handlers.cancel_shift(CancelShift(COORDINATOR, shift_id), uow=uow, clock=clock)

    assert result.affected == 2
    assert uow.types() == ["volunteering.shift_cancelled"]
    assert uow.data()["affected_member_ids"] == [str(holder), str(waiting)]
    assert {g.status for g in uow.shifts.signups.values()} == {"cancelled"}
    assert uow.shifts.shifts[shift_id].record.confirmed == 0
    assert again.value.code == "shift_cancelled"


# Attendance and hours


async def test_a_check_out_makes_hours_clipped_to_the_shift(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, hours=3)
    member_id = await volunteer(uow, clock)
    await sign_up(uow, clock, shift_id, member_id)
    uow.events.clear()
    starts_at = uow.shifts.shifts[shift_id].record.starts_at
    # An hour early and two hours late: 30 minutes either side of the shift count, no more.
    event = visit_out(member_id, shift_id, starts_at - timedelta(hours=1), starts_at + timedelta(hours=5))

    await attendance.record_check_out(event, uow=uow, clock=clock)
    await attendance.record_check_out(event, uow=uow, clock=clock)  # redelivered

    assert uow.types() == ["volunteering.shift_worked"]
    worked = uow.data()
    assert (worked["minutes"], worked["entry"], worked["signed_up"]) == (240, "check_in", True)
    assert worked["review_codes"] == []
    assert uow.events[0].correlation_id == str(event.id)
    (stored,) = uow.hours.records.values()
    assert (stored.row.status, stored.row.visit_id) == ("pending", event.data.visit_id)


async def test_an_auto_closed_visit_without_sign_up_is_flagged(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, hours=2)
    member_id = await volunteer(uow, clock)
    starts_at = uow.shifts.shifts[shift_id].record.starts_at
    event = visit_out(member_id, shift_id, starts_at, starts_at + timedelta(hours=2), closed_by="auto_close")

    await attendance.record_check_out(event, uow=uow, clock=clock)

    assert uow.data()["review_codes"] == ["auto_closed", "no_signup"]
    assert uow.data()["signed_up"] is False


async def test_a_visit_for_something_else_is_ignored(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock)
    member_id = await volunteer(uow, clock)
    check_in = VisitorCheckedIn(
        visit_id=uuid.uuid4(),
        member_id=member_id,
        anonymous=False,
        purpose="drop_in",
        support_type=None,
        ref=str(shift_id),
        checked_in_at=NOW,
    )

    await attendance.record_check_in(delivered(check_in), uow=uow, clock=clock)

    assert uow.hours.attendance == {}


async def test_a_late_check_in_clears_the_missed_mark(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, starts_in=timedelta(hours=-5), hours=2)
    member_id = await volunteer(uow, clock)
    await sign_up(uow, EARLIER, shift_id, member_id)
    uow.events.clear()

    marked = await handlers.mark_missed_shifts(MarkMissedShifts(SITE, timedelta(hours=1)), uow=uow, clock=clock)
    again = await handlers.mark_missed_shifts(MarkMissedShifts(SITE, timedelta(hours=1)), uow=uow, clock=clock)
    starts_at = uow.shifts.shifts[shift_id].record.starts_at
    check_in = VisitorCheckedIn(
        visit_id=uuid.uuid4(),
        member_id=member_id,
        anonymous=False,
        purpose="volunteer_shift",
        support_type=None,
        ref=str(shift_id),
        checked_in_at=starts_at,
    )
    await attendance.record_check_in(delivered(check_in), uow=uow, clock=clock)

    assert (marked.marked, again.marked) == (1, 0)
    assert uow.types() == ["volunteering.shift_missed"]
    assert uow.data()["follow_up"] is True
    (signup,) = uow.shifts.signups.values()
    assert signup.missed_at is None
    assert uow.hours.attendance[check_in.visit_id].signed_up is True


async def test_added_hours_are_flagged_and_erased_members_keep_theirs(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    shift_id = await shift(uow, clock, starts_in=timedelta(days=-1))
    member_id = await volunteer(uow, clock)
    uow.people.members[member_id] = (SITE, NOW)  # erased since: hours worked before still count

    result = await attendance.add_hours(
        AddHours(COORDINATOR, member_id, shift_id, 0, "forgot to check in"), uow=uow, clock=clock
    )
    with pytest.raises(InvalidInput) as unknown:
        await attendance.add_hours(AddHours(COORDINATOR, uuid.uuid4(), shift_id, 60, "who?"), uow=uow, clock=clock)

    assert (result.source, result.status) == ("coordinator", "pending")
    assert result.review_codes == ["no_signup", "zero_minutes"]
    assert uow.types() == ["volunteering.shift_worked"]
    assert uow.data()["entry"] == "added"
    assert "forgot" not in str(uow.data())  # the reason stays here, never in an event
    assert uow.hours.records[result.hours_id].reason == "forgot to check in"
    assert unknown.value.code == "unknown_member"


async def hours_of(uow: FakeUnitOfWork, clock: FixedClock, minutes: int = 120) -> uuid.UUID:
    shift_id = await shift(uow, clock, starts_in=timedelta(days=-1))
    member_id = await volunteer(uow, clock)
    await sign_up(uow, EARLIER, shift_id, member_id)
    result = await attendance.add_hours(
        AddHours(COORDINATOR, member_id, shift_id, minutes, "paper"), uow=uow, clock=clock
    )
    uow.events.clear()
    return result.hours_id


async def test_approving_pending_hours_once(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    hours_id = await hours_of(uow, clock)

    result = await attendance.approve_hours(ApproveHours(COORDINATOR, hours_id), uow=uow, clock=clock)
    with pytest.raises(Conflict) as again:
        await attendance.approve_hours(ApproveHours(COORDINATOR, hours_id), uow=uow, clock=clock)

    assert (result.status, result.decided_at) == ("approved", NOW)
    assert uow.types() == ["volunteering.hours_approved"]
    assert uow.data()["minutes"] == 120
    assert uow.hours.records[hours_id].decided_by == COORDINATOR.actor_id
    assert again.value.code == "hours_not_pending"


async def test_no_one_approves_their_own_hours(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    hours_id = await hours_of(uow, clock)
    own = uow.hours.records[hours_id].row.member_id
    coordinator_volunteer = Actor("token:cv", Role.COORDINATOR, SITE, own)

    with pytest.raises(Forbidden):
        await attendance.approve_hours(ApproveHours(coordinator_volunteer, hours_id), uow=uow, clock=clock)

    assert uow.hours.records[hours_id].row.status == "pending"


async def test_rejecting_keeps_the_reason_out_of_the_event(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    hours_id = await hours_of(uow, clock)

    result = await attendance.reject_hours(RejectHours(COORDINATOR, hours_id, "not on the rota"), uow=uow, clock=clock)

    assert (result.status, result.decision_reason) == ("rejected", "not on the rota")
    assert uow.types() == ["volunteering.hours_rejected"]
    assert "rota" not in str(uow.data())
    assert uow.hours.records[hours_id].decision_reason == "not on the rota"


async def test_a_correction_reopens_hours_unless_a_stipend_holds_them(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    hours_id = await hours_of(uow, clock)
    await attendance.approve_hours(ApproveHours(COORDINATOR, hours_id), uow=uow, clock=clock)
    uow.events.clear()

    result = await attendance.correct_hours(CorrectHours(COORDINATOR, hours_id, 0, "no-show"), uow=uow, clock=clock)
    uow.stipends.booked[hours_id] = entry = uuid.uuid4()
    with pytest.raises(Conflict) as booked:
        await attendance.correct_hours(CorrectHours(COORDINATOR, hours_id, 30, "again"), uow=uow, clock=clock)

    assert (result.status, result.minutes, result.review_codes) == ("pending", 0, ["zero_minutes"])
    assert uow.types() == ["volunteering.shift_worked"]
    assert (uow.data()["entry"], uow.data()["previous_minutes"]) == ("corrected", 120)
    assert uow.hours.records[hours_id].decided_by is None
    assert booked.value.code == "stipend_booked"
    assert booked.value.extra["entry_id"] == str(entry)


# Members and profiles


async def test_a_profile_needs_a_member_check_in_registered(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await role(uow)
    member_id = uuid.uuid4()
    cmd = SetVolunteerProfile(COORDINATOR, member_id, ("greeter",), 8, False, True)

    with pytest.raises(InvalidInput) as unknown:
        await handlers.set_volunteer_profile(cmd, uow=uow, clock=clock)
    registered = MemberRegistered(member_id=member_id, registered_at=NOW, registered_by="kiosk")
    await handlers.record_member_registered(delivered(registered), uow=uow, clock=clock)
    made = await handlers.set_volunteer_profile(cmd, uow=uow, clock=clock)

    assert unknown.value.code == "unknown_member"
    assert (made.site_id, made.roles) == (SITE, ["greeter"])
    assert uow.people.profiles[member_id].monthly_hours_goal == 8


async def test_a_training_is_recorded_at_the_volunteers_site(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await role(uow)
    member_id = await volunteer(uow, clock)

    out = await handlers.record_training(
        RecordTraining(COORDINATOR, member_id, "first_aid", date(2026, 5, 1), None), uow=uow, clock=clock
    )

    (stored,) = uow.people.trainings
    assert (stored.record_id, stored.site_id, stored.recorded_by) == (out.record_id, SITE, COORDINATOR.actor_id)
