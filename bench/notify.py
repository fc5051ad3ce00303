"""6. Notify: many reminders falling due at once, and how long a promotion takes to reach the SMTP server.

**Throughput.** ``--messages`` (5,000) verified e-mail contacts each get one pending shift reminder in
``notify.deliveries``, written straight into the tables (COPY) with a due time far ahead; the notify service starts
(``RCC_SMTP_URL`` pointing at bench/smtp_sink.py, aiosmtpd in a process of its own), then one UPDATE makes them all
due at once. Rate = N / (that moment → the last ``finished_at``), both on the database's clock; every message must
end ``sent``. What the sender does per message is what it does for any message: lease (``FOR UPDATE SKIP
LOCKED``), the rules of the moment (consent, kinds, quiet hours, not after the start), write it (Jinja2, both
parts, Babel dates, the RFC 8058 headers), mark it handed, send it, record the outcome (``notification.sent``
through the outbox).

Baselines, in the same run before the service starts (bench/baseline_notify.py): a bare aiosmtplib loop sending N
messages of the same size over one kept connection (the goal's baseline); the same loop on as many connections as
the service uses; and one connection per message (a smaller count: it is slow). CPU per message is each process's
own CPU time (user + system) over its messages; PostgreSQL's share is not in the service's figure.

**Latency**, measured twice at ``--promotion-rate`` (50/s), ``--promotions`` (500) each time:
(a) notify's part alone: real ``volunteering.promoted_from_waitlist`` CloudEvents published into the broker, each
for a member with a verified address; latency = the SMTP server's receipt − the publish.
(b) the whole way: one-seat shifts, each held by a volunteer with another waiting who has a verified address (set
up over HTTP, not timed); the holders drop (volunteering, HTTP), and each promotion travels volunteering's outbox
and relay, RabbitMQ, notify's consumer and sender to the SMTP server. Latency = the receipt − the promotion's
outbox row's ``created_at`` (the drop transaction's start, a moment before its commit: not flattered), with the
p99 of each stage. The SMTP server is a sink that notes when each Message-ID arrived."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import Figure, Goal, Outcome, Process, Stack, benchmark, free_port, per_second, ratio, say
from bench.load import percentiles
from bench.notify_latency import drop_at, one_seat_shifts, publish_promotions
from bench.signups import _coordinator_token
from services.notify.domain import event_message_id, hash_secret, new_secret

RATIO_GOAL = Goal(">=", 0.5)
LATENCY_GOAL = Goal("<", 2000.0)
RESULT_MARKER = "BENCH_RESULT "
SINK_READY = "SMTP_SINK_READY"
SENDER = "no-reply@bench.example"
ONE_BY_ONE = 1000  # messages of the connection-per-message baseline


def add_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--messages", type=int, default=5000, help="messages falling due at once (5000)")
    group.add_argument("--promotions", type=int, default=500, help="promotions for the latency (500)")
    group.add_argument("--promotion-rate", type=float, default=50.0, help="promotions published per second (50)")


@benchmark(
    "notify",
    "reminders falling due at once, and promotion → SMTP latency, against a local SMTP server",
    options=add_options,
    parameters=("messages", "promotions", "promotion_rate"),
)
async def run(options: argparse.Namespace, stack: Stack) -> Outcome:
    outcome = Outcome()
    if options.messages:  # 0: the latency alone
        await _throughput(options.messages, stack, outcome)
    if options.promotions:
        await _latency(options.promotions, options.promotion_rate, stack, outcome)
    return outcome


# --- throughput ----------------------------------------------------------------------------------------------


async def _throughput(count: int, stack: Stack, outcome: Outcome) -> None:
    connections = stack.settings.model_dump().get("send_connections", 4)
    sink_port = free_port()
    sink = await _start_sink(stack, sink_port)
    try:
        one = await _baseline(sink_port, count)
        parallel = await _baseline(sink_port, count, "--connections", str(connections))
        each = await _baseline(sink_port, min(count, ONE_BY_ONE), "--connection-each")
        site_id = (await stack.seed_site()).site_id
        await _seed_due_reminders(stack, site_id, count)
        notify = await stack.start_service("notify", _notify_env(sink_port))
        service_rate, service_cpu, failed = await _fall_due(stack, notify, count)
        await stack.stop(notify)
    finally:
        await _stop_sink(sink)
    outcome.figures += [
        Figure("baseline: aiosmtplib loop, one kept connection", one.rate, "msg/s"),
        Figure(f"baseline: {connections} such loops side by side", parallel.rate, "msg/s"),
        Figure("baseline: a connection per message", each.rate, "msg/s"),
        Figure(f"notify sender ({connections} connections)", service_rate, "msg/s"),
        Figure("notify / baseline (one kept connection)", ratio(service_rate, one.rate), "", RATIO_GOAL),
        Figure(f"notify / baseline ({connections} connections)", ratio(service_rate, parallel.rate), ""),
        Figure("CPU per message: baseline (one connection)", one.cpu_ms, "ms"),
        Figure("CPU per message: notify service", service_cpu, "ms"),
    ]
    if failed:
        outcome.notes.append(f"notify: {failed} of {count} messages did not end 'sent'")


class _Baseline:
    def __init__(self, result: dict[str, float]) -> None:
        self.rate = per_second(result["sent"], result["seconds"])
        self.cpu_ms = result["cpu_seconds"] * 1000 / result["sent"] if result["sent"] else None


async def _baseline(port: int, count: int, *flags: str) -> _Baseline:
    what = " ".join(flags) or "one kept connection"
    say(f"baseline ({what}): {count:,} messages through a bare aiosmtplib loop")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.baseline_notify",
        str(port),
        str(count),
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    line = next((line for line in text.splitlines() if line.startswith(RESULT_MARKER)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"bench.baseline_notify failed ({proc.returncode}):\n{text[-3000:]}")
    result = _Baseline(json.loads(line.removeprefix(RESULT_MARKER)))
    say(f"baseline ({what}): {result.rate or 0:,.0f}/s, CPU {result.cpu_ms or 0:.2f} ms per message")
    return result


def _notify_env(sink_port: int) -> dict[str, str]:
    return {
        "RCC_SMTP_URL": f"smtp://127.0.0.1:{sink_port}",
        "RCC_NOTIFY_FROM": SENDER,
        "RCC_NOTIFY_PUBLIC_URL": "http://127.0.0.1:8080/api/notify",
    }


async def _seed_contacts(
    stack: Stack, site_id: str, members: list[uuid.UUID], kinds: list[str]
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """A verified contact for each member: (member id, contact id)."""
    now = datetime.now(UTC)
    people = [(member_id, uuid.uuid4()) for member_id in members]
    await stack.db.copy_records_to_table(
        "contacts",
        schema_name="notify",
        columns=[
            "contact_id",
            "member_id",
            "site_id",
            "channel",
            "address",
            "locale",
            "kinds",
            "consent_at",
            "consent_by",
            "consent_source",
            "verified_at",
            "unsubscribe_hash",
        ],
        records=[
            (
                contact_id,
                member_id,
                site_id,
                "email",
                f"person-{n}-{contact_id.hex[:6]}@bench.example",
                "en" if n % 2 else "es",
                kinds,
                now,
                "bench",
                "bench",
                now,
                hash_secret(new_secret()),
            )
            for n, (member_id, contact_id) in enumerate(people)
        ],
    )
    await stack.db.execute("ANALYZE notify.contacts")
    return people


async def _seed_due_reminders(stack: Stack, site_id: str, count: int) -> None:
    """One pending shift reminder per contact (links as the sender needs them), due far ahead for now."""
    now = datetime.now(UTC)
    later = now + timedelta(days=365)
    starts = now + timedelta(days=400)
    people = await _seed_contacts(stack, site_id, [uuid.uuid4() for _ in range(count)], ["reminders"])
    records = []
    for member_id, contact_id in people:
        cause = uuid.uuid4()
        unsubscribe = new_secret()
        records.append(
            (
                uuid.uuid4(),
                event_message_id("shift_reminder", cause, contact_id, SENDER),
                contact_id,
                member_id,
                site_id,
                "shift_reminder",
                "reminders",
                cause,
                "pending",
                later,
                now,
                json.dumps({"unsubscribe": unsubscribe}),
                json.dumps({"starts_at": starts.isoformat(), "what": "shift"}),
                starts,
                hash_secret(unsubscribe),
            )
        )
    await stack.db.copy_records_to_table(
        "deliveries",
        schema_name="notify",
        columns=[
            "delivery_id",
            "message_id",
            "contact_id",
            "member_id",
            "site_id",
            "purpose",
            "kind",
            "cause_id",
            "status",
            "next_attempt_at",
            "created_at",
            "links",
            "template_values",
            "not_after",
            "unsubscribe_hash",
        ],
        records=records,
    )
    await stack.db.execute("ANALYZE notify.deliveries")
    say(f"seeded {count:,} verified contacts with a pending shift reminder each")


async def _fall_due(stack: Stack, notify: Process, count: int) -> tuple[float | None, float | None, int]:
    cpu_before = notify.cpu_seconds()
    # now() is the transaction's start, a moment before its commit makes the rows due: the rate is not flattered.
    due_at = await stack.db.fetchval(
        "WITH due AS (UPDATE notify.deliveries SET next_attempt_at = now() WHERE status = 'pending' RETURNING 1)"
        " SELECT now() FROM due LIMIT 1"
    )
    say(f"{count:,} messages due now; waiting for the notify service to send them")
    row = await stack.poll(
        "SELECT count(*) FILTER (WHERE status <> 'pending') AS done, count(*) FILTER (WHERE status = 'sent') AS sent,"
        " max(finished_at) AS last FROM notify.deliveries",
        lambda r: r["done"] >= count,
        timeout=max(120.0, count / 10),
        what="notify sending the due messages",
        interval=0.25,
    )
    cpu_after = notify.cpu_seconds()
    seconds = (row["last"] - due_at).total_seconds()
    rate = per_second(count, seconds)
    cpu_ms = (cpu_after - cpu_before) * 1000 / count if cpu_before is not None and cpu_after is not None else None
    say(f"notify: {row['sent']:,} of {count:,} sent in {seconds:.2f} s ({rate or 0:,.0f}/s)")
    say(f"notify: CPU {cpu_ms or 0:.2f} ms per message")
    return rate, cpu_ms, count - row["sent"]


# --- latency -------------------------------------------------------------------------------------------------


async def _latency(count: int, rate: float, stack: Stack, outcome: Outcome) -> None:
    await _latency_from_broker(count, rate, stack, outcome)
    await _latency_from_volunteering(count, rate, stack, outcome)


async def _latency_from_broker(count: int, rate: float, stack: Stack, outcome: Outcome) -> None:
    """Notify's part alone: promotions published into the broker at ``rate``; latency = the SMTP server's receipt
    − the publish."""
    site_id = (await stack.seed_site()).site_id
    members = [uuid.uuid4() for _ in range(count)]
    people = await _seed_contacts(stack, site_id, members, ["confirmations"])
    async with _timed_notify(stack) as (notify, arrivals):
        cpu_before = notify.cpu_seconds()
        published = await publish_promotions(stack.amqp, stack.settings, site_id, members, rate)
        await _sent(stack, site_id, "shift_promoted", count, "notify sending the promotions")
        cpu = _cpu_ms(cpu_before, notify.cpu_seconds(), count)
    arrived = dict(arrivals)
    latencies = [
        (arrived[mid] - at) * 1000
        for (event_id, at), (_, contact_id) in zip(published, people, strict=True)
        if (mid := event_message_id("shift_promoted", event_id, contact_id, SENDER)) in arrived
    ]
    _latency_figures(outcome, "published into the broker", rate, count, latencies, cpu)


async def _latency_from_volunteering(count: int, rate: float, stack: Stack, outcome: Outcome) -> None:
    """The whole way: one-seat shifts, each held by a volunteer with another waiting who has a verified address;
    the holders drop at ``rate`` (volunteering over HTTP) and each promotion goes through volunteering's outbox and
    relay, RabbitMQ, notify's consumer and sender to the SMTP server. Latency = the receipt − the promotion's
    outbox row (``created_at``, the drop transaction's start)."""
    site_id = (await stack.seed_site()).site_id
    coordinator = await _coordinator_token(stack, site_id)
    holders = [uuid.uuid4() for _ in range(count)]
    waiting = [uuid.uuid4() for _ in range(count)]
    await stack.db.executemany(
        "INSERT INTO volunteering.known_members (member_id, site_id, registered_at) VALUES ($1, $2, now())",
        [(m, site_id) for m in holders + waiting],
    )
    await _seed_contacts(stack, site_id, waiting, ["confirmations"])
    volunteering = await stack.start_service("volunteering")
    async with _timed_notify(stack) as (notify, arrivals):
        say(f"setting up {count:,} one-seat shifts, each held and with one volunteer waiting (not timed)")
        shifts = await one_seat_shifts(volunteering.url, coordinator, holders, waiting)
        await _sent(stack, site_id, "shift_waitlisted", count, "notify telling the waitlisted (not timed)")
        cpu_before = notify.cpu_seconds()
        await drop_at(volunteering.url, coordinator, shifts, holders, rate)
        await _sent(stack, site_id, "shift_promoted", count, "notify sending the promotions")
        cpu = _cpu_ms(cpu_before, notify.cpu_seconds(), count)
    # Where the time goes: the drop transaction's start, the relay's publish, notify's consumer transaction (its
    # start), the message queued (the consumer's clock), the SMTP server's receipt.
    stages = {
        str(row["event_id"]): [row[n].timestamp() for n in ("created_at", "published_at", "consumed_at", "queued_at")]
        for row in await stack.db.fetch(
            "SELECT o.event_id, o.created_at, o.published_at, i.processed_at AS consumed_at, d.created_at AS queued_at"
            " FROM volunteering.outbox AS o"
            " JOIN notify.inbox AS i ON i.event_id = o.event_id AND i.consumer = 'notify'"
            " JOIN notify.deliveries AS d ON d.cause_id = o.event_id AND d.channel = 'email'"
            " WHERE o.type = 'volunteering.promoted_from_waitlist' AND o.site_id = $1",
            site_id,
        )
    }
    latencies: list[float] = []
    steps: list[list[float]] = [[], [], [], []]
    for message_id, arrived in arrivals:
        if message_id.startswith("<shift_promoted.") and (moments := stages.get(message_id.split(".")[1])):
            latencies.append((arrived - moments[0]) * 1000)
            for step, (start, end) in enumerate(zip(moments, [*moments[1:], arrived], strict=True)):
                steps[step].append((end - start) * 1000)
    _latency_figures(outcome, "committed by volunteering", rate, count, latencies, cpu)
    for name, values in zip(
        ("commit → published (volunteering's relay)", "published → consumed", "consumed → queued", "queued → SMTP"),
        steps,
        strict=True,
    ):
        outcome.figures.append(Figure(f"  of which {name}, p99", percentiles(values)[1], "ms"))


@contextlib.asynccontextmanager
async def _timed_notify(stack: Stack) -> AsyncIterator[tuple[Process, list[tuple[str, float]]]]:
    """A notify process sending to a sink that notes each arrival; the arrivals (Message-ID, wall clock) are
    filled in when the block ends (the sink writes them as it stops)."""
    sink_port = free_port()
    times = stack.workdir / f"smtp-sink-times-{sink_port}.json"
    arrivals: list[tuple[str, float]] = []
    sink = await _start_sink(stack, sink_port, "--times", str(times))
    try:
        notify = await stack.start_service("notify", _notify_env(sink_port))
        yield notify, arrivals
        await stack.stop(notify)
    finally:
        await _stop_sink(sink)
    arrivals += [(message_id, at) for message_id, at in json.loads(times.read_text())]


def _cpu_ms(before: float | None, after: float | None, count: int) -> float | None:
    return (after - before) * 1000 / count if before is not None and after is not None else None


def _latency_figures(
    outcome: Outcome, start: str, rate: float, count: int, latencies: list[float], cpu_ms: float | None
) -> None:
    p50, p99 = percentiles(latencies)
    say(f"promotion {start} → SMTP: {len(latencies):,} of {count:,}; p50 {p50 or 0:.0f} ms, p99 {p99 or 0:.0f} ms")
    outcome.figures += [
        Figure(f"promotion {start} → SMTP accepted at {rate:g}/s, p50", p50, "ms"),
        Figure(f"promotion {start} → SMTP accepted at {rate:g}/s, p99", p99, "ms", LATENCY_GOAL),
        Figure(f"promotion {start} → SMTP accepted, max", max(latencies) if latencies else None, "ms"),
        Figure(f"CPU per promotion {start}: notify service", cpu_ms, "ms"),
    ]
    if len(latencies) < count:
        outcome.notes.append(f"notify latency ({start}): {count - len(latencies)} of {count} never arrived")


async def _sent(stack: Stack, site_id: str, purpose: str, count: int, what: str) -> None:
    await stack.poll(
        "SELECT count(*) AS sent FROM notify.deliveries WHERE site_id = $1 AND purpose = $2 AND channel = 'email'"
        " AND status = 'sent'",
        lambda r: r["sent"] >= count,
        timeout=max(180.0, count / 5),
        what=what,
        interval=0.25,
        args=(site_id, purpose),
    )


# --- the SMTP sink -------------------------------------------------------------------------------------------


async def _start_sink(stack: Stack, port: int, *flags: str) -> asyncio.subprocess.Process:
    log = stack.workdir / f"smtp-sink-{port}.log"
    with log.open("wb") as errors:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.smtp_sink",
            str(port),
            *flags,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
        )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if SINK_READY not in line.decode():
        raise RuntimeError(f"the SMTP sink did not start: {line!r} {_tail(log)}")
    say(f"SMTP sink (aiosmtpd) on 127.0.0.1:{port} (pid {proc.pid})")
    return proc


async def _stop_sink(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""
