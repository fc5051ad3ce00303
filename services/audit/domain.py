"""The hash chain: each entry's hash is SHA-256 over the previous entry's hash and the event's canonical JSON."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.events import canonical_json

GENESIS_HASH = "0" * 64


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical).hexdigest()


def canonicalize(attributes: dict[str, Any]) -> bytes:
    return canonical_json(attributes)


@dataclass(frozen=True, slots=True)
class ChainLink:
    sequence: int
    prev_hash: str
    hash: str
    body: str
    type: str
    site_id: str
    event_id: str


@dataclass(slots=True)
class ChainCheck:
    """Walks entries in sequence order; remembers the first one that does not hold."""

    entries: int = 0
    head_hash: str = GENESIS_HASH
    first_bad_sequence: int | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_sequence is None

    def feed(self, links: Iterable[ChainLink]) -> None:
        for link in links:
            self.entries += 1
            if self.first_bad_sequence is None and not self._holds(link):
                self.first_bad_sequence = link.sequence
            self.head_hash = link.hash

    def _holds(self, link: ChainLink) -> bool:
        if link.sequence != self.entries or link.prev_hash != self.head_hash:
            return False
        if chain_hash(link.prev_hash, link.body.encode()) != link.hash:
            return False
        # The columns we filter on must say what the hashed body says.
        try:
            event = json.loads(link.body)
        except json.JSONDecodeError:
            return False
        return (
            event.get("type") == link.type
            and event.get("siteid") == link.site_id
            and event.get("id") == link.event_id
            and canonical_json(event).decode() == link.body
        )
