"""RFC 5545 recurrence (RRULE + EXDATE) expanded in a site's time zone.

Occurrences are computed on the local wall clock and only then given the zone's offset, so a weekly 18:00 group
stays at 18:00 across daylight-saving changes. A local time that does not exist on a spring-forward day is moved
forward by the gap, the way calendar programs do."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from dateutil.rrule import rrulestr

from shared.errors import InvalidInput

ALLOWED_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
MAX_OCCURRENCES = 400


@dataclass(frozen=True, slots=True)
class Occurrence:
    starts_at: datetime  # aware, UTC
    ends_at: datetime
    local_start: datetime  # naive wall-clock time in the site's zone: what people read and what EXDATEs name


def localize(local: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """Wall-clock time → aware instant. With fold=0 (PEP 495) an ambiguous time (the repeated hour) is its first
    instance and a missing one (the skipped hour) is read with the old offset, i.e. moved forward by the gap."""
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def validate_rule(rule: str) -> str:
    text = rule.strip().removeprefix("RRULE:")
    parts = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
    if parts.get("FREQ") not in ALLOWED_FREQUENCIES:
        raise InvalidInput(
            f"RRULE needs FREQ={'|'.join(ALLOWED_FREQUENCIES)}.", code="bad_rrule"
        )
    if "DTSTART" in text or "\n" in text:
        raise InvalidInput("Give the first start separately, not inside the RRULE.", code="bad_rrule")
    try:
        rrulestr(text, dtstart=datetime(2000, 1, 1))
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"Not a valid RRULE: {exc}", code="bad_rrule") from exc
    return text


def expand(
    rule: str,
    *,
    first_local_start: datetime,
    duration: timedelta,
    zone: zoneinfo.ZoneInfo,
    exceptions: Iterable[datetime | date] = (),
    until: datetime,
    limit: int = MAX_OCCURRENCES,
) -> list[Occurrence]:
    """Occurrences from ``first_local_start`` (naive, local) up to the aware instant ``until``.

    ``exceptions`` are local start times (or whole local dates) that do not happen (EXDATE)."""
    if first_local_start.tzinfo is not None:
        raise ValueError("first_local_start is a wall-clock time (naive)")
    text = validate_rule(rule)
    excluded_times = {e for e in exceptions if isinstance(e, datetime)}
    excluded_days = {e for e in exceptions if not isinstance(e, datetime)}
    occurrences: list[Occurrence] = []
    for local in rrulestr(text, dtstart=first_local_start):
        starts_at = localize(local, zone)
        if starts_at > until or len(occurrences) >= limit:
            break
        if local in excluded_times or local.date() in excluded_days:
            continue
        # The end is also wall-clock: a 2-hour group is 2 hours by the clock on the wall.
        occurrences.append(Occurrence(starts_at, localize(local + duration, zone), local))
    return occurrences
