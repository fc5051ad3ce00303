"""The event catalogue: one versioned payload class per event type, each owned by the service that publishes it.

A breaking change is a new class with ``version`` bumped (and a new type name ending in ``.v2``), never an edit:
consumers of the old type keep working while they move over.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

Classification = Literal["internal", "sensitive"]
# SAMHSA's four types of social support: a reporting dimension of every visit, group and event (DOMAIN.md).
SupportType = Literal["emotional", "informational", "instrumental", "affiliational"]


class EventData(BaseModel):
    """Payload of one event type. Ids, codes and times only: never names, phone numbers or notes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: ClassVar[str]
    version: ClassVar[int] = 1
    # "sensitive": reveals that a person used a recovery service (42 CFR Part 2 spirit); "internal": operational.
    classification: ClassVar[Classification] = "sensitive"
    summary: ClassVar[str] = ""

    @classmethod
    def dataschema(cls) -> str:
        """The CloudEvents ``dataschema``: an absolute URI (CloudEvents 1.0 requires one; RFC 3986 §4.3) that names
        this payload schema and version. A name, not a place: a URN stays the same whichever host serves the
        documents, or none (a center may be offline), so consumers can key on it forever. The schema it names is
        ``components/schemas/<event type>`` of docs/asyncapi.json. ``rcc`` is this system's private namespace."""
        return f"{DATASCHEMA_PREFIX}{cls.event_type}:v{cls.version}"


DATASCHEMA_PREFIX = "urn:rcc:schema:"

CATALOGUE: dict[str, type[EventData]] = {}


def register(cls: type[EventData]) -> type[EventData]:
    if cls.event_type in CATALOGUE:
        raise ValueError(f"event type {cls.event_type} registered twice")
    CATALOGUE[cls.event_type] = cls
    return cls


def load_catalogue() -> dict[str, type[EventData]]:
    """Import every contract module so the catalogue is complete (for AsyncAPI and consumers)."""
    from shared.contracts import audit, checkin, gatherings, notify, volunteering  # noqa: F401

    return CATALOGUE
