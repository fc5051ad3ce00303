"""The write repository handlers use (contacts, verifications, deliveries) and the unit of work.

The tables are in :mod:`services.notify.tables`; what is told (settings, recipients, reminders) is written through
:mod:`services.notify.outgoing`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

import asyncpg
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


@dataclass(frozen=True, slots=True)
class DeliveryChange:
    """What recording an outcome does to one delivery row (the mark of a hand-over is cleared with it)."""

    delivery_id: uuid.UUID
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = None  # None: as it is
    finished_at: datetime | None = None
    error: str | None = None  # None on a pending row: the last error stays
    drop_reason: DropReason | None = None


_DELIVERY_FOR_UPDATE = f"""
    SELECT d.delivery_id, d.contact_id, d.member_id, d.site_id, d.purpose, d.status, d.attempts, c.channel, d.kind
    FROM "{SCHEMA}".deliveries AS d JOIN "{SCHEMA}".contacts AS c USING (contact_id)
"""

_APPLY_CHANGES = f"""
    UPDATE "{SCHEMA}".deliveries AS d SET
        status = u.status,
        attempts = u.attempts,
        next_attempt_at = coalesce(u.next_attempt_at, d.next_attempt_at),
        finished_at = u.finished_at,
        last_error = CASE WHEN u.status = 'pending' AND u.error IS NULL THEN d.last_error ELSE u.error END,
        links = CASE WHEN u.status = 'pending' THEN d.links ELSE '{{}}'::jsonb END,
        drop_reason = u.drop_reason,
        handed_at = NULL
    FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::text[])
        AS u(delivery_id, status, attempts, next_attempt_at, finished_at, error, drop_reason)
    WHERE d.delivery_id = u.delivery_id
"""

# The compare-and-set of a hand-over: the row is still pending, unmarked, and leased by this very claim (a claim
# after a lease ran out counts another attempt).
_MARK_HANDED = f"""
    UPDATE "{SCHEMA}".deliveries SET handed_at = now()
    WHERE delivery_id = $1 AND attempts = $2 AND status = 'pending' AND handed_at IS NULL
    RETURNING true
"""


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

    def __init__(self, session: AsyncConnection, driver: asyncpg.Connection | None = None) -> None:
        self.session = session
        # The asyncpg connection under the session, for the sender's set-based and per-message statements.
        self.driver = driver

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
                    WHERE status = 'pending' AND next_attempt_at <= :now AND handed_at IS NULL
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

    def _raw(self) -> asyncpg.Connection:
        if self.driver is None:
            raise RuntimeError("this repository was made without its asyncpg connection")
        return self.driver

    async def deliveries_for_update(self, delivery_ids: list[uuid.UUID]) -> dict[uuid.UUID, DeliveryRow]:
        """Lock the rows whose outcomes are recorded (in one order, so two recorders never wait on each other)."""
        rows = await self._raw().fetch(
            _DELIVERY_FOR_UPDATE + " WHERE d.delivery_id = ANY($1::uuid[]) ORDER BY d.delivery_id FOR UPDATE OF d",
            delivery_ids,
        )
        return {row["delivery_id"]: DeliveryRow(*row.values()) for row in rows}

    async def interrupted(self, now: datetime, limit: int) -> list[DeliveryRow]:
        """Messages a sender began handing to the relay and never recorded, whose lease ran out: the sender died."""
        rows = await self._raw().fetch(
            _DELIVERY_FOR_UPDATE + " WHERE d.status = 'pending' AND d.next_attempt_at <= $1"
            " AND d.handed_at IS NOT NULL ORDER BY d.delivery_id LIMIT $2 FOR UPDATE OF d SKIP LOCKED",
            now,
            limit,
        )
        return [DeliveryRow(*row.values()) for row in rows]

    async def apply_changes(self, changes: list[DeliveryChange]) -> None:
        """Every recorded outcome of a round in one statement."""
        if not changes:
            return
        await self._raw().execute(
            _APPLY_CHANGES,
            [c.delivery_id for c in changes],
            [c.status for c in changes],
            [c.attempts for c in changes],
            [c.next_attempt_at for c in changes],
            [c.finished_at for c in changes],
            [c.error for c in changes],
            [c.drop_reason for c in changes],
        )

    async def mark_handed(self, delivery_id: uuid.UUID, attempts: int) -> bool:
        """Record that this claim's message goes to the relay now (False: the row is no longer this claim's).
        Run outside a transaction, the statement commits on its own before DATA is sent."""
        return bool(await self._raw().fetchval(_MARK_HANDED, delivery_id, attempts))

    async def count_bounces(self, contact_ids: list[uuid.UUID]) -> None:
        if contact_ids:
            await self._raw().execute(
                f'UPDATE "{SCHEMA}".contacts AS c SET bounces = c.bounces + u.n'
                " FROM (SELECT id, count(*)::int AS n FROM unnest($1::uuid[]) AS id GROUP BY id) AS u"
                " WHERE c.contact_id = u.id",
                contact_ids,
            )


class NotifyUnitOfWork(UnitOfWork):
    source = "/rcc/notify"
    # The sender of every message: its domain names the Message-IDs handlers write (the app sets it).
    sender = "no-reply@localhost"

    def start(self) -> None:
        self.notify = NotifyRepository(self.session, self.driver)
        self.messages = MessagesRepository(self.session)
