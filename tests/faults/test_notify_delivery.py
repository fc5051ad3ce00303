"""The notify service as a real process against a real SMTP server (aiosmtpd), where delivery hurts most:

- killed with SIGKILL again and again in the middle of a batch: no Message-ID reaches the SMTP server twice, and
  every message is either received or recorded as ``interrupted`` (its sender died while handing it over, so it is
  not sent again: at most once). Of those, at most one per connection per kill was not received;
- the SMTP server down for 30 s while events keep coming, then back on the same port: every message arrives, once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest

from services.notify.domain import event_message_id, hash_secret, new_secret
from shared.contracts.volunteering import HoursApproved
from shared.events import envelope
from shared.messaging import declare_exchanges
from shared.outbox import amqp_message
from shared.settings import Settings
from tests.support.processes import ServiceProcess, service_processes
from tests.support.report import report
from tests.support.smtp import Inbox, smtp_server
from tests.support.stack import eventually, make_site

pytestmark = pytest.mark.e2e

FROM = "center@notify.example"
CONNECTIONS = 4


def _notify(inbox: Inbox, **more: Any) -> dict[str, Any]:
    return {
        "smtp_url": inbox.url,
        "notify_from": FROM,
        "send_interval_s": 0.2,
        "send_connections": CONNECTIONS,
        "send_batch_size": 100,
        **more,
    }


async def _contacts(db: asyncpg.Pool, site_id: str, count: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Verified contacts (as adding and verifying them leaves them), one per new member: (member, contact)."""
    people = [(uuid.uuid4(), uuid.uuid4()) for _ in range(count)]
    now = datetime.now(UTC)
    await db.executemany(
        "INSERT INTO notify.contacts (contact_id, member_id, site_id, channel, address, locale, kinds, consent_at,"
        " consent_by, consent_source, verified_at) VALUES ($1, $2, $3, 'email', $4, 'en',"
        " ARRAY['confirmations', 'changes', 'reminders', 'approvals'], $5, 'token:test', 'test', $5)",
        [(contact, member, site_id, f"p-{contact.hex[:12]}@mail.example", now) for member, contact in people],
    )
    return people


async def _due_messages(db: asyncpg.Pool, site_id: str, count: int) -> list[str]:
    """Messages already queued and due (hours approved), one per contact; their Message-IDs."""
    now = datetime.now(UTC)
    rows = []
    for member, contact in await _contacts(db, site_id, count):
        cause, key = uuid.uuid4(), new_secret()
        rows.append(
            (
                uuid.uuid4(),
                event_message_id("hours_approved", cause, contact, FROM),
                contact,
                member,
                site_id,
                cause,
                now,
                json.dumps({"unsubscribe": key}),
                json.dumps({"starts_at": (now - timedelta(days=1)).isoformat(), "what": "shift", "minutes": 90}),
                hash_secret(key),
            )
        )
    await db.executemany(
        "INSERT INTO notify.deliveries (delivery_id, message_id, contact_id, member_id, site_id, purpose, kind,"
        " cause_id, status, next_attempt_at, created_at, links, template_values, unsubscribe_hash)"
        " VALUES ($1, $2, $3, $4, $5, 'hours_approved', 'approvals', $6, 'pending', $7, $7, $8, $9, $10)",
        rows,
    )
    return [row[1] for row in rows]


async def _pending(db: asyncpg.Pool, site_id: str) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM notify.deliveries WHERE site_id = $1 AND channel = 'email' AND status = 'pending'",
            site_id,
        )
    )


async def test_a_sender_killed_mid_batch_again_and_again_sends_nothing_twice_and_loses_only_what_it_says(
    isolated: Settings, db: asyncpg.Pool, tmp_path: Path
) -> None:
    messages, kills = 600, 3
    site = await make_site(isolated)
    pending_at_kill: list[int] = []
    with smtp_server(delay_s=0.01) as inbox:
        ids = await _due_messages(db, site.site_id, messages)
        notify = ServiceProcess("notify", isolated, tmp_path, **_notify(inbox, send_lease_s=3))
        try:
            await notify.start()
            for kill in range(1, kills + 1):
                target = kill * messages // (kills + 2)

                async def sending(target: int = target) -> bool:
                    return len(inbox.messages) >= target

                await eventually(sending, timeout=120, interval=0.01)
                notify.kill()  # SIGKILL: no round finishes, no outcome is recorded, no connection says goodbye
                await notify.wait()
                pending_at_kill.append(await _pending(db, site.site_id))
                await notify.start()

            async def settled() -> bool:
                return await _pending(db, site.site_id) == 0

            await eventually(settled, timeout=120, interval=0.25)
        finally:
            await notify.stop()
    received = Counter(str(m.message["Message-ID"]) for m in inbox.messages)
    rows = {
        r["message_id"]: r
        for r in await db.fetch(
            "SELECT message_id, status, last_error FROM notify.deliveries WHERE site_id = $1 AND channel = 'email'",
            site.site_id,
        )
    }
    interrupted = {m for m, r in rows.items() if r["status"] == "failed" and r["last_error"] == "interrupted"}
    events = await db.fetchval(
        "SELECT count(*) FROM notify.outbox"
        " WHERE type = 'notify.notification_failed' AND data->>'reason' = 'interrupted'"
    )
    report(
        "notify killed mid-batch",
        {
            "duplicated": sum(n - 1 for n in received.values()),
            "lost": len([m for m in ids if m not in received and m not in interrupted]),
            "sent_but_not_received": len([m for m, r in rows.items() if r["status"] == "sent" and m not in received]),
            "received_unknown_id": len(received.keys() - rows.keys()),
            "other_status": len([r for r in rows.values() if r["status"] not in ("sent", "failed")]),
            "interrupted_without_event": len(interrupted) - events,
        },
        messages=messages,
        kills=kills,
        pending_at_kill=pending_at_kill,
        interrupted_received=len(interrupted & received.keys()),
        interrupted_not_received=len(interrupted - received.keys()),
    )
    assert all(pending > 0 for pending in pending_at_kill), "each kill must land mid-batch"
    # At most once: a message whose DATA was on the wire at a kill may be lost, one per connection per kill.
    assert len(interrupted - received.keys()) <= kills * CONNECTIONS


def _approved(site_id: str, member_id: uuid.UUID) -> dict[str, Any]:
    data = HoursApproved(
        hours_id=uuid.uuid4(),
        shift_id=uuid.uuid4(),
        member_id=member_id,
        role_id="front_desk",
        shift_starts_at=datetime.now(UTC) - timedelta(days=1),
        minutes=90,
        approved_at=datetime.now(UTC),
    )
    return envelope(
        event_id=uuid.uuid4(),
        source="/rcc/volunteering",
        type_=HoursApproved.event_type,
        time=datetime.now(UTC),
        subject=str(member_id),
        site_id=site_id,
        data=data.model_dump(mode="json", by_alias=True),
        dataschema=HoursApproved.dataschema(),
        classification=HoursApproved.classification,
        sequence=1,
    )


async def test_the_smtp_server_down_for_30_seconds_loses_nothing_and_sends_each_once_when_back(
    isolated: Settings, db: asyncpg.Pool, tmp_path: Path
) -> None:
    before, during = 10, 30
    site = await make_site(isolated)
    people = await _contacts(db, site.site_id, before + during)
    with smtp_server() as inbox:
        overrides = _notify(inbox, retry_base_s=0.5, retry_max_s=3.0, max_attempts=100)
        connection = await aio_pika.connect(isolated.amqp_url)
        async with service_processes(isolated, tmp_path, ["notify"], **overrides):
            channel = await connection.channel(publisher_confirms=True)
            exchange, _ = await declare_exchanges(channel, isolated)

            async def publish(member_id: uuid.UUID) -> str:
                ce = _approved(site.site_id, member_id)
                await exchange.publish(amqp_message(ce), routing_key=ce["type"], timeout=10)
                return str(ce["id"])

            events = [await publish(member) for member, _ in people[:before]]
            await inbox.wait_for(before, timeout=30)
            inbox.stop()  # the relay is down: its port refuses connections
            try:
                for member, _ in people[before:]:
                    events.append(await publish(member))
                    await asyncio.sleep(1.0)  # 30 events over the 30 s the relay is down
                tried = await db.fetchval(
                    "SELECT count(*) FROM notify.deliveries WHERE site_id = $1 AND channel = 'email'"
                    " AND status = 'pending' AND attempts >= 2",
                    site.site_id,
                )
                received_while_down = len(inbox.messages)
            finally:
                inbox.start()  # back, on the same port

            async def settled() -> bool:
                return await _pending(db, site.site_id) == 0 and len(inbox.messages) >= before + during

            await eventually(settled, timeout=90, interval=0.25)
        await connection.close()
    expected = {
        event_message_id("hours_approved", uuid.UUID(event), contact, FROM)
        for event, (_, contact) in zip(events, people, strict=True)
    }
    received = Counter(str(m.message["Message-ID"]) for m in inbox.messages)
    statuses = Counter(
        r["status"]
        for r in await db.fetch(
            "SELECT status FROM notify.deliveries WHERE site_id = $1 AND channel = 'email'", site.site_id
        )
    )
    report(
        "SMTP server down for 30 s",
        {
            "lost": len(expected - received.keys()),
            "duplicated": sum(n - 1 for n in received.values()),
            "unexpected": len(received.keys() - expected),
            "not_sent": sum(n for status, n in statuses.items() if status != "sent"),
        },
        messages=before + during,
        tried_again_while_down=tried,
        received_while_down=received_while_down - before,
    )
    assert received_while_down == before
    assert tried > 0, "the outage must have been felt: messages refused and tried again while it lasted"
