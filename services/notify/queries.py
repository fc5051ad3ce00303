"""The read side: a member's contacts and whether they can be reached (no handler, no transaction of its own)."""

from __future__ import annotations

import uuid
import zoneinfo

from sqlalchemy import select

from services.notify import wording
from services.notify.commands import (
    ChannelReachability,
    ContactList,
    NotificationItem,
    NotificationList,
    Reachability,
    SiteMessages,
)
from services.notify.domain import DEFAULT_MESSAGE_NAME, Locale
from services.notify.handlers import contact_out
from services.notify.models import ContactRow, NotifyUnitOfWork, _contact_columns
from services.notify.tables import contacts, deliveries
from shared import access
from shared.contracts.notify import Channel

# Permanent refusals after which a contact counts as bouncing (not reachable).
BOUNCING_AFTER = 3


async def contacts_of(uow: NotifyUnitOfWork, member_id: uuid.UUID, site_id: str) -> ContactList:
    """The member's contacts in use (withdrawn ones keep no address and are not shown), with addresses: only the
    person themselves may call this."""
    c = contacts.c
    rows = await uow.session.execute(
        select(*_contact_columns())
        .where(c.member_id == member_id, c.site_id == site_id, c.withdrawn_at.is_(None))
        .order_by(c.consent_at, c.contact_id)
    )
    return ContactList(items=[contact_out(ContactRow(*row), show_address=True) for row in rows])


async def reachability(uow: NotifyUnitOfWork, member_id: uuid.UUID, site_id: str) -> Reachability:
    c = contacts.c
    rows = await uow.session.execute(
        select(c.channel, c.verified_at.is_not(None) & (c.bounces < BOUNCING_AFTER)).where(
            c.member_id == member_id, c.site_id == site_id, c.withdrawn_at.is_(None)
        )
    )
    by_channel: dict[Channel, bool] = {}
    for channel, reachable in rows:
        by_channel[channel] = by_channel.get(channel, False) or bool(reachable)
    channels = [ChannelReachability(channel=ch, reachable=ok) for ch, ok in sorted(by_channel.items())]
    return Reachability(member_id=member_id, reachable=any(by_channel.values()), channels=channels)


async def notifications(
    uow: NotifyUnitOfWork, member_id: uuid.UUID, site_id: str, limit: int, default_name: str
) -> NotificationList:
    """The person's in-app list, newest first: one entry per message, whether or not an address was told."""
    d, c = deliveries.c, contacts.c
    rows = (
        await uow.session.execute(
            select(d.delivery_id, d.purpose, d.kind, d.status, d.created_at, d.finished_at, d.template_values)
            .where(d.member_id == member_id, d.site_id == site_id, d.channel == "inapp")
            .order_by(d.created_at.desc(), d.delivery_id.desc())
            .limit(limit)
        )
    ).all()
    # The language of the person's newest contact in use; English for someone without one.
    spoken = (
        await uow.session.execute(
            select(c.locale)
            .where(c.member_id == member_id, c.site_id == site_id, c.withdrawn_at.is_(None))
            .order_by(c.consent_at.desc())
            .limit(1)
        )
    ).scalar()
    locale: Locale = "es" if spoken == "es" else "en"
    zone, name = await site_voice(uow, site_id, default_name)
    return NotificationList(
        items=[
            NotificationItem(
                delivery_id=row.delivery_id,
                purpose=row.purpose,
                kind=row.kind,
                status=row.status,
                created_at=row.created_at,
                sent_at=row.finished_at,
                summary=wording.summary(row.purpose, row.template_values, locale, zone, name),
            )
            for row in rows
        ]
    )


async def site_voice(uow: NotifyUnitOfWork, site_id: str, default_name: str) -> tuple[zoneinfo.ZoneInfo, str]:
    """The site's time zone (from the shared site directory) and the neutral name its messages use."""
    timezone = (
        await uow.session.execute(select(access.sites.c.timezone).where(access.sites.c.site_id == site_id))
    ).scalar()
    settings = await uow.messages.site_settings(site_id)
    return zoneinfo.ZoneInfo(timezone or "UTC"), settings.message_name or default_name


async def site_messages(uow: NotifyUnitOfWork, site_id: str, default_name: str) -> SiteMessages:
    settings = await uow.messages.site_settings(site_id)
    return SiteMessages(
        site_id=site_id,
        message_name=settings.message_name,
        shown_as=settings.message_name or default_name or DEFAULT_MESSAGE_NAME,
        reminder_offsets=list(settings.reminder_offsets),
        daily_cap=settings.daily_cap,
        updated_at=settings.updated_at,
    )
