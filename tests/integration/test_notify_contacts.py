"""The notify service against the real PostgreSQL, broker and a real SMTP server: contacts with consent, the
verification message, verifying, withdrawing, erasure, and who may see an address."""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.notify import SCHEMA, sender
from services.notify.models import Base, NotifyUnitOfWork
from services.notify.settings import NotifySettings
from shared.clock import SystemClock
from shared.db import make_connector
from shared.settings import Settings
from tests.support import members
from tests.support.smtp import Inbox, smtp_server
from tests.support.stack import Client, SiteUnderTest, eventually, make_site, services

pytestmark = pytest.mark.integration

HOSTILE_NAME = "<script>alert(1)</script> Center\r\nBcc: thief@evil.example"


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
async def nstack(settings: Settings, inbox: Inbox) -> AsyncIterator[Client]:
    configured = NotifySettings(
        **{
            **settings.model_dump(),
            "rate_limit_per_minute": 0,
            "smtp_url": inbox.url,
            "notify_from": "center@notify.example",
            "notify_site_name": HOSTILE_NAME,
            "send_interval_s": 0.05,
            "retry_base_s": 0.1,
        }
    )
    async with services(configured, ["checkin", "notify"]) as client:
        yield client


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def place(settings: Settings, nstack: Client) -> SiteUnderTest:
    return await make_site(settings)


def _address() -> str:
    return f"person-{uuid.uuid4().hex[:10]}@mail.example"


async def _add(client: Client, site: SiteUnderTest, address: str, **extra: Any) -> Any:
    reply = await client.call(
        "notify",
        "POST",
        f"/members/{site.volunteer_member_id}/contacts",
        token=site.tokens["volunteer"],
        json={"address": address, **extra},
        headers={"Idempotency-Key": f"add-{uuid.uuid4()}"},
    )
    assert reply.status == 201, reply.body
    return reply.body


def _to(inbox: Inbox, address: str) -> list[Any]:
    return [m for m in inbox.messages if address in m.rcpt_tos]


async def _message_to(inbox: Inbox, address: str) -> Any:
    async def arrived() -> bool:
        return len(_to(inbox, address)) >= 1

    await eventually(arrived)
    [received] = _to(inbox, address)
    return received


def _token(received: Any) -> str:
    body = received.message.get_body(preferencelist=("plain",)).get_content()
    [line] = [line for line in body.splitlines() if "/contacts/verify?token=" in line]
    return line.split("token=", 1)[1].strip()


async def test_adding_an_email_sends_one_neutral_verification_with_unsubscribe_headers(
    nstack: Client, place: SiteUnderTest, inbox: Inbox
) -> None:
    address = _address()
    added = await _add(nstack, place, address)
    assert added["address"] is None and added["verified"] is False  # not echoed (kept with an Idempotency-Key)
    assert set(added["kinds"]) == {"confirmations", "changes", "reminders", "approvals"}
    received = await _message_to(inbox, address)
    message = received.message
    assert (
        message["List-Unsubscribe"].startswith("<http") and "/contacts/unsubscribe?key=" in message["List-Unsubscribe"]
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"] == f"<verification.{added['contact_id']}@notify.example>"
    subject = message["Subject"].lower()
    assert "recovery" not in subject and subject.startswith("please confirm")
    plain = message.get_body(preferencelist=("plain",)).get_content()
    assert "recovery" not in plain.splitlines()[0].lower()
    # The hostile site name: inert in HTML, and its line break did not make a header or a recipient.
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert message["Bcc"] is None and received.rcpt_tos == [address]
    assert "\n" not in message["Subject"].replace("\n ", "")


async def test_spanish_contact_gets_spanish_text(nstack: Client, place: SiteUnderTest, inbox: Inbox) -> None:
    address = _address()
    await _add(nstack, place, address, locale="es")
    received = await _message_to(inbox, address)
    assert received.message["Subject"].startswith("Confirme su correo")
    assert "Confirme esta dirección" in received.message.get_body(preferencelist=("plain",)).get_content()


async def test_verify_by_post_once_and_the_get_page_only_offers_a_button(
    nstack: Client, place: SiteUnderTest, inbox: Inbox
) -> None:
    address = _address()
    added = await _add(nstack, place, address)
    token = _token(await _message_to(inbox, address))
    base = nstack.urls["notify"]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/contacts/verify", params={"token": token}) as page:
            assert page.status == 200 and page.content_type == "text/html"
            assert 'method="post"' in await page.text()
        # The GET (a mail scanner's prefetch) verified nothing.
        listed = await nstack.call(
            "notify", "GET", f"/members/{place.volunteer_member_id}/contacts", token=place.tokens["volunteer"]
        )
        [mine] = [c for c in listed.body["items"] if c["contact_id"] == added["contact_id"]]
        assert mine["verified"] is False
        async with http.post(f"{base}/contacts/verify", data={"token": token}) as verified:
            assert verified.status == 200, await verified.text()
    again = await nstack.call("notify", "POST", "/contacts/verify", json={"token": token})
    assert again.status == 410 and again.body["code"] == "verification_used"
    assert again.headers["Content-Type"].startswith("application/problem+json")
    unknown = await nstack.call("notify", "POST", "/contacts/verify", json={"token": "nope"})
    assert unknown.status == 404 and unknown.body["code"] == "verification_unknown"
    reach = await nstack.call(
        "notify", "GET", f"/members/{place.volunteer_member_id}/reachability", token=place.tokens["coordinator"]
    )
    assert reach.status == 200 and reach.body["reachable"] is True
    assert address not in str(reach.body)


async def test_an_expired_link_is_refused(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine
) -> None:
    address = _address()
    added = await _add(nstack, place, address)
    token = _token(await _message_to(inbox, address))
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE notify.verifications SET expires_at = now() - interval '1 second' WHERE contact_id = :c"),
            {"c": added["contact_id"]},
        )
    reply = await nstack.call("notify", "POST", "/contacts/verify", json={"token": token})
    assert reply.status == 410 and reply.body["code"] == "verification_expired"


async def test_withdrawing_deletes_the_address_and_no_address_reaches_the_outbox(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine
) -> None:
    address = _address()
    added = await _add(nstack, place, address)
    await _message_to(inbox, address)
    reply = await nstack.call(
        "notify",
        "DELETE",
        f"/members/{place.volunteer_member_id}/contacts/{added['contact_id']}",
        token=place.tokens["volunteer"],
    )
    assert reply.status == 200 and reply.body["withdrawn"] is True
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT address, withdrawn_at FROM notify.contacts WHERE contact_id = :c"),
                {"c": added["contact_id"]},
            )
        ).one()
        assert row.address is None and row.withdrawn_at is not None

        async def told() -> bool:
            sent = await conn.execute(
                text(
                    "SELECT count(*) FROM notify.outbox"
                    " WHERE type = 'notify.notification_sent' AND data->>'contact_id' = :c"
                ),
                {"c": added["contact_id"]},
            )
            await conn.commit()
            return bool(sent.scalar())

        await eventually(told)
        # Privacy canary: the address is nowhere in the events or the delivery log.
        outbox = (await conn.execute(text("SELECT data::text, subject FROM notify.outbox"))).all()
        deliveries = (await conn.execute(text("SELECT d::text FROM notify.deliveries AS d"))).all()
        kept = (await conn.execute(text("SELECT k::text FROM notify.idempotency_keys AS k"))).all()
    assert outbox and not [r for r in outbox if address in r[0] or address in r[1]]
    assert not [r for r in deliveries if address in r[0]]
    assert kept and not [r for r in kept if address in r[0]]


async def test_coordinator_sees_reachability_never_addresses(nstack: Client, place: SiteUnderTest) -> None:
    await _add(nstack, place, _address())
    member = place.volunteer_member_id
    listed = await nstack.call("notify", "GET", f"/members/{member}/contacts", token=place.tokens["coordinator"])
    assert listed.status == 403 and listed.body["code"] == "addresses_private"
    reach = await nstack.call("notify", "GET", f"/members/{member}/reachability", token=place.tokens["coordinator"])
    assert reach.status == 200 and reach.body["reachable"] is False  # not verified yet
    added = await nstack.call(
        "notify", "POST", f"/members/{member}/contacts", token=place.tokens["coordinator"], json={"address": _address()}
    )
    assert added.status == 201 and added.body["address"] is None
    volunteer_reach = await nstack.call(
        "notify", "GET", f"/members/{member}/reachability", token=place.tokens["volunteer"]
    )
    assert volunteer_reach.status == 403


async def test_bad_input_gets_problem_json(nstack: Client, place: SiteUnderTest) -> None:
    member = place.volunteer_member_id
    volunteer = place.tokens["volunteer"]
    cases: list[tuple[str, str, str, Any, int, str]] = [
        ("POST", f"/members/{member}/contacts", volunteer, {"address": "not-an-address"}, 422, "bad_address"),
        (
            "POST",
            f"/members/{member}/contacts",
            volunteer,
            {"address": "a@b.example\r\nBcc: x@y.example"},
            422,
            "bad_address",
        ),
        (
            "POST",
            f"/members/{member}/contacts",
            volunteer,
            {"address": _address(), "locale": "fr"},
            422,
            "invalid_request",
        ),
        (
            "POST",
            f"/members/{member}/contacts",
            volunteer,
            {"address": _address(), "channel": "sms"},
            422,
            "channel_not_supported",
        ),
        (
            "POST",
            f"/members/{member}/contacts",
            volunteer,
            {"address": _address(), "kinds": ["spam"]},
            422,
            "invalid_request",
        ),
        ("POST", f"/members/{uuid.uuid4()}/contacts", volunteer, {"address": _address()}, 403, "not_own_member"),
        (
            "POST",
            f"/members/{uuid.uuid4()}/contacts",
            place.tokens["coordinator"],
            {"address": _address()},
            404,
            "member_not_found",
        ),
        ("PATCH", f"/members/{member}/contacts/{uuid.uuid4()}", volunteer, {"locale": "es"}, 404, "contact_not_found"),
        ("DELETE", f"/members/{member}/contacts/{uuid.uuid4()}", volunteer, None, 404, "contact_not_found"),
        ("POST", "/contacts/verify", None, {}, 422, "verification_token_missing"),
        ("POST", "/contacts/unsubscribe", None, None, 422, "unsubscribe_key_missing"),
        ("POST", "/contacts/unsubscribe?key=nope", None, None, 404, "unsubscribe_unknown"),
        ("GET", f"/members/{member}/reachability", place.tokens["kiosk"], None, 403, "wrong_role"),
    ]
    for method, path, token, body, status, code in cases:
        reply = await nstack.call("notify", method, path, token=token, json=body)
        assert (reply.status, reply.body["code"]) == (status, code), (method, path, reply.body)
        assert reply.headers["Content-Type"].startswith("application/problem+json")
    added = await _add(nstack, place, _address())
    patch = await nstack.call(
        "notify",
        "PATCH",
        f"/members/{member}/contacts/{added['contact_id']}",
        token=volunteer,
        json={"quiet_hours": {"start": "22:00", "end": "22:00"}},
    )
    assert (patch.status, patch.body["code"]) == (422, "bad_quiet_hours")
    patch = await nstack.call(
        "notify",
        "PATCH",
        f"/members/{member}/contacts/{added['contact_id']}",
        token=volunteer,
        json={"locale": "es", "quiet_hours": {"start": "22:00", "end": "07:00"}, "kinds": ["reminders"]},
    )
    assert patch.status == 200, patch.body
    assert (patch.body["locale"], patch.body["quiet_hours"], patch.body["kinds"]) == (
        "es",
        {"start": "22:00:00", "end": "07:00:00"},
        ["reminders"],
    )


async def test_the_verification_messages_one_click_unsubscribe_withdraws_the_address(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine
) -> None:
    """Someone who did not ask for the address to be added says so: the unconfirmed address is deleted. (A message's
    own link stops only its kind: test_notify_messages.py.)"""
    address = _address()
    added = await _add(nstack, place, address)
    received = await _message_to(inbox, address)
    # The services bound port 0 here: the link's path and query, at the port they got.
    link = urllib.parse.urlsplit(received.message["List-Unsubscribe"].strip("<>"))
    url = f"{nstack.urls['notify']}{link.path}?{link.query}"
    async with aiohttp.ClientSession() as http, http.post(url, data={"List-Unsubscribe": "One-Click"}) as reply:
        assert reply.status == 200
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT address FROM notify.contacts WHERE contact_id = :c"), {"c": added["contact_id"]}
            )
        ).one()
    assert row.address is None


async def test_erasure_at_checkin_deletes_the_members_addresses(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine
) -> None:
    [member] = await members.register(nstack, place, known_to=["notify"])
    address = _address()
    added = await nstack.call(
        "notify", "POST", f"/members/{member}/contacts", token=place.tokens["coordinator"], json={"address": address}
    )
    assert added.status == 201, added.body
    await _message_to(inbox, address)
    erased = await nstack.call("checkin", "POST", f"/members/{member}/erase", token=place.tokens["admin"])
    assert erased.status == 200, erased.body

    async def gone() -> bool:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT count(*) FROM notify.contacts WHERE member_id = :m AND address IS NOT NULL"), {"m": member}
            )
            return found.scalar() == 0

    await eventually(gone)
    async with engine.connect() as conn:
        kept = await conn.execute(text("SELECT count(*) FROM notify.deliveries WHERE member_id = :m"), {"m": member})
        assert kept.scalar() == 1  # the pseudonymous history stays


async def _delivery(engine: AsyncEngine, contact_id: str, status: str) -> Any:
    async def settled() -> bool:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT status FROM notify.deliveries WHERE contact_id = :c"), {"c": contact_id}
            )
            return found.scalar() == status

    await eventually(settled)
    async with engine.connect() as conn:
        return (
            await conn.execute(
                text("SELECT status, attempts, last_error, links::text FROM notify.deliveries WHERE contact_id = :c"),
                {"c": contact_id},
            )
        ).one()


async def test_a_temporary_refusal_is_retried_and_sent_once(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine
) -> None:
    address = _address()
    inbox.refusals[address] = ["451 4.3.0 Try again later", "421 4.7.0 Busy"]
    added = await _add(nstack, place, address)
    await _message_to(inbox, address)
    delivery = await _delivery(engine, added["contact_id"], "sent")
    assert delivery.attempts == 3 and delivery.links == "{}"  # the link secrets are gone once sent
    assert len(_to(inbox, address)) == 1


async def test_a_permanent_refusal_fails_the_message_and_counts_a_bounce(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, engine: AsyncEngine
) -> None:
    address = _address()
    inbox.refusals[address] = ["550 5.1.1 No such mailbox"]
    added = await _add(nstack, place, address)
    delivery = await _delivery(engine, added["contact_id"], "failed")
    assert (delivery.attempts, delivery.last_error) == (1, "smtp 550")
    async with engine.connect() as conn:
        bounces = await conn.execute(
            text("SELECT bounces FROM notify.contacts WHERE contact_id = :c"), {"c": added["contact_id"]}
        )
        assert bounces.scalar() == 1
        failed = await conn.execute(
            text(
                "SELECT data->>'reason' FROM notify.outbox WHERE type = 'notify.notification_failed' AND subject = :m"
            ),
            {"m": str(place.volunteer_member_id)},
        )
        assert "refused" in failed.scalars().all()
    assert _to(inbox, address) == []


async def test_the_migration_builds_the_schema_the_models_describe(engine: AsyncEngine) -> None:
    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, kind, _parents: name == SCHEMA if kind == "schema" else True,
                "compare_type": True,
                "version_table_schema": SCHEMA,
            },
        )
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as conn:
        found = await conn.run_sync(differences)
    # The shared messaging tables come from shared.migrate (outside this service); only its own tables count here.
    ours = [d for d in found if "outbox" not in repr(d) and "inbox" not in repr(d) and "idempotency" not in repr(d)]
    assert ours == []


async def test_several_senders_share_the_work_and_send_each_message_once(
    nstack: Client, place: SiteUnderTest, inbox: Inbox, settings: Settings
) -> None:
    """Two more senders (as replicas would run) race the service's own over the same due rows."""
    configured = NotifySettings(**{**settings.model_dump(), "smtp_url": inbox.url, "send_batch_size": 3})
    engine = create_async_engine(settings.database_url)
    try:
        connect = make_connector(engine)
        uow = lambda: NotifyUnitOfWork(connect, Base.metadata)  # noqa: E731
        addresses = [_address() for _ in range(15)]
        await asyncio.gather(*(_add(nstack, place, address) for address in addresses))
        await asyncio.gather(*(sender.send_due(configured, uow, SystemClock()) for _ in range(4)))

        async def all_arrived() -> bool:
            return all(_to(inbox, address) for address in addresses)

        await eventually(all_arrived)
        await asyncio.sleep(0.5)  # a second copy, if any, would arrive by now
        assert [len(_to(inbox, address)) for address in addresses] == [1] * len(addresses)
    finally:
        await engine.dispose()
