"""Tables of the ``notify`` schema and the write repository handlers use.

Addresses live in ``contacts.address`` and nowhere else: a withdrawal or an erasure sets it to NULL and keeps the
row (pseudonymous: ids, channel, times) so the delivery history keeps its meaning."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    Time,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.notify import SCHEMA
from services.notify.domain import DeliveryStatus, Kind, Locale
from shared.contracts.notify import Channel, Purpose
from shared.db import service_metadata
from shared.members import KnownMembersRepository
from shared.uow import UnitOfWork


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
    """One message and its status. ``links`` holds the secrets its links carry until it is sent (they exist
    nowhere else in clear), then is emptied."""

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status_known"),
        Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    )

    delivery_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    message_id: Mapped[str] = mapped_column(Text, unique=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey(Contact.contact_id))
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


# Declarative classes type ``__table__`` as a FromClause; these are the Tables they are.
known_members = cast(Table, KnownMember.__table__)
contacts = cast(Table, Contact.__table__)
verifications = cast(Table, Verification.__table__)
deliveries = cast(Table, Delivery.__table__)


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
    contact_id: uuid.UUID
    member_id: uuid.UUID
    site_id: str
    purpose: Purpose
    created_at: datetime
    links: dict[str, str]


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A message leased to one sender, with what it takes to write it (the address only while it is sent)."""

    delivery_id: uuid.UUID
    message_id: str
    contact_id: uuid.UUID
    member_id: uuid.UUID
    site_id: str
    purpose: Purpose
    attempts: int
    links: dict[str, str]
    channel: Channel
    address: str | None
    locale: Locale


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    delivery_id: uuid.UUID
    contact_id: uuid.UUID
    member_id: uuid.UUID
    site_id: str
    purpose: Purpose
    status: DeliveryStatus
    attempts: int
    channel: Channel


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
                status="pending",
                next_attempt_at=delivery.created_at,
                created_at=delivery.created_at,
                links=delivery.links,
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
                       l.links, c.channel, c.address, c.locale
                FROM leased AS l JOIN "{SCHEMA}".contacts AS c USING (contact_id)
                """
            ),
            {"now": now, "lease_until": lease_until, "limit": limit},
        )
        return [ClaimedDelivery(*row) for row in rows]

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
                )
                .join_from(deliveries, contacts, d.contact_id == contacts.c.contact_id)
                .where(d.delivery_id == delivery_id)
                .with_for_update(of=deliveries)
            )
        ).first()
        return None if row is None else DeliveryRow(*row)

    async def finish_delivery(
        self, delivery_id: uuid.UUID, status: DeliveryStatus, at: datetime, error: str | None
    ) -> None:
        await self.session.execute(
            update(deliveries)
            .where(deliveries.c.delivery_id == delivery_id)
            .values(status=status, finished_at=at, last_error=error, links=text("'{}'::jsonb"))
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

    def start(self) -> None:
        self.notify = NotifyRepository(self.session)
