"""The broker closes our connections during steady traffic, three times (an operator's ``rabbitmqctl
close_connection``, a broker restart, a load balancer): every consumer is consuming again afterwards (some aio-pika
versions reconnect without resuming consumption; ours must not be one of them), the backlog drains, and every event
still has its effect exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg
import pytest

from shared.settings import Settings
from tests.support.rabbit import close_connections_of, connections_of, queue_state
from tests.support.report import report
from tests.support.stack import Client, Reply, SiteUnderTest, eventually, make_site, services
from tests.support.tally import audit_entries, inbox, outbox, tally, unpublished

pytestmark = pytest.mark.e2e

CONSUMERS = ["audit", "volunteering", "gatherings"]
ROUNDS = 3
PER_ROUND = 60  # check-ins answered between two closures


async def test_consumers_resume_after_the_broker_closes_their_connection_three_times(
    isolated: Settings, db: asyncpg.Pool
) -> None:
    site = await make_site(isolated)
    prefix = isolated.broker_prefix
    probe = await aio_pika.connect(isolated.amqp_url)  # our own, unnamed: never among the closed ones
    try:
        async with services(isolated, ["checkin", "volunteering", "gatherings", "audit"]) as stack:
            await eventually(lambda: _consuming(probe, isolated), timeout=30)
            event_id = await _sober_event(stack, site)
            traffic = Traffic(stack, site, event_id)
            running = asyncio.create_task(traffic.run())
            closed_total = 0
            try:
                for round_ in range(ROUNDS):
                    await eventually(lambda r=round_: traffic.answered_at_least((r + 1) * PER_ROUND), timeout=60)
                    before = await connections_of(prefix)
                    assert before, f"no broker connection named for {prefix!r}"
                    closed = await close_connections_of(prefix, f"fault test round {round_ + 1}")
                    closed_total += len(closed)

                    async def reconnected(old: frozenset[str] = frozenset(c.pid for c in before)) -> bool:
                        now = await connections_of(prefix)
                        return bool(now) and not old & {c.pid for c in now}

                    await eventually(reconnected, timeout=60, interval=0.5)
                    await eventually(lambda: _consuming(probe, isolated), timeout=60, interval=0.2)
                    # Consumption really resumed: a check-in made now reaches every consumer.
                    marker = await traffic.check_in()
                    try:
                        await eventually(lambda m=marker: _applied_everywhere(db, site, m), timeout=60, interval=0.2)
                    except AssertionError:
                        where = await _where_is(db, probe, isolated, site, marker)
                        raise AssertionError(
                            f"round {round_ + 1}: the check-in made after reconnecting did not "
                            f"reach every consumer within 60 s: {where}"
                        ) from None
            finally:
                traffic.stop.set()
                await running

            # Settled when every accepted check-in has had all its effects, not when the queues look empty: a
            # queue's depth leaves out what its consumer holds unacked. Past the timeout the report says what is
            # missing.
            async def settled() -> bool:
                if await unpublished(db, "checkin"):
                    return False
                return await _everywhere(db, site, traffic.accepted) == (len(traffic.accepted),) * 3

            with contextlib.suppress(AssertionError):
                await eventually(settled, timeout=120, interval=0.25)
            consumers = {c: await queue_state(probe, isolated.queue_name(c)) for c in CONSUMERS}
    finally:
        await probe.close()

    visits = set(traffic.accepted)
    events = {
        r["subject"]: r["event_id"] for r in await outbox(db, "checkin", site.site_id, ["checkin.visitor_checked_in"])
    }
    expected = {events[v] for v in visits if v in events}
    audit = tally(
        expected, Counter(r["event_id"] for r in await audit_entries(db, site.site_id, ["checkin.visitor_checked_in"]))
    )
    seen_by_volunteering = await inbox(db, "volunteering", "volunteering")
    seen_by_gatherings = await inbox(db, "gatherings", "gatherings")
    attendance = Counter(
        str(r["visit_id"])
        for r in await db.fetch(
            "SELECT visit_id FROM gatherings.attendance WHERE gathering_id = $1", uuid.UUID(event_id)
        )
    )
    report(
        "broker closed our connections 3 times",
        {
            "refused": traffic.refused,
            "audit_lost": audit.lost + len(visits - events.keys()),
            "audit_duplicated": audit.duplicated,
            "audit_unexpected": audit.unexpected,
            "volunteering_lost": len(expected - seen_by_volunteering),
            "gatherings_lost": len(expected - seen_by_gatherings),
            **tally(visits, attendance).counts("attendance_"),
        },
        check_ins=len(visits),
        connections_closed=closed_total,
        consumers={name: state[1] if state else None for name, state in consumers.items()},
    )
    assert closed_total >= ROUNDS


class Traffic:
    """Anonymous check-ins for the sober event, a few at a time, until ``stop``: each is attendance (gatherings),
    an inbox entry (volunteering) and an audit entry."""

    def __init__(self, stack: Client, site: SiteUnderTest, event_id: str) -> None:
        self.stack, self.site, self.event_id = stack, site, event_id
        self.accepted: list[str] = []
        self.refused = 0
        self.stop = asyncio.Event()

    async def check_in(self) -> str:
        reply = await self.stack.call(
            "checkin",
            "POST",
            "/visits",
            token=self.site.tokens["kiosk"],
            json={"anonymous": True, "purpose": "sober_event", "ref": self.event_id},
        )
        if reply.status != 201:
            self.refused += 1
            raise AssertionError(f"check-in refused: {reply.status} {reply.body}")
        self.accepted.append(reply.body["visit_id"])
        return reply.body["visit_id"]

    async def run(self) -> None:
        async def one_kiosk() -> None:
            while not self.stop.is_set():
                with contextlib.suppress(AssertionError):  # counted in refused
                    await self.check_in()
                await asyncio.sleep(0.01)

        await asyncio.gather(*(one_kiosk() for _ in range(4)))

    async def answered_at_least(self, n: int) -> bool:
        return len(self.accepted) + self.refused >= n


async def _consuming(probe: aio_pika.abc.AbstractConnection, settings: Settings) -> bool:
    states = [await queue_state(probe, settings.queue_name(c)) for c in CONSUMERS]
    return all(state is not None and state[1] == 1 for state in states)


async def _applied_everywhere(db: asyncpg.Pool, site: SiteUnderTest, visit_id: str) -> bool:
    return await _everywhere(db, site, [visit_id]) == (1, 1, 1)


async def _everywhere(db: asyncpg.Pool, site: SiteUnderTest, visit_ids: list[str]) -> tuple[int, int, int]:
    """How many of these check-ins the audit log, the volunteering inbox and the gatherings attendance have."""
    events = [
        r["event_id"]
        for r in await db.fetch(
            "SELECT event_id FROM checkin.outbox WHERE site_id = $1 AND type = 'checkin.visitor_checked_in'"
            " AND subject = ANY($2::text[])",
            site.site_id,
            visit_ids,
        )
    ]
    return (
        await db.fetchval("SELECT count(DISTINCT event_id) FROM audit.audit_log WHERE event_id = ANY($1)", events),
        await db.fetchval(
            "SELECT count(*) FROM volunteering.inbox WHERE consumer = 'volunteering' AND event_id = ANY($1)", events
        ),
        await db.fetchval(
            "SELECT count(DISTINCT visit_id) FROM gatherings.attendance WHERE visit_id = ANY($1)",
            [uuid.UUID(v) for v in visit_ids],
        ),
    )


async def _where_is(
    db: asyncpg.Pool, probe: aio_pika.abc.AbstractConnection, settings: Settings, site: SiteUnderTest, visit_id: str
) -> dict[str, object]:
    """Where a check-in's event got to, for the failure message: published or not, and which consumer has it."""
    row = await db.fetchrow(
        "SELECT event_id, published_at, attempts FROM checkin.outbox"
        " WHERE subject = $1 AND type = 'checkin.visitor_checked_in'",
        visit_id,
    )
    if row is None:
        return {"outbox": "missing"}
    in_audit, in_volunteering_inbox, in_gatherings_attendance = await _everywhere(db, site, [visit_id])
    return {
        "published": row["published_at"] is not None,
        "publish_attempts": row["attempts"],
        "in_audit": bool(in_audit),
        "in_volunteering_inbox": bool(in_volunteering_inbox),
        "in_gatherings_attendance": bool(in_gatherings_attendance),
        "queues": {c: await queue_state(probe, settings.queue_name(c)) for c in CONSUMERS},
    }


async def _sober_event(stack: Client, site: SiteUnderTest) -> str:
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    reply: Reply = await stack.call(
        "gatherings",
        "POST",
        "/events",
        token=site.tokens["coordinator"],
        json={
            "title": "Sober game night",
            "kind": "sober_social",
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=3)).isoformat(),
            "capacity": 500,
        },
    )
    assert reply.status == 201, reply.body
    return reply.body["event_id"]
