"""The write repository handlers use (contacts, verifications, deliveries) and the unit of work.

The tables are in :mod:`services.notify.tables`; what is told (settings, recipients, reminders) is written through
:mod:`services.notify.outgoing`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sqlalchemy import Column, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.notify import SCHEMA
from services.notify.domain import DeliveryChannel, DeliveryStatus, DropReason, Kind, Locale
from services.notify.outgoing import MessagesRepository
from services.notify.tables import (
    Base,
    Contact,
    Delivery,
    KnownMember,
    Reminder,
    SiteCoordinator,
    SiteSettings,
    Verification,
    contacts,
    deliveries,
    known_members,
    reminders,
    site_coordinators,
    site_settings,
    verifications,
)
from shared.contracts.notify import Channel, MessagePurpose, Purpose
from shared.members import KnownMembersRepository
from shared.uow import UnitOfWork

__all__ = [
    "Base",
    "Contact",
    "Delivery",
    "KnownMember",
    "Reminder",
    "SiteCoordinator",
    "SiteSettings",
    "Verification",
    "deliveries",
    "reminders",
    "site_coordinators",
    "site_settings",
]


@dataclass(frozen=True, slots=True)
class NewContact:
    contact_id: uuid.UUID
    member_id: uuid.UUID
    site_id: str
    channel: Channel
    address: str
    locale: Locale
    quiet_start: time | None
    quiet_end: time | None
    kinds: tuple[Kind, ...]
    consent_at: datetime
    consent_by: str
    consent_source: str
    unsubscribe_hash: str


@dataclass(frozen=True, slots=True)
class ContactRow:
    contact_id: uuid.UUID
    member_id: uuid.UUID
    site_id: str
    channel: Channel
    address: str | None
    locale: Locale
    quiet_start: time | None
    quiet_end: time | None
    kinds: list[Kind]
    consent_at: datetime
    consent_by: str
    consent_source: str
    withdrawn_at: datetime | None
    verified_at: datetime | None
    bounces: int


@dataclass(frozen=True, slots=True)
class Preferences:
    locale: Locale
    quiet_start: time | None
    quiet_end: time | None
    kinds: tuple[Kind, ...]


@dataclass(frozen=True, slots=True)
class VerificationRow:
    contact_id: uuid.UUID
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    delivery_id: uuid.UUID
    message_id: str
    contact_id: uuid.UUID | None
    member_id: uuid.UUID
    site_id: str
    purpose: MessagePurpose
    created_at: datetime
    links: dict[str, str]
    kind: Purpose = "verification"
    channel: DeliveryChannel = "email"
    cause_id: uuid.UUID | None = None
    template_values: dict[str, Any] = field(default_factory=dict)
    not_after: datetime | None = None
    coalesce_key: str | None = None
    send_at: datetime | None = None  # None: at once
    status: DeliveryStatus = "pending"
    drop_reason: DropReason | None = None
    unsubscribe_hash: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A message leased to one sender, with what it takes to write it (the address only while it is sent), the
    contact's preferences as they are now, and the site's zone and names."""

    delivery_id: uuid.UUID
    message_id: str
    contact_id: uuid.UUID
    member_id: uuid.UUID
    site_id: str
    purpose: MessagePurpose
    attempts: int
    links: dict[str, str]
    channel: Channel
    address: str | None
    locale: Locale
    kind: Purpose = "verification"
    template_values: dict[str, Any] = field(default_factory=dict)
    not_after: datetime | None = None
    quiet_start: time | None = None
    quiet_end: time | None = None
    kinds: tuple[Kind, ...] = ()
    timezone: str = "UTC"
    site_name: str | None = None
    message_name: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    delivery_id: uuid.UUID
    contact_id: uuid.UUID
    member_id: uuid.UUID
    site_id: str
    purpose: MessagePurpose
    status: DeliveryStatus
    attempts: int
    channel: Channel
    kind: Purpose = "verification"


def _contact_columns() -> tuple[Column[Any], ...]:
    c = contacts.c
    return (
        c.contact_id,
        c.member_id,
        c.site_id,
        c.channel,
        c.address,
        c.locale,
        c.quiet_start,
        c.quiet_end,
        c.kinds,
        c.consent_at,
        c.consent_by,
        c.consent_source,
        c.withdrawn_at,
        c.verified_at,
        c.bounces,
    )


class NotifyRepository(KnownMembersRepository):
    known_members = known_members

    def __init__(self, session: AsyncConnection) -> None:
        self.session = session

    async def add_contact(self, contact: NewContact) -> bool:
        """False when the member already has this address on this channel (and has not withdrawn it)."""
        result = await self.session.execute(
            insert(contacts)
            .values(
                contact_id=contact.contact_id,
                member_id=contact.member_id,
                site_id=contact.site_id,
                channel=contact.channel,
                address=contact.address,
                locale=contact.locale,
                quiet_start=contact.quiet_start,
                quiet_end=contact.quiet_end,
                kinds=list(contact.kinds),
                consent_at=contact.consent_at,
                consent_by=contact.consent_by,
                consent_source=contact.consent_source,
                unsubscribe_hash=contact.unsubscribe_hash,
            )
            .on_conflict_do_nothing()
            .returning(contacts.c.contact_id)
        )
        return result.first() is not None

    async def contact_of(self, contact_id: uuid.UUID, member_id: uuid.UUID) -> ContactRow | None:
        """A contact of this member that is still in use (not withdrawn)."""
        row = (
            await self.session.execute(
                select(*_contact_columns())
                .where(
                    contacts.c.contact_id == contact_id,
                    contacts.c.member_id == member_id,
                    contacts.c.withdrawn_at.is_(None),
                )
                .with_for_update()
            )
        ).first()
        return None if row is None else ContactRow(*row)

    async def contact_by_unsubscribe(self, unsubscribe_hash: str) -> ContactRow | None:
        row = (
            await self.session.execute(
                select(*_contact_columns()).where(contacts.c.unsubscribe_hash == unsubscribe_hash).with_for_update()
            )
        ).first()
        return None if row is None else ContactRow(*row)

    async def set_preferences(self, contact_id: uuid.UUID, preferences: Preferences) -> ContactRow:
        row = (
            await self.session.execute(
                update(contacts)
                .where(contacts.c.contact_id == contact_id)
                .values(
                    locale=preferences.locale,
                    quiet_start=preferences.quiet_start,
                    quiet_end=preferences.quiet_end,
                    kinds=list(preferences.kinds),
                )
                .returning(*_contact_columns())
            )
        ).one()
        return ContactRow(*row)

    async def withdraw(
        self, at: datetime, *, contact_id: uuid.UUID | None = None, member_id: uuid.UUID | None = None
    ) -> list[ContactRow]:
        """Delete the address of one contact (or of all a member's), its pending links and its verification
        secrets; the rest of the row stays, pseudonymous. Returns the contacts withdrawn now."""
        where = contacts.c.contact_id == contact_id if contact_id is not None else contacts.c.member_id == member_id
        rows = (
            await self.session.execute(
                update(contacts)
                .where(where, contacts.c.withdrawn_at.is_(None))
                .values(address=None, withdrawn_at=at, unsubscribe_hash=None)
                .returning(*_contact_columns())
            )
        ).all()
        withdrawn = [ContactRow(*row) for row in rows]
        ids = [c.contact_id for c in withdrawn]
        if ids:
            await self.session.execute(verifications.delete().where(verifications.c.contact_id.in_(ids)))
            await self.session.execute(
                update(deliveries).where(deliveries.c.contact_id.in_(ids)).values(links=text("'{}'::jsonb"))
            )
        return withdrawn

    async def add_verification(self, token_hash: str, contact_id: uuid.UUID, expires_at: datetime) -> None:
        await self.session.execute(
            insert(verifications).values(token_hash=token_hash, contact_id=contact_id, expires_at=expires_at)
        )

    async def verification(self, token_hash: str) -> VerificationRow | None:
        v = verifications.c
        row = (
            await self.session.execute(
                select(v.contact_id, v.expires_at, v.used_at).where(v.token_hash == token_hash).with_for_update()
            )
        ).first()
        return None if row is None else VerificationRow(*row)

    async def mark_verified(self, token_hash: str, contact_id: uuid.UUID, at: datetime) -> ContactRow | None:
        """Use the link up and verify its contact (None: the contact was withdrawn meanwhile)."""
        await self.session.execute(
            update(verifications).where(verifications.c.token_hash == token_hash).values(used_at=at)
        )
        row = (
            await self.session.execute(
                update(contacts)
                .where(contacts.c.contact_id == contact_id, contacts.c.withdrawn_at.is_(None))
                .values(verified_at=func.coalesce(contacts.c.verified_at, at))
                .returning(*_contact_columns())
            )
        ).first()
        return None if row is None else ContactRow(*row)

    async def queue_delivery(self, delivery: NewDelivery) -> bool:
        """False when a message with this id was queued before (sent once, whatever asks again)."""
        result = await self.session.execute(
            insert(deliveries)
            .values(
                delivery_id=delivery.delivery_id,
                message_id=delivery.message_id,
                contact_id=delivery.contact_id,
                member_id=delivery.member_id,
                site_id=delivery.site_id,
                purpose=delivery.purpose,
                status=delivery.status,
                next_attempt_at=delivery.send_at or delivery.created_at,
                created_at=delivery.created_at,
                finished_at=delivery.created_at if delivery.status != "pending" else None,
                links=delivery.links if delivery.status == "pending" else {},
                channel=delivery.channel,
                kind=delivery.kind,
                cause_id=delivery.cause_id,
                template_values=delivery.template_values,
                not_after=delivery.not_after,
                coalesce_key=delivery.coalesce_key,
                drop_reason=delivery.drop_reason,
                unsubscribe_hash=delivery.unsubscribe_hash,
            )
            .on_conflict_do_nothing(index_elements=[deliveries.c.message_id])
            .returning(deliveries.c.delivery_id)
        )
        return result.first() is not None

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[ClaimedDelivery]:
        """Lease the due messages to this sender: rows another sender holds are skipped, never waited for, so
        several replicas share the work; a lease that runs out (a sender died) makes the row due again."""
        rows = await self.session.execute(
            text(
                f"""
                WITH due AS (
                    SELECT delivery_id FROM "{SCHEMA}".deliveries
                    WHERE status = 'pending' AND next_attempt_at <= :now
                    ORDER BY next_attempt_at
                    LIMIT :limit
                    FOR UPDATE SKIP LOCKED
                ),
                leased AS (
                    UPDATE "{SCHEMA}".deliveries AS d
                    SET next_attempt_at = :lease_until, attempts = d.attempts + 1
                    FROM due WHERE d.delivery_id = due.delivery_id
                    RETURNING d.*
                )
                SELECT l.delivery_id, l.message_id, l.contact_id, l.member_id, l.site_id, l.purpose, l.attempts,
                       l.links, c.channel, c.address, c.locale, l.kind, l.template_values, l.not_after,
                       c.quiet_start, c.quiet_end, c.kinds, coalesce(s.timezone, 'UTC') AS timezone,
                       s.name AS site_name, ss.message_name
                FROM leased AS l
                JOIN "{SCHEMA}".contacts AS c USING (contact_id)
                LEFT JOIN access.sites AS s ON s.site_id = l.site_id
                LEFT JOIN "{SCHEMA}".site_settings AS ss ON ss.site_id = l.site_id
                """
            ),
            {"now": now, "lease_until": lease_until, "limit": limit},
        )
        return [
            ClaimedDelivery(
                delivery_id=row.delivery_id,
                message_id=row.message_id,
                contact_id=row.contact_id,
                member_id=row.member_id,
                site_id=row.site_id,
                purpose=row.purpose,
                attempts=row.attempts,
                links=row.links,
                channel=row.channel,
                address=row.address,
                locale=row.locale,
                kind=row.kind,
                template_values=row.template_values,
                not_after=row.not_after,
                quiet_start=row.quiet_start,
                quiet_end=row.quiet_end,
                kinds=tuple(row.kinds),
                timezone=row.timezone,
                site_name=row.site_name,
                message_name=row.message_name,
            )
            for row in rows
        ]

    async def delivery(self, delivery_id: uuid.UUID) -> DeliveryRow | None:
        d = deliveries.c
        row = (
            await self.session.execute(
                select(
                    d.delivery_id,
                    d.contact_id,
                    d.member_id,
                    d.site_id,
                    d.purpose,
                    d.status,
                    d.attempts,
                    contacts.c.channel,
                    d.kind,
                )
                .join_from(deliveries, contacts, d.contact_id == contacts.c.contact_id)
                .where(d.delivery_id == delivery_id)
                .with_for_update(of=deliveries)
            )
        ).first()
        return None if row is None else DeliveryRow(*row)

    async def finish_delivery(
        self,
        delivery_id: uuid.UUID,
        status: DeliveryStatus,
        at: datetime,
        error: str | None,
        drop_reason: DropReason | None = None,
    ) -> None:
        await self.session.execute(
            update(deliveries)
            .where(deliveries.c.delivery_id == delivery_id)
            .values(status=status, finished_at=at, last_error=error, links=text("'{}'::jsonb"), drop_reason=drop_reason)
        )

    async def defer_delivery(self, delivery_id: uuid.UUID, until: datetime) -> None:
        """Wait (quiet hours): the lease's attempt is given back, as nothing was tried."""
        await self.session.execute(
            update(deliveries)
            .where(deliveries.c.delivery_id == delivery_id)
            .values(next_attempt_at=until, attempts=func.greatest(deliveries.c.attempts - 1, 0))
        )

    async def retry_delivery(self, delivery_id: uuid.UUID, at: datetime, error: str) -> None:
        await self.session.execute(
            update(deliveries)
            .where(deliveries.c.delivery_id == delivery_id)
            .values(next_attempt_at=at, last_error=error)
        )

    async def count_bounce(self, contact_id: uuid.UUID) -> None:
        await self.session.execute(
            update(contacts).where(contacts.c.contact_id == contact_id).values(bounces=contacts.c.bounces + 1)
        )


class NotifyUnitOfWork(UnitOfWork):
    source = "/rcc/notify"
    # The sender of every message: its domain names the Message-IDs handlers write (the app sets it).
    sender = "no-reply@localhost"

    def start(self) -> None:
        self.notify = NotifyRepository(self.session)
        self.messages = MessagesRepository(self.session)
