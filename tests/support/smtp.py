"""A real SMTP server (aiosmtpd) on a free local port that keeps what it receives: the tests read the protocol's
result, never a mock of the client."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Inbox:
    host: str
    port: int
    messages: list[Received] = field(default_factory=list)
    # The replies the server gives, in turn, to RCPT TO of an address (then it accepts): "451 ..." or "550 ...".
    refusals: dict[str, list[str]] = field(default_factory=dict)
    # How long the server takes over each message's DATA before it answers: a slower relay, so that a sender
    # killed mid-batch is killed while messages are on the wire.
    delay_s: float = 0.0
    controller: Controller | None = None

    def start(self) -> None:
        """Listen (again, after :meth:`stop`) on the same port: a relay that was down and is back."""
        if self.controller is None:
            self.controller = Controller(_Collect(self), hostname=self.host, port=self.port)
            self.controller.start()

    def stop(self) -> None:
        """The relay is down: connections to its port are refused."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.messages) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(self.messages)} messages arrived, not {count}")
            await asyncio.sleep(0.05)
        return self.messages


class _Collect:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if self.inbox.refusals.get(address):
            return self.inbox.refusals[address].pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.inbox.delay_s:
            await asyncio.sleep(self.inbox.delay_s)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.inbox.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_server(*, delay_s: float = 0.0) -> Iterator[Inbox]:
    inbox = Inbox("127.0.0.1", free_port(), delay_s=delay_s)
    inbox.start()
    try:
        yield inbox
    finally:
        inbox.stop()
