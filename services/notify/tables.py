"""Tables of the ``notify`` schema.

Addresses live in ``contacts.address`` and nowhere else: a withdrawal or an erasure sets it to NULL and keeps the
row (pseudonymous: ids, channel, times) so the delivery history keeps its meaning."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Any, cast

from sqlalchemy import ARRAY, CheckConstraint, DateTime, ForeignKey, Index, Integer, Table, Text, Time, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.notify import SCHEMA
from shared.db import service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class KnownMember(Base):
    """The members check-in registered, fed by ``checkin.member_*`` events (shared/members.py)."""

    __tablename__ = "known_members"

    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        # A channel is a value, not a column per channel: SMS and push arrive without a schema rewrite.
        CheckConstraint("channel IN ('email', 'sms', 'push')", name="channel_known"),
        CheckConstraint("locale IN ('en', 'es')", name="locale_known"),
        CheckConstraint("(quiet_start IS NULL) = (quiet_end IS NULL)", name="quiet_hours_whole"),
        CheckConstraint("withdrawn_at IS NULL OR address IS NULL", name="withdrawn_has_no_address"),
        Index(
            "uq_contacts_member_address",
            "member_id",
            "channel",
            "address",
            unique=True,
            postgresql_where=text("withdrawn_at IS NULL"),
        ),
        Index("ix_contacts_member", "member_id"),
    )

    contact_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    site_id: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    locale: Mapped[str] = mapped_column(Text)
    quiet_start: Mapped[time | None] = mapped_column(Time)
    quiet_end: Mapped[time | None] = mapped_column(Time)
    kinds: Mapped[list[str]] = mapped_column(ARRAY(Text))
    consent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    consent_by: Mapped[str] = mapped_column(Text)
    consent_source: Mapped[str] = mapped_column(Text)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Permanent refusals by the relay; a few make the contact "not reachable".
    bounces: Mapped[int] = mapped_column(Integer, server_default="0")
    unsubscribe_hash: Mapped[str | None] = mapped_column(Text, unique=True)


class Verification(Base):
    __tablename__ = "verifications"

    token_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey(Contact.contact_id))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Delivery(Base):
    """One message to one recipient and its status. ``links`` holds the secrets its links carry until it is sent
    (they exist nowhere else in clear), then is emptied. ``template_values`` hold what the message says (times, numbers,
    what it is about): it stays here, never in an event or a log. An in-app entry (channel ``inapp``) has no
    contact and is shown in the person's list as soon as it is written."""

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed', 'dropped')", name="status_known"),
        CheckConstraint("channel IN ('email', 'sms', 'push', 'inapp')", name="channel_known"),
        CheckConstraint("(channel = 'inapp') = (contact_id IS NULL)", name="inapp_has_no_contact"),
        CheckConstraint(
            "drop_reason IS NULL OR drop_reason IN "
            "('quiet_hours', 'too_late', 'daily_cap', 'unsubscribed', 'withdrawn')",
            name="drop_reason_known",
        ),
        CheckConstraint("(status = 'dropped') = (drop_reason IS NOT NULL)", name="dropped_has_reason"),
        Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index(
            "ix_deliveries_handed",
            "next_attempt_at",
            postgresql_where=text("status = 'pending' AND handed_at IS NOT NULL"),
        ),
        Index("ix_deliveries_member", "member_id", "created_at"),
        Index("ix_deliveries_contact", "contact_id", "created_at"),
        Index(
            "ix_deliveries_coalesce",
            "contact_id",
            "coalesce_key",
            postgresql_where=text("status = 'pending' AND coalesce_key IS NOT NULL"),
        ),
    )

    delivery_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    message_id: Mapped[str] = mapped_column(Text, unique=True)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey(Contact.contact_id))
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    site_id: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The SMTP reply code or the error's class name: never the relay's text, which may quote the address.
    last_error: Mapped[str | None] = mapped_column(Text)
    links: Mapped[dict[str, str]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    channel: Mapped[str] = mapped_column(Text, server_default="email")
    kind: Mapped[str] = mapped_column(Text, server_default="verification")
    # The event (or reminder) the message tells of: with the recipient and purpose it makes the Message-ID.
    cause_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    template_values: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # A reminder is worth nothing once its thing has started: not sent after this.
    not_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Pending messages with the same key for the same contact are one message (the latest values).
    coalesce_key: Mapped[str | None] = mapped_column(Text)
    drop_reason: Mapped[str | None] = mapped_column(Text)
    # One-click unsubscribe of this message's kind: the hash of the key its link carries.
    unsubscribe_hash: Mapped[str | None] = mapped_column(Text, unique=True)
    # Set (committed) just before the message's DATA goes to the relay, cleared when the relay's answer is recorded:
    # a pending row that still has it when its lease runs out was being sent by a sender that died. Whether the
    # relay took it is unknown, so it is never sent again (at most once): it ends failed, reason "interrupted".
    handed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SiteSettings(Base):
    """How a site's messages read and when reminders go; a site without a row has the defaults."""

    __tablename__ = "site_settings"
    __table_args__ = (CheckConstraint("daily_cap > 0", name="daily_cap_positive"),)

    site_id: Mapped[str] = mapped_column(Text, primary_key=True)
    message_name: Mapped[str | None] = mapped_column(Text)
    reminder_offsets: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    daily_cap: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(Text)


class SiteCoordinator(Base):
    """Members who coordinate a site, as notify knows them: they are told of follow-ups (a missed shift)."""

    __tablename__ = "site_coordinators"

    site_id: Mapped[str] = mapped_column(Text, primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    added_by: Mapped[str] = mapped_column(Text)


class Reminder(Base):
    """One reminder a person is owed: before a shift or a gathering they hold a confirmed place at. Moving the
    thing moves it (a new id, so its message is a new one); cancelling or dropping deletes it."""

    __tablename__ = "reminders"
    __table_args__ = (
        CheckConstraint("subject IN ('shift', 'session', 'event')", name="subject_known"),
        CheckConstraint("status IN ('scheduled', 'sent', 'skipped')", name="status_known"),
        Index("uq_reminders_member_subject_offset", "member_id", "subject_id", "offset_minutes", unique=True),
        Index("ix_reminders_due", "due_at", postgresql_where=text("status = 'scheduled'")),
        Index("ix_reminders_subject", "subject_id"),
    )

    reminder_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    site_id: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    subject_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    offset_minutes: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text)
    cause_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# Declarative classes type ``__table__`` as a FromClause; these are the Tables they are.
known_members = cast(Table, KnownMember.__table__)
contacts = cast(Table, Contact.__table__)
verifications = cast(Table, Verification.__table__)
deliveries = cast(Table, Delivery.__table__)
site_settings = cast(Table, SiteSettings.__table__)
site_coordinators = cast(Table, SiteCoordinator.__table__)
reminders = cast(Table, Reminder.__table__)
