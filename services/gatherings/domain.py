"""Gatherings rules that need no I/O: how parties fit, who is promoted from a waitlist, registration windows,
support types, which sessions a group's recurrence produces, and the public iCalendar feed.

A *gathering* is anything with seats: a recovery-group session or a sober event. Both have a capacity (adults)
and child-care seats (children), a registration window and can be cancelled; the rules below are written once for
both."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Generic, Literal, TypeVar

import icalendar

from shared.contracts import SupportType
from shared.contracts.gatherings import EventKind
from shared.errors import Conflict, InvalidInput, NotFound
from shared.members import MemberStanding
from shared.recurrence import Occurrence, Rule, expand

# The kinds of gathering: a recovery group's session, or a sober event ("event" in the tables and the API, as the
# center says it; in code a sober event is ``sober_event``, and an "event" is a domain event).
GatheringType = Literal["session", "event"]

# Which check-in purpose names which kind of gathering in its ``ref``.
PURPOSE_GATHERING: dict[str, GatheringType] = {"recovery_group": "session", "sober_event": "event"}

# SAMHSA's four types of social support (DOMAIN.md): what a sober event of each kind counts as unless the coordinator
# says otherwise. "other" has no sensible default: the coordinator must say.
SOBER_EVENT_SUPPORT_TYPE: dict[str, SupportType | None] = {
    "sober_social": "affiliational",
    "payday": "affiliational",
    "holiday": "affiliational",
    "sports": "affiliational",
    "education": "informational",
    "other": None,
}
# Peer-led support groups are emotional support.
GROUP_SUPPORT_TYPE: SupportType = "emotional"

FOCUS_TAG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def sober_event_support_type(kind: EventKind, given: SupportType | None) -> SupportType | None:
    return given if given is not None else SOBER_EVENT_SUPPORT_TYPE[kind]


# Seats


@dataclass(frozen=True, slots=True)
class Party:
    """Who comes on one registration: adults count against capacity, children against child-care seats."""

    adults: int
    children: int


@dataclass(frozen=True, slots=True)
class Room:
    """Seats still free."""

    adults: int
    children: int

    def fits(self, party: Party) -> bool:
        return party.adults <= self.adults and party.children <= self.children

    def after_seating(self, party: Party) -> Room:
        return Room(self.adults - party.adults, self.children - party.children)


def room_left(capacity: int, child_care_seats: int, taken_adults: int, taken_children: int) -> Room:
    return Room(max(0, capacity - taken_adults), max(0, child_care_seats - taken_children))


def can_ever_fit(party: Party, capacity: int, child_care_seats: int) -> bool:
    """A party bigger than the whole gathering would wait forever: it is refused instead."""
    return party.adults <= capacity and party.children <= child_care_seats


K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class WaitingParty(Generic[K]):
    key: K
    party: Party


def promote(waiting: Iterable[WaitingParty[K]], room: Room) -> list[K]:
    """Walk the waitlist in order and seat every party that fits the room left.

    A party that does not fit is skipped but keeps its place: it stays ahead of everyone behind it, so when more
    room frees up it is considered first. After this, no waiting party fits (the invariant that lets a new
    registration simply be seated when it fits: it would be the one this walk picks)."""
    promoted: list[K] = []
    for entry in waiting:
        if room.adults == 0:
            break  # every party has at least one adult
        if room.fits(entry.party):
            promoted.append(entry.key)
            room = room.after_seating(entry.party)
    return promoted


def capacity_change_problem(
    *,
    capacity: int,
    child_care_seats: int,
    taken_adults: int,
    taken_children: int,
    waiting: Sequence[Party],
) -> str | None:
    """Why a new capacity cannot be accepted (a machine code), or None."""
    if capacity < taken_adults or child_care_seats < taken_children:
        return "capacity_below_confirmed"
    if any(not can_ever_fit(party, capacity, child_care_seats) for party in waiting):
        return "capacity_below_waiting_party"
    return None


# Who may be named, and which gatherings exist


def require_member(standing: MemberStanding, who: str, *, erased_ok: bool = False) -> None:
    """A member named in a request must be one check-in registered at the site concerned (the same answer for a
    made-up id and for another site's member: which sites a member belongs to is not told). An erased member's
    records stay reachable (``erased_ok``: roster marks of what happened), but nothing new is arranged for them,
    as the kiosk no longer lets them in."""
    if standing is None:
        raise InvalidInput(f"No member with this id is registered at this site (the {who}).", code="unknown_member")
    if standing == "erased" and not erased_ok:
        raise InvalidInput(f"This member was erased at check-in (the {who}).", code="member_erased")


# One literal code for each kind, not one built from the kind: a reading of the source finds every code.


def gathering_not_found(gathering_type: str | None) -> NotFound:
    """``gathering_not_found`` where the kind is not known (a registration's gathering)."""
    if gathering_type == "session":
        return NotFound("No such session here.", code="session_not_found")
    if gathering_type == "event":
        return NotFound("No such event here.", code="event_not_found")
    return NotFound("No such gathering here.", code="gathering_not_found")


def gathering_cancelled(gathering_type: str) -> Conflict:
    if gathering_type == "session":
        return Conflict("This session was cancelled.", code="session_cancelled")
    return Conflict("This event was cancelled.", code="event_cancelled")


# Registration windows

WindowState = Literal["open", "not_open_yet", "closed"]


def registration_closes_at(starts_at: datetime, closes_at: datetime | None) -> datetime:
    """Registration closes when the gathering starts unless the coordinator set another time."""
    return closes_at if closes_at is not None else starts_at


def window_state(now: datetime, opens_at: datetime | None, closes_at: datetime) -> WindowState:
    if opens_at is not None and now < opens_at:
        return "not_open_yet"
    if now >= closes_at:
        return "closed"
    return "open"


# Recurrence

# Sessions one group may add within one horizon: a weekly or even daily group stays far below it; a rule that
# produces more is a mistake (FREQ=DAILY;BYHOUR=...) and is refused rather than filling the calendar.
MAX_SESSIONS_PER_HORIZON = 400


class TooManySessions(ValueError):
    pass


def plan_sessions(
    rule: str | Rule,
    *,
    first_local_start: datetime,
    duration: timedelta,
    zone: zoneinfo.ZoneInfo,
    exceptions: Iterable[datetime | date] = (),
    after: datetime | None,
    until: datetime,
    now: datetime,
) -> list[Occurrence]:
    """The sessions a group's rule produces that start after ``after`` (what exists already) and no later than
    ``until`` (the horizon), leaving out those already over at ``now``.

    Occurrences are computed on the site's wall clock (``shared.recurrence``), so a Tuesday 18:00 group stays at
    18:00 local across daylight-saving changes, and each lasts ``duration`` of exact time; exceptions name local
    dates or local start times. CPU work bounded by the horizon: run it off the event loop."""
    over = now - duration  # a session starting no later than this has ended
    planned = expand(
        rule,
        first_local_start=first_local_start,
        duration=duration,
        zone=zone,
        exceptions=exceptions,
        after=over if after is None else max(after, over),
        until=until,
        limit=MAX_SESSIONS_PER_HORIZON + 1,
    )
    if len(planned) > MAX_SESSIONS_PER_HORIZON:
        raise TooManySessions(f"the rule produces more than {MAX_SESSIONS_PER_HORIZON} sessions within the horizon")
    return planned


def parse_exception(text: str) -> datetime | date:
    """Exceptions are stored as ISO text: a local date (the whole day) or a local start time."""
    return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)


# The public calendar


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    uid: str
    summary: str
    starts_at: datetime
    ends_at: datetime
    location: str | None
    categories: tuple[str, ...]
    # SEQUENCE: raised by every change of time, place or status, so calendar programs replace their copy.
    revision: int
    updated_at: datetime
    cancelled: bool


def build_calendar(
    entries: Iterable[CalendarEntry], *, zone: zoneinfo.ZoneInfo, calendar_name: str, now: datetime
) -> bytes:
    """An RFC 5545 feed with the site's time zone (VTIMEZONE and TZID), so calendar programs show local times.

    Only what is on a public notice board: names of groups and sober events, rooms, times. Never seats or people. A
    cancelled gathering stays in the feed under its UID with STATUS:CANCELLED (and its higher SEQUENCE), so a
    calendar that imported it removes it instead of keeping it."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Recovery community center//gatherings//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", calendar_name)
    calendar.add("x-wr-timezone", zone.key)
    stamp = now.astimezone(UTC)
    first: datetime | None = None
    last: datetime | None = None
    for entry in entries:
        vevent = icalendar.Event()
        vevent.add("uid", entry.uid)
        vevent.add("dtstamp", stamp)
        vevent.add("dtstart", entry.starts_at.astimezone(zone))
        vevent.add("dtend", entry.ends_at.astimezone(zone))
        vevent.add("summary", entry.summary)
        vevent.add("sequence", entry.revision)
        vevent.add("last-modified", entry.updated_at.astimezone(UTC))
        vevent.add("status", "CANCELLED" if entry.cancelled else "CONFIRMED")
        if entry.location:
            vevent.add("location", entry.location)
        if entry.categories:
            vevent.add("categories", list(entry.categories))
        calendar.add_component(vevent)
        first = entry.starts_at if first is None else min(first, entry.starts_at)
        last = entry.ends_at if last is None else max(last, entry.ends_at)
    if first is not None and last is not None:
        # The zone's rules only for the span the feed covers, not 1970-2038.
        calendar.add_missing_timezones(
            first_date=(first - timedelta(days=366)).date(), last_date=(last + timedelta(days=366)).date()
        )
    ical: bytes = calendar.to_ical()  # icalendar is untyped
    return ical
