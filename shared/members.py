"""The members check-in registered, as a consuming service keeps them: its own ``known_members`` table, fed by
check-in's ``member_registered`` and ``member_erased`` events, so naming a member costs no call to check-in. An erased
member stays, with ``erased_at`` set: their pseudonymous history keeps its meaning, and nothing new is arranged for
them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

# None: check-in never registered this member at the site (or registered them at another site).
MemberStanding = Literal["known", "erased"] | None


class KnownMembersRepository:
    """Mixed into a service's repository, which sets ``session`` and names its own ``known_members`` table."""

    session: AsyncConnection
    known_members: Table

    async def know_member(self, member_id: uuid.UUID, site_id: str, registered_at: datetime) -> None:
        """A registration delivered again (or after an erasure) changes nothing."""
        table = self.known_members
        await self.session.execute(
            insert(table)
            .values(member_id=member_id, site_id=site_id, registered_at=registered_at)
            .on_conflict_do_nothing(index_elements=[table.c.member_id])
        )

    async def mark_member_erased(self, member_id: uuid.UUID, site_id: str, erased_at: datetime) -> None:
        """Also for an erasure that overtook the registration: the member is known, and known to be erased."""
        table = self.known_members
        await self.session.execute(
            insert(table)
            .values(member_id=member_id, site_id=site_id, registered_at=erased_at, erased_at=erased_at)
            .on_conflict_do_update(
                index_elements=[table.c.member_id],
                set_={"erased_at": func.coalesce(table.c.erased_at, erased_at)},
            )
        )

    async def member_standing(self, member_id: uuid.UUID, site_id: str) -> MemberStanding:
        table = self.known_members
        row = (
            await self.session.execute(
                select(table.c.erased_at).where(table.c.member_id == member_id, table.c.site_id == site_id)
            )
        ).first()
        return None if row is None else ("known" if row[0] is None else "erased")
