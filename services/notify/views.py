"""HTTP adapters: parse, authorize, call a handler (writes) or a query (reads), answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from services.notify import domain, handlers, queries
from services.notify.commands import (
    AddContact,
    AddContactBody,
    ContactList,
    ContactOut,
    Coordinator,
    CoordinatorList,
    Done,
    NotificationList,
    NotificationsQuery,
    Reachability,
    SetCoordinator,
    SetSiteMessages,
    SiteMessages,
    SiteMessagesBody,
    TokenQuery,
    Unsubscribe,
    UpdateContact,
    UpdateContactBody,
    Verified,
    VerifyBody,
    VerifyContact,
    WithdrawContact,
    Withdrawn,
)
from services.notify.models import NotifyUnitOfWork
from services.notify.sender import Sender
from services.notify.settings import NotifySettings
from shared.access import STAFF, Role
from shared.clock import Clock
from shared.errors import Forbidden, InvalidInput, MalformedRequest
from shared.uow import execute
from shared.web import Api, Call

UOW: web.AppKey[Callable[[], NotifyUnitOfWork]] = web.AppKey("notify_uow")
CLOCK = web.AppKey("notify_clock", Clock)
SETTINGS = web.AppKey("notify_settings", NotifySettings)
SENDER = web.AppKey("notify_sender", Sender)

api = Api(service="notify", title="Recovery community center: notifications")

PEOPLE = (Role.VOLUNTEER, *STAFF)
_pages = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(default=True)
)


def _uow(call: Call) -> NotifyUnitOfWork:
    return call.request.app[UOW]()


def _authorize(call: Call) -> bool:
    """Whether the caller is the person themselves (who alone sees addresses): a volunteer token acts for its own
    member only; staff manage a person's contacts at their site but never read an address back."""
    member_id = call.uuid_param("member_id")
    if call.who.role is Role.VOLUNTEER:
        if call.who.member_id != member_id:
            raise Forbidden("A volunteer token manages only its own member's contacts.", code="not_own_member")
        return True
    return False


@api.post(
    "/members/{member_id}/contacts",
    summary="Add a way to reach a member (an e-mail address, with consent); sends its verification message",
    roles=PEOPLE,
    body=AddContactBody,
    response=ContactOut,
    status=201,
    errors=(409,),
    idempotent=True,
)
async def add_contact(call: Call) -> object:
    body: AddContactBody = call.body
    settings = call.request.app[SETTINGS]
    cmd = AddContact(
        site_id=call.who.site_id,
        actor_id=call.who.actor_id,
        member_id=call.uuid_param("member_id"),
        channel=body.channel,
        address=body.address,
        locale=body.locale,
        quiet_start=body.quiet_hours.start if body.quiet_hours else None,
        quiet_end=body.quiet_hours.end if body.quiet_hours else None,
        kinds=tuple(body.kinds),
        source=body.source,
        verification_ttl_h=settings.verification_ttl_h,
        sender=settings.notify_from,
    )
    _authorize(call)
    return await execute(
        handlers.add_contact,
        cmd,
        uow=_uow(call),
        clock=call.request.app[CLOCK],
        status=201,
        idempotency=call.idempotency(),
    )


@api.get(
    "/members/{member_id}/contacts",
    summary="A member's own contacts, with addresses (the member's volunteer token only)",
    roles=PEOPLE,
    response=ContactList,
)
async def list_contacts(call: Call) -> ContactList:
    if not _authorize(call):
        raise Forbidden("Addresses are shown only to the person; see /reachability.", code="addresses_private")
    async with _uow(call) as uow:
        await _member_here(call, uow)
        return await queries.contacts_of(uow, call.uuid_param("member_id"), call.who.site_id)


@api.patch(
    "/members/{member_id}/contacts/{contact_id}",
    summary="Change a contact's language, quiet hours or the kinds of message wanted",
    roles=PEOPLE,
    body=UpdateContactBody,
    response=ContactOut,
)
async def update_contact(call: Call) -> object:
    body: UpdateContactBody = call.body
    given = body.model_fields_set
    quiet = None
    if "quiet_hours" in given:
        quiet = (body.quiet_hours.start, body.quiet_hours.end) if body.quiet_hours else (None, None)
    if "locale" in given and body.locale is None:
        raise InvalidInput("locale cannot be null.", code="bad_locale")
    cmd = UpdateContact(
        site_id=call.who.site_id,
        actor_id=call.who.actor_id,
        member_id=call.uuid_param("member_id"),
        contact_id=call.uuid_param("contact_id"),
        locale=body.locale,
        quiet_hours=quiet,
        kinds=tuple(body.kinds) if body.kinds is not None else None,
        show_address=_authorize(call),
    )
    return await execute(handlers.update_contact, cmd, uow=_uow(call), clock=call.request.app[CLOCK])


@api.delete(
    "/members/{member_id}/contacts/{contact_id}",
    summary="Withdraw consent: the address is deleted, a pseudonymous record stays",
    roles=PEOPLE,
    response=Withdrawn,
)
async def withdraw_contact(call: Call) -> object:
    _authorize(call)
    cmd = WithdrawContact(
        site_id=call.who.site_id,
        actor_id=call.who.actor_id,
        member_id=call.uuid_param("member_id"),
        contact_id=call.uuid_param("contact_id"),
    )
    return await execute(handlers.withdraw_contact, cmd, uow=_uow(call), clock=call.request.app[CLOCK])


@api.get(
    "/members/{member_id}/reachability",
    summary="Whether a member can be reached, per channel (verified, not withdrawn, not bouncing); never where",
    roles=STAFF,
    response=Reachability,
)
async def reachability(call: Call) -> Reachability:
    async with _uow(call) as uow:
        await _member_here(call, uow)
        return await queries.reachability(uow, call.uuid_param("member_id"), call.who.site_id)


@api.get(
    "/members/{member_id}/notifications",
    summary="A person's recent notifications, newest first, each with its neutral one-line summary (in-app list; "
    "there whether or not the person has an address)",
    roles=PEOPLE,
    query=NotificationsQuery,
    response=NotificationList,
)
async def notifications(call: Call) -> NotificationList:
    _authorize(call)
    query: NotificationsQuery = call.query
    async with _uow(call) as uow:
        await _member_here(call, uow)
        return await queries.notifications(
            uow,
            call.uuid_param("member_id"),
            call.who.site_id,
            query.limit,
            call.request.app[SETTINGS].notify_site_name,
        )


@api.get(
    "/site/messages",
    summary="How the site's messages read and when reminders go (defaults when never set)",
    roles=STAFF,
    response=SiteMessages,
)
async def site_messages(call: Call) -> SiteMessages:
    async with _uow(call) as uow:
        return await queries.site_messages(uow, call.who.site_id, call.request.app[SETTINGS].notify_site_name)


@api.put(
    "/site/messages",
    summary="Set the site's neutral message name, reminder times (minutes before a start) and daily cap a person",
    roles=STAFF,
    body=SiteMessagesBody,
    response=SiteMessages,
)
async def set_site_messages(call: Call) -> object:
    body: SiteMessagesBody = call.body
    cmd = SetSiteMessages(
        site_id=call.who.site_id,
        actor_id=call.who.actor_id,
        message_name=body.message_name,
        reminder_offsets=tuple(body.reminder_offsets),
        daily_cap=body.daily_cap,
        default_name=call.request.app[SETTINGS].notify_site_name,
    )
    return await execute(handlers.set_site_messages, cmd, uow=_uow(call), clock=call.request.app[CLOCK])


@api.get(
    "/site/coordinators",
    summary="The members told of the site's follow-ups (a missed shift)",
    roles=STAFF,
    response=CoordinatorList,
)
async def coordinators(call: Call) -> CoordinatorList:
    async with _uow(call) as uow:
        return CoordinatorList(items=await uow.messages.coordinators(call.who.site_id))


@api.put(
    "/site/coordinators/{member_id}",
    summary="Mark a member as a coordinator of the site: they receive its follow-ups (a missed shift)",
    roles=STAFF,
    response=Coordinator,
)
async def add_coordinator(call: Call) -> object:
    cmd = SetCoordinator(call.who.site_id, call.who.actor_id, call.uuid_param("member_id"), coordinator=True)
    return await execute(handlers.set_coordinator, cmd, uow=_uow(call), clock=call.request.app[CLOCK])


@api.delete(
    "/site/coordinators/{member_id}",
    summary="No longer tell this member of the site's follow-ups",
    roles=STAFF,
    response=Coordinator,
)
async def remove_coordinator(call: Call) -> object:
    cmd = SetCoordinator(call.who.site_id, call.who.actor_id, call.uuid_param("member_id"), coordinator=False)
    return await execute(handlers.set_coordinator, cmd, uow=_uow(call), clock=call.request.app[CLOCK])


@api.get(
    "/contacts/verify",
    summary="The page a verification link opens: a button that confirms (mail scanners fetch links; only a POST acts)",
    roles=None,
    query=TokenQuery,
    content_types=("text/html",),
)
async def verify_page(call: Call) -> web.Response:
    query: TokenQuery = call.query
    page = _pages.get_template("verify_page.html").render(action="verify", token=query.token)
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})


@api.post(
    "/contacts/verify",
    summary="Confirm a contact with the token of its verification link (form or JSON); the link works once",
    roles=None,
    response=Verified,
    errors=(400, 404, 410, 422),
)
async def verify(call: Call) -> object:
    token = await _token_of(call.request)
    return await execute(
        handlers.verify_contact, VerifyContact(token=token), uow=_uow(call), clock=call.request.app[CLOCK]
    )


@api.post(
    "/contacts/unsubscribe",
    summary="One-click unsubscribe (RFC 8058), no login: a message's link stops that kind of message (the contact "
    "keeps the others); the verification message's link withdraws the address",
    roles=None,
    query=None,
    response=Done,
    errors=(404, 422),
)
async def unsubscribe(call: Call) -> object:
    key = call.request.query.get("key", "")
    if not 1 <= len(key) <= 200:
        raise InvalidInput("The unsubscribe link has no key.", code="unsubscribe_key_missing")
    return await execute(handlers.unsubscribe, Unsubscribe(key=key), uow=_uow(call), clock=call.request.app[CLOCK])


async def _member_here(call: Call, uow: NotifyUnitOfWork) -> None:
    """A member named in the path is one of the caller's site (404 otherwise, as another site's objects are)."""
    domain.require_known_here(await uow.notify.member_standing(call.uuid_param("member_id"), call.who.site_id))


async def _token_of(request: web.Request) -> str:
    """The page's form posts ``token=…``; an app may post JSON ``{"token": …}``."""
    raw = await request.read()
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.post()
        except ValueError:  # a multipart form without its boundary, or a part that cannot be read
            raise InvalidInput("The form cannot be read.", code="malformed_form") from None
        data: object = {"token": form.get("token")} if "token" in form else {}
    else:
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            raise MalformedRequest("The body is neither a form nor JSON.") from None
    try:
        return VerifyBody.model_validate(data, strict=True).token
    except ValidationError:
        raise InvalidInput("Give the token of the verification link.", code="verification_token_missing") from None
