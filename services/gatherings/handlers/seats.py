"""What every change of seats shares: the gathering's row, locked and checked, the promotion of waiting parties,
and the fields every registration fact carries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, TypedDict

from services.gatherings import domain
from services.gatherings.domain import GatheringType, Party, Room, WaitingParty
from services.gatherings.models import GatheringRow, GatheringsUnitOfWork, RegistrationRow
from shared.contracts import SupportType
from shared.contracts.gatherings import GatheringPromotedFromWaitlist

# Why waiting parties were seated (GatheringPromotedFromWaitlist.reason).
PromotionReason = Literal["cancellation", "capacity_increase"]


async def promote(
    uow: GatheringsUnitOfWork,
    gathering: GatheringRow,
    waiting: list[RegistrationRow],
    room: Room,
    now: datetime,
    reason: PromotionReason,
    actor_id: str,
) -> list[RegistrationRow]:
    """Seat the waiting parties that fit, in order (``domain.promote``). The caller updates the seats taken."""
    if gathering.cancelled_at is not None or now >= gathering.ends_at:
        return []
    chosen = set(domain.promote([WaitingParty(r.registration_id, r.party) for r in waiting], room))
    promoted = [r for r in waiting if r.registration_id in chosen]
    await uow.gatherings.confirm([r.registration_id for r in promoted], now)
    for registration in promoted:
        uow.emit(
            GatheringPromotedFromWaitlist(
                **seat_fields(gathering, registration.registration_id, registration.member_id, registration.party),
                waiting_since=registration.registered_at,
                promoted_at=now,
                reason=reason,
            ),
            subject=registration.registration_id,
            site_id=gathering.site_id,
            actor_id=actor_id,
            at=now,
        )
    return promoted


async def locked(
    uow: GatheringsUnitOfWork,
    gathering_type: GatheringType | None,
    gathering_id: uuid.UUID,
    site_id: str | None,
    *,
    allow_cancelled: bool = False,
) -> GatheringRow:
    return present(
        await uow.gatherings.lock_gathering(gathering_id, gathering_type, site_id),
        gathering_type,
        allow_cancelled=allow_cancelled,
    )


def present(
    gathering: GatheringRow | None, gathering_type: GatheringType | None, *, allow_cancelled: bool = False
) -> GatheringRow:
    if gathering is None:
        raise domain.gathering_not_found(gathering_type)
    if gathering.cancelled_at is not None and not allow_cancelled:
        raise domain.gathering_cancelled(gathering.gathering_type)
    return gathering


class SeatFields(TypedDict):
    """The fields of ``shared.contracts.gatherings._SeatFact``: which gathering, which party, how it counts."""

    registration_id: uuid.UUID
    member_id: uuid.UUID
    session_id: uuid.UUID | None
    group_id: uuid.UUID | None
    event_id: uuid.UUID | None
    support_type: SupportType
    starts_at: datetime
    adults: int
    children: int


def seat_fields(gathering: GatheringRow, registration_id: uuid.UUID, member_id: uuid.UUID, party: Party) -> SeatFields:
    return {
        "registration_id": registration_id,
        "member_id": member_id,
        "session_id": gathering.session_id,
        "group_id": gathering.group_id,
        "event_id": gathering.sober_event_id,
        "support_type": gathering.support_type,
        "starts_at": gathering.starts_at,
        "adults": party.adults,
        "children": party.children,
    }
