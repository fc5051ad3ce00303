"""The notify benchmark's baseline, run as its own process: a bare aiosmtplib loop sending N messages to the same
SMTP server, one after another and one connection each, as the service's sender does; each message of about the
size of the service's (headers, a plain-text and an HTML part), written before the clock starts.

    python -m bench.baseline_notify PORT COUNT

Prints one line, ``BENCH_RESULT {"seconds": …, "sent": …}``."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

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


async def run(port: int, count: int) -> dict[str, float]:
    messages = [message(n) for n in range(count)]
    began = time.perf_counter()
    for mail in messages:
        await aiosmtplib.send(mail, hostname="127.0.0.1", port=port, timeout=10)
    return {"seconds": time.perf_counter() - began, "sent": len(messages)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    args = parser.parse_args()
    print(RESULT_MARKER + json.dumps(asyncio.run(run(args.port, args.count))), flush=True)


if __name__ == "__main__":
    main()
