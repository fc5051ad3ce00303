"""The read side: a member's contacts and whether they can be reached (no handler, no transaction of its own)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from services.notify.commands import ChannelReachability, ContactList, Reachability
from services.notify.handlers import contact_out
from services.notify.models import ContactRow, NotifyUnitOfWork, _contact_columns, contacts
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
