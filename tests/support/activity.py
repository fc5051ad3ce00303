"""Realistic activity at a few recovery community centers, as CloudEvents, with the true report figures.

``generate(seed)`` makes about two months of life at three centers in different time zones (Chicago, London,
Kolkata: one DST change in March each for the first two, a half-hour offset for the third): members and anonymous
walk-ins checking in and out (some never checking out, some staying past midnight, some leaving the moment they
arrive, check-outs and check-ins at the same instant), volunteer shifts worked and missed, hours approved,
rejected, corrected and approved again, waitlist promotions, recovery groups with registrations, waitlists,
cancellations, walk-ins and anonymous attendance, a moved and cancelled sessions, sober events (one cancelled),
and stipend ledger events (accrued, reversed, paid) in the shapes the stipend ledger will publish.

The events are built with the contract classes (``shared.contracts``) where they exist and the envelope of
``shared.events``. The truth (``Activity.summary`` / ``Activity.daily``) is computed here, in plain Python from
the generator's own records, following the definitions in services/audit/reports/__init__.py word for word; it never
calls the report code.
"""

from __future__ import annotations

import random
import uuid
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel

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
    SignedUp,
)
from shared.events import envelope

PURPOSE_SUPPORT = {
    "drop_in": "affiliational",
    "peer_mentoring": "emotional",
    "recovery_group": "emotional",
    "sober_event": "affiliational",
    "resource_connecting": "instrumental",
    "education": "informational",
    "volunteer_shift": None,
}
PURPOSE_WEIGHTS = {
    "drop_in": 40,
    "peer_mentoring": 15,
    "recovery_group": 12,
    "sober_event": 5,
    "resource_connecting": 10,
    "education": 8,
    "volunteer_shift": 10,
}
SUPPORT_TYPES = ("emotional", "informational", "instrumental", "affiliational")

FIRST_DAY = date(2026, 2, 1)
LAST_DAY = date(2026, 4, 4)


@dataclass(frozen=True)
class SiteSpec:
    site_id: str
    timezone: str
    opens: time
    closes: time
    night_owls: bool  # some visits run past midnight

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def at(self, day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, tzinfo=self.zone).astimezone(UTC)


@dataclass
class VisitRecord:
    visit_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID | None
    purpose: str
    checked_in_at: datetime
    checked_out_at: datetime | None


@dataclass
class HoursRecord:
    hours_id: uuid.UUID
    site_id: str
    member_id: uuid.UUID
    role_id: str
    shift_starts_at: datetime
    # (event time, event id, approved, minutes) of every approval or rejection
    decisions: list[tuple[datetime, str, bool, int]] = field(default_factory=list)


@dataclass
class GatheringRecord:
    gathering_id: uuid.UUID
    kind: str  # session | event
    site_id: str
    # (event time, event id, starts_at) of every fact that names the gathering
    facts: list[tuple[datetime, str, datetime]] = field(default_factory=list)
    cancelled: bool = False
    attendance_ids: set[uuid.UUID] = field(default_factory=set)
    registered: int = 0
    promoted: int = 0
    cancelled_confirmed: int = 0


@dataclass
class Activity:
    sites: list[SiteSpec]
    events: list[dict[str, Any]] = field(default_factory=list)
    visits: list[VisitRecord] = field(default_factory=list)
    hours: dict[uuid.UUID, HoursRecord] = field(default_factory=dict)
    worked: dict[uuid.UUID, tuple[str, datetime]] = field(default_factory=dict)  # hours_id -> (site, shift start)
    missed: dict[uuid.UUID, tuple[str, datetime]] = field(default_factory=dict)  # signup_id -> (site, start)
    promotions: list[tuple[str, datetime]] = field(default_factory=list)  # (site, event time)
    stipends: list[tuple[str, datetime, str, int]] = field(default_factory=list)  # (site, time, kind, cents)
    gatherings: dict[uuid.UUID, GatheringRecord] = field(default_factory=dict)

    # --- truth ---------------------------------------------------------------------------------------------

    def zone(self, site_id: str) -> zoneinfo.ZoneInfo:
        return next(s.zone for s in self.sites if s.site_id == site_id)

    def local(self, site_id: str, instant: datetime) -> date:
        return instant.astimezone(self.zone(site_id)).date()

    def _covered(self, site: str) -> set[str]:
        return {s.site_id for s in self.sites} if site == "all" else {site}

    def summary(self, site: str, first: date, last: date) -> dict[str, Any]:
        sites = self._covered(site)

        def in_range(site_id: str, instant: datetime) -> bool:
            return site_id in sites and first <= self.local(site_id, instant) <= last

        visits = [v for v in self.visits if in_range(v.site_id, v.checked_in_at)]
        members = {v.member_id for v in visits if v.member_id is not None}
        first_visit: dict[uuid.UUID, date] = {}
        for v in self.visits:
            if v.member_id is not None and v.site_id in sites:
                day = self.local(v.site_id, v.checked_in_at)
                first_visit[v.member_id] = min(day, first_visit.get(v.member_id, day))
        new = {m for m in members if first <= first_visit[m] <= last}

        approved_minutes = 0
        by_role: dict[str, int] = defaultdict(int)
        volunteers = set()
        for record in self.hours.values():
            if not record.decisions or not in_range(record.site_id, record.shift_starts_at):
                continue
            _, _, approved, minutes = max(record.decisions)
            if approved:
                approved_minutes += minutes
                by_role[record.role_id] += minutes
                volunteers.add(record.member_id)

        accrued = sum(
            c if k == "accrued" else -c
            for s, t, k, c in self.stipends
            if k in ("accrued", "reversed") and in_range(s, t)
        )
        paid = sum(c for s, t, k, c in self.stipends if k == "paid" and in_range(s, t))

        held = {"session": 0, "event": 0}
        attendance = {"session": 0, "event": 0}
        registrations = 0
        for g in self.gatherings.values():
            _, _, starts_at = max(g.facts)
            if not in_range(g.site_id, starts_at):
                continue
            if g.attendance_ids and not g.cancelled:
                held[g.kind] += 1
            attendance[g.kind] += len(g.attendance_ids)
            if g.kind == "event" and not g.cancelled:
                registrations += g.registered + g.promoted - g.cancelled_confirmed

        return {
            "unduplicated_members": len(members),
            "visits": len(visits),
            "anonymous_visits": sum(1 for v in visits if v.member_id is None),
            "new_members": len(new),
            "returning_members": len(members) - len(new),
            "visits_by_purpose": {p: sum(1 for v in visits if v.purpose == p) for p in PURPOSE_SUPPORT},
            "visits_by_support_type": {
                t: sum(1 for v in visits if PURPOSE_SUPPORT[v.purpose] == t) for t in SUPPORT_TYPES
            },
            "peak_occupancy": peak([(v.checked_in_at, v.checked_out_at) for v in visits]),
            "volunteer_hours_approved": hours(approved_minutes),
            "volunteer_hours_by_role": {role: hours(m) for role, m in sorted(by_role.items()) if m > 0},
            "volunteers_active": len(volunteers),
            "shifts_filled": sum(1 for s, start in self.worked.values() if in_range(s, start)),
            "shifts_missed": sum(1 for s, start in self.missed.values() if in_range(s, start)),
            "stipends_accrued_cents": accrued,
            "stipends_paid_cents": paid,
            "group_sessions_held": held["session"],
            "group_attendance": attendance["session"],
            "events_held": held["event"],
            "event_registrations": registrations,
            "event_attendance": attendance["event"],
            "waitlist_promotions": sum(1 for s, t in self.promotions if in_range(s, t)),
        }

    def daily(self, site: str, first: date, last: date) -> list[dict[str, Any]]:
        rows = []
        day = first
        while day <= last:
            one = self.summary(site, day, day)
            rows.append(
                {
                    "date": day.isoformat(),
                    "visits": one["visits"],
                    "unduplicated_members": one["unduplicated_members"],
                    "new_members": one["new_members"],
                    "volunteer_hours": one["volunteer_hours_approved"],
                    "attendance": one["group_attendance"] + one["event_attendance"],
                }
            )
            day += timedelta(days=1)
        return rows


def hours(minutes: int) -> str:
    return str((Decimal(minutes) / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def peak(intervals: list[tuple[datetime, datetime | None]]) -> int:
    """Most visits open at one instant: open on [in, out); at one instant check-outs go before check-ins."""
    changes = []
    for checked_in_at, checked_out_at in intervals:
        if checked_out_at is not None and checked_out_at <= checked_in_at:
            continue
        changes.append((checked_in_at, 1))
        if checked_out_at is not None:
            changes.append((checked_out_at, -1))
    best = open_now = 0
    for _, change in sorted(changes):  # (t, -1) sorts before (t, +1)
        open_now += change
        best = max(best, open_now)
    return best


def suppress(value: int | None, min_cell: int | None) -> int | None:
    if value is None or min_cell is None:
        return value
    return None if 0 < value < min_cell else value


# --- the generator ----------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, seed: int, prefix: str) -> None:
        self.rng = random.Random(seed)
        self.sequence: dict[str, int] = defaultdict(int)
        self.activity = Activity(
            sites=[
                SiteSpec(f"{prefix}-chi", "America/Chicago", time(9), time(21), night_owls=False),
                SiteSpec(f"{prefix}-lon", "Europe/London", time(10), time(23, 30), night_owls=True),
                SiteSpec(f"{prefix}-ccu", "Asia/Kolkata", time(8), time(20), night_owls=False),
            ]
        )

    def new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def emit(
        self,
        service: str,
        data: BaseModel | tuple[str, dict[str, Any]],
        *,
        site: str,
        at: datetime,
        subject: uuid.UUID,
        event_id: uuid.UUID | None = None,
    ) -> str:
        if isinstance(data, BaseModel):
            type_, payload = data.event_type, data.model_dump(mode="json")  # type: ignore[attr-defined]
            classification = data.classification  # type: ignore[attr-defined]
        else:
            (type_, payload), classification = data, "sensitive"
        self.sequence[service] += 1
        event_id = event_id or self.new_id()
        self.activity.events.append(
            envelope(
                event_id=event_id,
                source=f"/rcc/{service}",
                type_=type_,
                time=at,
                subject=str(subject),
                site_id=site,
                data=payload,
                dataschema=f"/rcc/schemas/{type_}/v1",
                classification=classification,
                sequence=self.sequence[service],
                actor_id=f"token:{uuid.UUID(int=self.sequence[service])}",
            )
        )
        return str(event_id)

    # visits

    def visits(self) -> None:
        everyone: dict[str, list[uuid.UUID]] = {
            s.site_id: [self.new_id() for _ in range(45)] for s in self.activity.sites
        }
        travellers = [self.new_id() for _ in range(8)]  # members who use two centers
        for index, member in enumerate(travellers):
            sites = self.activity.sites
            everyone[sites[index % 3].site_id].append(member)
            everyone[sites[(index + 1) % 3].site_id].append(member)
        # Newcomers join all along, so every range has new as well as returning members.
        joined: dict[uuid.UUID, date] = {}
        for site in self.activity.sites:
            for _ in range(24):
                newcomer = self.new_id()
                everyone[site.site_id].append(newcomer)
                joined[newcomer] = FIRST_DAY + timedelta(days=self.rng.randrange((LAST_DAY - FIRST_DAY).days))
        self.members = everyone
        busy_until: dict[uuid.UUID, datetime] = {}
        day = FIRST_DAY
        while day <= LAST_DAY:
            for site in self.activity.sites:
                present = [m for m in everyone[site.site_id] if joined.get(m, FIRST_DAY) <= day]
                self._site_day(site, day, present, busy_until)
            day += timedelta(days=1)

    def _site_day(
        self, site: SiteSpec, day: date, members: list[uuid.UUID], busy_until: dict[uuid.UUID, datetime]
    ) -> None:
        rng = self.rng
        opens, closes = site.at(day, site.opens), site.at(day, site.closes)
        minutes_open = int((closes - opens).total_seconds() // 60)
        quiet = day < date(2026, 2, 20)
        count = rng.randint(3, 8) if quiet else rng.randint(12, 26)
        outs_today: list[datetime] = []
        for _ in range(count):
            anonymous = rng.random() < 0.25
            member = None if anonymous else rng.choice(members)
            if outs_today and rng.random() < 0.12:
                checked_in_at = rng.choice(outs_today)  # someone arrives the minute another leaves
            else:
                checked_in_at = opens + timedelta(minutes=rng.randrange(0, minutes_open - 10))
            if member is not None and busy_until.get(member, datetime.min.replace(tzinfo=UTC)) >= checked_in_at:
                continue
            purpose = rng.choices(list(PURPOSE_WEIGHTS), weights=list(PURPOSE_WEIGHTS.values()))[0]
            roll = rng.random()
            if anonymous and roll < 0.04:
                checked_out_at = None  # never checked out
            elif roll < 0.06:
                checked_out_at = checked_in_at  # in and out at the same instant
            elif site.night_owls and checked_in_at.astimezone(site.zone).time() >= time(21) and roll < 0.6:
                checked_out_at = checked_in_at + timedelta(minutes=rng.randint(60, 200))  # past midnight
            else:
                checked_out_at = min(checked_in_at + timedelta(minutes=rng.randint(5, 240)), closes)
            self._visit(site, member, purpose, checked_in_at, checked_out_at)
            if member is not None:
                busy_until[member] = checked_out_at or datetime.max.replace(tzinfo=UTC)
            if checked_out_at is not None:
                outs_today.append(checked_out_at)

    def _visit(
        self,
        site: SiteSpec,
        member: uuid.UUID | None,
        purpose: str,
        checked_in_at: datetime,
        checked_out_at: datetime | None,
    ) -> None:
        visit_id = self.new_id()
        self.activity.visits.append(VisitRecord(visit_id, site.site_id, member, purpose, checked_in_at, checked_out_at))
        self.emit(
            "checkin",
            VisitorCheckedIn(
                visit_id=visit_id,
                member_id=member,
                anonymous=member is None,
                purpose=purpose,
                support_type=PURPOSE_SUPPORT[purpose],
                ref=None,
                checked_in_at=checked_in_at,
            ),
            site=site.site_id,
            at=checked_in_at,
            subject=visit_id,
        )
        if checked_out_at is not None:
            closes = datetime.combine(checked_in_at.astimezone(site.zone).date(), site.closes, tzinfo=site.zone)
            self.emit(
                "checkin",
                VisitorCheckedOut(
                    visit_id=visit_id,
                    member_id=member,
                    purpose=purpose,
                    ref=None,
                    checked_in_at=checked_in_at,
                    checked_out_at=checked_out_at,
                    minutes=int((checked_out_at - checked_in_at).total_seconds() // 60),
                    closed_by="auto_close" if checked_out_at == closes else "kiosk",
                ),
                site=site.site_id,
                at=checked_out_at,
                subject=visit_id,
            )

    # volunteering

    def volunteering(self) -> None:
        rng = self.rng
        for site in self.activity.sites:
            volunteers = rng.sample(self.members[site.site_id], 8)
            day = FIRST_DAY
            while day <= LAST_DAY:
                shifts = [("front_desk", site.opens, 4), ("peer_mentor", time(14), 3)]
                if site.timezone == "Asia/Kolkata" and day.weekday() == 5:
                    shifts.append(("phone_line", time(0, 30), 2))  # after local midnight: the previous UTC day
                for role_id, starts, length in shifts:
                    starts_at = site.at(day, starts)
                    self._shift(
                        site,
                        role_id,
                        starts_at,
                        starts_at + timedelta(hours=length),
                        rng.sample(volunteers, rng.randint(1, 2)),
                    )
                day += timedelta(days=1)

    def _shift(
        self, site: SiteSpec, role_id: str, starts_at: datetime, ends_at: datetime, volunteers: list[uuid.UUID]
    ) -> None:
        rng = self.rng
        shift_id = self.new_id()
        for member in volunteers:
            signup_id = self.new_id()
            signed = starts_at - timedelta(days=rng.randint(1, 6), minutes=rng.randint(0, 600))
            self.emit(
                "volunteering",
                SignedUp(
                    signup_id=signup_id,
                    shift_id=shift_id,
                    member_id=member,
                    role_id=role_id,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    signed_up_by="self",
                ),
                site=site.site_id,
                at=signed,
                subject=signup_id,
            )
            if rng.random() < 0.08:
                promoted = signed + timedelta(hours=rng.randint(1, 20))
                self.activity.promotions.append((site.site_id, promoted))
                self.emit(
                    "volunteering",
                    PromotedFromWaitlist(
                        signup_id=signup_id,
                        shift_id=shift_id,
                        member_id=member,
                        role_id=role_id,
                        starts_at=starts_at,
                        ends_at=ends_at,
                        trigger="seat_freed",
                    ),
                    site=site.site_id,
                    at=promoted,
                    subject=signup_id,
                )
            if rng.random() < 0.14:
                self.activity.missed[signup_id] = (site.site_id, starts_at)
                self.emit(
                    "volunteering",
                    ShiftMissed(
                        signup_id=signup_id,
                        shift_id=shift_id,
                        member_id=member,
                        role_id=role_id,
                        starts_at=starts_at,
                        ends_at=ends_at,
                        follow_up=True,
                    ),
                    site=site.site_id,
                    at=ends_at,
                    subject=signup_id,
                )
                continue
            self._hours(site, shift_id, member, role_id, starts_at, ends_at)

    def _hours(
        self,
        site: SiteSpec,
        shift_id: uuid.UUID,
        member: uuid.UUID,
        role_id: str,
        starts_at: datetime,
        ends_at: datetime,
    ) -> None:
        rng = self.rng
        hours_id = self.new_id()
        record = HoursRecord(hours_id, site.site_id, member, role_id, starts_at)
        self.activity.hours[hours_id] = record
        self.activity.worked[hours_id] = (site.site_id, starts_at)
        minutes = int((ends_at - starts_at).total_seconds() // 60) + rng.randint(-20, 15)

        def worked(at: datetime, minutes: int, entry: str, previous: int | None) -> None:
            self.emit(
                "volunteering",
                ShiftWorked(
                    hours_id=hours_id,
                    shift_id=shift_id,
                    member_id=member,
                    role_id=role_id,
                    shift_starts_at=starts_at,
                    minutes=minutes,
                    entry=entry,
                    previous_minutes=previous,
                    visit_id=None,
                    signed_up=True,
                    review_codes=[],
                ),
                site=site.site_id,
                at=at,
                subject=hours_id,
            )

        def decide(at: datetime, approved: bool, minutes: int) -> None:
            common = {
                "hours_id": hours_id,
                "shift_id": shift_id,
                "member_id": member,
                "role_id": role_id,
                "shift_starts_at": starts_at,
                "minutes": minutes,
            }
            data = HoursApproved(**common, approved_at=at) if approved else HoursRejected(**common, rejected_at=at)
            event_id = self.emit("volunteering", data, site=site.site_id, at=at, subject=hours_id)
            record.decisions.append((at, event_id, approved, minutes))

        worked(ends_at, minutes, "check_in", None)
        later = ends_at + timedelta(days=rng.randint(0, 3), hours=rng.randint(1, 8))
        roll = rng.random()
        if roll < 0.60:
            decide(later, True, minutes)
        elif roll < 0.70:
            decide(later, False, minutes)
        elif roll < 0.82:  # approved, corrected, approved again with the corrected minutes
            decide(later, True, minutes)
            corrected = minutes + rng.choice([-30, -15, 15, 45])
            worked(later + timedelta(hours=5), corrected, "corrected", minutes)
            decide(later + timedelta(days=1), True, corrected)
        elif roll < 0.90:  # approved, then rejected after all
            decide(later, True, minutes)
            decide(later + timedelta(days=2), False, minutes)
        elif roll < 0.96:  # rejected, then approved on appeal
            decide(later, False, minutes)
            decide(later + timedelta(days=1, hours=3), True, minutes)
        # else: still pending

    def stipends(self) -> None:
        rng = self.rng
        for site in self.activity.sites:
            volunteers = rng.sample(self.members[site.site_id], 3)
            entries = []
            for period, closed_on in (("2026-02", date(2026, 2, 28)), ("2026-03", date(2026, 3, 31))):
                for member in volunteers:
                    entry_id = self.new_id()
                    amount = rng.randint(20, 120) * 100
                    at = site.at(closed_on, time(23, 30))  # late local evening: the next day in UTC for some
                    entries.append((entry_id, member, period, amount))
                    self._stipend(
                        site,
                        "accrued",
                        at,
                        {
                            "entry_id": str(entry_id),
                            "member_id": str(member),
                            "period": period,
                            "amount_cents": amount,
                            "over_cap_cents": 0,
                            "minutes": rng.randint(300, 1200),
                            "rate_cents": 1000,
                        },
                        amount,
                        entry_id,
                    )
            entry_id, member, period, amount = entries[0]
            reversal = self.new_id()
            self._stipend(
                site,
                "reversed",
                site.at(date(2026, 3, 2), time(0, 15)),
                {
                    "entry_id": str(reversal),
                    "reverses_entry_id": str(entry_id),
                    "member_id": str(member),
                    "period": period,
                    "amount_cents": amount,
                },
                amount,
                reversal,
            )
            for _, member, period, amount in entries[1:]:
                payout = self.new_id()
                paid_at = site.at(date(2026, 3, 1) if period == "2026-02" else date(2026, 4, 1), time(0, 5))
                self._stipend(
                    site,
                    "paid",
                    paid_at,
                    {
                        "payout_id": str(payout),
                        "member_id": str(member),
                        "period": period,
                        "amount_cents": amount,
                        "paid_at": paid_at.isoformat(),
                    },
                    amount,
                    payout,
                )

    def _stipend(
        self, site: SiteSpec, kind: str, at: datetime, data: dict[str, Any], cents: int, subject: uuid.UUID
    ) -> None:
        self.activity.stipends.append((site.site_id, at, kind, cents))
        self.emit("volunteering", (f"volunteering.stipend_{kind}", data), site=site.site_id, at=at, subject=subject)

    # gatherings

    def gatherings(self) -> None:
        for site in self.activity.sites:
            members = self.members[site.site_id]
            for weekday, clock, support in ((1, time(18), "emotional"), (3, time(12), "informational")):
                group_id = self.new_id()
                day = FIRST_DAY + timedelta(days=(weekday - FIRST_DAY.weekday()) % 7)
                sessions = []
                while day <= date(2026, 3, 31):
                    sessions.append(day)
                    day += timedelta(days=7)
                for index, session_day in enumerate(sessions):
                    special = None
                    if support == "emotional" and index == len(sessions) - 1:
                        special = "moved"  # the last March session moves into April
                    elif support == "emotional" and index == 3:
                        special = "cancelled"
                    elif support == "informational" and index == 5:
                        special = "cancelled_after"
                    self._gathering(
                        site, "session", site.at(session_day, clock), support, members, special, group_id=group_id
                    )
            for event_day, clock, special in (
                (date(2026, 3, 13), time(19), None),
                (date(2026, 3, 28), time(14), None),
                (date(2026, 4, 2), time(18), "cancelled"),
            ):
                self._gathering(site, "event", site.at(event_day, clock), "affiliational", members, special)

    def _gathering(
        self,
        site: SiteSpec,
        kind: str,
        starts_at: datetime,
        support: str,
        members: list[uuid.UUID],
        special: str | None,
        group_id: uuid.UUID | None = None,
    ) -> None:
        rng = self.rng
        gathering_id = self.new_id()
        record = GatheringRecord(gathering_id, kind, site.site_id)
        self.activity.gatherings[gathering_id] = record
        ids = {
            "session_id": gathering_id if kind == "session" else None,
            "group_id": group_id if kind == "session" else None,
            "event_id": gathering_id if kind == "event" else None,
        }
        capacity = 6 if kind == "session" else 10

        def note(event_id: str, at: datetime, when: datetime) -> None:
            record.facts.append((at, event_id, when))

        scheduled_at = starts_at - timedelta(days=14)
        if kind == "session":
            data: BaseModel = SessionScheduled(
                session_id=gathering_id,
                group_id=group_id,
                support_type=support,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(minutes=90),
                capacity=capacity,
                child_care_seats=0,
                change="scheduled",
                previous_starts_at=None,
            )
        else:
            data = EventScheduled(
                event_id=gathering_id,
                kind="payday",
                support_type=support,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=3),
                capacity=capacity,
                child_care_seats=4,
                family_friendly=True,
                registration_opens_at=None,
                registration_closes_at=starts_at,
                change="scheduled",
            )
        note(
            self.emit("gatherings", data, site=site.site_id, at=scheduled_at, subject=gathering_id),
            scheduled_at,
            starts_at,
        )

        people = rng.sample(members, rng.randint(4, 11))
        confirmed: list[tuple[uuid.UUID, uuid.UUID]] = []
        waiting: list[tuple[uuid.UUID, uuid.UUID, datetime]] = []
        at = scheduled_at
        for member in people:
            at += timedelta(hours=rng.randint(2, 20))
            registration_id = self.new_id()
            seat = dict(
                registration_id=registration_id,
                member_id=member,
                support_type=support,
                starts_at=starts_at,
                adults=1,
                children=rng.choice([0, 0, 1]),
                **ids,
            )
            if len(confirmed) < capacity:
                confirmed.append((member, registration_id))
                record.registered += 1
                data = GatheringRegistered(**seat, registered_by="volunteer", registered_at=at)
            else:
                waiting.append((member, registration_id, at))
                data = GatheringWaitlisted(**seat, registered_by="kiosk", registered_at=at, position=len(waiting))
            note(self.emit("gatherings", data, site=site.site_id, at=at, subject=registration_id), at, starts_at)
        for _ in range(rng.randint(0, 2)):  # cancellations, each freeing a seat for the next in line
            if not confirmed:
                break
            member, registration_id = confirmed.pop(rng.randrange(len(confirmed)))
            at += timedelta(hours=3)
            record.cancelled_confirmed += 1
            seat = dict(
                registration_id=registration_id,
                member_id=member,
                support_type=support,
                starts_at=starts_at,
                adults=1,
                children=0,
                **ids,
            )
            note(
                self.emit(
                    "gatherings",
                    GatheringRegistrationCancelled(
                        **seat,
                        previous_status="confirmed",
                        cancelled_at=at,
                        cancelled_by="volunteer",
                    ),
                    site=site.site_id,
                    at=at,
                    subject=registration_id,
                ),
                at,
                starts_at,
            )
            if waiting:
                member, registration_id, since = waiting.pop(0)
                confirmed.append((member, registration_id))
                record.promoted += 1
                self.activity.promotions.append((site.site_id, at))
                seat = dict(
                    registration_id=registration_id,
                    member_id=member,
                    support_type=support,
                    starts_at=starts_at,
                    adults=1,
                    children=0,
                    **ids,
                )
                note(
                    self.emit(
                        "gatherings",
                        GatheringPromotedFromWaitlist(
                            **seat,
                            waiting_since=since,
                            promoted_at=at,
                            reason="cancellation",
                        ),
                        site=site.site_id,
                        at=at,
                        subject=registration_id,
                    ),
                    at,
                    starts_at,
                )
        for member, registration_id, _ in waiting[:1]:  # someone waiting gives up
            at += timedelta(hours=1)
            seat = dict(
                registration_id=registration_id,
                member_id=member,
                support_type=support,
                starts_at=starts_at,
                adults=1,
                children=0,
                **ids,
            )
            note(
                self.emit(
                    "gatherings",
                    GatheringRegistrationCancelled(
                        **seat,
                        previous_status="waitlisted",
                        cancelled_at=at,
                        cancelled_by="kiosk",
                    ),
                    site=site.site_id,
                    at=at,
                    subject=registration_id,
                ),
                at,
                starts_at,
            )

        if special == "moved":
            moved_to = starts_at + timedelta(days=1, hours=1)
            at = starts_at - timedelta(days=2)
            note(
                self.emit(
                    "gatherings",
                    SessionScheduled(
                        session_id=gathering_id,
                        group_id=group_id,
                        support_type=support,
                        starts_at=moved_to,
                        ends_at=moved_to + timedelta(minutes=90),
                        capacity=capacity,
                        child_care_seats=0,
                        change="moved",
                        previous_starts_at=starts_at,
                    ),
                    site=site.site_id,
                    at=at,
                    subject=gathering_id,
                ),
                at,
                moved_to,
            )
            starts_at = moved_to
        if special == "cancelled":
            self._cancel(site, record, kind, support, starts_at, starts_at - timedelta(days=1), confirmed, ids)
            return

        attended = [(member, True, registration_id) for member, registration_id in confirmed if rng.random() < 0.8]
        walk_ins = rng.sample([m for m in members if m not in people], rng.randint(0, 3))
        attended += [(member, False, None) for member in walk_ins]
        attended += [(None, False, None)] * rng.randint(0, 2)
        for member, registered, registration_id in attended:
            attendance_id = self.new_id()
            at = starts_at + timedelta(minutes=rng.randint(-10, 20))
            data = GatheringAttended(
                attendance_id=attendance_id,
                support_type=support,
                starts_at=starts_at,
                member_id=member,
                anonymous=member is None,
                visit_id=None,
                registered=registered,
                registration_id=registration_id,
                adults=1,
                children=0,
                source="roster" if registered else "checkin",
                attended_at=at,
                **ids,
            )
            note(self.emit("gatherings", data, site=site.site_id, at=at, subject=attendance_id), at, starts_at)
            record.attendance_ids.add(attendance_id)
            if rng.random() < 0.05:  # the same attendance told twice (another event id): still one
                note(self.emit("gatherings", data, site=site.site_id, at=at, subject=attendance_id), at, starts_at)
        if special == "cancelled_after":
            self._cancel(site, record, kind, support, starts_at, starts_at + timedelta(hours=3), confirmed, ids)

    def _cancel(
        self,
        site: SiteSpec,
        record: GatheringRecord,
        kind: str,
        support: str,
        starts_at: datetime,
        at: datetime,
        confirmed: list[tuple[uuid.UUID, uuid.UUID]],
        ids: dict[str, Any],
    ) -> None:
        record.cancelled = True
        common = {
            "support_type": support,
            "starts_at": starts_at,
            "cancelled_at": at,
            "confirmed_member_ids": [member for member, _ in confirmed],
            "waitlisted_member_ids": [],
        }
        if kind == "session":
            data: BaseModel = SessionCancelled(session_id=ids["session_id"], group_id=ids["group_id"], **common)
        else:
            data = EventCancelled(event_id=ids["event_id"], kind="payday", **common)
        event_id = self.emit("gatherings", data, site=site.site_id, at=at, subject=record.gathering_id)
        record.facts.append((at, event_id, starts_at))


def generate(seed: int = 2026, prefix: str | None = None) -> Activity:
    builder = _Builder(seed, prefix or f"rpt{uuid.uuid4().hex[:6]}")
    builder.visits()
    builder.volunteering()
    builder.stipends()
    builder.gatherings()
    return builder.activity
