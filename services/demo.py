"""``rcc demo``: a newcomer's walkthrough. Creates a demo site, tokens and members, checks people in and out at
the kiosk API, shows the same events arriving in the hash-chained audit log, and a volunteer told of a promotion by
e-mail: to the relay in ``RCC_SMTP_URL`` when it is set, otherwise to a local SMTP server (aiosmtpd) the demo starts
itself and whose mail it prints."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from services.cli import notify_outbox, running
from services.notify.settings import NotifySettings
from services.registry import SERVABLE
from shared import access
from shared.errors import Conflict
from shared.settings import Settings

SITE_ID = "demo-center"
TIMEZONE = "America/New_York"
DEMO_ADDRESS = "volunteer@demo.example"

Call = Callable[..., Awaitable[tuple[int, Any]]]


def say(text: str = "") -> None:
    print(text, flush=True)


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[AsyncConnection]:
    """A transaction as the admin user, for what has no API: the site and the tokens."""
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            yield conn
    finally:
        await engine.dispose()


async def _prepare_site_and_tokens(settings: Settings) -> dict[str, str]:
    async with _database(settings) as conn:
        with contextlib.suppress(Conflict):  # made by an earlier run
            await access.create_site(
                conn,
                SITE_ID,
                name="Demo Recovery Community Center",
                capacity=40,
                timezone=TIMEZONE,
                closes_at=access.parse_closes_at("21:00"),
            )
        tokens = {}
        for role in (access.Role.KIOSK, access.Role.COORDINATOR, access.Role.ADMIN):
            _, tokens[role.value] = await access.issue_token(
                conn, role=role, site_id=SITE_ID, label=f"demo {role.value}"
            )
    return tokens


async def _volunteer_token(settings: Settings, member_id: str) -> str:
    async with _database(settings) as conn:
        _, token = await access.issue_token(
            conn,
            role=access.Role.VOLUNTEER,
            site_id=SITE_ID,
            member_id=uuid.UUID(member_id),
            label="demo volunteer",
        )
    return token


async def _until_known(settings: Settings, member_id: str, *, timeout_s: float = 30.0) -> None:
    """Volunteering, gatherings and notify learn of a member from check-in's event, a moment after check-in answered:
    the demo waits for it before naming the member there, as a coordinator would simply try again."""
    engine = create_async_engine(settings.database_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            async with engine.connect() as conn:
                known = await conn.scalar(
                    text(
                        "SELECT (SELECT count(*) FROM gatherings.known_members WHERE member_id = :m)"
                        " + (SELECT count(*) FROM volunteering.known_members WHERE member_id = :m)"
                        " + (SELECT count(*) FROM notify.known_members WHERE member_id = :m)"
                    ),
                    {"m": uuid.UUID(member_id)},
                )
            if known == 3:
                return
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    raise RuntimeError(f"the member's registration did not reach the services in {timeout_s:g} s")


# --- mail -----------------------------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """What the demo's own SMTP server received, printed as it arrives (the demo's addresses are made up)."""

    url: str = ""
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        recipients = [str(r) for r in envelope.rcpt_tos]
        self.messages.append((recipients, parsed))
        say(f"   [mail server] to {', '.join(recipients)}: {parsed['Subject']}")
        return "250 OK"

    async def wait_for(self, address: str, count: int, timeout_s: float = 15.0) -> list[EmailMessage]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            mine = [message for to, message in self.messages if address in to]
            if len(mine) >= count or asyncio.get_running_loop().time() > deadline:
                return mine
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _mail(settings: Settings) -> AsyncIterator[tuple[NotifySettings, Mailbox | None]]:
    """Notify's settings for the demo: the relay of ``RCC_SMTP_URL`` when it is set, else a local SMTP server on a
    port the kernel picks. Links in messages lead through the pages, as a person would open them."""
    public = {"notify_public_url": f"{settings.url_of('pages')}/api/notify"} if settings.pages_port else {}
    if "RCC_NOTIFY_PUBLIC_URL" in os.environ:
        public = {}
    if os.environ.get("RCC_SMTP_URL"):
        yield NotifySettings(**{**settings.model_dump(), **public}), None
        return
    try:
        from aiosmtpd.smtp import SMTP
    except ImportError:  # pragma: no cover - the app lock installs it
        raise SystemExit("rcc demo: set RCC_SMTP_URL, or install aiosmtpd (pip install 'rcc[demo]')") from None
    mailbox = Mailbox()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(mailbox, hostname="demo-mail.localhost"), "127.0.0.1", 0
    )
    try:
        port = server.sockets[0].getsockname()[1]
        mailbox.url = f"smtp://127.0.0.1:{port}"
        yield NotifySettings(**{**settings.model_dump(), **public, "smtp_url": mailbox.url}), mailbox
    finally:
        server.close()
        await server.wait_closed()


async def _confirm_without_the_link(settings: Settings, contact_id: str) -> None:
    """With a real relay the demo cannot read the message, so it confirms the address as its link would have."""
    async with _database(settings) as conn:
        await conn.execute(
            text("UPDATE notify.verifications SET used_at = now() WHERE contact_id = :c AND used_at IS NULL"),
            {"c": uuid.UUID(contact_id)},
        )
        await conn.execute(
            text("UPDATE notify.contacts SET verified_at = now() WHERE contact_id = :c AND verified_at IS NULL"),
            {"c": uuid.UUID(contact_id)},
        )


async def _emailed(settings: Settings, member_id: str, purpose: str, *, timeout_s: float) -> bool:
    """Whether an e-mail of this purpose to the member was accepted by the mail server within the time."""
    engine = create_async_engine(settings.database_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            async with engine.connect() as conn:
                sent = await conn.scalar(
                    text(
                        "SELECT count(*) FROM notify.deliveries WHERE member_id = :m AND channel = 'email'"
                        " AND status = 'sent' AND purpose = :purpose"
                    ),
                    {"m": uuid.UUID(member_id), "purpose": purpose},
                )
            if sent or asyncio.get_running_loop().time() > deadline:
                return bool(sent)
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


async def _reach_the_volunteer(
    settings: Settings, urls: dict[str, str], call: Call, mailbox: Mailbox | None, volunteer_id: str, other_id: str
) -> list[str]:
    """The volunteer adds an address and confirms it; then moves up from a waitlist and is told."""
    notify, volunteering = urls["notify"], urls["volunteering"]
    lines = []
    status, contact = await call(
        "POST",
        f"{notify}/members/{volunteer_id}/contacts",
        "volunteer",
        {"address": DEMO_ADDRESS, "locale": "en", "source": "demo"},
    )
    lines.append(f"{status}  the volunteer adds {DEMO_ADDRESS} (consent recorded); one verification message goes out")
    if status != 201:
        return [*lines, f"     {contact.get('code')}: {contact.get('detail')}"]
    if mailbox is not None:
        arrived = await mailbox.wait_for(DEMO_ADDRESS, 1)
        if not arrived:
            return [*lines, "     the verification message did not arrive within 15 s"]
        part = arrived[0].get_body(preferencelist=("plain",))
        found = re.search(r"/contacts/verify\?token=(\S+)", part.get_content() if part is not None else "")
        status, _ = await call("POST", f"{notify}/contacts/verify", "volunteer", {"token": found and found[1]})
        lines.append(f"{status}  they follow the link in it: the address is confirmed")
    else:
        await _confirm_without_the_link(settings, contact["contact_id"])
        lines.append("     (the message went to RCC_SMTP_URL; the demo confirms the address as its link would)")
    status, reach = await call("GET", f"{notify}/members/{volunteer_id}/reachability", "coordinator")
    lines.append(f"{status}  a coordinator asks whether they can be reached: {reach.get('reachable')} (never where)")

    # A shift a little over two hours ahead, so its 2-hour reminder falls due while the demo keeps serving.
    start = (datetime.now(ZoneInfo(TIMEZONE)) + timedelta(hours=2, minutes=2)).replace(second=0, microsecond=0)
    status, _ = await call(
        "PUT",
        f"{volunteering}/volunteers/{other_id}",
        "coordinator",
        {"roles": ["front_desk"], "monthly_hours_goal": 4},
    )
    status, shift = await call(
        "POST",
        f"{volunteering}/shifts",
        "coordinator",
        {
            "role_id": "front_desk",
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=2)).isoformat(),
            "capacity": 1,
            "needs_supervisor": False,
        },
    )
    lines.append(f"{status}  a one-seat front desk shift at {start:%H:%M} today")
    signups = f"{volunteering}/shifts/{shift['shift_id']}/signups"
    status, _ = await call("POST", signups, "coordinator", {"member_id": other_id})
    lines.append(f"{status}  another volunteer takes the seat")
    status, waiting = await call("POST", signups, "volunteer", {})
    lines.append(f"{status}  our volunteer joins the waitlist (#{waiting.get('position')})")
    status, _ = await call("DELETE", f"{signups}/{other_id}", "coordinator")
    lines.append(f"{status}  the other drops out: our volunteer is promoted")
    told = await _emailed(settings, volunteer_id, "shift_promoted", timeout_s=15)
    lines.append(
        "     notify e-mailed them that a place opened up (the message is above, as the mail server got it)"
        if told
        else "     (no message about the promotion reached the mail server within 15 s)"
    )
    return lines


async def _schedule_week(urls: dict[str, str], call: Call, volunteer_id: str) -> list[str]:
    """What the volunteer and coordinator pages show: a role, the volunteer, open shifts, a weekly group, an event."""
    volunteering, gatherings = urls["volunteering"], urls["gatherings"]
    lines = []
    status, _ = await call(
        "POST",
        f"{volunteering}/roles",
        "coordinator",
        {
            "role_id": "front_desk",
            "title": "Front desk",
            "required_trainings": [],
            "supervisor": False,
        },
    )
    lines.append(f"{status}  role front_desk" + (" (already there)" if status == 409 else ""))
    status, _ = await call(
        "PUT",
        f"{volunteering}/volunteers/{volunteer_id}",
        "coordinator",
        {"roles": ["front_desk"], "monthly_hours_goal": 12},
    )
    lines.append(f"{status}  volunteer {volunteer_id}")
    local = datetime.now(ZoneInfo(TIMEZONE)).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    for days in (1, 2, 4):
        start = (local + timedelta(days=days)).replace(hour=10).replace(tzinfo=ZoneInfo(TIMEZONE))
        status, shift = await call(
            "POST",
            f"{volunteering}/shifts",
            "coordinator",
            {
                "role_id": "front_desk",
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=3)).isoformat(),
                "capacity": 2,
                "needs_supervisor": False,
            },
        )
        lines.append(f"{status}  front desk shift {start:%a %d %b %H:%M}, 2 seats")
    status, first = await call("POST", f"{volunteering}/shifts/{shift['shift_id']}/signups", "volunteer", {})
    lines.append(f"{status}  the volunteer signs up for it ({first.get('status', first.get('code'))})")
    status, _ = await call(
        "POST",
        f"{gatherings}/groups",
        "coordinator",
        {
            "name": "Recovery circle",
            "facilitator_member_id": volunteer_id,
            "capacity": 12,
            "first_start": (local + timedelta(hours=2)).isoformat(),
            "duration_minutes": 90,
            "rrule": "FREQ=WEEKLY",
        },
    )
    lines.append(f"{status}  weekly group 'Recovery circle', first session {local + timedelta(hours=2):%a %H:%M}")
    saturday = (local + timedelta(days=(5 - local.weekday()) % 7 or 7)).replace(hour=18, tzinfo=ZoneInfo(TIMEZONE))
    status, _ = await call(
        "POST",
        f"{gatherings}/events",
        "coordinator",
        {
            "title": "Sober game night",
            "kind": "sober_social",
            "starts_at": saturday.isoformat(),
            "ends_at": (saturday + timedelta(hours=3)).isoformat(),
            "capacity": 30,
            "family_friendly": True,
        },
    )
    lines.append(f"{status}  event 'Sober game night' {saturday:%a %d %b %H:%M}, 30 seats")
    return lines


async def run_demo(settings: Settings, *, keep_serving: bool) -> int:
    tokens = await _prepare_site_and_tokens(settings)
    async with (
        _mail(settings) as (settings, mailbox),
        running(settings, list(SERVABLE)) as urls,
        aiohttp.ClientSession() as http,
    ):
        checkin, audit = urls["checkin"], urls["audit"]

        async def call(method: str, url: str, role: str, body: Any = None) -> tuple[int, Any]:
            headers = {"Authorization": f"Bearer {tokens[role]}"}
            async with http.request(method, url, json=body, headers=headers) as response:
                return response.status, await response.json(content_type=None)

        say(f"Demo site '{SITE_ID}': check-in {checkin}, audit {audit}")
        say("\n1. Two people register at the kiosk (no name needed) and get a short code to type next time:")
        codes, members = [], []
        for _ in range(2):
            status, member = await call("POST", f"{checkin}/members", "kiosk", {})
            codes.append(member["kiosk_code"])
            members.append(member["member_id"])
            say(f"   {status}  member {member['member_id']}  kiosk code {member['kiosk_code']}")

        say("\n2. They check in, each saying why they came; an anonymous walk-in joins them:")
        visits = []
        for body in (
            {"kiosk_code": codes[0], "purpose": "peer_mentoring"},
            {"kiosk_code": codes[1].lower(), "purpose": "recovery_group", "ref": "tuesday-reentry-group"},
            {"anonymous": True, "purpose": "drop_in"},
        ):
            status, visit = await call("POST", f"{checkin}/visits", "kiosk", body)
            visits.append(visit)
            say(f"   {status}  {body['purpose']:<16} visit {visit['visit_id']}  support: {visit['support_type']}")
        status, problem = await call(
            "POST", f"{checkin}/visits", "kiosk", {"kiosk_code": codes[0], "purpose": "drop_in"}
        )
        say(f"   {status}  scanning the same code again -> {problem['code']}")

        status, occupancy = await call("GET", f"{checkin}/occupancy", "kiosk")
        say(f"\n3. Occupancy: {occupancy['present']} of {occupancy['capacity']} ({occupancy['status']})")
        status, out = await call("POST", f"{checkin}/visits/{visits[0]['visit_id']}/checkout", "kiosk")
        say(f"   {status}  one checks out after {out['minutes']} min")

        say("\n4. Every event reached the audit log through the outbox and RabbitMQ:")
        wanted = {v["visit_id"] for v in visits}
        entries: list[dict[str, Any]] = []
        for _ in range(100):
            status, page = await call("GET", f"{audit}/audit?site={SITE_ID}&limit=500", "admin")
            entries = page["items"]
            while page["next_after"] is not None:
                status, page = await call(
                    "GET", f"{audit}/audit?site={SITE_ID}&limit=500&after={page['next_after']}", "admin"
                )
                entries += page["items"]
            if wanted <= {e["subject"] for e in entries if e["type"] == "checkin.visitor_checked_out"} | {
                e["subject"] for e in entries if e["type"] == "checkin.visitor_checked_in"
            } and any(e["type"] == "checkin.visitor_checked_out" for e in entries):
                break
            await asyncio.sleep(0.1)
        for entry in entries[-8:]:
            say(f"   #{entry['sequence']:<5} {entry['type']:<30} {entry['subject']}  hash {entry['hash'][:12]}…")
        status, verdict = await call("GET", f"{audit}/audit/verify", "admin")
        say(
            f"\n5. Chain verified: ok={verdict['ok']} over {verdict['entries']} entries,"
            f" head {verdict['head_hash'][:16]}…"
        )

        say("\n6. The week ahead: the first member volunteers at the front desk; shifts, a group and an event:")
        await _until_known(settings, members[0])
        tokens["volunteer"] = await _volunteer_token(settings, members[0])
        week = await _schedule_week(urls, call, members[0])
        for line in week:
            say(f"   {line}")

        say(
            "\n7. How we reach people: e-mail to "
            + (f"the demo's own mail server ({mailbox.url}), printed here" if mailbox else "RCC_SMTP_URL")
            + ":"
        )
        await _until_known(settings, members[1])
        for line in await _reach_the_volunteer(settings, urls, call, mailbox, members[0], members[1]):
            say(f"   {line}")
        say("\n   The delivery log (rcc notify outbox --site demo-center): ids and status, never an address:")
        for line in await notify_outbox(settings, site=SITE_ID, limit=8):
            say(f"   {line}")

        say("\nTokens for trying the API yourself (shown once):")
        for role, token in tokens.items():
            say(f"   {role:<12} {token}")
        say("\nThe pages (each asks once for a token and keeps it on the device):")
        say(f"   kiosk        {urls['pages']}/kiosk        paste the kiosk token")
        say(f"   coordinator  {urls['pages']}/coordinator  paste the coordinator token")
        say(f"   volunteer    {urls['pages']}/volunteer    paste the volunteer token")
        if not keep_serving:
            return 0 if verdict["ok"] else 1
        say("\nServing all services and the pages; Ctrl-C to stop.")
        if mailbox is not None:
            say("Mail notify sends from now on (a reminder 2 hours before the shift above) is printed here.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    print("stopped", file=sys.stderr)
    return 0
