"""The check-in service consumes no events: it is where visits begin. Other services consume ``checkin.*``."""

from __future__ import annotations

BINDINGS: tuple[str, ...] = ()
