"""6. Notify: many messages falling due at once, sent by the notify service to a local SMTP server.

``--messages`` (5,000) verified e-mail contacts each get one pending message in ``notify.deliveries``, written
straight into the tables (COPY) with a due time far ahead; the notify service starts (``RCC_SMTP_URL`` pointing at
bench/smtp_sink.py, aiosmtpd in a process of its own), then one UPDATE makes them all due at once. Rate = N / (that
moment → the last ``finished_at``), both on the database's clock; every message must end ``sent``.

Baseline: bench/baseline_notify.py, a bare aiosmtplib loop sending N messages of the same size to the same server,
one after another with a connection each (as the service's sender does), in the same run before the service starts.

Until reminders are scheduled from events, the due messages are rows of the delivery log itself (verification
messages, the one template there is so far): what the sender
leases (``FOR UPDATE SKIP LOCKED``), writes (Jinja2, both parts, the RFC 8058 headers), sends and records (status,
``notification.sent`` through the outbox) is the same whatever made the row."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import Figure, Goal, Outcome, Process, Stack, benchmark, free_port, per_second, ratio, say
from services.notify.domain import hash_secret, message_id, new_secret

RATIO_GOAL = Goal(">=", 0.5)
RESULT_MARKER = "BENCH_RESULT "
SINK_READY = "SMTP_SINK_READY"
SENDER = "no-reply@bench.example"


def add_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--messages", type=int, default=5000, help="messages falling due at once (5000)")


@benchmark(
    "notify", "messages falling due at once, sent to a local SMTP server", options=add_options, parameters=("messages",)
)
async def run(options: argparse.Namespace, stack: Stack) -> Outcome:
    count: int = options.messages
    outcome = Outcome()
    sink_port = free_port()
    sink = await _start_sink(stack, sink_port)
    try:
        baseline_rate = await _baseline(stack, sink_port, count)
        site = await stack.seed_site()
        await _seed_due_messages(stack, site.site_id, count)
        notify = await stack.start_service(
            "notify",
            {
                "RCC_SMTP_URL": f"smtp://127.0.0.1:{sink_port}",
                "RCC_NOTIFY_FROM": SENDER,
                "RCC_NOTIFY_PUBLIC_URL": "http://127.0.0.1:8080/api/notify",
            },
        )
        service_rate, failed = await _fall_due(stack, notify, count)
    finally:
        await _stop_sink(sink)
    outcome.figures += [
        Figure("baseline aiosmtplib loop", baseline_rate, "msg/s"),
        Figure("notify sender", service_rate, "msg/s"),
        Figure("notify / baseline", ratio(service_rate, baseline_rate), "", RATIO_GOAL),
    ]
    if failed:
        outcome.notes.append(f"notify: {failed} of {count} messages did not end 'sent'")
    return outcome


async def _start_sink(stack: Stack, port: int) -> asyncio.subprocess.Process:
    log = stack.workdir / "smtp-sink.log"
    with log.open("wb") as errors:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.smtp_sink", str(port), stdout=asyncio.subprocess.PIPE, stderr=errors
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


async def _baseline(stack: Stack, port: int, count: int) -> float | None:
    say(f"baseline: {count:,} messages through a bare aiosmtplib loop")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.baseline_notify",
        str(port),
        str(count),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    line = next((line for line in text.splitlines() if line.startswith(RESULT_MARKER)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"bench.baseline_notify failed ({proc.returncode}):\n{text[-3000:]}")
    result = json.loads(line.removeprefix(RESULT_MARKER))
    rate = per_second(result["sent"], result["seconds"])
    say(f"baseline: {result['sent']:,} sent in {result['seconds']:.2f} s ({rate or 0:,.0f}/s)")
    return rate


async def _seed_due_messages(stack: Stack, site_id: str, count: int) -> None:
    """Verified contacts, one pending message each (links as the sender needs them), due far ahead for now."""
    now = datetime.now(UTC)
    later = now + timedelta(days=365)
    contacts, deliveries = [], []
    for n in range(count):
        member_id, contact_id = uuid.uuid4(), uuid.uuid4()
        unsubscribe = new_secret()
        contacts.append(
            (
                contact_id,
                member_id,
                site_id,
                "email",
                f"person-{n}@bench.example",
                "en" if n % 2 else "es",
                ["confirmations", "changes", "reminders", "approvals"],
                now,
                "bench",
                "bench",
                now,
                hash_secret(unsubscribe),
            )
        )
        deliveries.append(
            (
                uuid.uuid4(),
                message_id("verification", contact_id, SENDER),
                contact_id,
                member_id,
                site_id,
                "verification",
                "pending",
                later,
                now,
                json.dumps({"verify": new_secret(), "unsubscribe": unsubscribe}),
            )
        )
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
        records=contacts,
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
            "status",
            "next_attempt_at",
            "created_at",
            "links",
        ],
        records=deliveries,
    )
    await stack.db.execute("ANALYZE notify.contacts; ANALYZE notify.deliveries")
    say(f"seeded {count:,} verified contacts with a pending message each")


async def _fall_due(stack: Stack, notify: Process, count: int) -> tuple[float | None, int]:
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
    seconds = (row["last"] - due_at).total_seconds()
    rate = per_second(count, seconds)
    say(f"notify: {row['sent']:,} of {count:,} sent in {seconds:.2f} s ({rate or 0:,.0f}/s)")
    return rate, count - row["sent"]
