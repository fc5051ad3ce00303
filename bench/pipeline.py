"""2. Event pipeline: check-in outbox → relay → RabbitMQ → audit log, against raw aio-pika and asyncpg.

The broker topology is the one ``rcc migrate`` declares: ``rcc.events`` and every consumer's quorum queue (audit
binds ``#``; volunteering and gatherings bind check-in events too, and since their services do not run here,
their copies wait and are purged between steps). The steps, in the order they run:

(c) Baselines: raw aio-pika publishes the N events' bodies (the relay's exact bytes) to ``rcc.events`` with
    publisher confirms, pipelined in windows, so they reach the same queues the relay's would; then a raw consumer
    takes them from the audit queue with a large prefetch, COPYs them in batches into a scratch table shaped like
    the audit log (no hash chain) and acks each batch with one ``multiple`` ack.
(a) Relay: N check-in events wait in ``checkin.outbox``; audit is stopped, its queue empty; the check-in service
    starts and its relay publishes them. Rate: N over the time from the first relay pass (``min(published_at)``)
    to the moment the harness sees no unpublished row.
(b) Audit ingest: the audit service starts with the N messages waiting. Rate: N over the time from its first batch
    (``min(recorded_at)``) to the moment the log holds N entries. Then ``GET /audit/verify`` must say ok.
(d) Lag: kiosk check-ins at a steady rate (200/s) through ``POST /visits`` with both services running; per event,
    the audit row's ``recorded_at`` minus the outbox row's ``created_at`` (the check-in transaction's start)."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import aio_pika
import aiohttp
import asyncpg
from pamqp.commands import Basic

from bench.checkin import check_in_body
from bench.common import (
    Figure,
    Goal,
    Outcome,
    SeededSite,
    Stack,
    benchmark,
    chunks,
    per_second,
    ratio,
    say,
)
from bench.load import post_paced
from shared.contracts.checkin import VisitorCheckedIn
from shared.events import CONTENT_TYPE, Event, canonical_json, parse_time
from shared.messaging import declare_consumer_queue
from shared.outbox import cloudevent_from_row
from shared.uow import outbox_row

RELAY_GOAL = Goal(">=", 0.5)
# Issue #19.
INGEST_GOAL = Goal(">=", 0.6)
LAG_P99_GOAL_MS = Goal("<", 250.0)
PUBLISH_WINDOW = 1_000  # publishes in flight before awaiting their confirms
CONSUME_PREFETCH = 1_000
INSERT_BATCH = 500
AUDIT_QUEUE = "audit"
SCRATCH_TABLE = "public.bench_baseline_audit_log"
SOURCE = "/rcc/checkin"

LAG_QUERY = """
    SELECT count(*) AS events,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY total_ms) AS p50,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY total_ms) AS p99,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY pickup_ms) AS pickup_p50,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY pickup_ms) AS pickup_p99
    FROM (SELECT extract(epoch FROM a.recorded_at - o.created_at)::float8 * 1000 AS total_ms,
                 extract(epoch FROM o.published_at - o.created_at)::float8 * 1000 AS pickup_ms
          FROM checkin.outbox o JOIN audit.audit_log a USING (event_id)
          WHERE o.sequence > $1) AS lags
"""


def add_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--events", type=int, default=50_000, help="events through relay and audit (50000)")
    group.add_argument("--lag-seconds", type=float, default=20.0, help="seconds of steady check-ins for lag (20)")
    group.add_argument("--lag-rate", type=float, default=200.0, help="check-ins per second for lag (200)")


@benchmark(
    "pipeline",
    "outbox relay and audit ingest vs raw aio-pika; commit-to-audit lag",
    options=add_options,
    parameters=("events", "lag_seconds", "lag_rate"),
)
async def run(options: argparse.Namespace, stack: Stack) -> Outcome:
    site = await stack.seed_site()
    lag_members = await stack.seed_members(site.site_id, math.ceil(options.lag_rate * options.lag_seconds))
    events = checkin_outbox_rows(site.site_id, options.events)

    channel = await stack.amqp.channel()
    await declare_consumer_queue(channel, stack.settings, AUDIT_QUEUE, ["#"])  # as migrate does; here for sure
    await channel.close()

    raw_publish = await _baseline_publish(stack, events)
    raw_consume, raw_consume_cpu = await _baseline_consume(stack, len(events))
    await stack.purge_queues(stack.queues)
    relay = await _relay(stack, events)
    ingest, ingest_cpu, verified = await _audit_ingest(stack, site, len(events))
    lag = await _lag(stack, site, lag_members, options.lag_rate)

    outcome = Outcome(
        figures=[
            Figure("relay publish", relay, "events/s"),
            Figure("baseline: raw publish, pipelined confirms", raw_publish, "events/s"),
            Figure("relay / baseline", ratio(relay, raw_publish), "", RELAY_GOAL),
            Figure("audit ingest", ingest, "events/s"),
            Figure("baseline: raw consume, batched COPY", raw_consume, "events/s"),
            Figure("audit ingest / baseline", ratio(ingest, raw_consume), "", INGEST_GOAL),
            Figure("audit process CPU per event ingested", ingest_cpu, "µs"),
            Figure("baseline consumer CPU per event", raw_consume_cpu, "µs"),
            Figure("audit chain verify", verified),
            *lag.figures,
        ],
        notes=lag.notes,
    )
    if not verified.startswith("ok"):
        outcome.notes.append(f"the audit chain did not verify: {verified}")
    return outcome


def checkin_outbox_rows(site_id: str, count: int) -> list[dict[str, Any]]:
    """Outbox rows exactly as the check-in handler writes them (same contract, same serialisation)."""
    now = datetime.now(UTC)
    actor = f"token:{uuid.uuid4()}"
    rows = []
    for _ in range(count):
        visit_id = uuid.uuid4()
        data = VisitorCheckedIn(
            visit_id=visit_id,
            member_id=uuid.uuid4(),
            anonymous=False,
            purpose="drop_in",
            support_type="affiliational",
            ref=None,
            checked_in_at=now,
        )
        rows.append(outbox_row(Event(data, subject=str(visit_id), site_id=site_id, actor_id=actor, time=now)))
    return rows


# --- (c) baselines -------------------------------------------------------------------------------------------


async def _baseline_publish(stack: Stack, rows: list[dict[str, Any]]) -> float | None:
    # The bodies are what the relay would send (same envelope, same bytes); building them is not timed.
    bodies = [
        (canonical_json(cloudevent_from_row(SimpleNamespace(**row, sequence=i), SOURCE)), row)
        for i, row in enumerate(rows, start=1)
    ]
    channel = await stack.amqp.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(stack.settings.exchange_name, ensure=False)
    say(f"baseline: publishing {len(bodies):,} messages with pipelined confirms")
    unconfirmed = 0
    began = time.perf_counter()
    for window in chunks(bodies, PUBLISH_WINDOW):
        results = await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        body,
                        content_type=CONTENT_TYPE,
                        message_id=str(row["event_id"]),
                        type=row["type"],
                        app_id=SOURCE,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=row["type"],
                    mandatory=True,
                    timeout=stack.settings.publish_timeout_s,
                )
                for body, row in window
            ),
            return_exceptions=True,
        )
        unconfirmed += sum(not isinstance(result, Basic.Ack) for result in results)
    seconds = time.perf_counter() - began
    await channel.close()
    if unconfirmed:
        raise RuntimeError(f"baseline publish: {unconfirmed} messages not confirmed")
    rate = per_second(len(bodies), seconds)
    say(f"baseline: published at {rate:,.0f} events/s")
    return rate


async def _baseline_consume(stack: Stack, count: int) -> tuple[float | None, float]:
    """Events/s, and the CPU microseconds per event of this process while it consumed (it does nothing else)."""
    await stack.db.execute(
        f"CREATE TABLE {SCRATCH_TABLE} (LIKE audit.audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING INDEXES)"
    )
    await stack.db.execute(f"ALTER TABLE {SCRATCH_TABLE} DROP COLUMN prev_hash, DROP COLUMN hash")
    db = await asyncpg.connect(stack.dsn)
    channel = await stack.amqp.channel()
    try:
        await channel.set_qos(prefetch_count=CONSUME_PREFETCH)
        queue = await channel.get_queue(stack.settings.queue_name(AUDIT_QUEUE), ensure=False)
        say(f"baseline: consuming {count:,} messages from the audit queue into a scratch table")
        received = 0
        batch: list[aio_pika.abc.AbstractIncomingMessage] = []
        began, cpu_began = time.perf_counter(), time.process_time()
        async with queue.iterator() as messages:
            async for message in messages:
                batch.append(message)
                received += 1
                if len(batch) == INSERT_BATCH or received == count:
                    await _copy_batch(db, batch, first_sequence=received - len(batch) + 1)
                    await batch[-1].ack(multiple=True)
                    batch = []
                if received == count:
                    break
        seconds = time.perf_counter() - began
        cpu_us = (time.process_time() - cpu_began) * 1e6 / count
    finally:
        await channel.close()
        await db.close()
    await stack.db.execute(f"DROP TABLE {SCRATCH_TABLE}")
    rate = per_second(count, seconds)
    say(f"baseline: consumed at {rate:,.0f} events/s, {cpu_us:.0f} µs CPU per event")
    return rate, cpu_us


async def _copy_batch(
    db: asyncpg.Connection, batch: list[aio_pika.abc.AbstractIncomingMessage], first_sequence: int
) -> None:
    """The same columns the audit service writes, from the same parse of the body; no dedupe, no chain."""
    now = datetime.now(UTC)
    records = []
    for sequence, message in enumerate(batch, start=first_sequence):
        ce = json.loads(message.body)
        records.append(
            (
                sequence,
                uuid.UUID(ce["id"]),
                ce["type"],
                ce["source"],
                ce["siteid"],
                ce.get("subject"),
                parse_time(ce["time"]),
                now,
                canonical_json(ce).decode(),
            )
        )
    schema, table = SCRATCH_TABLE.split(".")
    await db.copy_records_to_table(
        table,
        schema_name=schema,
        records=records,
        columns=["sequence", "event_id", "type", "source", "site_id", "subject", "time", "recorded_at", "body"],
    )


# --- (a) relay, (b) audit ingest -----------------------------------------------------------------------------


async def _relay(stack: Stack, rows: list[dict[str, Any]]) -> float | None:
    columns = list(rows[0])
    await stack.db.copy_records_to_table(
        "outbox",
        schema_name="checkin",
        columns=columns,
        records=[tuple(json.dumps(row[c]) if c == "data" else row[c] for c in columns) for row in rows],
    )
    await stack.db.execute("ANALYZE checkin.outbox")
    say(f"relay: {len(rows):,} events waiting; starting checkin")
    await stack.start_service("checkin")
    done = await stack.poll(
        "SELECT count(*) AS waiting, clock_timestamp() AS at FROM checkin.outbox WHERE published_at IS NULL",
        lambda row: row["waiting"] == 0,
        timeout=max(120.0, len(rows) / 100),
        what="relay publishing the outbox",
    )
    first = await stack.db.fetchval("SELECT min(published_at) FROM checkin.outbox")
    rate = per_second(len(rows), (done["at"] - first).total_seconds())
    say(f"relay: published at {rate:,.0f} events/s")
    return rate


async def _audit_ingest(stack: Stack, site: SeededSite, count: int) -> tuple[float | None, float | None, str]:
    """Events/s, the audit process's CPU microseconds per event (from ready to done: its start-up is not counted,
    nor what it ingested before it answered ``/readyz``), and the chain's verdict."""
    say(f"audit: starting with {count:,} messages waiting")
    audit = await stack.start_service("audit")
    cpu_began = audit.cpu_seconds()
    done = await stack.poll(
        "SELECT coalesce(max(sequence), 0) AS entries, clock_timestamp() AS at FROM audit.audit_log",
        lambda row: row["entries"] >= count,
        timeout=max(120.0, count / 100),
        what="audit ingesting the events",
    )
    cpu_ended = audit.cpu_seconds()
    first = await stack.db.fetchval("SELECT min(recorded_at) FROM audit.audit_log")
    rate = per_second(count, (done["at"] - first).total_seconds())
    cpu_us = (cpu_ended - cpu_began) * 1e6 / count if cpu_began is not None and cpu_ended is not None else None
    say(f"audit: ingested at {rate:,.0f} events/s; verifying the chain")
    headers = {"Authorization": f"Bearer {site.admin_token}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http,
        http.get(audit.url + "/audit/verify", headers=headers) as response,
    ):
        result = await response.json()
    if response.status != 200:
        return rate, cpu_us, f"HTTP {response.status}: {result}"
    verdict = "ok" if result["ok"] else f"BROKEN at sequence {result['first_bad_sequence']}"
    return rate, cpu_us, f"{verdict}, {result['entries']:,} entries"


# --- (d) lag -------------------------------------------------------------------------------------------------


async def _lag(stack: Stack, site: SeededSite, members: list[uuid.UUID], rate: float) -> Outcome:
    checkin = stack.process("checkin")
    before = await stack.db.fetchval("SELECT coalesce(max(sequence), 0) FROM checkin.outbox")
    say(f"lag: {len(members):,} check-ins at {rate:g}/s")
    load = await post_paced(
        checkin.url + "/visits", [check_in_body(m) for m in members], token=site.kiosk_token, rate=rate
    )
    expected = await stack.db.fetchval("SELECT count(*) FROM checkin.outbox WHERE sequence > $1", before)
    await stack.poll(
        "SELECT count(*) AS arrived FROM checkin.outbox o JOIN audit.audit_log a USING (event_id) "
        "WHERE o.sequence > $1",
        lambda row: row["arrived"] >= expected,
        args=(before,),
        timeout=60.0,
        what="check-ins reaching the audit log",
    )
    lag = await stack.db.fetchrow(LAG_QUERY, before)
    if not lag["events"]:
        raise RuntimeError(f"no check-in reached the audit log ({load.ok} of {load.sent} check-ins succeeded)")
    say(f"lag: p50 {lag['p50']:.1f} ms, p99 {lag['p99']:.1f} ms over {lag['events']:,} events")
    outcome = Outcome(
        figures=[
            Figure("lag commit → audit row p50", lag["p50"], "ms"),
            Figure("lag commit → audit row p99", lag["p99"], "ms", LAG_P99_GOAL_MS),
            # Where the time goes: until the relay picked the row up (published_at is its pass's start).
            Figure("  of which until relay pickup p50", lag["pickup_p50"], "ms"),
            Figure("  of which until relay pickup p99", lag["pickup_p99"], "ms"),
            Figure("lag events measured", lag["events"], f"sent at {load.offered_per_s:.0f}/s"),
            Figure("lag check-ins failed", load.errors, f"of {load.sent:,}"),
            Figure("check-in p99 latency at the steady rate (client)", load.p99_ms, "ms"),
        ]
    )
    if load.offered_per_s < 0.95 * rate:
        outcome.notes.append(f"the harness sent only {load.offered_per_s:.0f}/s of {rate:g}/s (busy machine?)")
    if not load.server_kept_up:
        outcome.notes.append(
            f"the check-in service did not keep up with {rate:g}/s (its last answer came "
            f"{load.finished_s - load.sending_s:.1f}s after the last request): the lag is that of a saturated service"
        )
    return outcome
