"""Writing a message (Jinja2 templates, English and Spanish) and handing it to the relay (SMTP, aiosmtplib).

Every value a template or header receives passes :func:`domain.header_safe` (no CR/LF: no header of its own); the
HTML templates autoescape (a ``<script>`` in a value is text). Subjects and first lines are neutral: they name the
site by its neutral name only, as a lock screen shows them to whoever looks."""

from __future__ import annotations

import urllib.parse
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from pathlib import Path

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.notify import wording
from services.notify.domain import Locale, header_safe
from shared.contracts.notify import MessagePurpose

TEMPLATES = Path(__file__).parent / "templates"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
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


def compose(letter: Letter, sender: str, site_name: str, at: datetime) -> EmailMessage:
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
    message = EmailMessage()
    message["From"] = header_safe(sender)
    message["To"] = header_safe(letter.to)
    message["Subject"] = subject
    message["Date"] = format_datetime(at)
    message["Message-ID"] = letter.message_id
    message["Auto-Submitted"] = "auto-generated"
    # RFC 8058: a mail client offers "unsubscribe", and a POST to this URL (no login) does it.
    message["List-Unsubscribe"] = f"<{values['unsubscribe_url']}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(_env.get_template(f"{name}.txt").render(**values))
    message.add_alternative(_env.get_template(f"{name}.html").render(**values), subtype="html")
    return message


_WIRE = SMTP.clone(max_line_length=998)


class TemporaryFailure(Exception):
    """The relay could not take the message now (4xx, refused connection, timeout): try again later."""


class PermanentFailure(Exception):
    """The relay refused the message for good (5xx)."""


async def send(message: EmailMessage, relay: Relay, timeout_s: float) -> None:
    """Raises :class:`TemporaryFailure` or :class:`PermanentFailure` whose text is the reply code or the error's
    class (never the relay's words, which may quote the address)."""
    # Flattened here rather than by aiosmtplib (78-character lines): CPython folds a long subject with a non-ASCII
    # word so that it reads back with a doubled space; a line of up to 998 characters (RFC 5322) needs no folding.
    flat = message.as_bytes(policy=_WIRE)
    try:
        await aiosmtplib.send(
            flat,
            sender=parseaddr(str(message["From"]))[1],
            recipients=[parseaddr(str(message["To"]))[1]],
            hostname=relay.hostname,
            port=relay.port,
            username=relay.username,
            password=relay.password,
            use_tls=relay.use_tls,
            start_tls=relay.start_tls,
            timeout=timeout_s,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [refusal.code for refusal in exc.recipients]
        if all(400 <= code < 500 for code in codes):
            raise TemporaryFailure(f"smtp {codes[0]}") from None
        raise PermanentFailure(f"smtp {codes[0] if codes else 'refused'}") from None
    except aiosmtplib.SMTPResponseException as exc:
        if 400 <= exc.code < 500 or exc.code < 0:
            raise TemporaryFailure(f"smtp {exc.code}") from None
        raise PermanentFailure(f"smtp {exc.code}") from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise TemporaryFailure(type(exc).__name__) from None
