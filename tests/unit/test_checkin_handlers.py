"""The check-in handlers against an in-memory unit of work (same methods as CheckinRepository, dicts inside)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time

import pytest

from services.checkin import domain, handlers
from services.checkin.commands import (
    CheckInVisitor,
    CheckOutVisitor,
    CloseVisitsAtClosingTime,
    EraseMember,
    RegisterMember,
)
from services.checkin.models import NewVisit, VisitRecord
from shared.access import Site
from shared.clock import FixedClock
from shared.errors import Conflict, InvalidInput, NotFound
from shared.events import Event
from shared.uow import Recorder

SITE = "downtown"
OTHER_SITE = "uptown"
KIOSK = "token:kiosk-1"
COORDINATOR = "token:coordinator-1"
NOON_UTC = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)  # 12:00 in New York (EDT)


@dataclass
class StoredMember:
    member_id: uuid.UUID
    site_id: str
    nickname: str | None
    kiosk_code: str | None
    registered_at: datetime
    erased_at: datetime | None = None


@dataclass
class StoredVisit:
    visit_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID | None
    purpose: str
    support_type: str | None
    ref: str | None
    checked_in_at: datetime
    checked_out_at: datetime | None = None
    closed_by: str | None = None

    def record(self) -> VisitRecord:
        return VisitRecord(
            self.visit_id,
            self.site_id,
            self.member_id,
            self.purpose,
            self.ref,
            self.checked_in_at,
            self.checked_out_at,
        )


class FakeCheckinRepository:
    """What CheckinRepository promises, kept in dicts."""

    def __init__(self, outbox: list[Event]) -> None:
        self.members: dict[uuid.UUID, StoredMember] = {}
        self.visits: dict[uuid.UUID, StoredVisit] = {}
        self.outbox = outbox

    def _member(self, site_id: str, kiosk_code: str | None, member_id: uuid.UUID | None) -> StoredMember | None:
        for member in self.members.values():
            matches = member.kiosk_code == kiosk_code if kiosk_code is not None else member.member_id == member_id
            if matches and member.site_id == site_id and member.erased_at is None:
                return member
        return None

    async def add_member(
        self, member_id: uuid.UUID, site_id: str, nickname: str | None, kiosk_code: str, at: datetime
    ) -> bool:
        if any(m.site_id == site_id and m.kiosk_code == kiosk_code for m in self.members.values()):
            return False
        self.members[member_id] = StoredMember(member_id, site_id, nickname, kiosk_code, at)
        return True

    async def start_visit(
        self, visit: NewVisit, event: Event, *, member_id: uuid.UUID | None = None, kiosk_code: str | None = None
    ) -> tuple[bool, uuid.UUID | None]:
        resolved = None
        if member_id is not None or kiosk_code is not None:
            member = self._member(visit.site_id, kiosk_code, member_id)
            # A visit written closed claims no open visit.
            claims = visit.checked_out_at is None
            if member is None or (claims and await self.open_visit_of(member.member_id) is not None):
                return False, None
            resolved = member.member_id
        self.visits[visit.visit_id] = StoredVisit(
            visit.visit_id,
            visit.site_id,
            resolved,
            visit.purpose,
            visit.support_type,
            visit.ref,
            visit.checked_in_at,
            visit.checked_out_at,
            None if visit.checked_out_at is None else "auto_close",
        )
        # The real statement writes the event's outbox row with the member id it resolved.
        self.outbox.append(replace(event, data=event.data.model_copy(update={"member_id": resolved})))
        return True, resolved

    async def find_member_id(
        self, site_id: str, *, kiosk_code: str | None = None, member_id: uuid.UUID | None = None
    ) -> uuid.UUID | None:
        member = self._member(site_id, kiosk_code, member_id)
        return None if member is None else member.member_id

    async def open_visit_of(self, member_id: uuid.UUID) -> uuid.UUID | None:
        for visit in self.visits.values():
            if visit.member_id == member_id and visit.checked_out_at is None:
                return visit.visit_id
        return None

    async def close_visit(
        self,
        visit_id: uuid.UUID,
        site_id: str,
        at: datetime,
        closed_by: str,
        *,
        received_at: datetime,
        recorded_offline: bool = False,
    ) -> VisitRecord | None:
        visit = self.visits.get(visit_id)
        if visit is None or visit.site_id != site_id or visit.checked_out_at is not None:
            return None
        # GREATEST(at, checked_in_at); timestamptz comes back from PostgreSQL in UTC.
        visit.checked_out_at = max(at, visit.checked_in_at).astimezone(UTC)
        visit.closed_by = closed_by
        return visit.record()

    async def get_visit(self, visit_id: uuid.UUID, site_id: str) -> VisitRecord | None:
        visit = self.visits.get(visit_id)
        return None if visit is None or visit.site_id != site_id else visit.record()

    async def open_visits(self, site_id: str) -> list[VisitRecord]:
        open_ = [v for v in self.visits.values() if v.site_id == site_id and v.checked_out_at is None]
        return [v.record() for v in sorted(open_, key=lambda v: v.checked_in_at)]

    async def count_present(self, site_id: str) -> int:
        return len(await self.open_visits(site_id))

    async def erase_member(self, member_id: uuid.UUID, at: datetime) -> bool:
        member = self.members.get(member_id)
        if member is None or member.erased_at is not None:
            return False
        member.nickname = member.kiosk_code = None
        member.erased_at = at
        return True

    async def site_of_member(self, member_id: uuid.UUID) -> str | None:
        member = self.members.get(member_id)
        return None if member is None else member.site_id


class FakeUnitOfWork(Recorder):
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.checkin = FakeCheckinRepository(self.events)

    def event_data(self, index: int = -1) -> dict:
        return self.events[index].data.model_dump(mode="json")


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOON_UTC)


# Builders


async def register(uow: FakeUnitOfWork, clock: FixedClock, *, site: str = SITE, nickname: str | None = None):
    return await handlers.register_member(
        RegisterMember(site_id=site, actor_id=KIOSK, registered_by="kiosk", nickname=nickname), uow=uow, clock=clock
    )


async def check_in(
    uow: FakeUnitOfWork,
    clock: FixedClock,
    *,
    site: str = SITE,
    purpose: str = "drop_in",
    site_record: Site | None = None,
    **who,
):
    return await handlers.check_in_visitor(
        CheckInVisitor(site_id=site, actor_id=KIOSK, purpose=purpose, site=site_record, **who),
        uow=uow,
        clock=clock,  # type: ignore[arg-type]
    )


async def check_out(uow: FakeUnitOfWork, clock: FixedClock, *, site: str = SITE, **which):
    command = CheckOutVisitor(site_id=site, actor_id=KIOSK, **which)
    return await handlers.check_out_visitor(command, uow=uow, clock=clock)


# Registration


async def test_register_emits_member_registered_without_a_nickname(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    result = await register(uow, clock)

    assert len(uow.events) == 1
    event = uow.events[0]
    assert event.type == "checkin.member_registered"
    assert event.subject == str(result.member_id)
    assert event.site_id == SITE
    assert event.actor_id == KIOSK
    assert event.time == NOON_UTC
    assert uow.event_data() == {
        "member_id": str(result.member_id),
        "registered_at": "2026-06-10T16:00:00Z",
        "registered_by": "kiosk",
    }
    assert domain.is_well_formed_code(result.kiosk_code)
    assert len(result.kiosk_code) == 6


async def test_nickname_is_stored_but_never_in_the_event(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    result = await register(uow, clock, nickname="Sunny")

    stored = uow.checkin.members[result.member_id]
    assert stored.nickname == "Sunny"
    assert stored.kiosk_code == result.kiosk_code
    assert stored.site_id == SITE
    assert "Sunny" not in uow.events[0].data.model_dump_json()
    assert "nickname" not in uow.event_data()


async def test_register_draws_another_code_when_one_is_taken(
    uow: FakeUnitOfWork, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await register(uow, clock)
    codes = iter([first.kiosk_code, first.kiosk_code, "ZZZZZZ"])
    monkeypatch.setattr(domain, "new_kiosk_code", lambda length=6: next(codes))

    second = await register(uow, clock)

    assert second.kiosk_code == "ZZZZZZ"
    assert len(uow.checkin.members) == 2


async def test_register_gives_up_when_no_free_code_can_be_drawn(
    uow: FakeUnitOfWork, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await register(uow, clock)
    taken = next(iter(uow.checkin.members.values())).kiosk_code
    monkeypatch.setattr(domain, "new_kiosk_code", lambda length=6: taken)

    with pytest.raises(Conflict) as raised:
        await register(uow, clock)

    assert raised.value.code == "kiosk_codes_exhausted"
    assert len(uow.events) == 1  # only the first registration


# Check-in


async def test_check_in_by_lowercase_code_with_dashes(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    member = await register(uow, clock)
    typed = member.kiosk_code[:3].lower() + "-" + member.kiosk_code[3:].lower()
    clock.advance(minutes=5)

    result = await check_in(uow, clock, kiosk_code=typed, purpose="peer_mentoring", ref="group:42")

    assert result.member_id == member.member_id
    assert result.support_type == "emotional"
    event = uow.events[-1]
    assert event.type == "checkin.visitor_checked_in"
    assert event.subject == str(result.visit_id)
    assert uow.event_data() == {
        "visit_id": str(result.visit_id),
        "member_id": str(member.member_id),
        "anonymous": False,
        "purpose": "peer_mentoring",
        "support_type": "emotional",
        "ref": "group:42",
        "checked_in_at": "2026-06-10T16:05:00Z",
        "recorded_offline": False,
    }
    assert uow.checkin.visits[result.visit_id].member_id == member.member_id


async def test_check_in_by_member_id(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    member = await register(uow, clock)

    result = await check_in(uow, clock, member_id=member.member_id, purpose="resource_connecting")

    assert result.member_id == member.member_id
    assert result.support_type == "instrumental"


async def test_volunteer_shift_check_in_has_no_support_type(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    member = await register(uow, clock)

    result = await check_in(uow, clock, member_id=member.member_id, purpose="volunteer_shift")

    assert result.support_type is None
    assert uow.event_data()["support_type"] is None


async def test_anonymous_check_in_has_no_member(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    result = await check_in(uow, clock, anonymous=True, purpose="sober_event")

    assert result.member_id is None
    assert result.support_type == "affiliational"
    data = uow.event_data()
    assert data["member_id"] is None
    assert data["anonymous"] is True
    assert uow.checkin.visits[result.visit_id].member_id is None


async def test_anonymous_walk_ins_can_be_present_together(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await check_in(uow, clock, anonymous=True)
    await check_in(uow, clock, anonymous=True)

    assert await uow.checkin.count_present(SITE) == 2


async def test_second_check_in_of_the_same_member_is_a_conflict_naming_the_open_visit(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    member = await register(uow, clock)
    first = await check_in(uow, clock, kiosk_code=member.kiosk_code)
    events_before = len(uow.events)

    with pytest.raises(Conflict) as raised:
        await check_in(uow, clock, kiosk_code=member.kiosk_code.lower(), purpose="education")

    assert raised.value.code == "already_checked_in"
    assert raised.value.extra["visit_id"] == str(first.visit_id)
    assert len(uow.events) == events_before
    assert len(uow.checkin.visits) == 1


async def test_unknown_code_is_member_not_found(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    await register(uow, clock)
    unknown = "ZZZZZZ" if all(m.kiosk_code != "ZZZZZZ" for m in uow.checkin.members.values()) else "YYYYYY"

    with pytest.raises(NotFound) as raised:
        await check_in(uow, clock, kiosk_code=unknown)

    assert raised.value.code == "member_not_found"
    assert uow.checkin.visits == {}


@pytest.mark.parametrize("typed", ["0000", "OOOO", "ab", "!!!!!!"])
async def test_malformed_code_is_member_not_found(uow: FakeUnitOfWork, clock: FixedClock, typed: str) -> None:
    with pytest.raises(NotFound) as raised:
        await check_in(uow, clock, kiosk_code=typed)

    assert raised.value.code == "member_not_found"


async def test_code_of_another_site_is_member_not_found(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    elsewhere = await register(uow, clock, site=OTHER_SITE)

    with pytest.raises(NotFound) as raised:
        await check_in(uow, clock, site=SITE, kiosk_code=elsewhere.kiosk_code)

    assert raised.value.code == "member_not_found"


async def test_member_id_of_another_site_is_member_not_found(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    elsewhere = await register(uow, clock, site=OTHER_SITE)

    with pytest.raises(NotFound) as raised:
        await check_in(uow, clock, site=SITE, member_id=elsewhere.member_id)

    assert raised.value.code == "member_not_found"


# Check-out


async def test_check_out_by_visit_computes_minutes_and_emits_checked_out(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    member = await register(uow, clock)
    visit = await check_in(uow, clock, kiosk_code=member.kiosk_code, ref="shift:7")
    clock.advance(minutes=95, seconds=40)

    result = await check_out(uow, clock, visit_id=visit.visit_id)

    assert result.minutes == 95
    assert result.checked_in_at == NOON_UTC
    assert result.checked_out_at == clock.now()
    event = uow.events[-1]
    assert event.type == "checkin.visitor_checked_out"
    assert event.actor_id == KIOSK
    assert event.time == clock.now()
    data = uow.event_data()
    assert data["closed_by"] == "kiosk"
    assert data["minutes"] == 95
    assert data["member_id"] == str(member.member_id)
    assert data["purpose"] == "drop_in"
    assert data["ref"] == "shift:7"
    assert uow.checkin.visits[visit.visit_id].closed_by == "kiosk"


async def test_check_out_by_kiosk_code(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    member = await register(uow, clock)
    visit = await check_in(uow, clock, kiosk_code=member.kiosk_code)
    clock.advance(minutes=30)

    result = await check_out(uow, clock, kiosk_code=" " + member.kiosk_code.lower())

    assert result.visit_id == visit.visit_id
    assert result.minutes == 30


async def test_checking_out_twice_is_already_checked_out(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    visit = await check_in(uow, clock, anonymous=True)
    await check_out(uow, clock, visit_id=visit.visit_id)
    events_before = len(uow.events)

    with pytest.raises(Conflict) as raised:
        await check_out(uow, clock, visit_id=visit.visit_id)

    assert raised.value.code == "already_checked_out"
    assert len(uow.events) == events_before


async def test_check_out_of_an_unknown_visit_is_visit_not_found(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    with pytest.raises(NotFound) as raised:
        await check_out(uow, clock, visit_id=uuid.uuid4())

    assert raised.value.code == "visit_not_found"


async def test_check_out_of_another_sites_visit_is_visit_not_found(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    visit = await check_in(uow, clock, site=OTHER_SITE, anonymous=True)

    with pytest.raises(NotFound) as raised:
        await check_out(uow, clock, site=SITE, visit_id=visit.visit_id)

    assert raised.value.code == "visit_not_found"
    assert uow.checkin.visits[visit.visit_id].checked_out_at is None


async def test_check_out_by_code_of_someone_not_present_is_not_checked_in(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    member = await register(uow, clock)

    with pytest.raises(Conflict) as raised:
        await check_out(uow, clock, kiosk_code=member.kiosk_code)

    assert raised.value.code == "not_checked_in"


async def test_check_out_by_unknown_code_is_not_checked_in(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    with pytest.raises(Conflict) as raised:
        await check_out(uow, clock, kiosk_code="ZZZZZZ")

    assert raised.value.code == "not_checked_in"


async def test_member_can_check_in_again_after_checking_out(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    member = await register(uow, clock)
    first = await check_in(uow, clock, member_id=member.member_id)
    await check_out(uow, clock, member_id=member.member_id)

    second = await check_in(uow, clock, member_id=member.member_id)

    assert second.visit_id != first.visit_id


# Closing time

NEW_YORK_SITE = Site(SITE, "Downtown", 40, "America/New_York", time(21, 0))


async def test_close_at_closing_time_closes_only_visits_past_closing_at_the_closing_instant(
    uow: FakeUnitOfWork,
) -> None:
    # 10:00 and 20:00 EDT on 06-10 are past that evening's closing (21:00 EDT = 01:00Z on 06-11);
    # 21:30 EDT on 06-10 closes at 21:00 on 06-11, still ahead at 23:00 EDT (03:00Z) on 06-10.
    clock = FixedClock(datetime(2026, 6, 10, 14, 0, tzinfo=UTC))
    morning = await check_in(uow, clock, anonymous=True)
    clock.at = datetime(2026, 6, 11, 0, 0, tzinfo=UTC)
    evening = await check_in(uow, clock, anonymous=True)
    clock.at = datetime(2026, 6, 11, 1, 30, tzinfo=UTC)
    late = await check_in(uow, clock, anonymous=True)
    elsewhere = await check_in(uow, clock, site=OTHER_SITE, anonymous=True)
    uow.events.clear()
    clock.at = datetime(2026, 6, 11, 3, 0, tzinfo=UTC)

    result = await handlers.close_visits_at_closing_time(CloseVisitsAtClosingTime(NEW_YORK_SITE), uow=uow, clock=clock)

    assert result.closed == 2
    closing = datetime(2026, 6, 11, 1, 0, tzinfo=UTC)
    for visit_id in (morning.visit_id, evening.visit_id):
        stored = uow.checkin.visits[visit_id]
        assert stored.checked_out_at == closing  # not "now" (03:00Z)
        assert stored.closed_by == "auto_close"
    assert uow.checkin.visits[late.visit_id].checked_out_at is None
    assert uow.checkin.visits[elsewhere.visit_id].checked_out_at is None

    assert [e.subject for e in uow.events] == [str(morning.visit_id), str(evening.visit_id)]
    for event in uow.events:
        data = event.data.model_dump(mode="json")
        assert data["closed_by"] == "auto_close"
        assert data["checked_out_at"] == "2026-06-11T01:00:00Z"
        assert event.actor_id is None
        assert event.time == closing
    assert [e.data.minutes for e in uow.events] == [11 * 60, 60]  # type: ignore[attr-defined]


async def test_close_at_closing_time_with_nothing_past_closing_closes_nothing(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    await check_in(uow, clock, anonymous=True)  # 12:00 EDT; closing at 21:00

    result = await handlers.close_visits_at_closing_time(CloseVisitsAtClosingTime(NEW_YORK_SITE), uow=uow, clock=clock)

    assert result.closed == 0
    assert len(uow.events) == 1  # just the check-in


async def test_close_at_closing_time_at_exactly_the_closing_instant_closes(
    uow: FakeUnitOfWork, clock: FixedClock
) -> None:
    visit = await check_in(uow, clock, anonymous=True)
    clock.at = datetime(2026, 6, 11, 1, 0, tzinfo=UTC)  # 21:00 EDT

    result = await handlers.close_visits_at_closing_time(CloseVisitsAtClosingTime(NEW_YORK_SITE), uow=uow, clock=clock)

    assert result.closed == 1
    assert uow.checkin.visits[visit.visit_id].checked_out_at == clock.now()


async def test_a_visit_left_open_over_days_closes_at_the_first_closing(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    visit = await check_in(uow, clock, anonymous=True)
    clock.at = datetime(2026, 6, 14, 12, 0, tzinfo=UTC)

    await handlers.close_visits_at_closing_time(CloseVisitsAtClosingTime(NEW_YORK_SITE), uow=uow, clock=clock)

    assert uow.checkin.visits[visit.visit_id].checked_out_at == datetime(2026, 6, 11, 1, 0, tzinfo=UTC)
    assert uow.events[-1].data.minutes == 9 * 60  # type: ignore[attr-defined]


async def test_a_check_in_saved_before_the_last_closing_is_a_visit_ended_at_that_closing(
    uow: FakeUnitOfWork,
) -> None:
    # Tapped at 20:00 EDT on 06-10 on a kiosk that was offline; it reached us at 09:00 EDT the next morning, when
    # the member had already checked in again on another kiosk.
    clock = FixedClock(datetime(2026, 6, 11, 13, 0, tzinfo=UTC))
    member = await register(uow, clock)
    today = await check_in(uow, clock, member_id=member.member_id)
    uow.events.clear()
    tapped = datetime(2026, 6, 11, 0, 0, tzinfo=UTC)
    closing = datetime(2026, 6, 11, 1, 0, tzinfo=UTC)

    saved = await check_in(uow, clock, member_id=member.member_id, occurred_at=tapped, site_record=NEW_YORK_SITE)

    assert (saved.checked_in_at, saved.checked_out_at) == (tapped, closing)
    stored = uow.checkin.visits[saved.visit_id]
    assert (stored.checked_in_at, stored.checked_out_at, stored.closed_by) == (tapped, closing, "auto_close")
    assert uow.checkin.visits[today.visit_id].checked_out_at is None  # the open visit is untouched
    checked_in, checked_out = uow.events
    assert checked_in.type == "checkin.visitor_checked_in" and checked_in.time == tapped
    assert checked_in.data.recorded_offline  # type: ignore[attr-defined]
    assert checked_out.type == "checkin.visitor_checked_out" and checked_out.time == closing
    ended = checked_out.data.model_dump(mode="json")
    assert (ended["closed_by"], ended["minutes"], ended["member_id"]) == ("auto_close", 60, str(member.member_id))
    assert checked_out.actor_id is None


async def test_a_check_in_saved_after_the_last_closing_stays_open(uow: FakeUnitOfWork) -> None:
    clock = FixedClock(datetime(2026, 6, 11, 13, 0, tzinfo=UTC))  # 09:00 EDT; the site last closed at 21:00
    tapped = datetime(2026, 6, 11, 12, 30, tzinfo=UTC)

    saved = await check_in(uow, clock, anonymous=True, occurred_at=tapped, site_record=NEW_YORK_SITE)

    assert (saved.checked_in_at, saved.checked_out_at) == (tapped, None)
    assert [event.type for event in uow.events] == ["checkin.visitor_checked_in"]


async def test_a_check_out_saved_before_the_last_closing_is_refused(uow: FakeUnitOfWork) -> None:
    clock = FixedClock(datetime(2026, 6, 11, 13, 0, tzinfo=UTC))
    member = await register(uow, clock)
    visit = await check_in(uow, clock, member_id=member.member_id)  # begun after the closing
    with pytest.raises(InvalidInput) as refused:
        await handlers.check_out_visitor(
            CheckOutVisitor(
                site_id=SITE,
                actor_id=KIOSK,
                visit_id=visit.visit_id,
                occurred_at=datetime(2026, 6, 11, 0, 30, tzinfo=UTC),
                site=NEW_YORK_SITE,
            ),
            uow=uow,
            clock=clock,
        )
    assert refused.value.code == "occurred_before_closing"
    assert uow.checkin.visits[visit.visit_id].checked_out_at is None


# Erasure


async def erase(uow: FakeUnitOfWork, clock: FixedClock, member_id: uuid.UUID, *, site: str | None = SITE):
    return await handlers.erase_member(
        EraseMember(site_id=site, actor_id=COORDINATOR, member_id=member_id), uow=uow, clock=clock
    )


async def test_erase_removes_nickname_and_code_and_emits_member_erased(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    member = await register(uow, clock, nickname="Sunny")
    clock.advance(days=3)

    result = await erase(uow, clock, member.member_id)

    stored = uow.checkin.members[member.member_id]
    assert stored.nickname is None
    assert stored.kiosk_code is None
    assert stored.erased_at == clock.now()
    assert result.erased_at == clock.now()
    event = uow.events[-1]
    assert event.type == "checkin.member_erased"
    assert event.site_id == SITE
    assert event.actor_id == COORDINATOR
    assert uow.event_data() == {"member_id": str(member.member_id), "erased_at": "2026-06-13T16:00:00Z"}


async def test_erased_members_code_no_longer_checks_in(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    member = await register(uow, clock)
    await erase(uow, clock, member.member_id)

    with pytest.raises(NotFound) as raised:
        await check_in(uow, clock, kiosk_code=member.kiosk_code)

    assert raised.value.code == "member_not_found"


async def test_erasing_twice_is_already_erased(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    member = await register(uow, clock)
    await erase(uow, clock, member.member_id)
    events_before = len(uow.events)

    with pytest.raises(Conflict) as raised:
        await erase(uow, clock, member.member_id)

    assert raised.value.code == "already_erased"
    assert len(uow.events) == events_before


async def test_another_sites_coordinator_cannot_erase(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    member = await register(uow, clock, nickname="Sunny")

    with pytest.raises(NotFound) as raised:
        await erase(uow, clock, member.member_id, site=OTHER_SITE)

    assert raised.value.code == "member_not_found"
    assert uow.checkin.members[member.member_id].nickname == "Sunny"


async def test_unknown_member_cannot_be_erased(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    with pytest.raises(NotFound) as raised:
        await erase(uow, clock, uuid.uuid4())

    assert raised.value.code == "member_not_found"


async def test_an_admin_erases_on_any_site(uow: FakeUnitOfWork, clock: FixedClock) -> None:
    member = await register(uow, clock, site=OTHER_SITE)

    await erase(uow, clock, member.member_id, site=None)

    assert uow.checkin.members[member.member_id].erased_at == clock.now()
    assert uow.events[-1].site_id == OTHER_SITE
