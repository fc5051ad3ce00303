from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class GatheringsSettings(Settings):
    # How far ahead a group's sessions exist as rows (people register for concrete sessions).
    group_horizon_weeks: int = Field(default=26, ge=1, le=104)
    # How often the horizon rolls forward (new sessions of long-running groups).
    horizon_interval_s: float = 3600.0
    # The public calendar shows this much of the past, then everything ahead to the horizon.
    calendar_past_days: int = Field(default=30, ge=0, le=366)
    # What the kiosk display shows.
    upcoming_days: int = Field(default=7, ge=1, le=31)
