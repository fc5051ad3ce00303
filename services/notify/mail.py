"""Writing a message (Jinja2 templates, English and Spanish) and handing it to the relay (SMTP, aiosmtplib).

Every value a template or header receives passes :func:`domain.header_safe` (no CR/LF: no header of its own); the
HTML templates autoescape (a ``<script>`` in a value is text). Subjects and first lines are neutral: they name the
site by its neutral name only, as a lock screen shows them to whoever looks."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import functools
import re
import secrets
import urllib.parse
import zoneinfo
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.notify import wording
from services.notify.domain import Locale, header_safe
from shared.contracts.notify import MessagePurpose

TEMPLATES = Path(__file__).parent / "templates"

# Templates are compiled once per (purpose, locale) and kept: the files do not change while the service runs, so
# they are not checked again for each message (auto_reload would stat the file on every render).
_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    auto_reload=False,
    cache_size=-1,
)

SUBJECTS: dict[tuple[MessagePurpose, Locale], str] = {
    ("verification", "en"): "Please confirm your email for {site}",
    ("verification", "es"): "Confirme su correo electrónico para {site}",
}


@dataclass(frozen=True, slots=True)
class Relay:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool

    @classmethod
    def parse(cls, url: str) -> Relay:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("RCC_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
        implicit = parts.scheme == "smtps"
        query = urllib.parse.parse_qs(parts.query)
        return cls(
            hostname=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            username=urllib.parse.unquote(parts.username) if parts.username else None,
            password=urllib.parse.unquote(parts.password) if parts.password else None,
            use_tls=implicit,
            start_tls=not implicit and query.get("starttls", ["0"])[0].lower() in ("1", "true", "yes"),
        )


@dataclass(frozen=True, slots=True)
class Letter:
    """What a message says and where it goes; the headers every message carries are added by :func:`compose`."""

    purpose: MessagePurpose
    locale: Locale
    to: str
    message_id: str
    unsubscribe_url: str
    # Links and names a verification needs (``verify_url``).
    values: dict[str, str]
    # What a message about something says (``deliveries.template_values``), on the site's clock.
    template_values: wording.Values = field(default_factory=dict)
    zone: zoneinfo.ZoneInfo = field(default_factory=lambda: zoneinfo.ZoneInfo("UTC"))
    page_url: str = ""
    # The site's full name: further down the body only, never in the subject or the first line.
    place: str | None = None


@dataclass(frozen=True, slots=True)
class Wire:
    """A message as it goes to the relay: its bytes (CRLF lines) and its envelope."""

    data: bytes
    mail_from: str
    rcpt_to: str


def write(letter: Letter, sender: str, site_name: str, at: datetime) -> Wire:
    """The message's bytes, written here rather than through ``email.message.EmailMessage``: its header registry
    parses and refolds every header it is given, which was most of the sender's CPU time per message. What is
    written is simple by construction (every value has passed :func:`header_safe`; the one header that may hold
    non-ASCII, the subject, is RFC 2047 encoded-words; two text parts, 7bit or 8bit, or base64 past 998 bytes a
    line) and is read back with the standard library's parser by :func:`compose` and the tests."""
    values = {key: header_safe(value) for key, value in {**letter.values, "site": site_name}.items()}
    values["unsubscribe_url"] = header_safe(letter.unsubscribe_url)
    name = f"{letter.purpose}.{letter.locale}"
    if letter.purpose == "verification":
        subject = SUBJECTS[(letter.purpose, letter.locale)].format(site=values["site"])
    else:
        said = wording.word(letter.purpose, letter.template_values, letter.locale, letter.zone, values["site"])
        subject = header_safe(said.subject)
        name = f"message.{letter.locale}"
        values |= {
            "headline": header_safe(said.headline),
            "when_long": header_safe(said.when_long or ""),
            "place": header_safe(letter.place or ""),
            "page_url": header_safe(letter.page_url),
            "kind_label": said.kind_label,
            "detail": header_safe(wording.detail(letter.purpose, letter.locale)),
        }
    text = _env.get_template(f"{name}.txt").render(**values)
    html = _env.get_template(f"{name}.html").render(**values)
    from_name, from_address = _sender(sender)
    to = header_safe(letter.to)
    if not (from_address.isascii() and to.isascii()):
        raise PermanentFailure("address not ascii")  # SMTPUTF8 is not offered
    boundary = f"=_{secrets.token_hex(16)}"
    while boundary in text or boundary in html:
        boundary = f"=_{secrets.token_hex(16)}"
    headers = (
        ("From", formataddr((from_name, from_address), charset="utf-8")),
        ("To", to),
        ("Subject", _encoded_words(subject)),
        ("Date", format_datetime(at)),
        ("Message-ID", header_safe(letter.message_id)),
        ("Auto-Submitted", "auto-generated"),
        # RFC 8058: a mail client offers "unsubscribe", and a POST to this URL (no login) does it.
        ("List-Unsubscribe", f"<{values['unsubscribe_url']}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    )
    head = "".join(f"{key}: {value}\r\n" for key, value in headers).encode("ascii")
    mark = f"--{boundary}\r\n".encode("ascii")
    end = f"--{boundary}--\r\n".encode("ascii")
    data = b"".join((head, b"\r\n", mark, _part("text/plain", text), mark, _part("text/html", html), end))
    return Wire(data, from_address, to)


@functools.lru_cache(maxsize=8)
def _sender(sender: str) -> tuple[str, str]:
    """(display name, address) of the configured sender: one value, parsed once."""
    return parseaddr(header_safe(sender))


def compose(letter: Letter, sender: str, site_name: str, at: datetime) -> EmailMessage:
    """The message :func:`write` writes, as the standard library reads it (for whoever wants to look at it)."""
    parsed = email.message_from_bytes(write(letter, sender, site_name, at).data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# An encoded-word is at most 75 characters (RFC 2047): "=?utf-8?b?" + base64 of 45 bytes (60) + "?=" is 72.
_WORD_BYTES = 45
_LINES = re.compile(r"\r\n|\r|\n")


def _encoded_words(value: str) -> str:
    """A header value as it is if ASCII, else UTF-8 'B' encoded-words, each of whole characters, on folded lines
    (the folding between two encoded-words reads back as nothing)."""
    if value.isascii():
        return value
    words: list[str] = []
    chunk = ""
    for char in value:
        if chunk and len((chunk + char).encode()) > _WORD_BYTES:
            words.append(chunk)
            chunk = ""
        chunk += char
    words.append(chunk)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(word.encode()).decode('ascii')}?=" for word in words)


def _part(content_type: str, body: str) -> bytes:
    lines = [line.encode() for line in _LINES.split(body.removesuffix("\n"))]
    if max(map(len, lines), default=0) > 998:
        encoding, data = "base64", base64.encodebytes(b"\r\n".join(lines)).replace(b"\n", b"\r\n")
    else:
        data = b"\r\n".join(lines) + b"\r\n"
        encoding = "7bit" if data.isascii() else "8bit"
    head = f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n'
    return head.encode("ascii") + data


class TemporaryFailure(Exception):
    """The relay could not take the message now (4xx, refused connection, timeout): try again later."""


class PermanentFailure(Exception):
    """The relay refused the message for good (5xx)."""


class Interrupted(Exception):
    """The connection failed while the relay had the message's DATA (reset, timeout): whether it took the message is
    unknown, so it is not tried again."""


def _refused(code: int) -> TemporaryFailure | PermanentFailure:
    # The reply code only, never the relay's words (they may quote the address).
    if 400 <= code < 500 or code < 0:
        return TemporaryFailure(f"smtp {code}")
    return PermanentFailure(f"smtp {code}")


_BROKEN = (aiosmtplib.SMTPException, OSError, TimeoutError)


class Postman:
    """One SMTP connection to the relay, kept open from message to message and round to round (a connection and
    its greeting cost more than the message), opened again when it fails.

    :meth:`hand_over` is the at-most-once step: MAIL and RCPT go while ``handed`` records, committed, that the
    message's DATA is about to go; DATA goes only once that is durable. A sender killed after that leaves the mark,
    and a marked message is never sent again (see :mod:`services.notify.sender`)."""

    def __init__(self, relay: Relay, timeout_s: float) -> None:
        self.relay = relay
        self.timeout_s = timeout_s
        self._client: aiosmtplib.SMTP | None = None

    async def hand_over(self, wire: bytes, sender: str, recipient: str, handed: Callable[[], Awaitable[bool]]) -> bool:
        """True: the relay took the message. False: ``handed`` said the message is no longer this sender's (its
        lease was taken over), so nothing was sent. Raises :class:`TemporaryFailure` or :class:`PermanentFailure`
        when the relay did not take it, :class:`Interrupted` when that is unknown."""
        marking = asyncio.ensure_future(handed())
        try:
            client = await self._envelope(sender, recipient, eight_bit=not wire.isascii())
        except BaseException:
            # Not handed: the mark (if it was written) is cleared with the outcome the caller records.
            await asyncio.gather(marking, return_exceptions=True)
            raise
        try:
            mine = await marking
        except BaseException:
            await self._reset(client)
            raise
        if not mine:
            await self._reset(client)
            return False
        try:
            await client.data(wire, timeout=self.timeout_s)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code < 0:
                self._drop()
                raise Interrupted(type(exc).__name__) from None
            if exc.code == 421:
                self._drop()
            raise _refused(exc.code) from None  # the relay answered: it did not take the message
        except _BROKEN as exc:
            self._drop()
            raise Interrupted(type(exc).__name__) from None
        return True

    async def _envelope(self, sender: str, recipient: str, *, eight_bit: bool) -> aiosmtplib.SMTP:
        """MAIL and RCPT on a connection that works: a kept connection the relay closed meanwhile is opened again
        once, at once (that is not the message's failure). An 8-bit body is declared where the relay offers it
        (RFC 6152)."""
        for attempt in (1, 2):
            client, fresh = await self._connected()
            options = ["BODY=8BITMIME"] if eight_bit and client.supports_extension("8bitmime") else []
            try:
                await client.mail(sender, options=options, timeout=self.timeout_s)
                await client.rcpt(recipient, timeout=self.timeout_s)
                return client
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code == 421 or exc.code < 0:
                    self._drop()
                else:
                    await self._reset(client)
                raise _refused(exc.code) from None
            except _BROKEN as exc:
                self._drop()
                if fresh or attempt == 2:
                    raise TemporaryFailure(type(exc).__name__) from None
        raise AssertionError("unreachable")

    async def _connected(self) -> tuple[aiosmtplib.SMTP, bool]:
        if self._client is not None and self._client.is_connected:
            return self._client, False
        relay = self.relay
        client = aiosmtplib.SMTP(
            hostname=relay.hostname,
            port=relay.port,
            username=relay.username,
            password=relay.password,
            use_tls=relay.use_tls,
            start_tls=relay.start_tls,
            timeout=self.timeout_s,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPResponseException as exc:
            # A greeting or login refused is the relay's state, not this message's: tried again, never a bounce.
            client.close()
            raise TemporaryFailure(f"smtp {exc.code}") from None
        except _BROKEN as exc:
            client.close()
            raise TemporaryFailure(type(exc).__name__) from None
        self._client = client
        return client, True

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.rset(timeout=self.timeout_s)
        except _BROKEN:
            self._drop()

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit(timeout=self.timeout_s)
            except _BROKEN:
                client.close()
