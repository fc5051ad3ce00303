"""Privacy canaries: members registered with nicknames nobody else could have ("Canary-" + random hex) go through
every flow — registration, check-in and out, volunteering (profile, sign-up, hours, stipends), gatherings
(registration, attendance, a group they facilitate), reports and the audit log, and the mistakes people make at a
kiosk (a name typed where the code goes, a nickname too long) — with every service a real process logging at DEBUG.
Canary e-mail addresses go through notify the same way: added by the person and by a coordinator, mistyped, added
twice, verified from the message a real SMTP server received, changed, withdrawn, and erased with their member.

The nickname lives in one place, ``checkin.members``, and is shown to the coordinators of the member's site (GET
/members/{id}); a display name (here the same canary) lives in ``checkin.display_names``, is given and read back by
its volunteer and shown to staff of the site who look it up (POST /members/display-names); an address lives in
``notify.contacts`` and is shown to the person alone (their own contacts), and goes to the mail relay. Anywhere else
it is a leak; the canaries are looked for in: every message the broker carried (a tap queue bound to everything),
every row of every table of every service (outbox and audit log included), every answer of every request (JSON, CSV
and SVG alike), every line the processes logged, and every service's /metrics."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.registry import SERVABLE
from shared.messaging import declare_exchanges
from shared.settings import Settings
from tests.support.processes import service_processes
from tests.support.report import report
from tests.support.smtp import Inbox, smtp_server
from tests.support.stack import Client, Reply, eventually, make_site
from tests.support.tally import unpublished
from tests.support.volunteering import Center, Volunteer

pytestmark = pytest.mark.e2e

SCHEMAS = ("checkin", "volunteering", "gatherings", "audit", "notify")
WHERE_THE_NAME_LIVES = ("checkin", "members")
# A volunteer's display name (here the same canary as their nickname): given and read back by them, looked up by staff.
WHERE_DISPLAY_NAMES_LIVE = ("checkin", "display_names")
SHOWN_TO_COORDINATORS = re.compile(r"^(GET /members/[0-9a-f-]+|POST /members/display-names)$")
SHOWN_TO_THE_VOLUNTEER = re.compile(r"^(PUT|GET) /members/[0-9a-f-]+/display-name$")
WHERE_ADDRESSES_LIVE = ("notify", "contacts")
# Only a volunteer token reads its own member's contacts back (a coordinator gets 403 addresses_private).
SHOWN_TO_THE_PERSON = re.compile(r"^(GET|PATCH) /members/[0-9a-f-]+/contacts(/[0-9a-f-]+)?$")


class RecordingClient(Client):
    """Keeps every answer (as text) with the request that got it."""

    answers: list[tuple[str, int, str]]

    async def call(self, service: str, method: str, path: str, **kwargs: Any) -> Reply:
        reply = await super().call(service, method, path, **kwargs)
        self.answers.append((f"{method} {path.split('?')[0]}", reply.status, json.dumps(reply.body)))
        return reply

    async def raw(self, service: str, path: str, token: str, accept: str) -> tuple[int, str]:
        async with self.http.get(
            self.urls[service] + path, headers={"Authorization": f"Bearer {token}", "Accept": accept}
        ) as response:
            text = await response.text()
        self.answers.append((f"GET {path.split('?')[0]}", response.status, text))
        return response.status, text


async def tap(settings: Settings) -> tuple[aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractQueue]:
    connection = await aio_pika.connect(settings.amqp_url)
    channel = await connection.channel()
    exchange, _ = await declare_exchanges(channel, settings)
    queue = await channel.declare_queue(settings.queue_name("tap"), durable=True)
    await queue.bind(exchange, "#")
    return connection, queue


async def drain(queue: aio_pika.abc.AbstractQueue) -> list[bytes]:
    bodies = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        bodies.append(message.body)
    return bodies


async def rows_mentioning(db: asyncpg.Pool, markers: list[str], *, skip: tuple[tuple[str, str], ...]) -> dict[str, int]:
    """Rows of every table of every service (but the tables in ``skip``) whose text holds a canary."""
    tables = await db.fetch(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
        "AND table_schema = ANY($1::text[])",
        list(SCHEMAS),
    )
    pattern = "(" + "|".join(markers) + ")"
    found = {}
    for schema, table in ((r["table_schema"], r["table_name"]) for r in tables):
        if (schema, table) in skip:
            continue
        count = await db.fetchval(f'SELECT count(*) FROM "{schema}"."{table}" t WHERE t::text ~* $1', pattern)
        if count:
            found[f"{schema}.{table}"] = count
    return found


async def scrape(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url + "/metrics") as response:
        assert response.status == 200, url
        return await response.text()


def mentions(text: str, markers: list[str]) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in markers)


async def test_canary_nicknames_appear_nowhere_but_where_they_belong(
    isolated: Settings, db: asyncpg.Pool, tmp_path: Path
) -> None:
    markers = [uuid.uuid4().hex[:16] for _ in range(4)]
    canaries = [f"Canary-{m}" for m in markers]
    address_markers = [uuid.uuid4().hex[:16] for _ in range(5)]
    addresses = [f"canary-{m}@mail.example" for m in address_markers]
    site = await make_site(isolated, timezone="America/New_York")
    kiosk, coordinator, admin = site.tokens["kiosk"], site.tokens["coordinator"], site.tokens["admin"]
    engine = create_async_engine(isolated.database_url)
    broker, tapped = await tap(isolated)
    try:
        with smtp_server() as inbox:
            async with (
                service_processes(
                    isolated, tmp_path, ["all"], log_level="DEBUG", smtp_url=inbox.url, send_interval_s=0.1
                ) as procs,
                aiohttp.ClientSession() as http,
            ):
                client = RecordingClient(http, procs["all"].urls)
                client.answers = []
                center = Center(client, isolated, site, engine)
                done = await every_flow(client, center, canaries, kiosk, coordinator, admin, addresses, inbox)

                async def all_audited() -> bool:
                    for schema in SCHEMAS:
                        if await unpublished(db, schema):
                            return False
                    published = sum([await db.fetchval(f"SELECT count(*) FROM {s}.outbox") for s in SCHEMAS])
                    return await db.fetchval("SELECT count(*) FROM audit.audit_log") >= published

                await eventually(all_audited, timeout=60, interval=0.25)
                # The reports read the audit log's projections: asked again now that everything is in.
                await reports(client, coordinator, admin)
                messages = await drain(tapped)
                metrics = {name: await scrape(http, url) for name, url in procs["all"].urls.items()}
                log = procs["all"].log()
                received = list(inbox.messages)
    finally:
        await broker.close()
        await engine.dispose()

    everything = [*markers, *address_markers]
    in_messages = [m for m in messages if mentions(m.decode(errors="replace"), everything)]
    in_rows = {
        **await rows_mentioning(db, markers, skip=(WHERE_THE_NAME_LIVES, WHERE_DISPLAY_NAMES_LIVE)),
        **{
            f"{table} (address)": count
            for table, count in (await rows_mentioning(db, address_markers, skip=(WHERE_ADDRESSES_LIVE,))).items()
        },
    }
    in_answers = [
        (request, status)
        for request, status, text in client.answers
        if (
            mentions(text, markers)
            and not SHOWN_TO_COORDINATORS.match(request)
            and not SHOWN_TO_THE_VOLUNTEER.match(request)
        )
        or (mentions(text, address_markers) and not SHOWN_TO_THE_PERSON.match(request))
    ]
    in_log = [line for line in log.splitlines() if mentions(line, everything)]
    in_metrics = [name for name, text in metrics.items() if mentions(text, everything)]
    shown = [
        request
        for request, _, text in client.answers
        if mentions(text, markers) and SHOWN_TO_COORDINATORS.match(request)
    ]
    shown_to_the_person = [
        request
        for request, _, text in client.answers
        if mentions(text, address_markers) and SHOWN_TO_THE_PERSON.match(request)
    ]
    for leak in [*in_answers, *in_rows.items(), *in_metrics, *in_log[:5]]:
        print("canary found:", str(leak)[:300])
    report(
        "privacy canaries",
        {
            "in_broker_messages": len(in_messages),
            "in_database_rows": sum(in_rows.values()),
            "in_answers": len(in_answers),
            "in_log_lines": len(in_log),
            "in_metrics": len(in_metrics),
        },
        flows_ok=done,
        requests=len(client.answers),
        messages=len(messages),
        log_lines=len(log.splitlines()),
        shown_to_coordinators=len(shown),
        shown_to_the_person=len(shown_to_the_person),
        mails=len(received),
    )
    # The canaries were really there to be found: stored, shown to coordinators, and carried through the flows.
    stored = await db.fetch("SELECT nickname FROM checkin.members WHERE nickname IS NOT NULL")
    assert sorted(r["nickname"] for r in stored) == sorted([canaries[0], canaries[2]])  # the second was erased
    # The second member's display name went with their erasure.
    assert await rows_mentioning(db, markers, skip=()) == {"checkin.members": 2, "checkin.display_names": 1}
    assert shown, "the coordinator's member view should have shown a nickname"
    # One address is left: the others were withdrawn, unsubscribed from or erased with their member.
    kept = await db.fetch("SELECT address FROM notify.contacts WHERE address IS NOT NULL")
    assert [r["address"] for r in kept] == [addresses[0]]
    assert await rows_mentioning(db, address_markers, skip=()) == {"notify.contacts": 1}
    assert shown_to_the_person, "the person's own contacts should have shown their address"
    # Each verification message went to its address (the first twice: as typed, and in capitals).
    assert {rcpt.lower() for mail in received for rcpt in mail.rcpt_tos} == {addresses[0], addresses[1], addresses[4]}
    assert set(metrics) == set(SERVABLE), "every service's /metrics was read"
    assert len(messages) > 30
    assert len(log.splitlines()) >= len(client.answers), "every request should have been logged (DEBUG)"


async def every_flow(
    client: RecordingClient,
    center: Center,
    canaries: list[str],
    kiosk: str,
    coordinator: str,
    admin: str,
    addresses: list[str],
    inbox: Inbox,
) -> int:
    """Every flow once with the canary members; returns how many steps succeeded (each is also asserted)."""
    ok = 0

    async def expect(reply: Reply, *statuses: int) -> Any:
        nonlocal ok
        assert reply.status in statuses, (reply.status, reply.body)
        ok += 1
        return reply.body

    # Check-in: registered at the kiosk and by a coordinator; then mistakes a person makes at a kiosk.
    members = [
        await expect(await client.call("checkin", "POST", "/members", token=kiosk, json={"nickname": name}), 201)
        for name in canaries[:2]
    ]
    members.append(
        await expect(
            await client.call("checkin", "POST", "/members", token=coordinator, json={"nickname": canaries[2]}), 201
        )
    )
    await expect(
        await client.call("checkin", "POST", "/members", token=kiosk, json={"nickname": canaries[3] + "-" + "x" * 40}),
        422,
    )
    await expect(
        await client.call(
            "checkin", "POST", "/visits", token=kiosk, json={"kiosk_code": canaries[3], "purpose": "drop_in"}
        ),
        404,
        422,
    )
    await expect(
        await client.call(
            "checkin",
            "POST",
            "/visits",
            token=kiosk,
            data=f'{{"kiosk_code": "{canaries[3]}", '.encode(),
            headers={"Content-Type": "application/json"},
        ),
        400,
    )
    ids = [m["member_id"] for m in members]

    starts = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    event = await expect(
        await client.call(
            "gatherings",
            "POST",
            "/events",
            token=coordinator,
            json={
                "title": "Sober bowling",
                "kind": "sports",
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=2)).isoformat(),
                "capacity": 1,
            },
        ),
        201,
    )
    event_id = event["event_id"]

    visits = []
    for member, purpose in zip(members, ["drop_in", "sober_event", "peer_mentoring"], strict=True):
        body = {"kiosk_code": member["kiosk_code"], "purpose": purpose}
        if purpose == "sober_event":
            body["ref"] = event_id
        visits.append(await expect(await client.call("checkin", "POST", "/visits", token=kiosk, json=body), 201))
    await expect(await client.call("checkin", "GET", "/occupancy", token=kiosk), 200)
    await expect(await client.call("checkin", "POST", f"/visits/{visits[0]['visit_id']}/checkout", token=kiosk), 200)
    await expect(await client.call("checkin", "POST", "/checkouts", token=kiosk, json={"member_id": ids[1]}), 200)
    await expect(await client.call("checkin", "GET", "/visits", token=coordinator), 200)
    for member_id in ids:
        await expect(await client.call("checkin", "GET", f"/members/{member_id}", token=coordinator), 200)

    # Volunteering: a profile, a sign-up, hours, a stipend closed and exported.
    role = await center.role()
    people = await center.volunteers(2, [role], member_ids=[uuid.UUID(i) for i in ids[:2]], stipend_eligible=True)
    for person, name in zip(people, canaries, strict=False):
        path = f"/members/{person.member_id}/display-name"
        await expect(await client.call("checkin", "PUT", path, token=person.token, json={"display_name": name}), 200)
        await expect(await client.call("checkin", "GET", path, token=person.token), 200)
    await expect(
        await client.call("checkin", "POST", "/members/display-names", token=coordinator, json={"member_ids": ids}),
        200,
    )
    future = await center.shift(role, starts_in=timedelta(days=3), capacity=1)
    for person in people:
        await expect(await center.sign_up(future, person), 201)
    await expect(await client.call("volunteering", "GET", "/me/shifts", token=people[0].token), 200)
    await expect(await client.call("volunteering", "GET", f"/shifts/{future}/signups", token=coordinator), 200)
    await center.policy(effective_from="2025-06-01", hourly_rate_cents=1_500, per_shift_cents=0)
    worked = await center.shift_on(role, date(2025, 6, 10))
    for person in people:
        await center.worked(person.member_id, worked, 120)
    await expect(await client.call("volunteering", "GET", "/me/hours", token=people[0].token), 200)
    await expect(await center.close("2025-06"), 200)
    await expect(await client.call("volunteering", "GET", "/stipend-periods/2025-06/payouts", token=admin), 200)
    await expect(
        await client.call("volunteering", "GET", f"/volunteers/{ids[0]}/stipends?year=2025", token=coordinator), 200
    )
    status, _ = await client.raw("volunteering", "/stipend-periods/2025-06/payouts", admin, "text/csv")
    assert status == 200
    ok += 1
    await expect(await client.call("volunteering", "GET", f"/shifts/{future}", token=people[1].token), 200)
    await expect(await center.drop(future, people[0]), 200)

    # Gatherings: a registration (one waits, then is promoted), attendance, a group the third member leads.
    registrations = [
        await expect(
            await client.call(
                "gatherings",
                "POST",
                f"/events/{event_id}/registrations",
                token=kiosk,
                json={"member_id": member_id, "adults": 1, "children": 0},
            ),
            201,
        )
        for member_id in ids
    ]
    await expect(
        await client.call("gatherings", "DELETE", f"/registrations/{registrations[0]['registration_id']}", token=kiosk),
        200,
    )
    await expect(await client.call("gatherings", "GET", f"/events/{event_id}/registrations", token=coordinator), 200)
    await expect(
        await client.call(
            "gatherings", "POST", f"/events/{event_id}/attendance", token=coordinator, json={"member_id": ids[2]}
        ),
        200,
        201,
        409,
    )
    await expect(
        await client.call(
            "gatherings",
            "POST",
            "/groups",
            token=coordinator,
            json={
                "name": "Tuesday peer support",
                "facilitator_member_id": ids[2],
                "capacity": 12,
                "first_start": (starts.replace(tzinfo=None) + timedelta(days=1)).isoformat(),
                "duration_minutes": 90,
                "rrule": "FREQ=WEEKLY;COUNT=2",
            },
        ),
        201,
    )
    await expect(await client.call("gatherings", "GET", "/upcoming", token=kiosk), 200)

    ok += await reach(client, center, people, ids, addresses, inbox, coordinator)

    # The member erased at the end: the name goes from where it lived, nothing else had it to begin with.
    await expect(await client.call("checkin", "POST", f"/members/{ids[1]}/erase", token=admin), 200)

    async def address_erased() -> bool:
        listed = await client.call("notify", "GET", f"/members/{ids[1]}/contacts", token=people[1].token)
        return listed.status == 200 and listed.body["items"] == []

    await eventually(address_erased, timeout=30)
    ok += 1
    ok += await reports(client, coordinator, admin)
    return ok


async def reach(
    client: RecordingClient,
    center: Center,
    people: list[Volunteer],
    ids: list[str],
    addresses: list[str],
    inbox: Inbox,
    coordinator: str,
) -> int:
    """Notify with canary addresses: the first member's is added by them and verified, the second's by a
    coordinator (then erased with the member), the third mistyped, added twice, changed and withdrawn, the fourth
    never valid, the fifth unsubscribed from its message's one-click link."""
    steps = 0

    async def expect(reply: Reply, *statuses: int) -> Any:
        nonlocal steps
        assert reply.status in statuses, (reply.status, reply.body)
        steps += 1
        return reply.body

    def add(member_id: str, address: str, token: str, **extra: Any) -> Any:
        return client.call(
            "notify",
            "POST",
            f"/members/{member_id}/contacts",
            token=token,
            json={"address": address, **extra},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )

    first, second = people
    await expect(await add(ids[0], addresses[0], first.token, locale="es", source="pages/volunteer"), 201)
    await expect(await add(ids[1], addresses[1], coordinator), 201)
    await expect(await add(ids[0], addresses[0].upper().replace("@MAIL.EXAMPLE", "@mail.example"), first.token), 201)
    await expect(await add(ids[0], addresses[0], first.token), 409)
    await expect(await add(ids[0], addresses[3].replace("@", " @@"), first.token), 422)
    await expect(await add(ids[0], f"{addresses[3]}\r\nBcc: x@evil.example", first.token), 422)
    await expect(await add(str(first.member_id), addresses[2], second.token), 403)
    await expect(await add(ids[2], addresses[4], coordinator), 201)

    mails = await inbox.wait_for(4, timeout=30)

    def link(address: str, kind: str) -> str:
        [mail] = [m for m in mails if address in m.rcpt_tos]
        part = mail.message.get_body(preferencelist=("plain",))
        assert part is not None
        [found] = re.findall(rf"/contacts/{kind}\?(?:token|key)=(\S+)", part.get_content())
        return str(found)

    await expect(
        await client.call("notify", "POST", "/contacts/verify", json={"token": link(addresses[0], "verify")}), 200
    )
    unsubscribe = link(addresses[4], "unsubscribe")
    await expect(await client.call("notify", "POST", f"/contacts/unsubscribe?key={unsubscribe}"), 200)
    mine = (await expect(await client.call("notify", "GET", f"/members/{ids[0]}/contacts", token=first.token), 200))[
        "items"
    ]
    assert sorted(c["address"].lower() for c in mine) == [addresses[0], addresses[0]]
    [typed_upper] = [c for c in mine if c["address"] != addresses[0]]
    await expect(
        await client.call(
            "notify",
            "PATCH",
            f"/members/{ids[0]}/contacts/{typed_upper['contact_id']}",
            token=first.token,
            json={"locale": "en", "quiet_hours": {"start": "22:00", "end": "07:00"}, "kinds": ["changes"]},
        ),
        200,
    )
    await expect(
        await client.call(
            "notify", "DELETE", f"/members/{ids[0]}/contacts/{typed_upper['contact_id']}", token=first.token
        ),
        200,
    )
    await expect(await client.call("notify", "GET", f"/members/{ids[0]}/contacts", token=coordinator), 403)
    for member_id in ids:
        await expect(await client.call("notify", "GET", f"/members/{member_id}/reachability", token=coordinator), 200)
    await expect(
        await client.call("notify", "GET", f"/members/{ids[0]}/notifications?limit=20", token=first.token), 200, 404
    )
    return steps


async def reports(client: RecordingClient, coordinator: str, admin: str) -> int:
    today = date.today()
    span = f"from={today - timedelta(days=364)}&to={today + timedelta(days=1)}"
    asked = 0
    for path in (f"/reports/summary?{span}", f"/reports/daily?{span}"):
        for accept in ("application/json", "text/csv"):
            status, _ = await client.raw("audit", path, coordinator, accept)
            assert status == 200, path
            asked += 1
    status, _ = await client.raw("audit", f"/reports/daily?{span}", coordinator, "image/svg+xml")
    assert status == 200
    reply = await client.call("audit", "GET", "/audit?site=all&limit=500", token=admin)
    assert reply.status == 200, reply.body
    verified = await client.call("audit", "GET", "/audit/verify", token=admin)
    assert verified.status == 200, verified.body
    return asked + 3
