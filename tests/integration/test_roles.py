"""Process roles and replicas (``rcc serve SERVICE --role``): a web replica publishes nothing until a relay runs, two
relays neither duplicate nor reorder a site's events, group commit stays right across two web replicas, a periodic
job runs on one scheduler at a time, and a revoked token stops working on every replica."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aio_pika
import pytest
from aiohttp import web
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.audit import DB_ROLE as AUDIT_DB_ROLE
from services.audit.commands import AppendToAuditLog
from services.audit.handlers import append_to_audit_log, verify_audit_log
from services.audit.models import AuditUnitOfWork
from services.audit.models import Base as AuditBase
from services.checkin.models import Base, CheckinUnitOfWork
from shared import access
from shared.clock import SystemClock
from shared.db import create_engine, make_connector
from shared.errors import Unauthorized
from shared.events import Event, ReceivedEvent, canonical_json
from shared.messaging import Broker, declare_exchanges
from shared.outbox import OutboxRelay
from shared.runtime import ENGINE, every
from shared.settings import Settings
from shared.uow import execute
from tests.integration.helpers import cloud_event, sub_prefix, unique
from tests.integration.test_outbox_relay import member_registered
from tests.support.proxy import TcpProxy
from tests.support.stack import SiteUnderTest, eventually, make_site, services
from tests.support.volunteering import Center

pytestmark = pytest.mark.integration

OUTBOX = Base.metadata.tables["checkin.outbox"]


def as_role(settings: Settings, role: str, **more: Any) -> Settings:
    return settings.model_copy(update={"role": role, **more})


async def published_at(engine: AsyncEngine, visit_id: str) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(select(OUTBOX.c.published_at).where(OUTBOX.c.subject == visit_id))


def gauge(metrics_text: str, name: str, service: str) -> float:
    prefix = f'{name}{{service="{service}"}} '
    [line] = [line for line in metrics_text.splitlines() if line.startswith(prefix)]
    return float(line.removeprefix(prefix))


@contextlib.asynccontextmanager
async def tap(settings: Settings, routing_key: str = "checkin.#") -> AsyncIterator[list[dict[str, Any]]]:
    """Every CloudEvent routed to ``routing_key``, in arrival order."""
    received: list[dict[str, Any]] = []
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        exchange, _ = await declare_exchanges(channel, settings)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=routing_key)

        async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            received.append(json.loads(message.body))
            await message.ack()

        await queue.consume(take)
        yield received
    finally:
        await connection.close()


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, service="it-roles")
    yield engine
    await engine.dispose()


async def test_a_web_replica_keeps_a_check_in_in_the_outbox_until_a_relay_runs(
    settings: Settings, site: SiteUnderTest, engine: AsyncEngine
) -> None:
    async with services(as_role(settings, "web"), ["checkin"]) as web_replica, tap(settings) as seen:
        health = await web_replica.call("checkin", "GET", "/healthz")
        assert health.body == {"status": "ok", "role": "web", "broker": "not used by this role"}
        ready = await web_replica.call("checkin", "GET", "/readyz")
        assert ready.status == 200, ready.body  # PostgreSQL alone: the broker is not its business

        visit = await web_replica.call(
            "checkin",
            "POST",
            "/visits",
            token=site.tokens["kiosk"],
            json={"anonymous": True, "purpose": "drop_in"},
        )
        assert visit.status == 201, visit.body
        visit_id = visit.body["visit_id"]
        # Several relay poll intervals: a relay anywhere in this process would have published it by now.
        await asyncio.sleep(settings.relay_poll_interval_s * 5)
        assert await published_at(engine, visit_id) is None
        assert visit_id not in {event["subject"] for event in seen}
        async with web_replica.http.get(web_replica.urls["checkin"] + "/metrics") as response:
            exposition = await response.text()
        assert gauge(exposition, "rcc_outbox_oldest_unsent_seconds", "checkin") > 0

        started = time.monotonic()
        async with services(as_role(settings, "relay"), ["checkin"]) as relay:
            # A relay replica answers its probes, and no API.
            refused = await relay.call("checkin", "POST", "/visits", token=site.tokens["kiosk"], json={})
            assert refused.status in (404, 405), refused.status
            assert (await relay.call("checkin", "GET", "/healthz")).body["role"] == "relay"

            async def published() -> bool:
                return await published_at(engine, visit_id) is not None

            await eventually(published, timeout=30)
            took = time.monotonic() - started
            await eventually(lambda: _holds(seen, visit_id), timeout=30)
        print(f"\nweb-role check-in published {took:.2f} s after a relay replica started")

        async with web_replica.http.get(web_replica.urls["checkin"] + "/metrics") as response:
            exposition = await response.text()
        assert gauge(exposition, "rcc_outbox_oldest_unsent_seconds", "checkin") < took + 60


async def _holds(seen: list[dict[str, Any]], subject: str) -> bool:
    return any(event["subject"] == subject for event in seen)


class CountingRelay(OutboxRelay):
    published = 0

    async def publish_pending(self) -> tuple[int, bool, bool]:
        result = await super().publish_pending()
        self.published += result[0]
        return result


async def test_two_relays_publish_every_event_once_and_each_sites_events_in_order(
    settings: Settings, engine: AsyncEngine
) -> None:
    own = sub_prefix(settings, "relays")
    relay_settings = own.model_copy(update={"relay_batch_size": 7, "relay_poll_interval_s": 0.05})
    sessionmaker = make_connector(engine)
    sites = [f"site-{unique('r')}" for _ in range(3)]
    events: list[Event] = []

    async def commit_some(site_id: str, count: int) -> None:
        for _ in range(count):
            batch = [member_registered(site_id) for _ in range(3)]
            events.extend(batch)
            async with CheckinUnitOfWork(sessionmaker, Base.metadata) as uow:
                uow.events.extend(batch)
                await uow.commit()
            await asyncio.sleep(0)

    async with tap(own) as seen:
        brokers = [Broker(relay_settings, name=unique("it-relay-")) for _ in range(2)]
        for broker in brokers:
            broker.start()
        relays = [
            CountingRelay(service="checkin", engine=engine, outbox=OUTBOX, broker=broker, settings=relay_settings)
            for broker in brokers
        ]
        try:
            for broker in brokers:
                await asyncio.wait_for(broker.wait_ready(), 10)
            running = [asyncio.create_task(relay.run()) for relay in relays]
            await asyncio.gather(*(commit_some(site_id, 40) for site_id in sites))
            ours = {str(e.event_id) for e in events}
            await eventually(lambda: _arrived(seen, ours), timeout=60)
            await asyncio.sleep(relay_settings.relay_poll_interval_s * 10)  # a late duplicate would show by now
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            for broker in brokers:
                await broker.close()

    mine = [event for event in seen if event["id"] in ours]
    copies = Counter(event["id"] for event in mine)
    assert set(copies) == ours
    assert [event_id for event_id, n in copies.items() if n > 1] == []
    by_site: dict[str, list[int]] = defaultdict(list)
    for event in mine:
        by_site[event["siteid"]].append(int(event["sequence"]))
    for site_id, sequences in by_site.items():
        assert sequences == sorted(sequences), f"{site_id}'s events arrived out of order"
    assert sum(relay.published for relay in relays) == len(ours)
    print(f"\ntwo relays published {[relay.published for relay in relays]} of {len(ours)} events")


async def _arrived(seen: list[dict[str, Any]], ours: set[str]) -> bool:
    return ours <= {event["id"] for event in seen}


async def test_group_commit_is_right_across_two_web_replicas(settings: Settings, engine: AsyncEngine) -> None:
    web_settings = as_role(settings, "web", rate_limit_per_minute=0)
    site = await make_site(settings, timezone="America/New_York")
    # Two replicas, each with its own group commit (its own queue and in-process locks): only the shift's row lock
    # in PostgreSQL orders their sign-ups.
    async with services(web_settings, ["volunteering"]) as first, services(web_settings, ["volunteering"]) as second:
        assert first.urls["volunteering"] != second.urls["volunteering"]
        replicas = [Center(first, settings, site, engine), Center(second, settings, site, engine)]
        center = replicas[0]
        role = await center.role()
        people = await center.volunteers(120, [role], member_ids=[uuid.uuid4() for _ in range(120)])
        shift_id = await center.shift(role, starts_in=timedelta(days=4), capacity=7)
        replies = await asyncio.gather(*(replicas[n % 2].sign_up(shift_id, person) for n, person in enumerate(people)))
    assert [r.status for r in replies] == [201] * 120, [r.body for r in replies if r.status != 201][:3]
    assert Counter(r.body["status"] for r in replies) == {"confirmed": 7, "waitlisted": 113}
    assert sorted(r.body["position"] for r in replies if r.body["status"] == "waitlisted") == list(range(1, 114))
    rows = await center.signups(shift_id)
    assert [r.status for r in rows] == ["confirmed"] * 7 + ["waitlisted"] * 113


@pytest.mark.parametrize("shared", [False, True])
async def test_a_periodic_job_runs_on_one_scheduler_replica_at_a_time(
    settings: Settings, engine: AsyncEngine, shared: bool
) -> None:
    scheduler = as_role(settings, "scheduler")
    name = unique("job-")
    now_running = 0
    most = 0
    ticks = 0

    async def tick(_app: web.Application) -> None:
        nonlocal now_running, most, ticks
        now_running += 1
        most = max(most, now_running)
        ticks += 1
        try:
            await asyncio.sleep(0.05)
        finally:  # a tick cancelled as its replica stops is over too (the other replica may still be ticking)
            now_running -= 1

    apps = [web.Application() for _ in range(2)]
    contexts = []
    for app in apps:
        app[ENGINE] = engine
        contexts.append(every(scheduler, name, 0.001, tick, shared=shared)(app))
    for ctx in contexts:
        await ctx.__anext__()
    await eventually(lambda: _reached(lambda: ticks, 40), timeout=30)
    for ctx in contexts:
        await anext(ctx, None)
    assert most == (2 if shared else 1)


async def _reached(count: Callable[[], int], target: int) -> bool:
    return count() >= target


async def test_a_job_of_another_role_does_not_run(settings: Settings, engine: AsyncEngine) -> None:
    ran = asyncio.Event()

    async def tick(_app: web.Application) -> None:
        ran.set()

    app = web.Application()
    app[ENGINE] = engine
    for role in ("web", "relay", "consumers"):
        ctx = every(as_role(settings, role), unique("job-"), 0.001, tick)(app)
        await ctx.__anext__()
        await asyncio.sleep(0.05)
        await anext(ctx, None)
    assert not ran.is_set()
    ctx = every(as_role(settings, "all"), unique("job-"), 0.001, tick)(app)
    await ctx.__anext__()
    await asyncio.wait_for(ran.wait(), 10)
    await anext(ctx, None)


async def test_a_revoked_token_stops_working_on_every_replica_within_the_cache_ttl(
    settings: Settings, site: SiteUnderTest, engine: AsyncEngine
) -> None:
    now = [1000.0]
    stores = [access.TokenStore(engine, ttl_s=5.0, clock=lambda: now[0]) for _ in range(2)]
    token = site.tokens["kiosk"]
    for store in stores:  # both replicas have it cached
        assert (await store.authenticate(f"Bearer {token}")).token_id == site.token_ids["kiosk"]
    async with engine.begin() as conn:
        await access.revoke_token(conn, str(site.token_ids["kiosk"]))
    now[0] += 4.9
    for store in stores:  # still cached, as documented: at most the TTL
        await store.authenticate(f"Bearer {token}")
    now[0] += 0.2
    for store in stores:
        with pytest.raises(Unauthorized):
            await store.authenticate(f"Bearer {token}")
    assert Settings.model_fields["token_cache_ttl_s"].metadata, "the TTL must stay bounded"
    with pytest.raises(ValueError):
        Settings(token_cache_ttl_s=6)


async def test_two_audit_consumer_replicas_append_to_one_chain(settings: Settings) -> None:
    """Each replica appends its batches under the chain's lock and reads the head after it got it: two appending at
    once never write one sequence twice, and the chain verifies."""
    engines = [create_engine(settings, service=f"it-audit-{n}", role=AUDIT_DB_ROLE) for n in range(2)]
    site_id = f"site-{unique('chain')}"
    try:

        async def replica(engine: AsyncEngine) -> None:
            connector = make_connector(engine)
            for _ in range(15):
                batch = [
                    ReceivedEvent.from_body(canonical_json(cloud_event("it.chain_probe", site_id=site_id)))
                    for _ in range(4)
                ]
                await execute(
                    append_to_audit_log,
                    AppendToAuditLog(batch),
                    uow=AuditUnitOfWork(connector, AuditBase.metadata),
                    clock=SystemClock(),
                )

        await asyncio.gather(*(replica(engine) for engine in engines))
        async with AuditUnitOfWork(make_connector(engines[0]), AuditBase.metadata) as uow:
            verdict = await verify_audit_log(uow, 5_000)
            count = await uow.session.scalar(
                text("SELECT count(*) FROM audit.audit_log WHERE site_id = :site"), {"site": site_id}
            )
    finally:
        for engine in engines:
            await engine.dispose()
    assert count == 2 * 15 * 4
    assert verdict.ok, verdict


async def test_a_web_replica_is_ready_without_the_broker_and_a_relay_replica_is_not(settings: Settings) -> None:
    nowhere = settings.model_copy(update={"amqp_url": "amqp://guest:guest@127.0.0.1:1/"})
    async with services(as_role(nowhere, "web"), ["checkin"]) as web_replica:
        assert (await web_replica.call("checkin", "GET", "/readyz")).status == 200
    async with services(as_role(nowhere, "relay"), ["checkin"]) as relay:
        ready = await relay.call("checkin", "GET", "/readyz")
        health = await relay.call("checkin", "GET", "/healthz")
        async with relay.http.get(relay.urls["checkin"] + "/metrics") as response:
            exposition = await response.text()
    assert ready.status == 503 and "broker" in ready.body["detail"], ready.body
    assert health.status == 200 and health.body["broker"] == "disconnected", health.body
    assert gauge(exposition, "rcc_broker_connected", "checkin") == 0


async def test_the_broker_connection_goes_on_to_the_next_node_that_answers(settings: Settings) -> None:
    """Two "nodes" (two proxies to the one broker): the connection starts on the first, moves to the second when the
    first is cut, keeps its publisher confirms there, and the first's return does not move it back."""
    first, second = TcpProxy(), TcpProxy()
    await first.start()
    await second.start()
    broker = Broker(settings.model_copy(update={"amqp_url": f"{first.url},{second.url}"}), name=unique("it-nodes-"))
    broker.start()
    try:
        await asyncio.wait_for(broker.wait_ready(), 10)
        assert broker.node == f"127.0.0.1:{first.port}"
        first.cut()

        async def on_second() -> bool:
            return broker.is_ready and broker.node == f"127.0.0.1:{second.port}"

        await eventually(on_second, timeout=30)
        assert broker.failovers > 0 and second.connections_made >= 1
        assert broker.channel is not None and broker.channel.publisher_confirms
        made = (first.connections_made, second.connections_made)
        first.restore()
        await asyncio.sleep(2)  # a connection that is up stays where it is
        assert broker.is_ready and (first.connections_made, second.connections_made) == made
    finally:
        await broker.close()
        await first.close()
        await second.close()
