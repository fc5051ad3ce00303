"""The notify benchmark's baseline, run as its own process: a bare aiosmtplib loop sending N messages to the same
SMTP server, each of about the size of the service's (headers, a plain-text and an HTML part), written before the
clock starts.

    python -m bench.baseline_notify PORT COUNT [--connections C] [--connection-each]

By default one loop over one kept connection (MAIL, RCPT, DATA per message: the least a sender can do). With
``--connections C``, C such loops side by side, each on its own connection, sharing the N messages (as the
service's sender spreads a round over ``RCC_SEND_CONNECTIONS``). ``--connection-each`` opens a connection per
message instead (``aiosmtplib.send``), as the service's sender did before #16 was finished.

Prints one line, ``BENCH_RESULT {"seconds": …, "sent": …, "cpu_seconds": …}``."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from shared import eventloop

RESULT_MARKER = "BENCH_RESULT "
TEXT = (
    "Your volunteer shift at your center starts in 24 hours.\n\n"
    + "A line of the message body, as a reminder has a few of them. " * 6
    + "\n\nTo stop these messages: http://127.0.0.1:8080/api/notify/contacts/unsubscribe?key="
    + "k" * 43
    + "\n"
)


def message(n: int) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "no-reply@bench.example"
    mail["To"] = f"person-{n}@bench.example"
    mail["Subject"] = "Reminder: your volunteer shift at your center, Sat 9:00"
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = f"<reminders.{uuid.uuid4()}@bench.example>"
    mail["List-Unsubscribe"] = "<http://127.0.0.1:8080/api/notify/contacts/unsubscribe?key=" + "k" * 43 + ">"
    mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail.set_content(TEXT)
    mail.add_alternative(f"<!doctype html><html><body><p>{TEXT}</p></body></html>", subtype="html")
    return mail


async def _loop(port: int, messages: deque[EmailMessage]) -> int:
    sent = 0
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10, start_tls=False) as smtp:
        while messages:
            await smtp.send_message(messages.popleft())
            sent += 1
    return sent


async def run(port: int, count: int, connections: int, connection_each: bool) -> dict[str, float]:
    messages = deque(message(n) for n in range(count))
    began, cpu = time.perf_counter(), time.process_time()
    if connection_each:
        for mail in messages:
            await aiosmtplib.send(mail, hostname="127.0.0.1", port=port, timeout=10, start_tls=False)
        sent = count
    else:
        sent = sum(await asyncio.gather(*(_loop(port, messages) for _ in range(connections))))
    return {"seconds": time.perf_counter() - began, "sent": sent, "cpu_seconds": time.process_time() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--connection-each", action="store_true")
    args = parser.parse_args()
    result = eventloop.run(run(args.port, args.count, args.connections, args.connection_each))
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
