"""Keeping the report projections (``rp_*``) in step with the audit log.

The audit append handler (services/audit/handlers.py) calls ``Projector.apply(events)`` in its own transaction,
right after appending, with exactly the events that transaction appended, so a redelivered event (already in the
log) never reaches it twice. Appends hold the chain's advisory lock, and so does ``rcc reports rebuild``: nothing
else writes these tables, which is what makes the read-merge-write below safe.

The events' facts (services/audit/reports/facts.py) are applied per table, set-based: one SELECT of the rows the
batch touches, a merge in Python (services/audit/reports/rows.py), one upsert of the rows that changed, and the
changes' effect on the additive daily figures (old contribution out, new contribution in) as one upsert of deltas
(services/audit/reports/statements.py). Merges depend only on the facts, never on arrival order: a check-out may
come before its check-in, a correction before the approval it corrects, and the rows converge to the same values
(where two facts disagree, the later event time wins, ties broken by event id).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, any_, bindparam, delete, func, not_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Date, DateTime, SmallInteger, Text

from services.audit.reports.facts import (
    AttendanceFact,
    GatheringFact,
    HoursFact,
    LoggedEvent,
    ShiftFact,
    VisitFact,
    extract,
)
from services.audit.reports.rows import Deltas, GatheringRow, HoursRow, ProjectedRow, ShiftRow, VisitRow, rows_of
from services.audit.reports.rules import (
    HOUR,
    NETWORK,
    bits_to_dates,
    contiguous_runs,
    day_bit,
    hours_overlapping,
    local_date,
    open_peaks,
    zone_named,
)
from services.audit.reports.statements import (
    KEYS,
    MEMBER_FIRST_STATEMENT,
    closed_visits_statement,
    column_arrays,
    delete_keys,
    insert_absent_statement,
    insert_new_statement,
    set_statement,
    uuid_array,
)
from services.audit.reports.tables import (
    DAILY_COUNTERS,
    MEMBER_BLOCK,
    PROJECTION_TABLES,
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


@dataclass
class ProjectionStats:
    projected: int = 0
    skipped: int = 0


Key = tuple[Any, ...]

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

    async def _store(
        self, table: Table, fresh: dict[Key, ProjectedRow], refold: Callable[[ProjectedRow], ProjectedRow]
    ) -> list[tuple[ProjectedRow | None, ProjectedRow]]:
        """Write rows folded from the batch's facts alone; where a row already existed, fold the facts into it
        instead. New rows cost one statement (insert-if-absent, returning the rows that were there). Returns the
        changes: (row before, or None for a new row; row after)."""
        if not fresh:
            return []
        row_type = type(next(iter(fresh.values())))
        result = await self.session.execute(insert_new_statement(table), column_arrays(table, list(fresh.values())))
        keys = KEYS[table.name]
        stored = {tuple(getattr(row, k) for k in keys): row for row in rows_of(result, row_type)}
        changes: list[tuple[ProjectedRow | None, ProjectedRow]] = [
            (None, row) for key, row in fresh.items() if key not in stored
        ]
        updated = []
        for old in stored.values():
            new = refold(dataclasses.replace(old))
            if new != old:
                updated.append(new)
                changes.append((old, new))
        if updated:
            await self.session.execute(set_statement(table, "replace"), column_arrays(table, updated))
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
            {(visit_id,): fold(None, visit_facts) for visit_id, visit_facts in by_visit.items()},
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
            if old_day is None and new_day is not None:
                added_days.append(new_day)
            elif old_day is not None and old_day != new_day:
                # A visit that already counted changed member, site or date (not expected): recount.
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

    async def _add_member_days(self, days: Iterable[tuple[str, uuid.UUID, date]], deltas: Deltas) -> None:
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
            MEMBER_FIRST_STATEMENT, {"scopes": list(scopes), "members": list(members), "firsts": list(dates)}
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
            set_statement(rp_member_days, "or"),
            column_arrays(
                rp_member_days,
                [{"scope": s, "local_date": d, "block": b, "members": m} for (s, d, b), m in masks.items()],
            ),
        )

    async def _recount_members(self, members: set[uuid.UUID], deltas: Deltas) -> None:
        """Make members' first visits and visit-day bits exactly what their visits say (the rare path: a visit that
        already counted changed member, site or date)."""
        member_ids = list(members)
        wanted: dict[tuple[str, uuid.UUID], set[date]] = defaultdict(set)
        visits: list[tuple[str, uuid.UUID, date]] = [
            (site_id, member_id, day)
            for site_id, member_id, day in await self.session.execute(
                select(rp_visit.c.site_id, rp_visit.c.member_id, rp_visit.c.local_date).where(
                    rp_visit.c.member_id == any_(uuid_array("member_ids", member_ids)), rp_visit.c.checked_in
                )
            )
        ]
        for site_id, member_id, day in visits:
            for scope in (site_id, NETWORK):
                wanted[(scope, member_id)].add(day)
        if visits:
            await self._add_member_days(visits, deltas)  # every visit day set, first visits moved earlier
        stored = (
            await self.session.execute(
                select(rp_member_first).where(rp_member_first.c.member_id == any_(uuid_array("member_ids", member_ids)))
            )
        ).all()
        for scope, member_id, first_date, ordinal in stored:
            days = wanted.get((scope, member_id), set())
            block, position = divmod(ordinal, MEMBER_BLOCK)
            m = rp_member_days.c
            await self.session.execute(
                update(rp_member_days)
                .where(
                    m.scope == scope,
                    m.block == block,
                    func.get_bit(m.members, position) == 1,
                    not_(m.local_date == any_(bindparam("days", list(days), type_=ARRAY(Date)))),
                )
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
            peaks = open_peaks(
                everyone if scope == NETWORK else by_site.get(scope, []), [(hour, hour + HOUR) for hour in ordered]
            )
            for hour, peak in zip(ordered, peaks, strict=True):
                if peak:
                    rows.append({"scope": scope, "hour": hour, "peak": peak})
                else:
                    empty.append((scope, hour))
        await self._upsert(rp_peak_hour, rows)
        if empty:
            await self.session.execute(
                delete_keys(rp_peak_hour, ("scope", Text), ("hour", DateTime(timezone=True)), rows=empty)
            )

    async def _closed_visits_overlapping(self, hours: set[datetime]) -> list[tuple[str, datetime, datetime]]:
        """Closed, checked-in visits that may overlap the hours (a superset: the sweep looks at the hours only)."""
        if not hours:
            return []
        result = await self.session.execute(closed_visits_statement(contiguous_runs(hours)))
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
                        hours_id=fact.hours_id,
                        site_id=fact.site_id,
                        member_id=fact.member_id,
                        role_id=fact.role_id,
                        shift_date=local_date(fact.shift_starts_at, zones[fact.site_id]),
                        minutes=fact.minutes,
                        approved=fact.approved,
                        fact_time=fact.key[0],
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
                rp_hours.c.member_id == any_(uuid_array("member_ids", member_ids)), rp_hours.c.approved
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
                    row = ShiftRow(
                        fact.kind,
                        fact.fact_key,
                        fact.site_id,
                        local_date(fact.starts_at, zones[fact.site_id]),
                        fact.key[0],
                        uuid.UUID(fact.key[1]),
                    )
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
                insert_absent_statement(rp_attendance),
                column_arrays(rp_attendance, [{"attendance_id": a, "gathering_id": g} for a, g in unique.items()]),
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
                        fact.gathering_id,
                        fact.kind,
                        fact.site_id,
                        fact.starts_at,
                        date.min,
                        fact.key[0],
                        uuid.UUID(fact.key[1]),
                        cancelled=False,
                        attendance=0,
                        registrations=0,
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
                    table.c.member_id == any_(uuid_array("member_ids", member_ids))
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
                for day in bits_to_dates(year, before & ~after):
                    deltas.scoped(scope, day, daily_column, -1)
                for day in bits_to_dates(year, after & ~before):
                    deltas.scoped(scope, day, daily_column, 1)
            if after:
                upserts.append({"scope": key[0], "year": key[1], "member_id": key[2], "days": after})
            else:
                removed.append(key)
        await self._upsert(table, upserts)
        if removed:
            await self.session.execute(
                delete_keys(
                    table, ("scope", Text), ("year", SmallInteger), ("member_id", UUID(as_uuid=True)), rows=removed
                )
            )

    async def _upsert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert or replace whole rows (one statement, whatever the number of rows)."""
        if rows:
            await self.session.execute(set_statement(table, "replace"), column_arrays(table, rows))

    async def _write_deltas(self, deltas: Deltas) -> None:
        daily_rows = []
        for (scope, day), columns in deltas.daily.items():
            if any(columns.values()):
                daily_rows.append({"scope": scope, "local_date": day, **{c: columns.get(c, 0) for c in DAILY_COUNTERS}})
        if daily_rows:
            await self.session.execute(set_statement(rp_daily, "add"), column_arrays(rp_daily, daily_rows))
        role_rows = [
            {"scope": scope, "local_date": day, "role_id": role_id, "minutes": minutes}
            for (scope, day, role_id), minutes in deltas.role.items()
            if minutes
        ]
        if role_rows:
            await self.session.execute(set_statement(rp_daily_role, "add"), column_arrays(rp_daily_role, role_rows))
