"""Notification rules that need no I/O: addresses, secrets of links, quiet hours, message ids, retry backoff."""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import uuid
from datetime import datetime, time, timedelta
from typing import Literal, get_args

from shared.contracts.notify import Channel, Purpose
from shared.errors import Conflict, DomainError, InvalidInput, NotFound
from shared.members import MemberStanding

Kind = Literal["confirmations", "changes", "reminders", "approvals"]
Locale = Literal["en", "es"]
ALL_KINDS: tuple[Kind, ...] = get_args(Kind)
DeliveryStatus = Literal["pending", "sent", "failed"]

# Deliberately plain: one @, no spaces or control characters, a dot in the domain. The relay is the real judge; this
# keeps out typos and anything that could smuggle a header.
_EMAIL = re.compile(
    r"^[^@\s\x00-\x1f\x7f<>,;\"()\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


class LinkGone(DomainError):
    status, code, title = 410, "link_gone", "This link is no longer valid"


def normalize_address(channel: Channel, typed: str) -> str:
    if channel != "email":
        raise InvalidInput("Only e-mail contacts can be added for now.", code="channel_not_supported")
    address = typed.strip()
    if len(address) > 254 or not _EMAIL.fullmatch(address):
        raise InvalidInput("This is not an e-mail address we can send to.", code="bad_address")
    local, domain = address.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def require_member(standing: MemberStanding) -> None:
    """The same answer for a made-up id and for another site's member: which sites a member belongs to is not told."""
    if standing is None:
        raise InvalidInput("No member with this id is registered at this site.", code="unknown_member")
    if standing == "erased":
        raise InvalidInput("This member was erased at check-in.", code="member_erased")


def check_quiet_hours(start: time | None, end: time | None) -> None:
    if (start is None) != (end is None):
        raise InvalidInput("Quiet hours need both a start and an end.", code="bad_quiet_hours")
    if start is not None and start == end:
        raise InvalidInput("Quiet hours cannot start and end at the same time.", code="bad_quiet_hours")


def new_secret() -> str:
    """A link's secret: 256 bits, shown once in a message, stored only as its hash."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_verification(used_at: datetime | None, expires_at: datetime, now: datetime) -> None:
    if used_at is not None:
        raise LinkGone("This verification link was already used.", code="verification_used")
    if now >= expires_at:
        raise LinkGone(
            "This verification link has expired; add the address again for a new one.", code="verification_expired"
        )


def verification_unknown() -> NotFound:
    return NotFound("No such verification link.", code="verification_unknown")


def contact_not_found() -> NotFound:
    return NotFound("No such contact for this member.", code="contact_not_found")


def contact_exists() -> Conflict:
    return Conflict("This member already has this address.", code="contact_exists")


def message_id(purpose: Purpose, contact_id: uuid.UUID, sender: str) -> str:
    """Deterministic: a message sent again (a restart mid-send) has the same id, so mail clients show it once."""
    domain = sender.rsplit("@", 1)[-1].strip("<> ") or "localhost"
    return f"<{purpose}.{contact_id}@{domain}>"


def header_safe(value: str) -> str:
    """A value placed in a header (or anywhere near one) on one line: CR/LF would start a header of its own."""
    return _CONTROL.sub(" ", value).strip()


def retry_delay(attempts: int, base_s: float, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter in its upper half, so retries after an outage do not all land at once."""
    ceiling = base_s * 2 ** max(0, attempts - 1)
    jitter = (rng or random).uniform(0.5, 1.0)
    return timedelta(seconds=ceiling * jitter)
