"""Events published by the notify service (source ``/rcc/notify``). Ids and kinds only: an address or a message's
text never leaves the service, so the audit log shows that a person was told, not what or where."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.contracts import EventData, register

Channel = Literal["email", "sms", "push"]
# What a message is about: the verification of a new contact, and the kinds a person chooses to receive.
Purpose = Literal["verification", "confirmations", "changes", "reminders", "approvals"]
# Which message it was (what it is about, never what it says); each belongs to one Purpose (its kind).
MessagePurpose = Literal[
    "verification",
    "shift_confirmed",
    "shift_waitlisted",
    "shift_promoted",
    "shift_dropped",
    "shift_changed",
    "shift_cancelled",
    "shift_missed",
    "hours_approved",
    "hours_rejected",
    "stipend_paid",
    "gathering_confirmed",
    "gathering_waitlisted",
    "gathering_promoted",
    "gathering_cancelled",
    "session_cancelled",
    "event_cancelled",
    "shift_reminder",
    "gathering_reminder",
]


@register
class ContactAdded(EventData):
    event_type = "notify.contact_added"
    classification = "internal"
    summary = "A member gave a way to reach them (with consent); it is unverified until its link is followed."

    contact_id: uuid.UUID
    member_id: uuid.UUID
    channel: Channel
    added_at: datetime


@register
class ContactVerified(EventData):
    event_type = "notify.contact_verified"
    classification = "internal"
    summary = "A contact's verification link was followed: messages may now be sent to it."

    contact_id: uuid.UUID
    member_id: uuid.UUID
    channel: Channel
    verified_at: datetime


@register
class ConsentWithdrawn(EventData):
    event_type = "notify.consent_withdrawn"
    classification = "internal"
    summary = "A contact's consent was withdrawn (or its member erased): its address is deleted."

    contact_id: uuid.UUID
    member_id: uuid.UUID
    channel: Channel
    withdrawn_at: datetime
    reason: Literal["withdrawn", "unsubscribed", "member_erased"]


@register
class NotificationSent(EventData):
    event_type = "notify.notification_sent"
    classification = "internal"
    summary = "A message was accepted by the mail relay."

    delivery_id: uuid.UUID
    contact_id: uuid.UUID
    member_id: uuid.UUID
    channel: Channel
    purpose: Purpose
    sent_at: datetime
    attempts: int
    message: MessagePurpose | None = Field(default=None, description="Which message (absent from older versions)")


@register
class NotificationFailed(EventData):
    event_type = "notify.notification_failed"
    classification = "internal"
    summary = (
        "A message could not be delivered (refused by the relay, retries exhausted, or the contact withdrawn), or its"
        " sender was stopped while handing it to the relay (interrupted: it may have arrived; it is not sent again)."
    )

    delivery_id: uuid.UUID
    contact_id: uuid.UUID
    member_id: uuid.UUID
    channel: Channel
    purpose: Purpose
    failed_at: datetime
    attempts: int
    message: MessagePurpose | None = Field(default=None, description="Which message (absent from older versions)")
    reason: Literal["refused", "retries_exhausted", "withdrawn", "interrupted"]
