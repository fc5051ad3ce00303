"""Events published by the volunteering service (source ``/rcc/volunteering``)."""

from __future__ import annotations
