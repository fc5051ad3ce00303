"""HTTP adapters: parse, authorize, call a handler (writes) or read directly (queries), answer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Literal

from aiohttp import web
from sqlalchemy import func, select, tuple_

from services.checkin import handlers
from services.checkin.commands import (
    CheckedIn,
    CheckedOut,
    CheckInBody,
    CheckInVisitor,
    CheckOutBody,
    CheckOutByMemberBody,
    CheckOutVisitor,
    CodeCheck,
    CodeCheckBody,
    DiscloseDisplayNames,
    DisplayNameBody,
    DisplayNameOut,
    DisplayNames,
    DisplayNamesLookupBody,
    EraseMember,
    MemberErasedResult,
    MemberOut,
    MemberRegisteredResult,
    Occupancy,
    RegisterMember,
    RegisterMemberBody,
    RemoveDisplayName,
    SetDisplayName,
    VisitOut,
    VisitPage,
    VisitsQuery,
)
from services.checkin.domain import is_well_formed_code, normalize_kiosk_code, occupancy_status
from services.checkin.models import CheckinUnitOfWork, members, visits
from services.checkin.settings import CheckinSettings
from shared import paging
from shared.access import STAFF, Role, Site
from shared.clock import Clock
from shared.errors import Forbidden, NotFound
from shared.ratelimit import RateLimiter
from shared.uow import IdempotencyClaim, execute
from shared.web import SITES, Api, Call

UOW: web.AppKey[Callable[[], CheckinUnitOfWork]] = web.AppKey("checkin_uow")
CLOCK = web.AppKey("checkin_clock", Clock)
SETTINGS = web.AppKey("checkin_settings", CheckinSettings)
CODE_CHECKS = web.AppKey("checkin_code_checks", RateLimiter)

api = Api(service="checkin", title="Recovery community center: check-in")

# The roles that register members (the route's), as MemberRegistered names them.
_REGISTERED_BY: dict[Role, Literal["kiosk", "coordinator", "admin"]] = {
    Role.KIOSK: "kiosk",
    Role.COORDINATOR: "coordinator",
    Role.ADMIN: "admin",
}


def _uow(call: Call) -> CheckinUnitOfWork:
    return call.request.app[UOW]()


def _retry_claim(call: Call) -> IdempotencyClaim | None:
    """The Idempotency-Key's claim, minus ``occurred_at``: a kiosk tries a check-in at once without it, and when no
    answer comes, queues it and sends it again under the same key stating when it was tapped. If the first try did
    arrive, that is the same check-in, answered with the first result; if not, it is recorded at the tapped time."""
    claim = call.idempotency()
    if claim is None:
        return None
    payload = json.loads(call.raw_body) if call.raw_body.strip() else {}
    if isinstance(payload, dict):
        payload.pop("occurred_at", None)
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return IdempotencyClaim.of(claim.scope, claim.key, call.request.method, call.request.path_qs, canonical)


async def _site_bounding(call: Call, occurred_at: object) -> Site | None:
    """The site whose closing time bounds an ``occurred_at``; none looked up on the online hot path."""
    return None if occurred_at is None else await call.request.app[SITES].get(call.who.site_id)


@api.post(
    "/members",
    summary="Register a member (no name needed); returns the kiosk code to show once",
    roles=(Role.KIOSK, *STAFF),
    body=RegisterMemberBody,
    response=MemberRegisteredResult,
    status=201,
    idempotent=True,
)
async def register_member(call: Call) -> object:
    app = call.request.app
    cmd = RegisterMember(
        site_id=call.who.site_id,
        actor_id=call.who.actor_id,
        registered_by=_REGISTERED_BY[call.who.role],
        nickname=call.body.nickname,
        code_length=app[SETTINGS].kiosk_code_length,
    )
    return await execute(
        handlers.register_member,
        cmd,
        uow=_uow(call),
        clock=app[CLOCK],
        status=201,
        idempotency=call.idempotency(),
    )


@api.post(
    "/visits",
    summary="Check in by kiosk code, member id or anonymously, saying why you came",
    roles=(Role.KIOSK,),
    body=CheckInBody,
    response=CheckedIn,
    status=201,
    errors=(404, 409, 422),
    idempotent=True,
)
async def check_in(call: Call) -> object:
    body: CheckInBody = call.body
    cmd = CheckInVisitor(
        site_id=call.who.site_id,
        actor_id=call.who.actor_id,
        purpose=body.purpose,
        kiosk_code=body.kiosk_code,
        member_id=body.member_id,
        anonymous=body.anonymous,
        ref=body.ref,
        occurred_at=body.occurred_at,
        site=await _site_bounding(call, body.occurred_at),
    )
    return await execute(
        handlers.check_in_visitor,
        cmd,
        uow=_uow(call),
        clock=call.request.app[CLOCK],
        status=201,
        idempotency=_retry_claim(call),
    )


@api.post(
    "/visits/{visit_id}/checkout",
    summary="Check out of a visit",
    roles=(Role.KIOSK,),
    body=CheckOutBody,
    response=CheckedOut,
    errors=(404, 409, 422),
    idempotent=True,
)
async def check_out(call: Call) -> object:
    body: CheckOutBody = call.body
    cmd = CheckOutVisitor(
        site_id=call.who.site_id,
        actor_id=call.who.actor_id,
        visit_id=call.uuid_param("visit_id"),
        occurred_at=body.occurred_at,
        site=await _site_bounding(call, body.occurred_at),
    )
    return await execute(
        handlers.check_out_visitor,
        cmd,
        uow=_uow(call),
        clock=call.request.app[CLOCK],
        idempotency=_retry_claim(call),
    )


@api.post(
    "/checkouts",
    summary="Check out by kiosk code or member id (the member's open visit)",
    roles=(Role.KIOSK,),
    body=CheckOutByMemberBody,
    response=CheckedOut,
    errors=(409, 422),
    idempotent=True,
)
async def check_out_member(call: Call) -> object:
    body: CheckOutByMemberBody = call.body
    cmd = CheckOutVisitor(
        site_id=call.who.site_id,
        actor_id=call.who.actor_id,
        kiosk_code=body.kiosk_code,
        member_id=body.member_id,
        occurred_at=body.occurred_at,
        site=await _site_bounding(call, body.occurred_at),
    )
    return await execute(
        handlers.check_out_visitor,
        cmd,
        uow=_uow(call),
        clock=call.request.app[CLOCK],
        idempotency=_retry_claim(call),
    )


@api.post(
    "/code-checks",
    summary="Whether a kiosk code belongs to a member here (yes or no, nothing else), before the visitor goes on",
    roles=(Role.KIOSK,),
    body=CodeCheckBody,
    response=CodeCheck,
    errors=(429,),
)
async def check_code(call: Call) -> CodeCheck:
    # A POST, so the code stays out of URLs and access logs; its own tighter limit, so it is no cheap oracle.
    call.request.app[CODE_CHECKS].check(call.who.token_id)
    code = normalize_kiosk_code(call.body.kiosk_code)
    if not is_well_formed_code(code):
        return CodeCheck(exists=False)
    async with _uow(call) as uow:
        member_id = await uow.checkin.find_member_id(call.who.site_id, kiosk_code=code)
    return CodeCheck(exists=member_id is not None)


@api.get(
    "/occupancy",
    summary="How many people are here now, against the site's capacity",
    roles=(Role.KIOSK, *STAFF),
    response=Occupancy,
)
async def occupancy(call: Call) -> Occupancy:
    site = await call.request.app[SITES].get(call.who.site_id)
    async with _uow(call) as uow:
        present = await uow.checkin.count_present(site.site_id)
    near = call.request.app[SETTINGS].occupancy_near_ratio
    return Occupancy(
        site_id=site.site_id,
        present=present,
        capacity=site.capacity,
        status=occupancy_status(present, site.capacity, near),
    )


@api.get(
    "/visits",
    summary="Visits of this site, newest first (pseudonymous ids only)",
    roles=STAFF,
    query=VisitsQuery,
    response=VisitPage,
)
async def list_visits(call: Call) -> VisitPage:
    query: VisitsQuery = call.query
    site = await call.request.app[SITES].get(call.who.site_id)
    c = visits.c
    stmt = select(
        c.visit_id,
        c.member_id,
        c.purpose,
        c.support_type,
        c.ref,
        c.checked_in_at,
        c.checked_out_at,
        c.closed_by,
        c.checked_in_received_at,
        c.checked_out_received_at,
        c.checked_in_offline,
        c.checked_out_offline,
    ).where(c.site_id == site.site_id)
    between = paging.instant_range(query.from_, query.to, site.zone)
    if between.start is not None:
        stmt = stmt.where(c.checked_in_at >= between.start)
    if between.end is not None:
        stmt = stmt.where(c.checked_in_at < between.end)
    if query.cursor is not None:
        at, visit_id = paging.decode_time_cursor(query.cursor)
        stmt = stmt.where(tuple_(c.checked_in_at, c.visit_id) < tuple_(at, visit_id))
    stmt = stmt.order_by(c.checked_in_at.desc(), c.visit_id.desc()).limit(query.limit + 1)
    async with _uow(call) as uow:
        rows = (await uow.session.execute(stmt)).all()
    items = [
        VisitOut(
            visit_id=r.visit_id,
            member_id=r.member_id,
            anonymous=r.member_id is None,
            purpose=r.purpose,
            support_type=r.support_type,
            ref=r.ref,
            checked_in_at=r.checked_in_at,
            checked_out_at=r.checked_out_at,
            closed_by=r.closed_by,
            checked_in_received_at=r.checked_in_received_at,
            checked_out_received_at=r.checked_out_received_at,
            recorded_offline=r.checked_in_offline or r.checked_out_offline,
        )
        for r in rows[: query.limit]
    ]
    next_cursor = paging.encode_cursor(items[-1].checked_in_at, items[-1].visit_id) if len(rows) > query.limit else None
    return VisitPage(items=items, next_cursor=next_cursor)


@api.get(
    "/members/{member_id}",
    summary="One member: code, nickname, visit count (coordinators of the member's site)",
    roles=STAFF,
    response=MemberOut,
    errors=(404,),
    uuid_params=("member_id",),
)
async def get_member(call: Call) -> MemberOut:
    member_id = call.uuid_param("member_id")
    m, v = members.c, visits.c
    async with _uow(call) as uow:
        row = (await uow.session.execute(select(members).where(m.member_id == member_id))).first()
        if row is None or (call.who.role is not Role.ADMIN and row.site_id != call.who.site_id):
            raise NotFound("No such member here.", code="member_not_found")
        stats = (
            await uow.session.execute(
                select(
                    func.count(),
                    func.max(v.checked_in_at),
                    func.count().filter(v.checked_out_at.is_(None)),
                ).where(v.member_id == member_id)
            )
        ).one()
    return MemberOut(
        member_id=row.member_id,
        site_id=row.site_id,
        kiosk_code=row.kiosk_code,
        nickname=row.nickname,
        registered_at=row.registered_at,
        erased_at=row.erased_at,
        visits=stats[0],
        last_visit_at=stats[1],
        present=stats[2] > 0,
    )


@api.post(
    "/members/{member_id}/erase",
    summary="Erase a member's nickname and kiosk code; the pseudonymous history stays",
    roles=(Role.ADMIN,),
    response=MemberErasedResult,
    errors=(404, 409),
)
async def erase_member(call: Call) -> object:
    cmd = EraseMember(site_id=None, actor_id=call.who.actor_id, member_id=call.uuid_param("member_id"))
    return await execute(handlers.erase_member, cmd, uow=_uow(call), clock=call.request.app[CLOCK])


# Display names (README, "Display names"): the volunteer's own, and the staff look-up that records a disclosure.


def _own_member(call: Call) -> uuid.UUID:
    member_id = call.uuid_param("member_id")
    if call.who.member_id != member_id:
        raise Forbidden("A volunteer sets and reads only their own display name.", code="not_yours")
    return member_id


@api.put(
    "/members/{member_id}/display-name",
    summary="Give the name staff of my site will see (1 to 60 characters); never shown on the kiosk",
    roles=(Role.VOLUNTEER,),
    body=DisplayNameBody,
    response=DisplayNameOut,
    errors=(403, 404, 422),
)
async def set_display_name(call: Call) -> object:
    cmd = SetDisplayName(
        site_id=call.who.site_id,
        actor_id=call.who.actor_id,
        member_id=_own_member(call),
        display_name=call.body.display_name,
    )
    return await execute(handlers.set_display_name, cmd, uow=_uow(call), clock=call.request.app[CLOCK])


@api.delete(
    "/members/{member_id}/display-name",
    summary="Remove my display name: staff see my member id only",
    roles=(Role.VOLUNTEER,),
    response=DisplayNameOut,
    errors=(403, 404),
)
async def remove_display_name(call: Call) -> object:
    cmd = RemoveDisplayName(site_id=call.who.site_id, actor_id=call.who.actor_id, member_id=_own_member(call))
    return await execute(handlers.remove_display_name, cmd, uow=_uow(call), clock=call.request.app[CLOCK])


@api.get(
    "/members/{member_id}/display-name",
    summary="My display name (null when I gave none)",
    roles=(Role.VOLUNTEER,),
    response=DisplayNameOut,
    errors=(403, 404),
)
async def get_display_name(call: Call) -> DisplayNameOut:
    member_id = _own_member(call)
    async with _uow(call) as uow:
        if not await uow.checkin.is_current_member(member_id, call.who.site_id):
            raise NotFound("No such member here.", code="member_not_found")
        found = await uow.checkin.display_name_of(member_id)
    name, updated_at = found if found is not None else (None, None)
    return DisplayNameOut(member_id=member_id, display_name=name, updated_at=updated_at)


@api.post(
    "/members/display-names",
    summary="Display names of members of my site (others are null); each look-up that shows a name is recorded "
    "in the audit log (checkin.names_disclosed: who saw whose name, never the name)",
    roles=STAFF,
    body=DisplayNamesLookupBody,
    response=DisplayNames,
)
async def disclose_display_names(call: Call) -> object:
    cmd = DiscloseDisplayNames(
        site_id=call.who.site_id,
        actor_id=call.who.actor_id,
        viewer_role="admin" if call.who.role is Role.ADMIN else "coordinator",
        member_ids=tuple(call.body.member_ids),
    )
    return await execute(handlers.disclose_display_names, cmd, uow=_uow(call), clock=call.request.app[CLOCK])
