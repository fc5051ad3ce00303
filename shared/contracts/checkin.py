"""Events published by the check-in service (source ``/rcc/checkin``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from shared.contracts import EventData, SupportType, register

Purpose = Literal[
    "drop_in",
    "peer_mentoring",
    "recovery_group",
    "sober_event",
    "resource_connecting",
    "education",
    "volunteer_shift",
]

# What each purpose counts as among SAMHSA's four types of social support (DOMAIN.md), published with the events so
# that consumers (the reports) read the same mapping: a volunteer shift is service given, not support received.
SUPPORT_TYPE_OF_PURPOSE: dict[str, SupportType | None] = {
    "drop_in": "affiliational",
    "sober_event": "affiliational",
    "peer_mentoring": "emotional",
    "recovery_group": "emotional",
    "education": "informational",
    "resource_connecting": "instrumental",
    "volunteer_shift": None,
}


@register
class MemberRegistered(EventData):
    event_type = "checkin.member_registered"
    summary = "A member was registered (at a kiosk or by a coordinator). Carries no nickname."

    member_id: uuid.UUID
    registered_at: datetime
    registered_by: Literal["kiosk", "coordinator", "admin"]


@register
class VisitorCheckedIn(EventData):
    event_type = "checkin.visitor_checked_in"
    summary = "Someone checked in at a kiosk, with why they came. member_id is null for an anonymous walk-in."

    visit_id: uuid.UUID
    member_id: uuid.UUID | None
    anonymous: bool
    purpose: Purpose
    support_type: SupportType | None
    ref: str | None
    # When the person checked in: for one a kiosk saved offline, its (skew-corrected) clock at the tap, not the
    # time it reached the server. Consumers take the visit's time from here, never from the envelope.
    checked_in_at: datetime
    recorded_offline: bool = False


@register
class VisitorCheckedOut(EventData):
    event_type = "checkin.visitor_checked_out"
    summary = "A visit ended, at the kiosk or closed automatically at the site's closing time."

    visit_id: uuid.UUID
    member_id: uuid.UUID | None
    purpose: Purpose
    ref: str | None
    checked_in_at: datetime
    checked_out_at: datetime
    minutes: int
    closed_by: Literal["kiosk", "auto_close"]
    # The check-out (checked_out_at) was saved by a kiosk offline and sent later.
    recorded_offline: bool = False


@register
class MemberErased(EventData):
    event_type = "checkin.member_erased"
    classification = "internal"
    summary = "A member's nickname and kiosk code were removed; the pseudonymous history stays."

    member_id: uuid.UUID
    erased_at: datetime


@register
class NamesDisclosed(EventData):
    event_type = "checkin.names_disclosed"
    classification = "internal"
    summary = (
        "A coordinator or admin was shown the display names of these members (POST /members/display-names): who saw "
        "whose name, when, for the audit log. Never carries a name. The subject is the viewer's id."
    )

    viewer_id: str  # the actor as every event names one: "token:<token id>"
    viewer_role: Literal["coordinator", "admin"]
    member_ids: list[uuid.UUID]
    disclosed_at: datetime
