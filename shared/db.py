"""Database plumbing: one schema per service, the engine's lifecycle, and the tables every service has
(``outbox``, ``inbox``, ``idempotency_keys``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    metadata = MetaData(schema=schema, naming_convention=NAMING_CONVENTION)
    _add_messaging_tables(metadata)
    return metadata


def _add_messaging_tables(metadata: MetaData) -> None:
    # sequence doubles as the CloudEvents "sequence" extension: per source, monotonic.
    Table(
        "outbox",
        metadata,
        Column("sequence", BigInteger, Identity(always=True), primary_key=True),
        Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("type", Text, nullable=False),
        Column("subject", Text, nullable=False),
        Column("site_id", Text, nullable=False),
        Column("actor_id", Text),
        Column("correlation_id", Text),
        Column("time", DateTime(timezone=True), nullable=False),
        Column("data", JSONB, nullable=False),
        Column("dataschema", Text, nullable=False),
        Column("classification", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        # A row the broker did not confirm waits (with growing backoff) while the rows behind it go on.
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("next_attempt_at", DateTime(timezone=True)),
        Index("ix_outbox_unpublished", "sequence", postgresql_where=text("published_at IS NULL")),
    )
    Table(
        "inbox",
        metadata,
        Column("consumer", Text, nullable=False),
        Column("event_id", UUID(as_uuid=True), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id"),
    )
    Table(
        "idempotency_keys",
        metadata,
        Column("scope", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("fingerprint", Text, nullable=False),
        Column("status", Integer),
        Column("response", JSONB),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("scope", "key"),
    )


def notify_channel(schema: str) -> str:
    return f"{schema}_outbox"


def create_engine(settings: Settings, *, service: str, role: str | None = None) -> AsyncEngine:
    server_settings = {
        "application_name": f"rcc-{service}",
        "statement_timeout": str(settings.db_statement_timeout_ms),
    }
    if role:
        # The service runs with a narrower role than the one that connects (e.g. audit: INSERT/SELECT only).
        server_settings["role"] = role
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        # No overflow: under sustained load an overflow connection is opened for one request and closed when it is
        # returned to a full pool, so such requests paid a backend start and the dialect's type setup (it showed in
        # the check-in benchmark's profile). Bursts wait for a pooled connection instead (``db_pool_timeout_s``).
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_s,
        connect_args={
            "server_settings": server_settings,
            "timeout": settings.db_connect_timeout_s,
            # The client's own limit, for when the server cannot even say "statement timeout" (a network partition,
            # a hung host): without it a request on a pooled connection that went silent waits forever.
            "command_timeout": settings.db_statement_timeout_ms / 1000 + settings.db_connect_timeout_s,
        },
    )


def make_connector(engine: AsyncEngine) -> Callable[[], AsyncConnection]:
    """What a unit of work opens: a Core connection. Repositories speak Core (statements counted on hot paths), so
    the ORM Session's identity map and unit-of-work machinery would only cost time on every request."""
    return engine.connect


def asyncpg_dsn(database_url: str) -> str:
    """The same URL for asyncpg itself (LISTEN needs a dedicated raw connection)."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


# Not functools.cache: mypy takes a class for unhashable there (its __hash__ is the instances').
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def field_names(record_type: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(record_type)
    if names is None:
        names = _FIELD_NAMES[record_type] = tuple(f.name for f in dataclasses.fields(record_type))
    return names


def column_values(record: object) -> dict[str, Any]:
    """A dataclass record as the column values to write. Shallow, unlike ``dataclasses.asdict``, which deep-copies
    every value: on the audit ingest that copying (of every UUID and datetime) cost more CPU than the rest of the
    append together."""
    return {name: getattr(record, name) for name in field_names(type(record))}
