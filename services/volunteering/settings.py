from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class VolunteeringSettings(Settings):
    # Inside this many hours before a shift starts, only a coordinator can drop a confirmed volunteer.
    drop_cutoff_hours: float = Field(default=24.0, ge=0)
    # Recurring series are materialized this far ahead, and extended as time moves on.
    series_horizon_weeks: int = Field(default=26, ge=1, le=104)
    series_extend_interval_s: float = 3600.0
    # A confirmed volunteer with no check-in this long after the shift ended is marked missed.
    missed_grace_minutes: int = Field(default=15, ge=0)
    missed_check_interval_s: float = 60.0
    # Shift lists span at most this many days per request.
    list_range_max_days: int = Field(default=92, ge=1)
    # The private calendar feed shows confirmed shifts from this many days back.
    calendar_past_days: int = Field(default=30, ge=0)
