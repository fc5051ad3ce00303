"""A valid request body for every body model the services declare, so tests that walk every route (an outage,
the authorization matrix, mass assignment) get past input validation and reach the part they test.

``body_for(op, ids)`` builds one; ids of real objects can be passed in (``ids["member_id"]`` …), otherwise fresh
random ones are used. A route with a body model that has no sample here fails loudly: add one."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.web import Operation


def _soon(days: float = 3.0) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


def _id(ids: dict[str, str], name: str) -> str:
    return ids.get(name) or str(uuid.uuid4())


SAMPLES: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
    # checkin
    "RegisterMemberBody": lambda ids: {"nickname": "Sam"},
    "CheckInBody": lambda ids: {"member_id": _id(ids, "member_id"), "purpose": "drop_in"},
    "CheckOutByMemberBody": lambda ids: {"member_id": _id(ids, "member_id")},
    "CheckOutBody": lambda ids: {},
    "CodeCheckBody": lambda ids: {"kiosk_code": "7Q4K2M"},
    "DisplayNameBody": lambda ids: {"display_name": "Sam Rivera"},
    "DisplayNamesLookupBody": lambda ids: {"member_ids": [_id(ids, "member_id")]},
    # volunteering
    "RoleBody": lambda ids: {"role_id": f"role_{uuid.uuid4().hex[:8]}", "title": "Front desk"},
    "RoleUpdateBody": lambda ids: {"title": "Front desk", "required_trainings": []},
    "VolunteerBody": lambda ids: {"roles": [ids.get("role_id", "front_desk")], "monthly_hours_goal": 10},
    "TrainingBody": lambda ids: {"training_id": "orientation", "completed_on": "2025-01-15"},
    "ShiftBody": lambda ids: {
        "role_id": ids.get("role_id", "front_desk"),
        "starts_at": _soon().isoformat(),
        "ends_at": (_soon() + timedelta(hours=3)).isoformat(),
        "capacity": 3,
    },
    "SeriesBody": lambda ids: {
        "role_id": ids.get("role_id", "front_desk"),
        "first_start": _soon().replace(tzinfo=None).isoformat(),
        "duration_minutes": 120,
        "rrule": "FREQ=WEEKLY;COUNT=3",
        "capacity": 2,
    },
    "ShiftPatchBody": lambda ids: {"capacity": 4},
    "SignUpBody": lambda ids: {"member_id": _id(ids, "member_id")},
    "AddHoursBody": lambda ids: {
        "member_id": _id(ids, "member_id"),
        "shift_id": _id(ids, "shift_id"),
        "minutes": 60,
        "reason": "forgot to check in",
    },
    "CorrectHoursBody": lambda ids: {"minutes": 90, "reason": "stayed longer"},
    "RejectHoursBody": lambda ids: {"reason": "not on the rota"},
    "StipendPolicyBody": lambda ids: {
        "effective_from": (date.today() + timedelta(days=40)).isoformat(),
        "hourly_rate_cents": 1000,
        "monthly_cap_cents": 20_000,
    },
    "PaidBody": lambda ids: {"method": "check", "reference": "1042"},
    "ReverseBody": lambda ids: {"reason": "booked twice"},
    # gatherings
    "CreateGroupBody": lambda ids: {
        "name": "Tuesday peer support",
        "facilitator_member_id": _id(ids, "member_id"),
        "capacity": 12,
        "first_start": _soon().replace(tzinfo=None).isoformat(),
        "duration_minutes": 90,
        "rrule": "FREQ=WEEKLY;COUNT=4",
    },
    "ScheduleEventBody": lambda ids: {
        "title": "Sober bowling",
        "kind": "sports",
        "starts_at": _soon().isoformat(),
        "ends_at": (_soon() + timedelta(hours=2)).isoformat(),
        "capacity": 20,
    },
    "ChangeCapacityBody": lambda ids: {"capacity": 30},
    "MoveSessionBody": lambda ids: {
        "starts_at": _soon(5).isoformat(),
        "ends_at": (_soon(5) + timedelta(hours=1)).isoformat(),
    },
    "RegisterBody": lambda ids: {"member_id": _id(ids, "member_id"), "adults": 1, "children": 0},
    "AttendanceBody": lambda ids: {"member_id": _id(ids, "member_id")},
    # notify
    "AddContactBody": lambda ids: {"address": f"sample-{uuid.uuid4().hex[:8]}@mail.example", "locale": "en"},
    "UpdateContactBody": lambda ids: {"locale": "es", "quiet_hours": {"start": "22:00", "end": "07:00"}},
    "SiteMessagesBody": lambda ids: {"message_name": "Riverside Center", "reminder_offsets": [1440, 120]},
}


def body_for(op: Operation, ids: dict[str, str] | None = None) -> dict[str, Any] | None:
    if op.body is None:
        return None
    sample = SAMPLES.get(op.body.__name__)
    assert sample is not None, (
        f"{op.method} {op.path}: no sample body for {op.body.__name__} in tests/support/samples.py"
    )
    body = sample(ids or {})
    op.body.model_validate(body)  # a sample that is not valid would test the validation, not the route
    return body


def path_for(op: Operation, ids: dict[str, str] | None = None) -> str:
    """The route's path with every {parameter} filled from ``ids`` (or a fresh value of the right shape)."""
    ids = ids or {}
    path = op.path
    for part in op.path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            value = ids.get(name) or (
                "2026-01"
                if name == "period"
                else f"{uuid.uuid4().hex}{uuid.uuid4().hex}.ics"
                if name == "feed"
                else "front_desk"
                if name == "role_id"
                else str(uuid.uuid4())
            )
            path = path.replace(part, value)
    return path
