"""The projection rows as the projector merges them in Python, what each row contributes to the additive daily
figures, and the deltas of those figures a batch adds up to."""

from __future__ import annotations

import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from services.audit.reports.facts import VisitFact
from services.audit.reports.rules import LONG_VISIT, NETWORK, PURPOSES, SUPPORT_TYPES, day_start, local_date
from shared.db import field_names

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
            visit_id=fact.visit_id,
            site_id=fact.site_id,
            member_id=fact.member_id,
            anonymous=fact.anonymous,
            purpose=fact.purpose,
            support_type=None,
            checked_in=False,
            checked_in_at=fact.checked_in_at,
            checked_out_at=None,
            local_date=date.min,
            spills=False,
            in_fact_time=None,
            in_fact_id=None,
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


ProjectedRow = TypeVar("ProjectedRow", VisitRow, HoursRow, ShiftRow, GatheringRow)


def rows_of(result: Iterable[Any], row_type: type[ProjectedRow]) -> list[ProjectedRow]:
    """Rows of a result (any object with the row type's fields as attributes) as the row type."""
    names = field_names(row_type)
    return [row_type(**{name: getattr(r, name) for name in names}) for r in result]
