"""Events published by the gatherings service (source ``/rcc/gatherings``)."""

from __future__ import annotations
