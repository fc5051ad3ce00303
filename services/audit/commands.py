"""Commands, query parameters and results of the audit service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.events import ReceivedEvent


@dataclass(frozen=True, slots=True)
class AppendToAuditLog:
    events: list[ReceivedEvent]


class AppendResult(BaseModel):
    appended: int
    duplicates: int
    head_sequence: int


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, max_length=200)
    site: str | None = Field(default=None, max_length=40)
    subject: str | None = Field(default=None, max_length=200)
    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None
    after: int | None = Field(default=None, ge=0, description="Cursor: the last sequence of the previous page")
    limit: int = Field(default=100, ge=1, le=500)


class AuditEntryOut(BaseModel):
    sequence: int
    event_id: uuid.UUID
    type: str
    source: str
    site_id: str
    subject: str | None
    time: datetime
    recorded_at: datetime
    event: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_after: int | None


class VerifyResult(BaseModel):
    ok: bool
    entries: int
    head_hash: str
    first_bad_sequence: int | None
