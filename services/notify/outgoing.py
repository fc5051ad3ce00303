"""The write repository of what is told: a site's message settings and coordinators, who may receive a message of
a kind, coalescing pending changes, and the durable reminder schedule."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, any_, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.notify.domain import (
    DEFAULT_DAILY_CAP,
    DEFAULT_REMINDER_OFFSETS,
    Subject,
)
from services.notify.tables import contacts, deliveries, reminders, site_coordinators, site_settings
from shared.contracts.notify import MessagePurpose, Purpose


@dataclass(frozen=True, slots=True)
class SiteSettingsRow:
    site_id: str
    message_name: str | None
    reminder_offsets: tuple[int, ...]
    daily_cap: int
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Recipient:
    """A verified, consenting contact that wants this kind, and how many messages its person was given lately."""

    contact_id: uuid.UUID
    member_id: uuid.UUID
    given_lately: int


@dataclass(frozen=True, slots=True)
class NewReminder:
    reminder_id: uuid.UUID
    member_id: uuid.UUID
    site_id: str
    subject: Subject
    subject_id: uuid.UUID
    starts_at: datetime
    offset_minutes: int
    due_at: datetime
    cause_id: uuid.UUID
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DueReminder:
    reminder_id: uuid.UUID
    member_id: uuid.UUID
    site_id: str
    subject: Subject
    subject_id: uuid.UUID
    starts_at: datetime
    due_at: datetime


class MessagesRepository:
    def __init__(self, session: AsyncConnection) -> None:
        self.session = session
        # A site's settings as this unit of work read or wrote them: a consumer's batch reads them once a site, not
        # twice an event.
        self._settings: dict[str, SiteSettingsRow] = {}

    async def site_settings(self, site_id: str) -> SiteSettingsRow:
        if (known := self._settings.get(site_id)) is None:
            known = self._settings[site_id] = await self._read_site_settings(site_id)
        return known

    async def _read_site_settings(self, site_id: str) -> SiteSettingsRow:
        s = site_settings.c
        row = (
            await self.session.execute(
                select(s.site_id, s.message_name, s.reminder_offsets, s.daily_cap, s.updated_at).where(
                    s.site_id == site_id
                )
            )
        ).first()
        if row is None:
            return SiteSettingsRow(site_id, None, DEFAULT_REMINDER_OFFSETS, DEFAULT_DAILY_CAP, None)
        return SiteSettingsRow(
            row.site_id, row.message_name, tuple(row.reminder_offsets), row.daily_cap, row.updated_at
        )

    async def set_site_settings(
        self, site_id: str, message_name: str | None, offsets: tuple[int, ...], cap: int, at: datetime, by: str
    ) -> SiteSettingsRow:
        values = {
            "message_name": message_name,
            "reminder_offsets": list(offsets),
            "daily_cap": cap,
            "updated_at": at,
            "updated_by": by,
        }
        await self.session.execute(
            insert(site_settings)
            .values(site_id=site_id, **values)
            .on_conflict_do_update(index_elements=[site_settings.c.site_id], set_=values)
        )
        self._settings[site_id] = SiteSettingsRow(site_id, message_name, offsets, cap, at)
        return self._settings[site_id]

    async def add_coordinator(self, site_id: str, member_id: uuid.UUID, at: datetime, by: str) -> bool:
        result = await self.session.execute(
            insert(site_coordinators)
            .values(site_id=site_id, member_id=member_id, added_at=at, added_by=by)
            .on_conflict_do_nothing()
            .returning(site_coordinators.c.member_id)
        )
        return result.first() is not None

    async def remove_coordinator(self, site_id: str, member_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(site_coordinators)
            .where(site_coordinators.c.site_id == site_id, site_coordinators.c.member_id == member_id)
            .returning(site_coordinators.c.member_id)
        )
        return result.first() is not None

    async def coordinators(self, site_id: str) -> list[uuid.UUID]:
        rows = await self.session.execute(
            select(site_coordinators.c.member_id)
            .where(site_coordinators.c.site_id == site_id)
            .order_by(site_coordinators.c.member_id)
        )
        return list(rows.scalars())

    async def recipients(self, member_id: uuid.UUID, site_id: str, kind: Purpose, since: datetime) -> list[Recipient]:
        """The member's contacts at the site a message of ``kind`` may go to: verified, not withdrawn, wanting the
        kind; with how many messages the *person* was given here since ``since``, over all their channels (one
        message to two addresses is one; verifications, in-app entries and dropped messages do not count)."""
        c, d = contacts.c, deliveries.c
        given = (
            select(func.count(func.distinct(func.row(d.purpose, d.cause_id))))
            .where(
                d.member_id == c.member_id,
                d.site_id == c.site_id,
                d.created_at >= since,
                d.channel != "inapp",
                d.status.in_(("pending", "sent")),
                d.kind != "verification",
            )
            .scalar_subquery()
        )
        rows = await self.session.execute(
            select(c.contact_id, c.member_id, given)
            .where(
                c.member_id == member_id,
                c.site_id == site_id,
                c.withdrawn_at.is_(None),
                c.verified_at.is_not(None),
                c.address.is_not(None),
                literal(kind) == any_(c.kinds),
            )
            .order_by(c.contact_id)
        )
        return [Recipient(*row) for row in rows]

    async def coalesce(
        self,
        contact_id: uuid.UUID,
        key: str,
        *,
        message_id: str,
        purpose: MessagePurpose,
        cause_id: uuid.UUID,
        values: dict[str, Any],
        not_after: datetime | None,
    ) -> bool:
        """Fold a message into the pending one with the same key that no sender has taken yet (it then says the
        latest); False when there is none. A message a sender holds is not touched: the row lock makes this
        wait for its lease, after which it no longer counts as untaken."""
        result = await self.session.execute(
            update(deliveries)
            .where(
                deliveries.c.contact_id == contact_id,
                deliveries.c.coalesce_key == key,
                deliveries.c.status == "pending",
                deliveries.c.attempts == 0,
            )
            .values(
                message_id=message_id, purpose=purpose, cause_id=cause_id, template_values=values, not_after=not_after
            )
            .returning(deliveries.c.delivery_id)
        )
        return result.first() is not None

    async def coalesce_inapp(
        self,
        member_id: uuid.UUID,
        key: str,
        *,
        since: datetime,
        message_id: str,
        purpose: MessagePurpose,
        cause_id: uuid.UUID,
        values: dict[str, Any],
    ) -> bool:
        """The in-app entry of a burst is one entry too: the latest written since ``since`` takes the new values."""
        d = deliveries.c
        latest = (
            select(d.delivery_id)
            .where(d.member_id == member_id, d.channel == "inapp", d.coalesce_key == key, d.created_at >= since)
            .order_by(d.created_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        result = await self.session.execute(
            update(deliveries)
            .where(d.delivery_id == latest)
            .values(message_id=message_id, purpose=purpose, cause_id=cause_id, template_values=values)
            .returning(d.delivery_id)
        )
        return result.first() is not None

    async def schedule_reminders(self, planned: list[NewReminder]) -> None:
        """Insert the reminders; one already there for the same start is left as it is (a redelivered event), one
        for another start is moved (a new id: its message is a new one)."""
        if not planned:
            return
        statement = insert(reminders)
        # Rows as parameters (executemany), not as a VALUES list: the statement is compiled once, not per call.
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[reminders.c.member_id, reminders.c.subject_id, reminders.c.offset_minutes],
                set_={
                    "reminder_id": statement.excluded.reminder_id,
                    "starts_at": statement.excluded.starts_at,
                    "due_at": statement.excluded.due_at,
                    "status": "scheduled",
                    "cause_id": statement.excluded.cause_id,
                },
                where=reminders.c.starts_at != statement.excluded.starts_at,
            ),
            [
                {
                    "reminder_id": r.reminder_id,
                    "member_id": r.member_id,
                    "site_id": r.site_id,
                    "subject": r.subject,
                    "subject_id": r.subject_id,
                    "starts_at": r.starts_at,
                    "offset_minutes": r.offset_minutes,
                    "due_at": r.due_at,
                    "status": "scheduled",
                    "cause_id": r.cause_id,
                    "created_at": r.created_at,
                }
                for r in planned
            ],
        )

    async def move_reminders(self, subject_id: uuid.UUID, starts_at: datetime, cause_id: uuid.UUID) -> int:
        """The thing starts at another time: its reminders are due relative to the new start, and are new."""
        r = reminders.c
        result = await self.session.execute(
            update(reminders)
            .where(r.subject_id == subject_id, r.starts_at != starts_at)
            .values(
                reminder_id=func.gen_random_uuid(),
                starts_at=starts_at,
                due_at=literal(starts_at, DateTime(timezone=True))
                - func.make_interval(0, 0, 0, 0, 0, r.offset_minutes),
                status="scheduled",
                cause_id=cause_id,
            )
            .returning(r.reminder_id)
        )
        return len(result.all())

    async def delete_reminders(self, subject_id: uuid.UUID, member_id: uuid.UUID | None = None) -> int:
        where = [reminders.c.subject_id == subject_id]
        if member_id is not None:
            where.append(reminders.c.member_id == member_id)
        result = await self.session.execute(delete(reminders).where(*where).returning(reminders.c.reminder_id))
        return len(result.all())

    async def forget_member(self, member_id: uuid.UUID) -> None:
        """An erased member is reminded of nothing and coordinates nothing any more."""
        await self.session.execute(delete(reminders).where(reminders.c.member_id == member_id))
        await self.session.execute(delete(site_coordinators).where(site_coordinators.c.member_id == member_id))

    async def claim_due_reminders(self, now: datetime, limit: int) -> list[tuple[DueReminder, list[datetime]]]:
        """Lock due reminders for this scheduler (others skip them) and read, for each, when the person's other
        reminders for the same thing fell due: catching up sends only the latest."""
        r = reminders.c
        claimed = (
            await self.session.execute(
                select(r.reminder_id, r.member_id, r.site_id, r.subject, r.subject_id, r.starts_at, r.due_at)
                .where(r.status == "scheduled", r.due_at <= now)
                .order_by(r.due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        due = [DueReminder(*row) for row in claimed]
        if not due:
            return []
        siblings = await self.session.execute(
            select(r.member_id, r.subject_id, r.due_at).where(
                r.subject_id.in_(list({d.subject_id for d in due})), r.due_at <= now
            )
        )
        by_pair: dict[tuple[uuid.UUID, uuid.UUID], list[datetime]] = {}
        for member_id, subject_id, due_at in siblings:
            by_pair.setdefault((member_id, subject_id), []).append(due_at)
        return [(d, by_pair.get((d.member_id, d.subject_id), [d.due_at])) for d in due]

    async def finish_reminder(self, reminder_id: uuid.UUID, sent: bool) -> None:
        await self.session.execute(
            update(reminders).where(reminders.c.reminder_id == reminder_id).values(status="sent" if sent else "skipped")
        )

    async def remove_kind(self, unsubscribe_hash: str) -> tuple[uuid.UUID, Purpose] | None:
        """The contact and kind of the message whose unsubscribe link carries this key's hash; the kind is taken
        out of what the contact wants (the contact stays)."""
        row = (
            await self.session.execute(
                select(deliveries.c.contact_id, deliveries.c.kind).where(
                    deliveries.c.unsubscribe_hash == unsubscribe_hash, deliveries.c.contact_id.is_not(None)
                )
            )
        ).first()
        if row is None or row.contact_id is None:
            return None
        await self.session.execute(
            update(contacts)
            .where(contacts.c.contact_id == row.contact_id)
            .values(kinds=func.array_remove(contacts.c.kinds, row.kind))
        )
        return row.contact_id, row.kind
