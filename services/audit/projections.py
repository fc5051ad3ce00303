"""Keeping the report projections (``rp_*``) in step with the audit log.

``Projector.apply(events)`` runs in the audit append's own transaction, with exactly the events that transaction
appended, so a redelivered event (already in the log) never reaches it twice. Appends hold the chain's advisory
lock, and so does ``rcc reports rebuild``: nothing else writes these tables, which is what makes the
read-merge-write below safe.

Each event type has one extractor that turns the event's data into a fact (a check-in, an hours decision, a
gathering fact, a counter). Facts are then applied per table, set-based: one SELECT of the rows the batch touches,
a merge in Python, one upsert of the rows that changed, and the changes' effect on the additive daily figures
(old contribution out, new contribution in) as one upsert of deltas. Merges depend only on the facts, never on
arrival order: a check-out may come before its check-in, a correction before the approval it corrects, and the
rows converge to the same values (where two facts disagree, the later event time wins, ties broken by event id).

Event data that does not have the expected shape is skipped and logged (by id and type only): the audit log
must record every event, so a projection never fails an append.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Table,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    func,
    not_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, BIT, UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Date, DateTime, Integer, SmallInteger, Text

from services.audit.reporting import (
    HOUR,
    LONG_VISIT,
    NETWORK,
    PURPOSES,
    SUPPORT_TYPES,
    contiguous_runs,
    day_bit,
    day_start,
    hours_overlapping,
    local_date,
    open_peaks,
    overlapping,
    zone_named,
)
from services.audit.tables import (
    DAILY_COUNTERS,
    MEMBER_BLOCK,
    PROJECTION_TABLES,
    Bits,
    bits_text,
    rp_attendance,
    rp_daily,
    rp_daily_role,
    rp_gathering,
    rp_hours,
    rp_member_days,
    rp_member_first,
    rp_peak_hour,
    rp_shift_fact,
    rp_visit,
    rp_volunteer_year,
)
from shared import access
from shared.events import parse_time
from shared.logging import get_logger

log = get_logger(component="audit_projections")

FactKey = tuple[datetime, str]  # (event time, event id): the later fact wins where two disagree


# --- events as the log holds them --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    event_id: uuid.UUID
    type: str
    site_id: str
    time: datetime
    data: Mapping[str, Any]

    @property
    def key(self) -> FactKey:
        return (self.time, str(self.event_id))

    @classmethod
    def from_body(cls, body: str) -> LoggedEvent:
        """From the canonical CloudEvent JSON an audit entry stores."""
        ce = json.loads(body)
        data = ce.get("data")
        return cls(
            event_id=uuid.UUID(ce["id"]),
            type=ce["type"],
            site_id=ce["siteid"],
            time=parse_time(ce["time"]),
            data=data if isinstance(data, dict) else {},
        )

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> LoggedEvent:
        """From a row the append handler is about to insert (its columns are already parsed)."""
        ce = json.loads(entry["body"])
        data = ce.get("data")
        return cls(
            entry["event_id"], entry["type"], entry["site_id"], entry["time"], data if isinstance(data, dict) else {}
        )


# --- reading event data strictly ------------------------------------------------------------------------------------

INT32 = 2**31 - 1
INT63 = 2**63 - 1


def _uuid(value: Any) -> uuid.UUID:
    if not isinstance(value, str):
        raise TypeError("not a uuid")
    return uuid.UUID(value)


def _opt_uuid(value: Any) -> uuid.UUID | None:
    return None if value is None else _uuid(value)


def _instant(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("not a time")
    instant = parse_time(value)
    if instant.tzinfo is None:
        raise ValueError("time without offset")
    return instant


def _int(value: Any, bound: int = INT32) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not -bound <= value <= bound:
        raise ValueError("not an integer in range")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError("not a short text")
    return value


def _opt_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("not a boolean")
    return value


# --- facts --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VisitFact:
    visit_id: uuid.UUID
    site_id: str
    checked_in: bool  # a check-in fact (else a check-out)
    member_id: uuid.UUID | None
    anonymous: bool
    purpose: str | None
    support_type: str | None
    checked_in_at: datetime
    checked_out_at: datetime | None
    key: FactKey


@dataclass(frozen=True, slots=True)
class HoursFact:
    hours_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    role_id: str
    shift_starts_at: datetime
    minutes: int
    approved: bool
    key: FactKey


@dataclass(frozen=True, slots=True)
class ShiftFact:
    kind: str  # worked | missed
    fact_key: uuid.UUID  # hours_id | signup_id
    site_id: str
    starts_at: datetime
    key: FactKey


@dataclass(frozen=True, slots=True)
class GatheringFact:
    gathering_id: uuid.UUID
    kind: str  # session | event
    site_id: str
    starts_at: datetime
    key: FactKey
    cancelled: bool = False
    registrations: int = 0  # +1 a party got seats, -1 a confirmed party cancelled


@dataclass(frozen=True, slots=True)
class AttendanceFact:
    attendance_id: uuid.UUID
    gathering_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class CounterFact:
    site_id: str
    at: datetime  # counted on this instant's local date
    column: str
    amount: int


@dataclass
class Batch:
    visits: list[VisitFact] = field(default_factory=list)
    hours: list[HoursFact] = field(default_factory=list)
    shifts: list[ShiftFact] = field(default_factory=list)
    gatherings: list[GatheringFact] = field(default_factory=list)
    attendance: list[AttendanceFact] = field(default_factory=list)
    counters: list[CounterFact] = field(default_factory=list)
    projected: int = 0
    skipped: int = 0

    def site_ids(self) -> set[str]:
        facts: Iterable[Any] = (*self.visits, *self.hours, *self.shifts, *self.gatherings, *self.counters)
        return {fact.site_id for fact in facts}


# --- one extractor per event type ------------------------------------------------------------------------------------

Extractor = Callable[[LoggedEvent, Batch], None]
EXTRACTORS: dict[str, Extractor] = {}


def extracts(*event_types: str) -> Callable[[Extractor], Extractor]:
    def register(extractor: Extractor) -> Extractor:
        for event_type in event_types:
            EXTRACTORS[event_type] = extractor
        return extractor

    return register


@extracts("checkin.visitor_checked_in")
def visitor_checked_in(event: LoggedEvent, batch: Batch) -> None:
    d = event.data
    member_id = _opt_uuid(d.get("member_id"))
    batch.visits.append(
        VisitFact(
            visit_id=_uuid(d["visit_id"]),
            site_id=event.site_id,
            checked_in=True,
            member_id=member_id,
            anonymous=_bool(d.get("anonymous", member_id is None)),
            purpose=_opt_text(d.get("purpose")),
            support_type=_opt_text(d.get("support_type")),
            checked_in_at=_instant(d["checked_in_at"]),
            checked_out_at=None,
            key=event.key,
        )
    )


@extracts("checkin.visitor_checked_out")
def visitor_checked_out(event: LoggedEvent, batch: Batch) -> None:
    d = event.data
    member_id = _opt_uuid(d.get("member_id"))
    batch.visits.append(
        VisitFact(
            visit_id=_uuid(d["visit_id"]),
            site_id=event.site_id,
            checked_in=False,
            member_id=member_id,
            anonymous=member_id is None,
            purpose=_opt_text(d.get("purpose")),
            support_type=None,
            checked_in_at=_instant(d["checked_in_at"]),
            checked_out_at=_instant(d["checked_out_at"]),
            key=event.key,
        )
    )


@extracts("volunteering.hours_approved", "volunteering.hours_rejected")
def hours_decided(event: LoggedEvent, batch: Batch) -> None:
    d = event.data
    batch.hours.append(
        HoursFact(
            hours_id=_uuid(d["hours_id"]),
            site_id=event.site_id,
            member_id=_uuid(d["member_id"]),
            role_id=_text(d["role_id"]),
            shift_starts_at=_instant(d["shift_starts_at"]),
            minutes=_int(d["minutes"]),
            approved=event.type == "volunteering.hours_approved",
            key=event.key,
        )
    )


@extracts("volunteering.shift_worked")
def shift_worked(event: LoggedEvent, batch: Batch) -> None:
    d = event.data
    batch.shifts.append(
        ShiftFact("worked", _uuid(d["hours_id"]), event.site_id, _instant(d["shift_starts_at"]), event.key)
    )


@extracts("volunteering.shift_missed")
def shift_missed(event: LoggedEvent, batch: Batch) -> None:
    d = event.data
    batch.shifts.append(ShiftFact("missed", _uuid(d["signup_id"]), event.site_id, _instant(d["starts_at"]), event.key))


@extracts("volunteering.promoted_from_waitlist")
def volunteer_promoted(event: LoggedEvent, batch: Batch) -> None:
    batch.counters.append(CounterFact(event.site_id, event.time, "waitlist_promotions", 1))


# The stipend events are projected by name from their raw data: their contract classes arrive with the stipend
# ledger, and nothing here needs to change then.
@extracts("volunteering.stipend_accrued")
def stipend_accrued(event: LoggedEvent, batch: Batch) -> None:
    amount = _int(event.data["amount_cents"], INT63)
    batch.counters.append(CounterFact(event.site_id, event.time, "stipends_accrued_cents", amount))


@extracts("volunteering.stipend_reversed")
def stipend_reversed(event: LoggedEvent, batch: Batch) -> None:
    amount = _int(event.data["amount_cents"], INT63)  # the positive amount being reversed
    batch.counters.append(CounterFact(event.site_id, event.time, "stipends_accrued_cents", -amount))


@extracts("volunteering.stipend_paid")
def stipend_paid(event: LoggedEvent, batch: Batch) -> None:
    amount = _int(event.data["amount_cents"], INT63)
    batch.counters.append(CounterFact(event.site_id, event.time, "stipends_paid_cents", amount))


def _gathering(event: LoggedEvent, **changes: Any) -> GatheringFact:
    d = event.data
    session_id = _opt_uuid(d.get("session_id"))
    event_id = _opt_uuid(d.get("event_id"))
    if (session_id is None) == (event_id is None):
        raise ValueError("names neither or both of session_id and event_id")
    gathering_id, kind = (session_id, "session") if session_id is not None else (event_id, "event")
    assert gathering_id is not None
    return GatheringFact(gathering_id, kind, event.site_id, _instant(d["starts_at"]), event.key, **changes)


@extracts("gatherings.session_scheduled", "gatherings.event_scheduled", "gatherings.waitlisted")
def gathering_scheduled(event: LoggedEvent, batch: Batch) -> None:
    batch.gatherings.append(_gathering(event))


@extracts("gatherings.session_cancelled", "gatherings.event_cancelled")
def gathering_cancelled(event: LoggedEvent, batch: Batch) -> None:
    batch.gatherings.append(_gathering(event, cancelled=True))


@extracts("gatherings.registered")
def gathering_registered(event: LoggedEvent, batch: Batch) -> None:
    batch.gatherings.append(_gathering(event, registrations=1))


@extracts("gatherings.promoted_from_waitlist")
def gathering_promoted(event: LoggedEvent, batch: Batch) -> None:
    batch.gatherings.append(_gathering(event, registrations=1))
    batch.counters.append(CounterFact(event.site_id, event.time, "waitlist_promotions", 1))


@extracts("gatherings.registration_cancelled")
def gathering_registration_cancelled(event: LoggedEvent, batch: Batch) -> None:
    confirmed = _text(event.data["previous_status"]) == "confirmed"
    batch.gatherings.append(_gathering(event, registrations=-1 if confirmed else 0))


@extracts("gatherings.attended")
def gathering_attended(event: LoggedEvent, batch: Batch) -> None:
    fact = _gathering(event)
    batch.gatherings.append(fact)
    batch.attendance.append(AttendanceFact(_uuid(event.data["attendance_id"]), fact.gathering_id))


def extract(events: Iterable[LoggedEvent]) -> Batch:
    batch = Batch()
    for event in events:
        extractor = EXTRACTORS.get(event.type)
        if extractor is None:
            continue
        try:
            extractor(event, batch)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            batch.skipped += 1
            log.warning("projection_skipped_event", event_id=str(event.event_id), event_type=event.type,
                        reason=type(exc).__name__)
            continue
        batch.projected += 1
    return batch


# --- deltas of the additive daily figures -----------------------------------------------------------------------------


class Deltas:
    def __init__(self) -> None:
        self.daily: dict[tuple[str, date], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.role: dict[tuple[str, date, str], int] = defaultdict(int)

    def site(self, site_id: str, day: date, column: str, amount: int) -> None:
        """A figure of a site, which is also the network's."""
        for scope in (site_id, NETWORK):
            self.daily[(scope, day)][column] += amount

    def scoped(self, scope: str, day: date, column: str, amount: int) -> None:
        """A figure of one scope only (unduplicated and new members differ between a site and the network)."""
        self.daily[(scope, day)][column] += amount

    def role_minutes(self, site_id: str, day: date, role_id: str, minutes: int) -> None:
        for scope in (site_id, NETWORK):
            self.role[(scope, day, role_id)] += minutes


# --- rows as merged in Python ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class VisitRow:
    visit_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID | None
    anonymous: bool
    purpose: str | None
    support_type: str | None
    checked_in: bool
    checked_in_at: datetime
    checked_out_at: datetime | None
    local_date: date
    spills: bool
    in_fact_time: datetime | None
    in_fact_id: uuid.UUID | None

    def merge(self, fact: VisitFact) -> None:
        if fact.checked_in:
            if self.in_fact_time is None or fact.key > (self.in_fact_time, str(self.in_fact_id)):
                self.site_id, self.member_id, self.anonymous = fact.site_id, fact.member_id, fact.anonymous
                self.purpose, self.support_type = fact.purpose, fact.support_type
                self.checked_in, self.checked_in_at = True, fact.checked_in_at
                self.in_fact_time, self.in_fact_id = fact.key[0], uuid.UUID(fact.key[1])
        elif fact.checked_out_at is not None and (
            self.checked_out_at is None or fact.checked_out_at > self.checked_out_at
        ):
            # Several check-outs of one visit (not expected): the latest instant ends it.
            self.checked_out_at = fact.checked_out_at

    @classmethod
    def of(cls, fact: VisitFact) -> VisitRow:
        row = cls(
            visit_id=fact.visit_id, site_id=fact.site_id, member_id=fact.member_id, anonymous=fact.anonymous,
            purpose=fact.purpose, support_type=None, checked_in=False, checked_in_at=fact.checked_in_at,
            checked_out_at=None, local_date=date.min, spills=False, in_fact_time=None, in_fact_id=None,
        )
        row.merge(fact)
        return row

    def place(self, zone: zoneinfo.ZoneInfo) -> None:
        self.local_date = local_date(self.checked_in_at, zone)
        next_midnight = day_start(self.local_date + timedelta(days=1), zone)
        self.spills = (
            self.checked_out_at is None
            or self.checked_out_at > next_midnight
            or self.checked_out_at - self.checked_in_at > LONG_VISIT
        )

    def counted(self) -> tuple[str, date, tuple[str, ...]] | None:
        if not self.checked_in:
            return None
        columns = ["visits"]
        if self.anonymous:
            columns.append("anonymous_visits")
        if self.purpose in PURPOSES:
            columns.append(f"purpose_{self.purpose}")
        if self.support_type in SUPPORT_TYPES:
            columns.append(f"support_{self.support_type}")
        return self.site_id, self.local_date, tuple(columns)

    def member_day(self) -> tuple[str, uuid.UUID, date] | None:
        if not self.checked_in or self.member_id is None:
            return None
        return self.site_id, self.member_id, self.local_date

    def closed_interval(self) -> tuple[str, datetime, datetime] | None:
        """The visit as it counts in the hourly peaks: checked in, checked out, of positive length."""
        if not self.checked_in or self.checked_out_at is None or self.checked_out_at <= self.checked_in_at:
            return None
        return self.site_id, self.checked_in_at, self.checked_out_at


@dataclass(slots=True)
class HoursRow:
    hours_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    role_id: str
    shift_date: date
    minutes: int
    approved: bool
    fact_time: datetime
    fact_id: uuid.UUID

    def approved_minutes(self) -> tuple[str, date, str, uuid.UUID, int] | None:
        if not self.approved:
            return None
        return self.site_id, self.shift_date, self.role_id, self.member_id, self.minutes


@dataclass(slots=True)
class ShiftRow:
    kind: str
    key: uuid.UUID
    site_id: str
    local_date: date
    fact_time: datetime
    fact_id: uuid.UUID

    def counted(self) -> tuple[str, date, str]:
        return self.site_id, self.local_date, "shifts_filled" if self.kind == "worked" else "shifts_missed"


@dataclass(slots=True)
class GatheringRow:
    gathering_id: uuid.UUID
    kind: str
    site_id: str
    starts_at: datetime
    local_date: date
    fact_time: datetime
    fact_id: uuid.UUID
    cancelled: bool
    attendance: int
    registrations: int


def _rows(result: Any, row_type: type) -> list[Any]:
    names = _field_names(row_type)
    return [row_type(**{name: getattr(r, name) for name in names}) for r in result]


@functools.cache
def _field_names(row_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(row_type))


def _as_row(row: Any) -> dict[str, Any]:
    """A dataclass as the column values to write (shallow: ``dataclasses.asdict`` deep-copies every value)."""
    return {name: getattr(row, name) for name in _field_names(type(row))}


# --- the projector ----------------------------------------------------------------------------------------------------


@dataclass
class ProjectionStats:
    projected: int = 0
    skipped: int = 0


Key = tuple[Any, ...]
Change = tuple[Any, Any]  # (row before or None, row after)

# Sites' zones change rarely (and a change needs ``rcc reports rebuild`` anyway): a short cache spares the ingest
# a round trip per batch. Sites the log names but access.sites does not know are looked up every time.
ZONE_CACHE_TTL_S = 10.0
_zone_cache: dict[str, tuple[float, zoneinfo.ZoneInfo]] = {}


class Projector:
    def __init__(self, session: AsyncConnection, *, cache_zones: bool = True) -> None:
        self.session = session
        self.cache_zones = cache_zones

    async def apply(self, events: Sequence[LoggedEvent]) -> ProjectionStats:
        batch = extract(events)
        stats = ProjectionStats(batch.projected, batch.skipped)
        if not batch.projected:
            return stats
        zones = await self._zones(batch.site_ids())
        deltas = Deltas()
        if batch.visits:
            await self._visits(batch.visits, zones, deltas)
        if batch.hours:
            await self._hours(batch.hours, zones, deltas)
        if batch.shifts:
            await self._shifts(batch.shifts, zones, deltas)
        if batch.gatherings:
            await self._gatherings(batch.gatherings, batch.attendance, zones)
        for counter in batch.counters:
            deltas.site(counter.site_id, local_date(counter.at, zones[counter.site_id]), counter.column, counter.amount)
        await self._write_deltas(deltas)
        return stats

    async def clear(self) -> None:
        names = ", ".join(f"{table.schema}.{table.name}" for table in PROJECTION_TABLES)
        await self.session.execute(text(f"TRUNCATE {names}"))

    async def _zones(self, site_ids: set[str]) -> dict[str, zoneinfo.ZoneInfo]:
        now = time.monotonic()
        zones = {}
        for site_id in site_ids:
            cached = _zone_cache.get(site_id) if self.cache_zones else None
            if cached is not None and cached[0] > now:
                zones[site_id] = cached[1]
        missing = [site_id for site_id in site_ids if site_id not in zones]
        if missing:
            rows = await self.session.execute(
                select(access.sites.c.site_id, access.sites.c.timezone).where(
                    access.sites.c.site_id == any_(bindparam("site_ids", missing, type_=ARRAY(Text)))
                )
            )
            for site_id, timezone in rows:
                zones[site_id] = zone_named(timezone)
                _zone_cache[site_id] = (now + ZONE_CACHE_TTL_S, zones[site_id])
        return {site_id: zones.get(site_id) or zone_named(None) for site_id in site_ids}

    async def _store(self, table: Table, fresh: dict[Key, Any], refold: Callable[[Any], Any]) -> list[Change]:
        """Write rows folded from the batch's facts alone; where a row already existed, fold the facts into it
        instead. New rows cost one statement (insert-if-absent, returning the rows that were there)."""
        if not fresh:
            return []
        row_type = type(next(iter(fresh.values())))
        result = await self.session.execute(_insert_new_statement(table), _arrays(table, list(fresh.values())))
        keys = _KEYS[table.name]
        stored = {tuple(getattr(row, k) for k in keys): row for row in _rows(result, row_type)}
        changes: list[Change] = [(None, row) for key, row in fresh.items() if key not in stored]
        updated = []
        for old in stored.values():
            new = refold(dataclasses.replace(old))
            if new != old:
                updated.append(new)
                changes.append((old, new))
        if updated:
            await self.session.execute(_set_statement(table, "replace"), _arrays(table, updated))
        return changes

    # visits, members, occupancy

    async def _visits(self, facts: list[VisitFact], zones: dict[str, zoneinfo.ZoneInfo], deltas: Deltas) -> None:
        by_visit: dict[uuid.UUID, list[VisitFact]] = defaultdict(list)
        for fact in sorted(facts, key=lambda f: f.key):
            by_visit[fact.visit_id].append(fact)

        def fold(row: VisitRow | None, visit_facts: list[VisitFact]) -> VisitRow:
            for fact in visit_facts:
                if row is None:
                    row = VisitRow.of(fact)
                else:
                    row.merge(fact)
            assert row is not None
            row.place(zones.get(row.site_id) or zone_named(None))
            return row

        changes = await self._store(
            rp_visit,
            {(visit_id, ): fold(None, visit_facts) for visit_id, visit_facts in by_visit.items()},
            lambda old: fold(old, by_visit[old.visit_id]),
        )
        added_days: list[tuple[str, uuid.UUID, date]] = []
        recount_members: set[uuid.UUID] = set()
        peak_hours: dict[str, set[datetime]] = defaultdict(set)
        for old, row in changes:
            old_counted, new_counted = (old.counted() if old else None), row.counted()
            if old_counted != new_counted:
                for counted, sign in ((old_counted, -1), (new_counted, 1)):
                    if counted is not None:
                        site_id, day, columns = counted
                        for column in columns:
                            deltas.site(site_id, day, column, sign)
            old_day, new_day = (old.member_day() if old else None), row.member_day()
            if old_day != new_day:
                if old_day is None:
                    added_days.append(new_day)  # type: ignore[arg-type]
                else:  # a visit that already counted changed member, site or date (not expected): recount
                    recount_members.add(old_day[1])
                    if new_day is not None:
                        recount_members.add(new_day[1])
            old_interval, new_interval = (old.closed_interval() if old else None), row.closed_interval()
            if old_interval != new_interval:
                for interval in (old_interval, new_interval):
                    if interval is not None:
                        peak_hours[interval[0]].update(hours_overlapping(interval[1], interval[2]))
        added_days = [day for day in added_days if day[1] not in recount_members]
        if added_days:
            await self._add_member_days(added_days, deltas)
        if recount_members:
            await self._recount_members(recount_members, deltas)
        if peak_hours:
            await self._refresh_peaks(peak_hours)

    async def _add_member_days(self, days: list[tuple[str, uuid.UUID, date]], deltas: Deltas) -> None:
        """Record that members visited on days: move their first visits earlier (counting new members), give
        newcomers an ordinal, and set their bits in the days' member bitmaps."""
        firsts: dict[tuple[str, uuid.UUID], date] = {}
        visited: dict[tuple[str, uuid.UUID], set[date]] = defaultdict(set)
        for site_id, member_id, day in days:
            for scope in (site_id, NETWORK):
                key = (scope, member_id)
                firsts[key] = min(day, firsts.get(key, day))
                visited[key].add(day)
        scopes, members, dates = zip(*((s, m, d) for (s, m), d in firsts.items()), strict=True)
        result = await self.session.execute(
            _MEMBER_FIRST_STATEMENT, {"scopes": list(scopes), "members": list(members), "firsts": list(dates)}
        )
        masks: dict[tuple[str, date, int], int] = defaultdict(int)
        for scope, member_id, previous, ordinal in result:
            first = firsts[(scope, member_id)]
            if previous is None or first < previous:
                if previous is not None:
                    deltas.scoped(scope, previous, "new_members", -1)
                deltas.scoped(scope, first, "new_members", 1)
            block, position = divmod(ordinal, MEMBER_BLOCK)
            for day in visited[(scope, member_id)]:
                masks[(scope, day, block)] |= 1 << position
        await self.session.execute(
            _set_statement(rp_member_days, "or"),
            _arrays(rp_member_days, [{"scope": s, "local_date": d, "block": b, "members": m}
                                     for (s, d, b), m in masks.items()]),
        )

    async def _recount_members(self, members: set[uuid.UUID], deltas: Deltas) -> None:
        """Make members' first visits and visit-day bits exactly what their visits say (the rare path: a visit that
        already counted changed member, site or date)."""
        member_ids = list(members)
        wanted: dict[tuple[str, uuid.UUID], set[date]] = defaultdict(set)
        visits = (await self.session.execute(
            select(rp_visit.c.site_id, rp_visit.c.member_id, rp_visit.c.local_date).where(
                rp_visit.c.member_id == any_(_uuids("member_ids", member_ids)), rp_visit.c.checked_in
            )
        )).all()
        for site_id, member_id, day in visits:
            for scope in (site_id, NETWORK):
                wanted[(scope, member_id)].add(day)
        if visits:
            await self._add_member_days(visits, deltas)  # every visit day set, first visits moved earlier
        stored = (await self.session.execute(
            select(rp_member_first).where(rp_member_first.c.member_id == any_(_uuids("member_ids", member_ids)))
        )).all()
        for scope, member_id, first_date, ordinal in stored:
            days = wanted.get((scope, member_id), set())
            block, position = divmod(ordinal, MEMBER_BLOCK)
            m = rp_member_days.c
            await self.session.execute(
                update(rp_member_days)
                .where(m.scope == scope, m.block == block, func.get_bit(m.members, position) == 1,
                       not_(m.local_date == any_(bindparam("days", list(days), type_=ARRAY(Date)))))
                .values(members=func.set_bit(m.members, position, 0))
            )
            first = min(days) if days else None
            if first == first_date:
                continue
            deltas.scoped(scope, first_date, "new_members", -1)
            f = rp_member_first.c
            if first is None:
                await self.session.execute(delete(rp_member_first).where(f.scope == scope, f.member_id == member_id))
            else:
                deltas.scoped(scope, first, "new_members", 1)
                await self.session.execute(
                    update(rp_member_first).where(f.scope == scope, f.member_id == member_id).values(first_date=first)
                )

    async def _refresh_peaks(self, hours_by_site: dict[str, set[datetime]]) -> None:
        """Recompute the hourly peaks (per site and for the network) of the hours whose visits changed."""
        every_hour = set().union(*hours_by_site.values())
        intervals = await self._closed_visits_overlapping(every_hour)
        targets: dict[str, set[datetime]] = dict(hours_by_site)
        targets[NETWORK] = every_hour
        by_site: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
        for site_id, checked_in_at, checked_out_at in intervals:
            by_site[site_id].append((checked_in_at, checked_out_at))
        everyone = [interval for site_intervals in by_site.values() for interval in site_intervals]
        rows, empty = [], []
        for scope, hours in targets.items():
            ordered = sorted(hours)
            peaks = open_peaks(everyone if scope == NETWORK else by_site.get(scope, []),
                               [(hour, hour + HOUR) for hour in ordered])
            for hour, peak in zip(ordered, peaks, strict=True):
                if peak:
                    rows.append({"scope": scope, "hour": hour, "peak": peak})
                else:
                    empty.append((scope, hour))
        await self._upsert(rp_peak_hour, rows)
        if empty:
            await self.session.execute(
                _delete_keys(rp_peak_hour, ("scope", Text), ("hour", DateTime(timezone=True)), rows=empty)
            )

    async def _closed_visits_overlapping(self, hours: set[datetime]) -> list[tuple[str, datetime, datetime]]:
        """Closed, checked-in visits that may overlap the hours (a superset: the sweep looks at the hours only)."""
        if not hours:
            return []
        result = await self.session.execute(_closed_visits_statement(contiguous_runs(hours)))
        seen = {row.visit_id: (row.site_id, row.checked_in_at, row.checked_out_at) for row in result}
        return list(seen.values())

    # volunteer hours

    async def _hours(self, facts: list[HoursFact], zones: dict[str, zoneinfo.ZoneInfo], deltas: Deltas) -> None:
        by_record: dict[uuid.UUID, list[HoursFact]] = defaultdict(list)
        for fact in facts:
            by_record[fact.hours_id].append(fact)

        def fold(row: HoursRow | None, record_facts: list[HoursFact]) -> HoursRow:
            for fact in record_facts:  # the latest decision wins
                if row is None or fact.key > (row.fact_time, str(row.fact_id)):
                    row = HoursRow(
                        hours_id=fact.hours_id, site_id=fact.site_id, member_id=fact.member_id,
                        role_id=fact.role_id, shift_date=local_date(fact.shift_starts_at, zones[fact.site_id]),
                        minutes=fact.minutes, approved=fact.approved, fact_time=fact.key[0],
                        fact_id=uuid.UUID(fact.key[1]),
                    )
            assert row is not None
            return row

        changes = await self._store(
            rp_hours,
            {(hours_id,): fold(None, record_facts) for hours_id, record_facts in by_record.items()},
            lambda old: fold(old, by_record[old.hours_id]),
        )
        volunteers: set[uuid.UUID] = set()
        for old, row in changes:
            before, after = (old.approved_minutes() if old else None), row.approved_minutes()
            if before == after:
                continue
            for contribution, sign in ((before, -1), (after, 1)):
                if contribution is not None:
                    site_id, day, role_id, member_id, minutes = contribution
                    deltas.site(site_id, day, "volunteer_minutes", sign * minutes)
                    deltas.role_minutes(site_id, day, role_id, sign * minutes)
                    volunteers.add(member_id)
        if volunteers:
            await self._recount_volunteers(volunteers)

    async def _recount_volunteers(self, members: set[uuid.UUID]) -> None:
        member_ids = list(members)
        wanted: dict[tuple[str, int, uuid.UUID], int] = defaultdict(int)
        approved = await self.session.execute(
            select(rp_hours.c.site_id, rp_hours.c.member_id, rp_hours.c.shift_date).where(
                rp_hours.c.member_id == any_(_uuids("member_ids", member_ids)), rp_hours.c.approved
            )
        )
        for site_id, member_id, day in approved:
            year, bit = day_bit(day)
            for scope in (site_id, NETWORK):
                wanted[(scope, year, member_id)] |= bit
        await self._replace_year_bits(rp_volunteer_year, member_ids, wanted, None, None)

    # shifts worked and missed

    async def _shifts(self, facts: list[ShiftFact], zones: dict[str, zoneinfo.ZoneInfo], deltas: Deltas) -> None:
        by_key: dict[tuple[str, uuid.UUID], list[ShiftFact]] = defaultdict(list)
        for fact in facts:
            by_key[(fact.kind, fact.fact_key)].append(fact)

        def fold(row: ShiftRow | None, shift_facts: list[ShiftFact]) -> ShiftRow:
            for fact in shift_facts:  # the latest fact says when the shift is
                if row is None or fact.key > (row.fact_time, str(row.fact_id)):
                    row = ShiftRow(fact.kind, fact.fact_key, fact.site_id,
                                   local_date(fact.starts_at, zones[fact.site_id]), fact.key[0], uuid.UUID(fact.key[1]))
            assert row is not None
            return row

        changes = await self._store(
            rp_shift_fact,
            {key: fold(None, shift_facts) for key, shift_facts in by_key.items()},
            lambda old: fold(old, by_key[(old.kind, old.key)]),
        )
        for old, row in changes:
            if old is not None:
                deltas.site(*old.counted(), -1)
            deltas.site(*row.counted(), 1)

    # group sessions and sober events

    async def _gatherings(
        self, facts: list[GatheringFact], attendance: list[AttendanceFact], zones: dict[str, zoneinfo.ZoneInfo]
    ) -> None:
        new_attendance: dict[uuid.UUID, int] = defaultdict(int)
        if attendance:
            unique = {fact.attendance_id: fact.gathering_id for fact in attendance}
            inserted = await self.session.execute(
                _insert_absent_statement(rp_attendance),
                _arrays(rp_attendance, [{"attendance_id": a, "gathering_id": g} for a, g in unique.items()]),
            )
            for (gathering_id,) in inserted:
                new_attendance[gathering_id] += 1
        by_gathering: dict[uuid.UUID, list[GatheringFact]] = defaultdict(list)
        for fact in sorted(facts, key=lambda f: f.key):
            by_gathering[fact.gathering_id].append(fact)

        def fold(row: GatheringRow | None, gathering_facts: list[GatheringFact]) -> GatheringRow:
            for fact in gathering_facts:
                if row is None:
                    row = GatheringRow(
                        fact.gathering_id, fact.kind, fact.site_id, fact.starts_at, date.min, fact.key[0],
                        uuid.UUID(fact.key[1]), cancelled=False, attendance=0, registrations=0,
                    )
                elif fact.key > (row.fact_time, str(row.fact_id)):  # the latest fact says when it is
                    row.kind, row.site_id, row.starts_at = fact.kind, fact.site_id, fact.starts_at
                    row.fact_time, row.fact_id = fact.key[0], uuid.UUID(fact.key[1])
                row.cancelled = row.cancelled or fact.cancelled
                row.registrations += fact.registrations
            assert row is not None
            row.attendance += new_attendance.get(row.gathering_id, 0)
            row.local_date = local_date(row.starts_at, zones.get(row.site_id) or zone_named(None))
            return row

        await self._store(
            rp_gathering,
            {(gathering_id,): fold(None, gathering_facts) for gathering_id, gathering_facts in by_gathering.items()},
            lambda old: fold(old, by_gathering[old.gathering_id]),
        )

    # shared plumbing

    async def _replace_year_bits(
        self,
        table: Table,
        member_ids: list[uuid.UUID],
        wanted: dict[tuple[str, int, uuid.UUID], int],
        deltas: Deltas | None,
        daily_column: str | None,
    ) -> None:
        """Make the members' rows of a day-bitmap table exactly ``wanted``; count added and removed days."""
        stored = {
            (r.scope, r.year, r.member_id): r.days
            for r in await self.session.execute(
                select(table.c.scope, table.c.year, table.c.member_id, table.c.days).where(
                    table.c.member_id == any_(_uuids("member_ids", member_ids))
                )
            )
        }
        upserts = []
        removed = []
        for key in stored.keys() | wanted.keys():
            before, after = stored.get(key, 0), wanted.get(key, 0)
            if before == after:
                continue
            if deltas is not None and daily_column is not None:
                scope, year, _ = key
                for day in _days_in(year, before & ~after):
                    deltas.scoped(scope, day, daily_column, -1)
                for day in _days_in(year, after & ~before):
                    deltas.scoped(scope, day, daily_column, 1)
            if after:
                upserts.append({"scope": key[0], "year": key[1], "member_id": key[2], "days": after})
            else:
                removed.append(key)
        await self._upsert(table, upserts)
        if removed:
            await self.session.execute(
                _delete_keys(table, ("scope", Text), ("year", SmallInteger), ("member_id", UUID(as_uuid=True)),
                             rows=removed)
            )

    async def _upsert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert or replace whole rows (one statement, whatever the number of rows)."""
        if rows:
            await self.session.execute(_set_statement(table, "replace"), _arrays(table, rows))

    async def _write_deltas(self, deltas: Deltas) -> None:
        daily_rows = []
        for (scope, day), columns in deltas.daily.items():
            if any(columns.values()):
                daily_rows.append({"scope": scope, "local_date": day, **{c: columns.get(c, 0) for c in DAILY_COUNTERS}})
        if daily_rows:
            await self.session.execute(_set_statement(rp_daily, "add"), _arrays(rp_daily, daily_rows))
        role_rows = [
            {"scope": scope, "local_date": day, "role_id": role_id, "minutes": minutes}
            for (scope, day, role_id), minutes in deltas.role.items()
            if minutes
        ]
        if role_rows:
            await self.session.execute(_set_statement(rp_daily_role, "add"), _arrays(rp_daily_role, role_rows))


# --- set-based statements: a batch's rows travel as one array per column (unnest), one statement per table ---------

_KEYS: dict[str, tuple[str, ...]] = {
    table.name: tuple(column.name for column in table.primary_key.columns) for table in PROJECTION_TABLES
}


def _element_type(column: Any) -> Any:
    # Bitmaps travel as text ('0101...') and are cast in SQL (see Bits).
    return Text() if isinstance(column.type, Bits) else column.type


def _arrays(table: Table, rows: Sequence[Any], prefix: str = "a") -> dict[str, list[Any]]:
    """The bind values of ``_source(table, prefix)``: one list per column. Rows are dicts or row dataclasses."""
    as_dicts = [row if isinstance(row, dict) else _as_row(row) for row in rows]
    params = {}
    for column in table.columns:
        values = [row[column.name] for row in as_dicts]
        if isinstance(column.type, Bits):
            values = [bits_text(value, column.type.length) for value in values]
        params[f"{prefix}_{column.name}"] = values
    return params


def _source(table: Table, prefix: str = "a") -> tuple[Any, list[Any]]:
    """``unnest(:a_col1, :a_col2, ...) AS src(col1, col2, ...)`` and its columns as the table's types."""
    names = [column.name for column in table.columns]
    arrays = [bindparam(f"{prefix}_{column.name}", type_=ARRAY(_element_type(column))) for column in table.columns]
    source = func.unnest(*arrays).table_valued(*names).render_derived(name=f"{prefix}_src")
    columns = [
        cast(source.c[column.name], BIT(column.type.length)) if isinstance(column.type, Bits) else source.c[column.name]
        for column in table.columns
    ]
    return source, columns


def _same_key(table: Table, source: Any) -> Any:
    return and_(*(table.c[name] == source.c[name] for name in _KEYS[table.name]))


def _insert(table: Table, prefix: str = "a") -> Any:
    source, columns = _source(table, prefix)
    return source, insert(table).from_select([c.name for c in table.columns], select(*columns))


@functools.cache
def _set_statement(table: Table, how: str) -> Any:
    """INSERT … SELECT FROM unnest(…) ON CONFLICT: ``replace`` the row, ``add`` the values to the counters, or
    ``or`` the bits into the bitmaps."""
    keys = _KEYS[table.name]
    _, statement = _insert(table)
    others = [c.name for c in table.columns if c.name not in keys]
    if how == "replace":
        updates = {name: statement.excluded[name] for name in others}
    elif how == "add":
        updates = {name: table.c[name] + statement.excluded[name] for name in others}
    else:
        updates = {name: table.c[name].op("|")(statement.excluded[name]) for name in others}
    return statement.on_conflict_do_update(index_elements=list(keys), set_=updates)


@functools.cache
def _insert_new_statement(table: Table) -> Any:
    """Insert the rows whose key is absent; return the stored rows of the keys that were present. The ``stored``
    CTE sees the table as it was before the insert (one snapshot for the whole statement)."""
    source, statement = _insert(table)
    # A key lookup per row of the batch: LIMIT 1 (keys are unique) keeps the planner from flattening the lookup
    # into a hash join that reads the whole table, which grows with the log.
    found = select(table).where(_same_key(table, source)).limit(1).lateral("found")
    stored = select(found).select_from(source).join(found, true()).cte("stored")
    inserted = statement.on_conflict_do_nothing().cte("inserted")
    return select(stored).add_cte(inserted)


@functools.cache
def _insert_absent_statement(table: Table) -> Any:
    """Insert rows whose key is absent; return those inserted."""
    _, statement = _insert(table)
    return statement.on_conflict_do_nothing().returning(*(c for c in table.columns if c.name not in _KEYS[table.name]))


# Move first visits earlier and give newcomers the next ordinals of their scope, in one statement; returns each
# member's previous first visit (null for a newcomer) and ordinal. The CTEs all see the table as it was before.
_MEMBER_FIRST_STATEMENT = text(
    """
    WITH src AS (
        SELECT * FROM unnest(CAST(:scopes AS text[]), CAST(:members AS uuid[]), CAST(:firsts AS date[]))
            AS s(scope, member_id, first_date)
    ), old AS (
        -- A key lookup per member (LIMIT keeps the planner from turning it into a hash join over the whole table,
        -- which grows by a row per member: the ingest would slow down as the network grows).
        SELECT f.scope, f.member_id, f.first_date, f.ordinal
        FROM src CROSS JOIN LATERAL (
            SELECT * FROM audit.rp_member_first f WHERE f.scope = src.scope AND f.member_id = src.member_id LIMIT 1
        ) AS f
    ), top AS (
        SELECT scopes.scope, coalesce(last.ordinal, -1) AS ordinal
        FROM (SELECT DISTINCT scope FROM src) AS scopes LEFT JOIN LATERAL (
            SELECT m.ordinal FROM audit.rp_member_first m WHERE m.scope = scopes.scope ORDER BY m.ordinal DESC LIMIT 1
        ) AS last ON true
    ), fresh AS (
        SELECT src.scope, src.member_id, src.first_date,
               top.ordinal + row_number() OVER (PARTITION BY src.scope ORDER BY src.member_id) AS ordinal
        FROM src JOIN top USING (scope) LEFT JOIN old USING (scope, member_id)
        WHERE old.member_id IS NULL
    ), inserted AS (
        INSERT INTO audit.rp_member_first (scope, member_id, first_date, ordinal)
        SELECT scope, member_id, first_date, ordinal FROM fresh
    ), moved AS (
        UPDATE audit.rp_member_first f SET first_date = earlier.first_date
        FROM (SELECT src.scope, src.member_id, src.first_date FROM src JOIN old USING (scope, member_id)
              WHERE src.first_date < old.first_date) AS earlier
        WHERE f.scope = earlier.scope AND f.member_id = earlier.member_id
    )
    SELECT scope, member_id, first_date AS previous, ordinal FROM old
    UNION ALL
    SELECT scope, member_id, NULL, ordinal FROM fresh
    """
).columns(scope=Text, member_id=UUID(as_uuid=True), previous=Date, ordinal=Integer)


def _closed_visits_statement(runs: list[tuple[datetime, datetime]]) -> Any:
    """Closed, checked-in visits open at some instant of the runs of hours: short ones by check-in, long ones
    (few) by their own index."""
    v = rp_visit.c
    closed = and_(v.checked_in, v.checked_out_at > v.checked_in_at)
    columns = (v.visit_id, v.site_id, v.checked_in_at, v.checked_out_at)
    short = select(*columns).where(overlapping(v.checked_in_at, v.checked_out_at, runs, short=True), closed,
                                   not_(v.spills))
    long = select(*columns).where(v.spills, overlapping(v.checked_in_at, v.checked_out_at, runs, short=False),
                                  closed)
    return union_all(short, long)


def _days_in(year: int, bits: int) -> list[date]:
    start = date(year, 1, 1)
    return [start + timedelta(days=i) for i in range(bits.bit_length()) if bits >> i & 1]


def _uuids(name: str, values: list[uuid.UUID]) -> Any:
    return bindparam(name, values, type_=ARRAY(UUID(as_uuid=True)))


def _keyset(*columns: tuple[str, Any], rows: Sequence[tuple[Any, ...]]) -> Any:
    """A set of composite keys as a table ``k`` (unnest of one array per column)."""
    arrays = [
        bindparam(f"k_{name}", [row[i] for row in rows], type_=ARRAY(type_))
        for i, (name, type_) in enumerate(columns)
    ]
    return func.unnest(*arrays).table_valued(*(name for name, _ in columns)).render_derived(name="k")


def _delete_keys(table: Table, *columns: tuple[str, Any], rows: Sequence[tuple[Any, ...]]) -> Any:
    keys = _keyset(*columns, rows=rows)
    return delete(table).where(*(table.c[name] == keys.c[name] for name, _ in columns))
