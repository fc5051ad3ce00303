"""The outbox relay: publishes committed outbox rows to ``rcc.events`` in sequence order and marks a row
published only after the broker confirmed it (publisher confirms, ``mandatory=True``, a timeout on every publish).

Order is best effort: a row the broker did not confirm (unroutable, refused, timed out) steps aside with a growing
backoff so the rows behind it go on; the CloudEvents ``sequence`` extension carries the true order. One relay at a time
publishes a service's outbox (an advisory lock per schema), and published rows are pruned after
``PUBLISHED_RETENTION``.

It wakes on ``LISTEN/NOTIFY`` (a trigger on the outbox notifies at commit) and also polls, because a
notification is only a wake-up: one missed while the listener reconnects must not strand a row."""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import asyncpg
from aiormq import spec
from pamqp.commands import Basic
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import asyncpg_dsn, notify_channel
from shared.events import CONTENT_TYPE, canonical_json, envelope, read_json
from shared.logging import get_logger
from shared.messaging import Broker, cancel_requested
from shared.metrics import EVENTS_PUBLISHED, OUTBOX_BACKLOG, PUBLISH_FAILURES
from shared.settings import Settings
from shared.uow import checkout

PUBLISHED_RETENTION = "7 days"
MAX_BACKOFF_S = 60.0
# After a pass that published, the next waits this long even if woken sooner: under a steady stream of commits each
# pass would otherwise take the few rows of one wake-up, and a pass (its transaction, commit and confirms, and the
# broker's own writes) costs about as much as the publishes of several rows. A first row after a quiet spell goes
# at once.
LINGER_S = 0.02


def cloudevent_from_row(row: Any, source: str) -> dict[str, Any]:
    return envelope(
        event_id=row.event_id,
        source=source,
        type_=row.type,
        time=row.time,
        subject=row.subject,
        site_id=row.site_id,
        data=row.data,
        dataschema=row.dataschema,
        classification=row.classification,
        sequence=row.sequence,
        actor_id=row.actor_id,
        correlation_id=row.correlation_id,
    )


def amqp_message(ce: dict[str, Any]) -> aio_pika.Message:
    return aio_pika.Message(
        canonical_json(ce),
        content_type=CONTENT_TYPE,
        message_id=ce["id"],
        type=ce["type"],
        app_id=ce["source"],
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def amqp_properties(ce: dict[str, Any]) -> spec.Basic.Properties:
    """``amqp_message(ce).properties`` (the same frame), without building the aio-pika message around them: the
    relay publishes on the channel's aiormq underlay, which takes the properties alone."""
    return spec.Basic.Properties(
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={},
        message_id=ce["id"],
        message_type=ce["type"],
        priority=0,
        app_id=ce["source"],
    )


class OutboxRecord(asyncpg.Record):
    """A row the relay read, with its columns as attributes (what ``cloudevent_from_row`` reads). ``data`` is
    selected as text and read by ``read_json`` (orjson), for a fraction of the json.loads the jsonb codec runs."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def data(self) -> Any:
        return read_json(self["data"].encode())


class OutboxRelay:
    def __init__(self, *, service: str, engine: AsyncEngine, outbox: Table, broker: Broker, settings: Settings) -> None:
        self.service = service
        self.source = f"/rcc/{service}"
        self.engine = engine
        self.outbox = outbox
        self.broker = broker
        self.settings = settings
        self.wakeup = asyncio.Event()
        self.log = get_logger(component="outbox_relay", service=service)
        # Two processes of one service must not interleave their publishes: one relay at a time per schema.
        self._lock_key = zlib.crc32(f"rcc-outbox-{outbox.schema}".encode())
        self._table = f'"{outbox.schema}".{outbox.name}' if outbox.schema else outbox.name
        # data as text: read_json (orjson) reads it for a fraction of json.loads' CPU.
        columns = ", ".join("data::text AS data" if c.name == "data" else c.name for c in outbox.columns)
        self._select_sql = (
            f"SELECT {columns} FROM {self._table} WHERE published_at IS NULL"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= now()) ORDER BY sequence LIMIT $1"
        )
        self._published_sql = f"UPDATE {self._table} SET published_at = now() WHERE sequence = ANY($1::bigint[])"
        self._backoff_sql = (
            f"UPDATE {self._table} SET attempts = attempts + 1, next_attempt_at = now()"
            " + make_interval(secs => least($2::float8, 0.5 * power(2, attempts)))"
            " WHERE sequence = ANY($1::bigint[])"
        )

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name=f"{self.service}-outbox-listen")
        passes = 0
        try:
            while True:
                self.wakeup.clear()
                try:
                    published, full, _ = await self.publish_pending()
                except Exception as exc:  # database or broker down: rows wait, we retry
                    if cancel_requested():  # stopping mid-pass; the error is only how the cancellation surfaced
                        raise asyncio.CancelledError() from exc
                    self.log.warning("relay_pass_failed", error=type(exc).__name__, detail=str(exc)[:200])
                    published, full = 0, False
                passes += 1
                if passes % 3600 == 0:
                    await self._prune()
                if full:
                    continue
                if published:
                    await asyncio.sleep(LINGER_S)
                # asyncio.timeout, not wait_for: wait_for (Python 3.11) loses a cancellation that coincides with a
                # wake-up, and the relay would then never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.relay_poll_interval_s):
                        await self.wakeup.wait()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def publish_pending(self) -> tuple[int, bool, bool]:
        """One pass: publish up to a batch of waiting rows. Returns (published, batch_was_full, some_failed)."""
        if not self.broker.is_ready or self.broker.channel is None:
            return 0, False, False
        channel = await self.broker.channel.get_underlay_channel()
        batch = self.settings.relay_batch_size
        # The pass speaks to asyncpg directly (statements prepared once, an array for the marked rows rather than an
        # IN list of each batch's length): it runs for every few events, and SQLAlchemy's statement machinery cost
        # more CPU than the statements.
        async with self._transaction() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_key):
                return 0, False, False
            rows = await conn.fetch(self._select_sql, batch, record_class=OutboxRecord)
            OUTBOX_BACKLOG.labels(self.service).set(len(rows))
            if not rows:
                return 0, False, False
            # Publishes are pipelined on one channel (frames leave in order) without waiting for each frame to be
            # written (wait=False: the relay may share its event loop with HTTP requests); the confirms are awaited
            # together, each publish with its own timeout.
            results = await asyncio.gather(
                *(
                    channel.basic_publish(
                        canonical_json(ce),
                        exchange=self.settings.exchange_name,
                        routing_key=row.type,
                        properties=amqp_properties(ce),
                        mandatory=True,
                        timeout=self.settings.publish_timeout_s,
                        wait=False,  # type: ignore[call-arg]  # aiormq's abstract channel lacks its Channel's wait=
                    )
                    for row in rows
                    for ce in [cloudevent_from_row(row, self.source)]
                ),
                return_exceptions=True,
            )
            confirmed = [row.sequence for row, result in zip(rows, results, strict=True) if _confirmed(result)]
            unconfirmed = [row.sequence for row, result in zip(rows, results, strict=True) if not _confirmed(result)]
            failed = len(unconfirmed)
            if failed:
                PUBLISH_FAILURES.labels(self.service).inc(failed)
                first = next(r for r in results if not _confirmed(r))
                self.log.warning("publish_not_confirmed", failed=failed, first_result=_describe(first))
                # Unroutable or refused rows step aside (0.5 s, 1 s, 2 s, ... up to a minute) so they cannot
                # hold back the rows behind them; order is best effort, the sequence extension tells the truth.
                await conn.execute(self._backoff_sql, unconfirmed, MAX_BACKOFF_S)
            if confirmed:
                await conn.execute(self._published_sql, confirmed)
                EVENTS_PUBLISHED.labels(self.service).inc(len(confirmed))
        return len(confirmed), len(rows) == batch, failed > 0

    async def _listen(self) -> None:
        channel = notify_channel(self.outbox.schema or "public")
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(asyncpg_dsn(self.settings.database_url), timeout=5)
                await conn.add_listener(channel, lambda *_: self.wakeup.set())
                self.wakeup.set()  # anything committed while we were not listening
                while not conn.is_closed():  # noqa: ASYNC110 - asyncpg has no awaitable for a lost connection
                    await asyncio.sleep(5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # polling covers us until the listener is back
                if cancel_requested():
                    raise asyncio.CancelledError() from exc
                self.log.info("outbox_listener_reconnecting", error=type(exc).__name__)
                await asyncio.sleep(1)
            finally:
                if conn is not None and cancel_requested():
                    conn.terminate()  # stopping: no goodbye to a server that may not answer it
                elif conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=1))

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction on a pooled connection's asyncpg connection, except that a cancelled pass discards its
        connection instead of rolling it back: the cancellation may have come mid-statement, and a ROLLBACK to a
        server that went silent waits out the command timeout, holding up the process's shutdown with it."""
        async with checkout(self.engine) as (session, driver):
            transaction = driver.transaction()
            await transaction.start()
            try:
                yield driver
                await transaction.commit()
            except Exception:
                await transaction.rollback()
                raise
            except BaseException:
                await session.invalidate()
                raise

    async def _prune(self) -> None:
        try:
            async with self._transaction() as conn:
                await conn.execute(
                    f"DELETE FROM {self._table} WHERE published_at < now() - interval '{PUBLISHED_RETENTION}'"
                )
        except Exception as exc:  # housekeeping: the next round tries again
            if cancel_requested():
                raise asyncio.CancelledError() from exc


def _confirmed(result: object) -> bool:
    # A returned (unroutable) message comes back as a DeliveredMessage, a refusal as Basic.Nack: neither counts.
    return isinstance(result, Basic.Ack)


def _describe(result: object) -> str:
    if isinstance(result, BaseException):
        return f"{type(result).__name__}: {result}"[:200]
    return type(result).__name__


__all__ = ["OutboxRelay", "amqp_message", "cloudevent_from_row"]
