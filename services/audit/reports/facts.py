"""Facts the report projections are made of, read from logged events: one extractor per event type, registered
on the published contract class it reads (``@extracts(VisitorCheckedIn)``, keyed on its ``event_type``).

Each extractor turns an event's data into a fact (a check-in, an hours decision, a gathering fact, a counter) and
adds it to the batch; services/audit/reports/projector.py applies a batch's facts to the tables. Events come
already parsed (:meth:`LoggedEvent.of` a received event, or :meth:`LoggedEvent.from_body` a logged one when the
log is replayed) and each is read once.

The data is read field by field with this module's own readers, not validated as the contract class (nor through
``shared.inbox``): the log holds every entry as it was published, by any version of its publisher, and
``rcc reports rebuild`` replays all of them, so an extractor reads only the fields it needs, with the defaults an
older entry needs (a check-in without ``anonymous`` is anonymous when it names no member), and ignores the rest.
Event data that does not have the expected shape is skipped and logged (by id and type only): the audit log
must record every event, so a projection never fails an append.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.contracts import EventData
from shared.contracts.checkin import VisitorCheckedIn, VisitorCheckedOut
from shared.contracts.gatherings import (
    EventCancelled,
    EventScheduled,
    GatheringAttended,
    GatheringPromotedFromWaitlist,
    GatheringRegistered,
    GatheringRegistrationCancelled,
    GatheringWaitlisted,
    SessionCancelled,
    SessionScheduled,
)
from shared.contracts.volunteering import (
    HoursApproved,
    HoursRejected,
    PromotedFromWaitlist,
    ShiftMissed,
    ShiftWorked,
    StipendAccrued,
    StipendPaid,
    StipendReversed,
)
from shared.events import ReceivedEvent, parse_time
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
    def of(cls, event: ReceivedEvent) -> LoggedEvent:
        """From an event as the consumer received it: its body was parsed once, on arrival."""
        return cls(event.id, event.type, event.site_id, event.time, event.data)


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
# By event type as the log names it (the contract's ``event_type``).
EXTRACTORS: dict[str, Extractor] = {}


def extracts(*contracts: type[EventData]) -> Callable[[Extractor], Extractor]:
    """Register an extractor for the published contracts it reads. Keyed on the class, not on a type string, so a
    renamed type (or a new ``.v2`` class) changes here too instead of silently ending a projection; the extractor
    still reads the data with the tolerant readers above, never with the class."""

    def register(extractor: Extractor) -> Extractor:
        for contract in contracts:
            if contract.event_type in EXTRACTORS:
                raise ValueError(f"two extractors for {contract.event_type}")
            EXTRACTORS[contract.event_type] = extractor
        return extractor

    return register


@extracts(VisitorCheckedIn)
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


@extracts(VisitorCheckedOut)
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


@extracts(HoursApproved, HoursRejected)
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
            approved=event.type == HoursApproved.event_type,
            key=event.key,
        )
    )


@extracts(ShiftWorked)
def shift_worked(event: LoggedEvent, batch: Batch) -> None:
    d = event.data
    batch.shifts.append(
        ShiftFact("worked", _uuid(d["hours_id"]), event.site_id, _instant(d["shift_starts_at"]), event.key)
    )


@extracts(ShiftMissed)
def shift_missed(event: LoggedEvent, batch: Batch) -> None:
    d = event.data
    batch.shifts.append(ShiftFact("missed", _uuid(d["signup_id"]), event.site_id, _instant(d["starts_at"]), event.key))


@extracts(PromotedFromWaitlist)
def volunteer_promoted(event: LoggedEvent, batch: Batch) -> None:
    batch.counters.append(CounterFact(event.site_id, event.time, "waitlist_promotions", 1))


@extracts(StipendAccrued)
def stipend_accrued(event: LoggedEvent, batch: Batch) -> None:
    amount = _int(event.data["amount_cents"], INT63)
    batch.counters.append(CounterFact(event.site_id, event.time, "stipends_accrued_cents", amount))


@extracts(StipendReversed)
def stipend_reversed(event: LoggedEvent, batch: Batch) -> None:
    amount = _int(event.data["amount_cents"], INT63)  # the positive amount being reversed
    batch.counters.append(CounterFact(event.site_id, event.time, "stipends_accrued_cents", -amount))


@extracts(StipendPaid)
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


@extracts(SessionScheduled, EventScheduled, GatheringWaitlisted)
def gathering_scheduled(event: LoggedEvent, batch: Batch) -> None:
    batch.gatherings.append(_gathering(event))


@extracts(SessionCancelled, EventCancelled)
def gathering_cancelled(event: LoggedEvent, batch: Batch) -> None:
    batch.gatherings.append(_gathering(event, cancelled=True))


@extracts(GatheringRegistered)
def gathering_registered(event: LoggedEvent, batch: Batch) -> None:
    batch.gatherings.append(_gathering(event, registrations=1))


@extracts(GatheringPromotedFromWaitlist)
def gathering_promoted(event: LoggedEvent, batch: Batch) -> None:
    batch.gatherings.append(_gathering(event, registrations=1))
    batch.counters.append(CounterFact(event.site_id, event.time, "waitlist_promotions", 1))


@extracts(GatheringRegistrationCancelled)
def gathering_registration_cancelled(event: LoggedEvent, batch: Batch) -> None:
    confirmed = _text(event.data["previous_status"]) == "confirmed"
    batch.gatherings.append(_gathering(event, registrations=-1 if confirmed else 0))


@extracts(GatheringAttended)
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
            log.warning(
                "projection_skipped_event",
                event_id=str(event.event_id),
                event_type=event.type,
                reason=type(exc).__name__,
            )
            continue
        batch.projected += 1
    return batch
