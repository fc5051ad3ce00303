"""RFC 5545 recurrence (RRULE + EXDATE) expanded in a site's time zone.

What a rule means here, in the order it is checked:

- Every rule part is read and checked against RFC 5545 §3.3.10 before anything is expanded: its syntax
  (``bad_rrule``), a name the RFC does not define (``rrule_unknown_part``), a part given twice
  (``rrule_duplicate_part``), ``INTERVAL`` below 1 (``rrule_interval_out_of_range``), a value outside its range
  (``rrule_part_out_of_range``: ``COUNT`` ≥ 1, ``BYSECOND`` 0..59 (a leap second cannot be represented),
  ``BYMINUTE`` 0..59, ``BYHOUR`` 0..23, ``BYMONTHDAY`` ±1..31, ``BYYEARDAY`` ±1..366, ``BYWEEKNO`` ±1..53,
  ``BYMONTH`` 1..12, ``BYSETPOS`` ±1..366, a ``BYDAY`` ordinal ±1..53), ``COUNT`` with ``UNTIL``
  (``rrule_count_and_until``) and a part the frequency does not allow (``rrule_part_not_allowed``: ``BYMONTHDAY``
  with WEEKLY, ``BYYEARDAY`` except with YEARLY, ``BYWEEKNO`` except with YEARLY, a ``BYDAY`` ordinal except with
  MONTHLY or YEARLY without ``BYWEEKNO``, ``BYSETPOS`` without another BYxxx part).
- Occurrence *starts* are computed on the local wall clock and only then given the zone's offset, so a weekly 18:00
  group stays at 18:00 across daylight-saving changes. A local time the clocks skip (spring forward) is read with
  the offset from before the gap, as RFC 5545 §3.3.5 says: 02:15 on a New York spring-forward day is 03:15 EDT
  (07:15Z). A local time the clocks repeat (fall back) is its first instance (the offset from before the change).
  This holds for the first start as for every later one; nothing is refused for it.
- A session's *length* is exact time (RFC 5545 §3.3.6: hours and minutes are exact): a 120-minute session lasts
  120 minutes even when the clocks change during it, so its end may read differently on the wall clock.
- Expansion is bounded: it walks the rule's periods (days, weeks, months, years) up to a horizon and never more
  than ``MAX_PERIODS`` of them, so a rule that matches nothing (30 February) costs milliseconds, not a walk to
  year 9999. ``require_occurrence`` refuses such a rule (``rrule_never_occurs``). The walk is plain CPU work:
  callers on an event loop run it through ``off_loop`` (a small, bounded thread pool)."""

from __future__ import annotations

import asyncio
import calendar
import functools
import re
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import ParamSpec, TypeVar

from shared.errors import InvalidInput

ALLOWED_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
RRULE_DESCRIPTION = (
    "RFC 5545 RRULE on the site's wall clock, e.g. FREQ=WEEKLY;BYDAY=TU (FREQ is DAILY, WEEKLY, MONTHLY or YEARLY). "
    "Every part is checked before anything is expanded; a refused rule is a 422 with the code bad_rrule (syntax), "
    "rrule_unknown_part, rrule_duplicate_part, rrule_interval_out_of_range, rrule_part_out_of_range, "
    "rrule_count_and_until, rrule_part_not_allowed (a part its FREQ does not allow), rrule_never_occurs (no "
    "occurrence within ten years of the first start) or rrule_expansion_too_long (a COUNT rule that starts too long "
    "ago)"
)
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
MAX_OCCURRENCES = 400
# A rule must occur within this long after its first start, or it is taken for a mistake (30 February).
NEVER_OCCURS_LOOKAHEAD = timedelta(days=3653)
# The most periods one expansion walks: ten years of days with room to spare, a few milliseconds of work. Only a
# COUNT rule whose first start lies long before the horizon needs more (it has to be counted from its start).
MAX_PERIODS = 8_000
# Local times around the horizon are compared with this slack before the exact instants are, since an offset is
# never more than a day.
_SLACK = timedelta(days=1)

_LIST_PARTS = {
    # name: (lowest, highest, may be negative)
    "BYSECOND": (0, 59, False),
    "BYMINUTE": (0, 59, False),
    "BYHOUR": (0, 23, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYMONTH": (1, 12, False),
    "BYSETPOS": (1, 366, True),
}
_KNOWN_PARTS = {"FREQ", "UNTIL", "COUNT", "INTERVAL", "BYDAY", "WKST", *_LIST_PARTS}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_INTEGER = re.compile(r"[+-]?[0-9]{1,9}")
_WEEKDAY_NUM = re.compile(r"([+-]?[0-9]{1,9})?(MO|TU|WE|TH|FR|SA|SU)")
_UNTIL = re.compile(r"([0-9]{8})(?:T([0-9]{6})(Z?))?")


@dataclass(frozen=True, slots=True)
class Occurrence:
    starts_at: datetime  # aware, UTC
    ends_at: datetime  # starts_at + the duration, in exact time
    local_start: datetime  # naive wall-clock time in the site's zone: what people read and what EXDATEs name


@dataclass(frozen=True, slots=True)
class Rule:
    """A checked RRULE. ``until`` is a naive local time, an aware UTC instant, or a local date (that whole day)."""

    text: str
    freq: str
    interval: int = 1
    count: int | None = None
    until: datetime | date | None = None
    bysecond: tuple[int, ...] = ()
    byminute: tuple[int, ...] = ()
    byhour: tuple[int, ...] = ()
    byday: tuple[tuple[int, int], ...] = ()  # (ordinal, weekday 0=MO); ordinal 0 means every such weekday
    bymonthday: tuple[int, ...] = ()
    byyearday: tuple[int, ...] = ()
    byweekno: tuple[int, ...] = ()
    bymonth: tuple[int, ...] = ()
    bysetpos: tuple[int, ...] = ()
    wkst: int = 0


def localize(local: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """Wall-clock time → aware instant, as RFC 5545 §3.3.5 reads a local time. With fold=0 (PEP 495) a repeated
    time (fall back) is its first instance and a skipped one (spring forward) takes the offset from before the gap,
    i.e. lands as far after the gap as it was into it."""
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


# Reading and checking a rule


def parse_rule(rule: str) -> Rule:
    """Read and check an RRULE value (with or without the ``RRULE:`` prefix); raises ``InvalidInput``."""
    text = rule.strip()
    if text[:6].upper() == "RRULE:":
        text = text[6:]
    if not text or "\n" in text or "\r" in text or "DTSTART" in text.upper():
        raise InvalidInput("Give the rule as FREQ=…;…, with the first start separately.", code="bad_rrule")
    raw: dict[str, str] = {}
    for piece in text.split(";"):
        name, sep, value = piece.partition("=")
        name = name.strip().upper()
        if not sep or not _NAME.fullmatch(name) or not value.strip():
            raise InvalidInput(f"{piece!r} is not a NAME=VALUE rule part.", code="bad_rrule")
        if name not in _KNOWN_PARTS:
            raise InvalidInput(
                f"{name} is not a part RFC 5545 defines for a rule.", code="rrule_unknown_part", part=name
            )
        if name in raw:
            raise InvalidInput(f"{name} is given more than once.", code="rrule_duplicate_part", part=name)
        raw[name] = value.strip().upper()
    freq = raw.get("FREQ")
    if freq not in ALLOWED_FREQUENCIES:
        raise InvalidInput(f"The rule needs FREQ={'|'.join(ALLOWED_FREQUENCIES)}.", code="bad_rrule", part="FREQ")
    interval = 1
    if "INTERVAL" in raw:
        interval = _integer("INTERVAL", raw["INTERVAL"])
        if interval < 1:
            raise InvalidInput(
                f"INTERVAL must be 1 or more, not {interval}.", code="rrule_interval_out_of_range", part="INTERVAL"
            )
    count: int | None = None
    if "COUNT" in raw:
        count = _integer("COUNT", raw["COUNT"])
        if count < 1:
            raise InvalidInput(f"COUNT must be 1 or more, not {count}.", code="rrule_part_out_of_range", part="COUNT")
    until = _until(raw["UNTIL"]) if "UNTIL" in raw else None
    if "COUNT" in raw and "UNTIL" in raw:
        raise InvalidInput("COUNT and UNTIL cannot both end a rule (RFC 5545); give one.", code="rrule_count_and_until")
    lists = {
        name: _number_list(name, raw[name], low, high, signed)
        for name, (low, high, signed) in _LIST_PARTS.items()
        if name in raw
    }
    byday = _weekday_list(raw["BYDAY"]) if "BYDAY" in raw else ()
    wkst = 0
    if "WKST" in raw:
        if raw["WKST"] not in WEEKDAYS:
            raise InvalidInput(f"WKST={raw['WKST']} is not a weekday (MO…SU).", code="bad_rrule", part="WKST")
        wkst = WEEKDAYS.index(raw["WKST"])
    parsed = Rule(
        text=text,
        freq=freq,
        interval=interval,
        count=count,
        until=until,
        bysecond=lists.get("BYSECOND", ()),
        byminute=lists.get("BYMINUTE", ()),
        byhour=lists.get("BYHOUR", ()),
        byday=byday,
        bymonthday=lists.get("BYMONTHDAY", ()),
        byyearday=lists.get("BYYEARDAY", ()),
        byweekno=lists.get("BYWEEKNO", ()),
        bymonth=lists.get("BYMONTH", ()),
        bysetpos=lists.get("BYSETPOS", ()),
        wkst=wkst,
    )
    _check_combination(parsed)
    return parsed


def validate_rule(rule: str) -> str:
    """The rule's text without the ``RRULE:`` prefix, once it is checked."""
    return parse_rule(rule).text


def _integer(name: str, value: str) -> int:
    if not _INTEGER.fullmatch(value):
        raise InvalidInput(f"{name}={value} is not a whole number.", code="bad_rrule", part=name)
    return int(value)


def _number_list(name: str, value: str, low: int, high: int, signed: bool) -> tuple[int, ...]:
    numbers = [_integer(name, item) for item in value.split(",")]
    for number in numbers:
        if not (low <= number <= high or (signed and -high <= number <= -low)):
            span = f"±{low}..{high}" if signed else f"{low}..{high}"
            raise InvalidInput(
                f"{name}={number} is out of range: {name} takes {span}.", code="rrule_part_out_of_range", part=name
            )
    return tuple(sorted(set(numbers)))


def _weekday_list(value: str) -> tuple[tuple[int, int], ...]:
    days: set[tuple[int, int]] = set()
    for item in value.split(","):
        matched = _WEEKDAY_NUM.fullmatch(item)
        if matched is None:
            raise InvalidInput(
                f"BYDAY={item} is not a weekday (MO…SU) with an optional ordinal such as -1FR.",
                code="bad_rrule",
                part="BYDAY",
            )
        ordinal = int(matched.group(1)) if matched.group(1) else 0
        if matched.group(1) and not 1 <= abs(ordinal) <= 53:
            raise InvalidInput(f"BYDAY={item}: the ordinal takes ±1..53.", code="rrule_part_out_of_range", part="BYDAY")
        days.add((ordinal, WEEKDAYS.index(matched.group(2))))
    return tuple(sorted(days))


def _until(value: str) -> datetime | date:
    matched = _UNTIL.fullmatch(value)
    try:
        if matched is None:
            raise ValueError(value)
        day = datetime.strptime(matched.group(1), "%Y%m%d").date()
        if matched.group(2) is None:
            return day
        at = datetime.combine(day, datetime.strptime(matched.group(2), "%H%M%S").time())
    except ValueError as exc:
        raise InvalidInput(
            f"UNTIL={value} is not a date (YYYYMMDD) or a time (YYYYMMDDTHHMMSS[Z]).", code="bad_rrule", part="UNTIL"
        ) from exc
    return at.replace(tzinfo=UTC) if matched.group(3) else at


def _check_combination(rule: Rule) -> None:
    def refuse(part: str, why: str) -> None:
        raise InvalidInput(f"{part} {why} (RFC 5545 §3.3.10).", code="rrule_part_not_allowed", part=part)

    if rule.bymonthday and rule.freq == "WEEKLY":
        refuse("BYMONTHDAY", "cannot be used with FREQ=WEEKLY")
    if rule.byyearday and rule.freq != "YEARLY":
        refuse("BYYEARDAY", f"cannot be used with FREQ={rule.freq}")
    if rule.byweekno and rule.freq != "YEARLY":
        refuse("BYWEEKNO", "can only be used with FREQ=YEARLY")
    if any(ordinal for ordinal, _ in rule.byday):
        if rule.freq not in ("MONTHLY", "YEARLY"):
            refuse("BYDAY", f"cannot have an ordinal (such as 2TU) with FREQ={rule.freq}")
        if rule.byweekno:
            refuse("BYDAY", "cannot have an ordinal (such as 2TU) together with BYWEEKNO")
    if rule.bysetpos and not (
        rule.bysecond
        or rule.byminute
        or rule.byhour
        or rule.byday
        or rule.bymonthday
        or rule.byyearday
        or rule.byweekno
        or rule.bymonth
    ):
        refuse("BYSETPOS", "needs another BYxxx part to pick from")


# Expanding a rule


def expand(
    rule: str | Rule,
    *,
    first_local_start: datetime,
    duration: timedelta,
    zone: zoneinfo.ZoneInfo,
    exceptions: Iterable[datetime | date] = (),
    until: datetime,
    after: datetime | None = None,
    limit: int = MAX_OCCURRENCES,
) -> list[Occurrence]:
    """Occurrences from ``first_local_start`` (naive, local) up to the aware instant ``until``, at most ``limit``.

    ``exceptions`` are local start times (or whole local dates) that do not happen (EXDATE); like the RFC's EXDATE
    they still count towards COUNT. With ``after`` (an instant) only occurrences starting later are produced, and
    without COUNT the walk starts near ``after`` instead of at the first start. Each occurrence lasts ``duration``
    of exact time."""
    if first_local_start.tzinfo is not None:
        raise ValueError("first_local_start is a wall-clock time (naive)")
    parsed = rule if isinstance(rule, Rule) else parse_rule(rule)
    excluded_times = {e for e in exceptions if isinstance(e, datetime)}
    excluded_days = {e for e in exceptions if not isinstance(e, datetime)}
    occurrences: list[Occurrence] = []
    for local, starts_at in _starts(parsed, first_local_start, zone, until=until, after=after):
        if len(occurrences) >= limit:
            break
        if local in excluded_times or local.date() in excluded_days:
            continue
        occurrences.append(Occurrence(starts_at, starts_at + duration, local))
    return occurrences


def first_start_after(
    rule: str | Rule,
    *,
    first_local_start: datetime,
    zone: zoneinfo.ZoneInfo,
    exceptions: Iterable[datetime | date] = (),
    after: datetime | None,
    until: datetime,
) -> datetime | None:
    """The first occurrence's start (an instant) after ``after`` and no later than ``until``, if any."""
    found = expand(
        rule,
        first_local_start=first_local_start,
        duration=timedelta(0),
        zone=zone,
        exceptions=exceptions,
        after=after,
        until=until,
        limit=1,
    )
    return found[0].starts_at if found else None


def require_occurrence(rule: str | Rule, *, first_local_start: datetime, zone: zoneinfo.ZoneInfo) -> Rule:
    """The checked rule, once it is known to occur at least once within ``NEVER_OCCURS_LOOKAHEAD`` of its first
    start (a rule such as ``FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30`` never does)."""
    parsed = rule if isinstance(rule, Rule) else parse_rule(rule)
    horizon = localize(first_local_start, zone) + NEVER_OCCURS_LOOKAHEAD
    if first_start_after(parsed, first_local_start=first_local_start, zone=zone, after=None, until=horizon) is None:
        years = NEVER_OCCURS_LOOKAHEAD.days // 365
        raise InvalidInput(
            f"The rule has no occurrence within {years} years of its first start (a date the calendar lacks, or "
            "parts that exclude each other, or an end before the first start).",
            code="rrule_never_occurs",
        )
    return parsed


def _starts(
    rule: Rule, first: datetime, zone: zoneinfo.ZoneInfo, *, until: datetime, after: datetime | None
) -> Iterator[tuple[datetime, datetime]]:
    """(local start, instant) of each occurrence in order, from the first start to ``until``; stops after
    ``MAX_PERIODS`` periods."""
    horizon_local = until.astimezone(zone).replace(tzinfo=None) + _SLACK
    skip_to = None
    if after is not None and rule.count is None:
        skip_to = (after.astimezone(zone).replace(tzinfo=None) - _SLACK).date()
    times = _times(rule, first)
    rule = _with_defaults(rule, first)
    produced = 0
    for walked, (period_start, days) in enumerate(_periods(rule, first, skip_to)):
        if period_start > horizon_local.date():
            return
        if walked >= MAX_PERIODS:
            raise InvalidInput(
                f"Expanding the rule up to the horizon takes more than {MAX_PERIODS} steps from its first start; "
                "start it closer to today.",
                code="rrule_expansion_too_long",
            )
        candidates = [datetime.combine(day, at) for day in days for at in times]
        if rule.bysetpos:
            candidates = _pick_positions(candidates, rule.bysetpos)
        for local in candidates:
            if local < first:
                continue
            if local > horizon_local or _past_until(rule, local, zone):
                return
            starts_at = localize(local, zone)
            if starts_at > until:
                return
            produced += 1
            if after is None or starts_at > after:
                yield local, starts_at
            if rule.count is not None and produced >= rule.count:
                return


def _past_until(rule: Rule, local: datetime, zone: zoneinfo.ZoneInfo) -> bool:
    if rule.until is None:
        return False
    if isinstance(rule.until, datetime):
        if rule.until.tzinfo is not None:
            return localize(local, zone) > rule.until
        return local > rule.until
    return local.date() > rule.until


def _times(rule: Rule, first: datetime) -> list[time]:
    hours = rule.byhour or (first.hour,)
    minutes = rule.byminute or (first.minute,)
    seconds = rule.bysecond or (first.second,)
    return [time(h, m, s) for h in hours for m in minutes for s in seconds]


def _pick_positions(candidates: list[datetime], positions: tuple[int, ...]) -> list[datetime]:
    picked = {candidates[p - 1 if p > 0 else p] for p in positions if -len(candidates) <= p <= len(candidates)}
    return sorted(picked)


def _periods(rule: Rule, first: datetime, skip_to: date | None) -> Iterator[tuple[date, list[date]]]:
    """(first day, matching days) of each period the rule steps through, INTERVAL apart, from the first start's
    period (or the last one that begins on or before ``skip_to``) until the calendar ends."""
    start = first.date()
    if rule.freq in ("DAILY", "WEEKLY"):
        length = 1 if rule.freq == "DAILY" else 7
        origin = start.toordinal() - ((start.weekday() - rule.wkst) % 7 if rule.freq == "WEEKLY" else 0)
        step = length * rule.interval
        index = max(0, (skip_to.toordinal() - origin) // step) if skip_to else 0
        while (ordinal := origin + index * step) + length - 1 <= date.max.toordinal():
            first_day = date.fromordinal(ordinal)
            yield first_day, [d for d in map(date.fromordinal, range(ordinal, ordinal + length)) if _matches(rule, d)]
            index += 1
        return
    months = 1 if rule.freq == "MONTHLY" else 12
    origin = start.year * 12 + (start.month - 1 if rule.freq == "MONTHLY" else 0)
    step = months * rule.interval
    index = max(0, (skip_to.year * 12 + skip_to.month - 1 - origin) // step) if skip_to else 0
    while (month_index := origin + index * step) // 12 <= date.max.year:
        year, month = divmod(month_index, 12)
        first_day = date(year, month + 1, 1)
        last_month = month + months
        length = sum(calendar.monthrange(year, m + 1)[1] for m in range(month, last_month))
        days = [first_day + timedelta(days=n) for n in range(length)]
        yield first_day, [d for d in days if _matches(rule, d)]
        index += 1


def _with_defaults(rule: Rule, first: datetime) -> Rule:
    """The rule with the day parts it leaves out taken from the first start, as RFC 5545 says (and as
    python-dateutil reads them): a plain weekly rule falls on the first start's weekday, a monthly one on its day of
    the month, a yearly one on its date."""
    if rule.byweekno or rule.byyearday or rule.bymonthday or rule.byday:
        return rule
    if rule.freq == "YEARLY":
        return replace(rule, bymonth=rule.bymonth or (first.month,), bymonthday=(first.day,))
    if rule.freq == "MONTHLY":
        return replace(rule, bymonthday=(first.day,))
    if rule.freq == "WEEKLY":
        return replace(rule, byday=((0, first.weekday()),))
    return rule


def _matches(rule: Rule, day: date) -> bool:
    """Whether ``day`` is in the day set of a rule whose defaults are filled in."""
    bymonth, bymonthday, byday = rule.bymonth, rule.bymonthday, rule.byday
    if bymonth and day.month not in bymonth:
        return False
    if bymonthday:
        month_length = calendar.monthrange(day.year, day.month)[1]
        if day.day not in bymonthday and day.day - month_length - 1 not in bymonthday:
            return False
    if rule.byyearday:
        year_day = day.timetuple().tm_yday
        year_length = 366 if calendar.isleap(day.year) else 365
        if year_day not in rule.byyearday and year_day - year_length - 1 not in rule.byyearday:
            return False
    if rule.byweekno and not _in_weeks(day, rule.byweekno, rule.wkst):
        return False
    return not byday or _in_weekdays(rule, byday, day)


def _in_weekdays(rule: Rule, byday: tuple[tuple[int, int], ...], day: date) -> bool:
    weekday = day.weekday()
    if (0, weekday) in byday:
        return True
    ordinals = [ordinal for ordinal, wd in byday if ordinal and wd == weekday]
    if not ordinals:
        return False
    # The n-th such weekday of the month (MONTHLY, or YEARLY with BYMONTH) or of the year (YEARLY).
    if rule.freq == "MONTHLY" or rule.bymonth:
        index, length = day.day - 1, calendar.monthrange(day.year, day.month)[1]
    else:
        index, length = day.timetuple().tm_yday - 1, 366 if calendar.isleap(day.year) else 365
    return index // 7 + 1 in ordinals or -((length - 1 - index) // 7 + 1) in ordinals


def _week_one(year: int, wkst: int) -> date:
    """The first day of week 1: the first week (starting on WKST) with at least four days in ``year``."""
    january_first = date(year, 1, 1)
    offset = (january_first.weekday() - wkst) % 7
    return january_first - timedelta(days=offset) if offset <= 3 else january_first + timedelta(days=7 - offset)


def _in_weeks(day: date, weeks: tuple[int, ...], wkst: int) -> bool:
    week_year = day.year
    if day < _week_one(week_year, wkst):
        week_year -= 1
    elif week_year < date.max.year and day >= _week_one(week_year + 1, wkst):
        week_year += 1
    first = _week_one(week_year, wkst)
    following = _week_one(week_year + 1, wkst) if week_year < date.max.year else first + timedelta(weeks=52)
    count = (following - first).days // 7
    number = (day - first).days // 7 + 1
    return number in weeks or number - count - 1 in weeks


# Off the event loop

P = ParamSpec("P")
R = TypeVar("R")

# Two threads at most, whatever the number of requests: expansion is bounded CPU work, and this keeps it from
# crowding out the event loop (which takes the GIL back within the interpreter's switch interval).
#
# Not one pool with the audit reports' suppression thread (services/audit/app.py), on purpose: one executor cannot
# keep both bounds (two threads here, one there: more would only interleave choices that hold the GIL) without a
# scheduler of its own on top; in a shared pool a suppression choice (seconds, up to its max_cells) would hold up
# the expansions of scheduling requests queued behind it (``rcc serve all`` runs them in one process); and that
# thread is the audit app's, shut down with it once its last choice is done, while this pool lives as long as the
# process (gatherings and volunteering share it).
_WORKERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="recurrence")


async def off_loop(work: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a recurrence computation in the bounded worker pool, so the event loop keeps answering meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(_WORKERS, functools.partial(work, *args, **kwargs))
