"""The gatherings handlers against an in-memory unit of work (same methods as GatheringsRepository, dicts inside)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.gatherings import handlers
from services.gatherings.commands import (
    CancelGathering,
    CancelRegistration,
    ChangeCapacity,
    CreateGroup,
    ExtendSchedules,
    MarkAttendance,
    MoveSession,
    Register,
    ScheduleSoberEvent,
)
from services.gatherings.consumers import SUBSCRIPTIONS
from services.gatherings.domain import GatheringType
from services.gatherings.models import (
    CancelledRegistration,
    GatheringRow,
    GroupRecord,
    NewAttendance,
    NewRegistration,
    NewSession,
    NewSoberEvent,
    RegistrationRow,
    SeatsHeld,
)
from shared.clock import FixedClock
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.events import Event, ReceivedEvent
from shared.members import MemberStanding
from shared.uow import Recorder

SITE = "downtown"
OTHER_SITE = "uptown"
ZONE = "America/New_York"
COORDINATOR = "token:coordinator-1"
KIOSK = "token:kiosk-1"
NOW = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)  # a Monday, 10:00 in New York (EDT)


@dataclass
class StoredGathering:
    gathering_id: uuid.UUID
    site_id: str
    gathering_type: GatheringType
    group_id: uuid.UUID | None
    occurrence_start: datetime | None
    title: str | None
    kind: Any
    support_type: Any
    family_friendly: bool
    room: str | None
    starts_at: datetime
    ends_at: datetime
    capacity: int
    child_care_seats: int
    registration_opens_at: datetime | None
    registration_closes_at: datetime | None
    created_at: datetime
    taken_adults: int = 0
    taken_children: int = 0
    revision: int = 0
    cancelled_at: datetime | None = None

    def row(self) -> GatheringRow:
        return GatheringRow(
            self.gathering_id,
            self.site_id,
            self.gathering_type,
            self.group_id,
            self.kind,
            self.support_type,
            self.family_friendly,
            self.starts_at,
            self.ends_at,
            self.capacity,
            self.child_care_seats,
            self.taken_adults,
            self.taken_children,
            self.registration_opens_at,
            self.registration_closes_at,
            self.cancelled_at,
        )


@dataclass
class StoredRegistration:
    registration_id: uuid.UUID
    seq: int
    gathering_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    adults: int
    children: int
    status: Any
    registered_by: str
    registered_at: datetime
    confirmed_at: datetime | None = None
    promoted_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None

    def row(self) -> RegistrationRow:
        return RegistrationRow(
            self.registration_id,
            self.seq,
            self.gathering_id,
            self.site_id,
            self.member_id,
            self.adults,
            self.children,
            self.status,
            self.registered_at,
        )


class FakeGatheringsRepository:
    """What GatheringsRepository promises, kept in dicts; the CHECK constraints on seats are asserted."""

    def __init__(self, outbox: list[Event]) -> None:
        self.groups: dict[uuid.UUID, GroupRecord] = {}
        self.gatherings: dict[uuid.UUID, StoredGathering] = {}
        self.registrations: dict[uuid.UUID, StoredRegistration] = {}
        self.attendance: list[NewAttendance] = []
        self.members: dict[uuid.UUID, tuple[str, datetime | None]] = {}
        self.outbox = outbox
        self._seq = 0

    # Groups and their sessions

    async def add_group(self, group: GroupRecord) -> None:
        self.groups[group.group_id] = group

    async def add_sessions(self, sessions: list[NewSession]) -> list[uuid.UUID]:
        added = []
        for s in sessions:
            if any(
                g.group_id == s.group_id and g.occurrence_start == s.occurrence_start for g in self.gatherings.values()
            ):
                continue
            self.gatherings[s.session_id] = StoredGathering(
                s.session_id,
                s.site_id,
                "session",
                s.group_id,
                s.occurrence_start,
                None,
                None,
                s.support_type,
                False,
                s.room,
                s.starts_at,
                s.ends_at,
                s.capacity,
                s.child_care_seats,
                None,
                None,
                s.created_at,
            )
            added.append(s.session_id)
        return added

    async def groups_to_extend(self, target: datetime) -> list[GroupRecord]:
        return [g for g in self.groups.values() if g.scheduled_until < target]

    async def set_scheduled_until(self, group_id: uuid.UUID, until: datetime) -> None:
        self.groups[group_id] = replace(self.groups[group_id], scheduled_until=until)

    # Sober events

    async def add_sober_event(self, e: NewSoberEvent) -> None:
        self.gatherings[e.sober_event_id] = StoredGathering(
            e.sober_event_id,
            e.site_id,
            "event",
            None,
            None,
            e.title,
            e.kind,
            e.support_type,
            e.family_friendly,
            e.room,
            e.starts_at,
            e.ends_at,
            e.capacity,
            e.child_care_seats,
            e.registration_opens_at,
            e.registration_closes_at,
            e.created_at,
        )

    # Both kinds of gathering

    def _stored(
        self, gathering_id: uuid.UUID, gathering_type: GatheringType | None, site_id: str | None
    ) -> StoredGathering | None:
        g = self.gatherings.get(gathering_id)
        if g is None or (gathering_type is not None and g.gathering_type != gathering_type):
            return None
        return g if site_id is None or g.site_id == site_id else None

    async def lock_gathering(
        self, gathering_id: uuid.UUID, gathering_type: GatheringType | None, site_id: str | None
    ) -> GatheringRow | None:
        g = self._stored(gathering_id, gathering_type, site_id)
        return None if g is None else g.row()

    async def lock_for_run(
        self, gathering_id: uuid.UUID, members: list[uuid.UUID]
    ) -> tuple[GatheringRow, dict[uuid.UUID, MemberStanding]] | None:
        g = self.gatherings.get(gathering_id)
        if g is None:
            return None
        return g.row(), {m: await self.member_standing(m, g.site_id) for m in members}

    async def seats_held(self, gathering_id: uuid.UUID, members: list[uuid.UUID]) -> SeatsHeld:
        held = {}
        for m in members:
            if (active := await self.active_registration_of(gathering_id, m)) is not None:
                held[m] = active.registration_id
        return SeatsHeld(held, len(await self.waiting(gathering_id)))

    async def find_gathering(
        self, gathering_id: uuid.UUID, site_id: str | None, gathering_type: GatheringType | None
    ) -> GatheringRow | None:
        return await self.lock_gathering(gathering_id, gathering_type, site_id)

    def _check_seats(self, g: StoredGathering) -> None:
        """The table's CHECK constraint: a handler that overbooks fails here as it would in PostgreSQL."""
        assert 0 <= g.taken_adults <= g.capacity, "seats_within_capacity"
        assert 0 <= g.taken_children <= g.child_care_seats, "seats_within_capacity"

    async def set_taken(self, gathering_id: uuid.UUID, adults: int, children: int) -> None:
        g = self.gatherings[gathering_id]
        g.taken_adults, g.taken_children = adults, children
        self._check_seats(g)

    async def set_capacity(self, gathering_id: uuid.UUID, capacity: int, child_care_seats: int, at: datetime) -> None:
        g = self.gatherings[gathering_id]
        g.capacity, g.child_care_seats = capacity, child_care_seats
        g.revision += 1
        self._check_seats(g)

    async def move(self, gathering_id: uuid.UUID, starts_at: datetime, ends_at: datetime, at: datetime) -> None:
        g = self.gatherings[gathering_id]
        g.starts_at, g.ends_at = starts_at, ends_at
        g.revision += 1

    async def cancel_gathering(self, gathering_id: uuid.UUID, at: datetime, by: str) -> list[CancelledRegistration]:
        g = self.gatherings[gathering_id]
        g.cancelled_at, g.taken_adults, g.taken_children = at, 0, 0
        g.revision += 1
        ended = []
        for r in sorted(self.registrations.values(), key=lambda r: r.seq):
            if r.gathering_id == gathering_id and r.status != "cancelled":
                ended.append(CancelledRegistration(r.member_id, r.status))
                r.status, r.cancelled_at, r.cancelled_by = "cancelled", at, by
        return ended

    # Registrations

    async def place_run(self, gathering_id: uuid.UUID, placed: list[NewRegistration], confirmed: list[bool]) -> None:
        for r, seated in zip(placed, confirmed, strict=True):
            assert await self.active_registration_of(gathering_id, r.member_id) is None, "one active per member"
            self._seq += 1
            self.registrations[r.registration_id] = StoredRegistration(
                r.registration_id,
                self._seq,
                r.gathering_id,
                r.site_id,
                r.member_id,
                r.party.adults,
                r.party.children,
                "confirmed" if seated else "waitlisted",
                r.registered_by,
                r.registered_at,
                confirmed_at=r.registered_at if seated else None,
            )
            if seated:
                g = self.gatherings[gathering_id]
                g.taken_adults += r.party.adults
                g.taken_children += r.party.children
                self._check_seats(g)

    async def active_registration_of(self, gathering_id: uuid.UUID, member_id: uuid.UUID) -> RegistrationRow | None:
        for r in self.registrations.values():
            if r.gathering_id == gathering_id and r.member_id == member_id and r.status != "cancelled":
                return r.row()
        return None

    async def get_registration(self, registration_id: uuid.UUID) -> RegistrationRow | None:
        r = self.registrations.get(registration_id)
        return None if r is None else r.row()

    async def mark_cancelled(self, registration_id: uuid.UUID, at: datetime, by: str) -> None:
        r = self.registrations[registration_id]
        r.status, r.cancelled_at, r.cancelled_by = "cancelled", at, by

    async def waiting(self, gathering_id: uuid.UUID) -> list[RegistrationRow]:
        return [
            r.row()
            for r in sorted(self.registrations.values(), key=lambda r: r.seq)
            if r.gathering_id == gathering_id and r.status == "waitlisted"
        ]

    async def confirm(self, registration_ids: list[uuid.UUID], at: datetime) -> None:
        for registration_id in registration_ids:
            r = self.registrations[registration_id]
            r.status, r.confirmed_at, r.promoted_at = "confirmed", at, at

    # Attendance

    async def add_attendance(self, mark: NewAttendance) -> bool:
        for a in self.attendance:
            same_member = mark.member_id is not None and (a.gathering_id, a.member_id) == (
                mark.gathering_id,
                mark.member_id,
            )
            if same_member or (mark.visit_id is not None and a.visit_id == mark.visit_id):
                return False
        self.attendance.append(mark)
        return True

    async def attendance_of(self, gathering_id: uuid.UUID, member_id: uuid.UUID) -> uuid.UUID | None:
        for a in self.attendance:
            if a.gathering_id == gathering_id and a.member_id == member_id:
                return a.attendance_id
        return None

    # Members check-in registered

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


class FakeUnitOfWork(Recorder):
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.gatherings = FakeGatheringsRepository(self.events)

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def data(self, index: int = -1) -> dict:
        return self.events[index].data.model_dump(mode="json")


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


# Builders


def member(uow: FakeUnitOfWork, site: str = SITE) -> uuid.UUID:
    member_id = uuid.uuid4()
    uow.gatherings.members[member_id] = (site, None)
    return member_id


async def sober_event(
    uow: FakeUnitOfWork, clock: FixedClock, *, capacity: int = 2, child_care_seats: int = 0, **given: Any
) -> uuid.UUID:
    starts_at = given.pop("starts_at", NOW + timedelta(days=5))
    values: dict[str, Any] = {
        "site_id": SITE,
        "actor_id": COORDINATOR,
        "timezone": ZONE,
        "title": "Payday cookout",
        "kind": "payday",
        "support_type": None,
        "starts_at": starts_at,
        "ends_at": starts_at + timedelta(hours=3),
        "capacity": capacity,
        "child_care_seats": child_care_seats,
        "family_friendly": True,
        "room": "Yard",
        "registration_opens_at": None,
        "registration_closes_at": None,
    }
    result = await handlers.schedule_sober_event(ScheduleSoberEvent(**{**values, **given}), uow=uow, clock=clock)
    return result.event_id


async def register(
    uow: FakeUnitOfWork,
    clock: FixedClock,
    gathering_id: uuid.UUID,
    member_id: uuid.UUID,
    *,
    adults: int = 1,
    children: int = 0,
    gathering_type: GatheringType = "event",
    role: Any = "coordinator",
    acting_member_id: uuid.UUID | None = None,
    site_id: str | None = SITE,
):
    cmd = Register(
        site_id=site_id,
        actor_id=COORDINATOR,
        role=role,
        acting_member_id=acting_member_id,
        gathering_type=gathering_type,
        gathering_id=gathering_id,
        member_id=member_id,
        adults=adults,
        children=children,
    )
    return await handlers.register(cmd, uow=uow, clock=clock)


async def cancel_registration(
    uow: FakeUnitOfWork, clock: FixedClock, registration_id: uuid.UUID, *, acting_member_id: uuid.UUID | None = None
):
    cmd = CancelRegistration(
        site_id=SITE,
        actor_id=COORDINATOR,
        role="volunteer" if acting_member_id else "coordinator",
        acting_member_id=acting_member_id,
        registration_id=registration_id,
    )
    return await handlers.cancel_registration(cmd, uow=uow, clock=clock)


async def create_group(uow: FakeUnitOfWork, clock: FixedClock, facilitator: uuid.UUID, **given: Any):
    values: dict[str, Any] = {
        "site_id": SITE,
        "actor_id": COORDINATOR,
        "timezone": ZONE,
        "name": "Tuesday re-entry group",
        "focus_tags": ("re-entry",),
        "support_type": "emotional",
        "facilitator_member_id": facilitator,
        "capacity": 8,
        "child_care_seats": 0,
        "room": "Room 2",
        "first_start": datetime(2026, 6, 2, 18, 0),
        "duration_minutes": 90,
        "rrule": "FREQ=WEEKLY;BYDAY=TU",
        "exceptions": (),
        "horizon_weeks": 4,
    }
    return await handlers.create_group(CreateGroup(**{**values, **given}), uow=uow, clock=clock)


def sessions_of(uow: FakeUnitOfWork, group_id: uuid.UUID) -> list[StoredGathering]:
    found = [g for g in uow.gatherings.gatherings.values() if g.group_id == group_id]
    return sorted(found, key=lambda g: g.starts_at)


def received(event_type: str, data: dict[str, Any], site_id: str = SITE) -> ReceivedEvent:
    return ReceivedEvent(
        id=uuid.uuid4(),
        type=event_type,
        source="/rcc/checkin",
        subject=None,
        site_id=site_id,
        time=NOW,
        data=data,
        attributes={},
    )


def check_in(member_id: uuid.UUID | None, ref: str, *, purpose: str = "sober_event", **extra: Any) -> ReceivedEvent:
    return received(
        "checkin.visitor_checked_in",
        {
            "visit_id": str(uuid.uuid4()),
            "member_id": str(member_id) if member_id else None,
            "anonymous": member_id is None,
            "purpose": purpose,
            "support_type": "affiliational",
            "ref": ref,
            "checked_in_at": "2026-06-06T14:05:00Z",
            **extra,
        },
    )


# Groups and sessions


async def test_a_group_schedules_weekly_sessions_at_the_same_local_time(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    facilitator = member(uow)

    result = await create_group(uow, clock, facilitator)

    sessions = sessions_of(uow, result.group_id)
    assert result.sessions_scheduled == len(sessions) == 4
    assert [s.starts_at for s in sessions] == [datetime(2026, 6, d, 22, 0, tzinfo=UTC) for d in (2, 9, 16, 23)]
    assert all(s.ends_at - s.starts_at == timedelta(minutes=90) for s in sessions)
    assert uow.gatherings.groups[result.group_id].scheduled_until == NOW + timedelta(weeks=4)
    assert uow.types() == ["gatherings.group_created"] + ["gatherings.session_scheduled"] * 4
    assert uow.data(0)["facilitator_member_id"] == str(facilitator)
    assert "Tuesday re-entry group" not in str(uow.data(0))
    assert uow.data(1)["change"] == "scheduled"
    assert [e.subject for e in uow.events[1:]] == [str(s.gathering_id) for s in sessions]


@pytest.mark.parametrize(("standing", "code"), [(None, "unknown_member"), ("erased", "member_erased")])
async def test_a_group_needs_a_facilitator_check_in_registered_here(
    uow: FakeUnitOfWork, clock: FixedClock, standing: str | None, code: str
) -> None:
    facilitator = member(uow, site=OTHER_SITE) if standing is None else member(uow)
    if standing == "erased":
        await uow.gatherings.mark_member_erased(facilitator, SITE, NOW)

    with pytest.raises(InvalidInput) as raised:
        await create_group(uow, clock, facilitator)

    assert raised.value.code == code
    assert uow.gatherings.groups == {} and uow.events == []


async def test_a_rule_whose_every_session_is_an_exception_is_refused(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    with pytest.raises(InvalidInput) as raised:
        await create_group(uow, clock, member(uow), rrule="FREQ=WEEKLY;COUNT=1", exceptions=(date(2026, 6, 2),))

    assert raised.value.code == "no_sessions"


async def test_the_horizon_adds_the_next_sessions_once(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    group = await create_group(uow, clock, member(uow))
    clock.advance(days=14)
    before = len(uow.events)

    first = await handlers.extend_schedules(ExtendSchedules(horizon_weeks=4), uow=uow, clock=clock)
    again = await handlers.extend_schedules(ExtendSchedules(horizon_weeks=4), uow=uow, clock=clock)

    assert (first.groups, first.sessions_scheduled) == (1, 2)
    assert (again.groups, again.sessions_scheduled) == (0, 0)
    assert [s.starts_at.day for s in sessions_of(uow, group.group_id)] == [2, 9, 16, 23, 30, 7]
    assert uow.types()[before:] == ["gatherings.session_scheduled"] * 2
    assert all(e.actor_id is None for e in uow.events[before:])


async def test_moving_a_session_keeps_its_registrations_and_says_from_when(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    group = await create_group(uow, clock, member(uow))
    session = sessions_of(uow, group.group_id)[1]
    registered = await register(uow, clock, session.gathering_id, member(uow), gathering_type="session")
    previous = session.starts_at
    later = previous + timedelta(hours=1)

    result = await handlers.move_session(
        MoveSession(
            site_id=SITE,
            actor_id=COORDINATOR,
            session_id=session.gathering_id,
            starts_at=later,
            ends_at=later + timedelta(minutes=90),
        ),
        uow=uow,
        clock=clock,
    )

    assert (result.starts_at, result.seats_left) == (later, 7)
    assert (session.starts_at, session.revision) == (later, 1)
    assert uow.gatherings.registrations[registered.registration_id].status == "confirmed"
    assert uow.data()["change"] == "moved"
    assert uow.data()["previous_starts_at"] == previous.isoformat().replace("+00:00", "Z")
    assert [s.starts_at for s in sessions_of(uow, group.group_id)][2] == previous + timedelta(weeks=1)


# Sober events


async def test_a_sober_event_takes_its_support_type_from_its_kind(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    event_id = await sober_event(uow, clock, kind="education")

    stored = uow.gatherings.gatherings[event_id]
    assert (stored.gathering_type, stored.support_type, stored.title) == ("event", "informational", "Payday cookout")
    assert uow.types() == ["gatherings.event_scheduled"]
    data = uow.data()
    assert data["event_id"] == str(event_id)
    assert data["support_type"] == "informational"
    assert data["registration_closes_at"] == data["starts_at"]
    assert "Payday cookout" not in str(data)


async def test_a_sober_event_of_kind_other_or_already_over_is_refused(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    with pytest.raises(InvalidInput) as other:
        await sober_event(uow, clock, kind="other")
    with pytest.raises(InvalidInput) as over:
        await sober_event(uow, clock, starts_at=NOW - timedelta(hours=4))

    assert (other.value.code, over.value.code) == ("support_type_required", "ends_in_past")
    assert uow.gatherings.gatherings == {}


# Registrations


async def test_registrations_confirm_until_full_then_wait_in_order(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    event_id = await sober_event(uow, clock, capacity=2)
    people = [member(uow) for _ in range(4)]

    results = [await register(uow, clock, event_id, m) for m in people]

    assert [(r.status, r.position) for r in results] == [
        ("confirmed", None),
        ("confirmed", None),
        ("waitlisted", 1),
        ("waitlisted", 2),
    ]
    assert uow.gatherings.gatherings[event_id].taken_adults == 2
    assert uow.types()[1:] == ["gatherings.registered"] * 2 + ["gatherings.waitlisted"] * 2
    assert uow.data()["position"] == 2
    assert uow.data()["member_id"] == str(people[3])
    assert uow.data()["event_id"] == str(event_id) and uow.data()["session_id"] is None


async def test_a_second_registration_of_a_member_is_a_conflict_naming_the_first(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    event_id = await sober_event(uow, clock)
    someone = member(uow)
    first = await register(uow, clock, event_id, someone)
    events = len(uow.events)

    with pytest.raises(Conflict) as raised:
        await register(uow, clock, event_id, someone)

    assert raised.value.code == "already_registered"
    assert raised.value.extra["registration_id"] == str(first.registration_id)
    assert len(uow.events) == events and len(uow.gatherings.registrations) == 1


async def test_registration_refusals_carry_their_codes(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    event_id = await sober_event(uow, clock, capacity=3, child_care_seats=1)
    later = await sober_event(uow, clock, registration_opens_at=NOW + timedelta(days=1))
    someone = member(uow)

    async def code_of(**given: Any) -> str:
        with pytest.raises((Conflict, InvalidInput, NotFound, Forbidden)) as raised:
            await register(uow, clock, given.pop("gathering_id", event_id), given.pop("member_id", someone), **given)
        return raised.value.code

    assert await code_of(adults=4) == "party_too_large"
    assert await code_of(children=2) == "party_too_large"
    assert await code_of(gathering_id=later) == "registration_closed"
    assert await code_of(member_id=uuid.uuid4()) == "unknown_member"
    assert await code_of(member_id=member(uow, site=OTHER_SITE)) == "unknown_member"
    assert await code_of(gathering_id=uuid.uuid4()) == "event_not_found"
    assert await code_of(gathering_type="session") == "session_not_found"
    assert await code_of(site_id=OTHER_SITE) == "event_not_found"
    assert await code_of(role="volunteer", acting_member_id=member(uow)) == "not_yours"
    erased = member(uow)
    await uow.gatherings.mark_member_erased(erased, SITE, NOW)
    assert await code_of(member_id=erased) == "member_erased"
    clock.advance(days=5)
    assert await code_of() == "registration_closed"
    assert uow.gatherings.registrations == {}


async def test_a_cancelled_seat_goes_to_waiting_parties_that_fit_in_order(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    event_id = await sober_event(uow, clock, capacity=3)
    seated = await register(uow, clock, event_id, member(uow), adults=2)
    await register(uow, clock, event_id, member(uow))
    big = await register(uow, clock, event_id, member(uow), adults=3)
    small = await register(uow, clock, event_id, member(uow), adults=2)
    clock.advance(minutes=10)
    before = len(uow.events)

    result = await cancel_registration(uow, clock, seated.registration_id)

    # The party of three does not fit the two freed seats: it keeps its place, the party of two is seated.
    assert result.promoted == [small.registration_id]
    assert uow.gatherings.registrations[big.registration_id].status == "waitlisted"
    assert uow.gatherings.registrations[small.registration_id].promoted_at == clock.now()
    assert uow.gatherings.gatherings[event_id].taken_adults == 3
    assert uow.types()[before:] == ["gatherings.registration_cancelled", "gatherings.promoted_from_waitlist"]
    assert uow.data(before)["previous_status"] == "confirmed"
    assert uow.data()["reason"] == "cancellation"
    assert uow.data()["waiting_since"] == NOW.isoformat().replace("+00:00", "Z")


async def test_cancelling_a_place_in_the_waitlist_promotes_nobody(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    event_id = await sober_event(uow, clock, capacity=1)
    await register(uow, clock, event_id, member(uow))
    waiting = await register(uow, clock, event_id, member(uow))

    result = await cancel_registration(uow, clock, waiting.registration_id)

    assert result.promoted == []
    assert uow.data()["previous_status"] == "waitlisted"
    assert uow.gatherings.gatherings[event_id].taken_adults == 1


async def test_cancel_registration_refusals_carry_their_codes(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    event_id = await sober_event(uow, clock)
    owner = member(uow)
    registration = await register(uow, clock, event_id, owner)

    with pytest.raises(Forbidden) as not_yours:
        await cancel_registration(uow, clock, registration.registration_id, acting_member_id=member(uow))
    with pytest.raises(NotFound) as missing:
        await cancel_registration(uow, clock, uuid.uuid4())
    await cancel_registration(uow, clock, registration.registration_id, acting_member_id=owner)
    with pytest.raises(Conflict) as again:
        await cancel_registration(uow, clock, registration.registration_id)

    assert (not_yours.value.code, missing.value.code, again.value.code) == (
        "not_yours",
        "registration_not_found",
        "already_cancelled",
    )


# Capacity and cancellation


async def test_capacity_changes_promote_at_once_or_are_refused_with_their_codes(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    event_id = await sober_event(uow, clock, capacity=2, child_care_seats=1)
    await register(uow, clock, event_id, member(uow), adults=2)
    waiting = await register(uow, clock, event_id, member(uow), children=1)
    before = len(uow.events)

    async def change(capacity: int | None = None, child_care_seats: int | None = None):
        cmd = ChangeCapacity(
            site_id=SITE,
            actor_id=COORDINATOR,
            gathering_type="event",
            gathering_id=event_id,
            capacity=capacity,
            child_care_seats=child_care_seats,
        )
        return await handlers.change_capacity(cmd, uow=uow, clock=clock)

    with pytest.raises(Conflict) as below_confirmed:
        await change(capacity=1)
    with pytest.raises(Conflict) as below_waiting:
        await change(child_care_seats=0)
    assert below_confirmed.value.code == "capacity_below_confirmed"
    assert below_confirmed.value.extra["taken_adults"] == 2
    assert below_waiting.value.code == "capacity_below_waiting_party"
    assert below_waiting.value.extra["registration_ids"] == [str(waiting.registration_id)]
    assert len(uow.events) == before and uow.gatherings.gatherings[event_id].revision == 0

    result = await change(capacity=3)

    assert result.promoted == [waiting.registration_id]
    assert (result.capacity, result.seats_left, result.child_care_seats_left) == (3, 0, 0)
    stored = uow.gatherings.gatherings[event_id]
    assert (stored.capacity, stored.taken_adults, stored.taken_children, stored.revision) == (3, 3, 1, 1)
    # The new capacity first, then the promotion it caused.
    assert uow.types()[before:] == ["gatherings.event_scheduled", "gatherings.promoted_from_waitlist"]
    assert uow.data(before)["change"] == "capacity_changed"
    assert uow.data()["reason"] == "capacity_increase"


async def test_cancelling_a_session_ends_its_registrations_and_names_who_to_tell(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    group = await create_group(uow, clock, member(uow), capacity=1)
    session_id = sessions_of(uow, group.group_id)[0].gathering_id
    seated, waiting = member(uow), member(uow)
    await register(uow, clock, session_id, seated, gathering_type="session")
    await register(uow, clock, session_id, waiting, gathering_type="session")
    cmd = CancelGathering(site_id=SITE, actor_id=COORDINATOR, gathering_type="session", gathering_id=session_id)

    result = await handlers.cancel_gathering(cmd, uow=uow, clock=clock)
    with pytest.raises(Conflict) as again:
        await handlers.cancel_gathering(cmd, uow=uow, clock=clock)
    with pytest.raises(Conflict) as register_after:
        await register(uow, clock, session_id, member(uow), gathering_type="session")

    assert result.registrations_cancelled == 2
    assert {r.status for r in uow.gatherings.registrations.values()} == {"cancelled"}
    assert uow.gatherings.gatherings[session_id].taken_adults == 0
    assert uow.types()[-1] == "gatherings.session_cancelled"
    assert uow.data()["confirmed_member_ids"] == [str(seated)]
    assert uow.data()["waitlisted_member_ids"] == [str(waiting)]
    assert (again.value.code, register_after.value.code) == ("already_cancelled", "session_cancelled")


# Attendance


async def test_a_check_in_for_a_sober_event_is_attendance_with_the_registered_party(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    event_id = await sober_event(uow, clock, capacity=4, child_care_seats=2)
    someone = member(uow)
    registration = await register(uow, clock, event_id, someone, adults=2, children=1)
    arrival = check_in(someone, str(event_id), added_later="a field check-in may add")

    await SUBSCRIPTIONS.dispatch(arrival, uow=uow, clock=clock)
    await SUBSCRIPTIONS.dispatch(arrival, uow=uow, clock=clock)

    [mark] = uow.gatherings.attendance
    assert (mark.member_id, mark.registration_id, mark.party.adults, mark.party.children, mark.source) == (
        someone,
        registration.registration_id,
        2,
        1,
        "checkin",
    )
    assert uow.types()[-1] == "gatherings.attended"
    assert uow.events[-1].correlation_id == str(arrival.id)
    data = uow.data()
    assert (data["registered"], data["anonymous"], data["event_id"], data["session_id"]) == (
        True,
        False,
        str(event_id),
        None,
    )
    assert data["attended_at"] == "2026-06-06T14:05:00Z"


async def test_anonymous_walk_ins_count_once_per_visit(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    event_id = await sober_event(uow, clock)
    walk_in = check_in(None, str(event_id))

    await SUBSCRIPTIONS.dispatch(walk_in, uow=uow, clock=clock)
    await SUBSCRIPTIONS.dispatch(walk_in, uow=uow, clock=clock)
    await SUBSCRIPTIONS.dispatch(check_in(None, str(event_id)), uow=uow, clock=clock)

    assert [(a.member_id, a.registration_id) for a in uow.gatherings.attendance] == [(None, None)] * 2
    assert uow.data()["anonymous"] is True and uow.data()["registered"] is False


async def test_check_ins_that_name_no_gathering_of_this_site_are_ignored(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    event_id = await sober_event(uow, clock)
    cancelled = await sober_event(uow, clock)
    await handlers.cancel_gathering(
        CancelGathering(site_id=SITE, actor_id=COORDINATOR, gathering_type="event", gathering_id=cancelled),
        uow=uow,
        clock=clock,
    )
    someone = member(uow)

    for ignored in (
        check_in(someone, str(event_id), purpose="drop_in"),
        check_in(someone, str(event_id), purpose="recovery_group"),  # an event id is not a session
        check_in(someone, "not-a-uuid"),
        check_in(someone, str(uuid.uuid4())),
        check_in(someone, str(cancelled)),
        received("checkin.visitor_checked_in", {**check_in(someone, str(event_id)).data}, site_id=OTHER_SITE),
    ):
        await SUBSCRIPTIONS.dispatch(ignored, uow=uow, clock=clock)

    assert uow.gatherings.attendance == []


async def test_a_roster_mark_records_once_and_an_erased_member_can_still_be_marked(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    event_id = await sober_event(uow, clock)
    someone, erased = member(uow), member(uow)
    await uow.gatherings.mark_member_erased(erased, SITE, NOW)

    def mark(member_id: uuid.UUID, **given: Any) -> MarkAttendance:
        return MarkAttendance(
            site_id=SITE,
            actor_id=COORDINATOR,
            gathering_type="event",
            gathering_id=event_id,
            member_id=member_id,
            adults=given.get("adults"),
            children=given.get("children"),
        )

    first = await handlers.mark_attendance(mark(someone, adults=2), uow=uow, clock=clock)
    second = await handlers.mark_attendance(mark(someone), uow=uow, clock=clock)
    of_erased = await handlers.mark_attendance(mark(erased), uow=uow, clock=clock)
    with pytest.raises(InvalidInput) as unknown:
        await handlers.mark_attendance(mark(uuid.uuid4()), uow=uow, clock=clock)

    assert (first.recorded, first.registered, second.recorded) == (True, False, False)
    assert second.attendance_id == first.attendance_id
    assert of_erased.recorded
    assert unknown.value.code == "unknown_member"
    assert [a.party.adults for a in uow.gatherings.attendance] == [2, 1]
    assert uow.data()["source"] == "roster" and uow.events[-1].actor_id == COORDINATOR


# Members check-in registered


async def test_members_check_in_registers_and_erases_can_be_named_and_then_not(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    member_id = uuid.uuid4()
    registered = received(
        "checkin.member_registered",
        {
            "member_id": str(member_id),
            "registered_at": "2026-06-01T13:00:00Z",
            "registered_by": "kiosk",
        },
    )
    event_id = await sober_event(uow, clock)

    await SUBSCRIPTIONS.dispatch(registered, uow=uow, clock=clock)
    await SUBSCRIPTIONS.dispatch(registered, uow=uow, clock=clock)
    confirmed = await register(uow, clock, event_id, member_id)
    erased = received("checkin.member_erased", {"member_id": str(member_id), "erased_at": "2026-06-01T15:00:00Z"})
    await SUBSCRIPTIONS.dispatch(erased, uow=uow, clock=clock)
    await SUBSCRIPTIONS.dispatch(registered, uow=uow, clock=clock)

    assert confirmed.status == "confirmed"
    assert await uow.gatherings.member_standing(member_id, SITE) == "erased"
    assert await uow.gatherings.member_standing(member_id, OTHER_SITE) is None
    with pytest.raises(InvalidInput) as raised:
        await register(uow, clock, await sober_event(uow, clock), member_id)
    assert raised.value.code == "member_erased"
