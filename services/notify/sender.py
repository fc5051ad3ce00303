"""The sender: after commit, never inside a request's transaction. A round:

1. settles the messages a dead sender left marked as handed to the relay (below);
2. leases the due messages (``FOR UPDATE SKIP LOCKED``: replicas share them; a lease that runs out makes an
   unmarked row due again);
3. applies the person's wishes as they are now (withdrawn, unsubscribed, quiet hours, too late);
4. hands the rest to the relay over ``send_connections`` SMTP connections kept open between rounds;
5. records every outcome in one transaction (and every ``FLUSH_EVERY`` outcomes on the way).

**At most once.** Before a message's DATA goes to the relay its row is marked ``handed_at`` by a statement that
commits on its own (while MAIL and RCPT are on the wire, so it costs no extra wait); recording the outcome clears
the mark. A sender killed between the two leaves the mark, and whether the relay took that message is unknown: it
is never sent again, and when its lease runs out it ends ``failed`` with reason ``interrupted``. So a ``kill -9``
never sends a message twice; the messages it leaves marked include every one sent since the last flush and at
most one per connection that was not (the one whose DATA was on its way). A connection that breaks during DATA
makes the same unknown, recorded at once. Everything before the mark (a refused connection, a 4xx to MAIL or
RCPT, a sender stopped gracefully) is retried with backoff and jitter, or given back untried."""

from __future__ import annotations

import asyncio
import contextlib
import time
import zoneinfo
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from services.notify import domain, handlers
from services.notify.commands import DeliveryOutcome, DeliveryOutcomes, OutcomeRecorded, SettleInterrupted
from services.notify.domain import DeliveryStatus, DropReason
from services.notify.mail import (
    Interrupted,
    Letter,
    PermanentFailure,
    Postman,
    Relay,
    TemporaryFailure,
    write,
)
from services.notify.models import ClaimedDelivery, NotifyUnitOfWork
from services.notify.settings import NotifySettings
from shared.clock import Clock
from shared.logging import get_logger
from shared.uow import execute

log = get_logger(component="notify-sender")

# Outcomes recorded on the way through a long round: what a kill leaves unknown stays small.
FLUSH_EVERY = 100


class Sender:
    def __init__(self, settings: NotifySettings, uow: Callable[[], NotifyUnitOfWork], clock: Clock) -> None:
        self.settings = settings
        self.uow = uow
        self.clock = clock
        relay = Relay.parse(settings.smtp_url)
        self.postmen = [Postman(relay, settings.smtp_timeout_s) for _ in range(settings.send_connections)]
        self.stopping = False
        self._wake = asyncio.Event()
        self._outcomes: list[DeliveryOutcome] = []
        self._settled_at = -float("inf")

    def wake(self) -> None:
        """Messages were queued in this process: a round now rather than at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        """Rounds until :meth:`stop`: at once while rounds come back full or something woke it, else every
        ``send_interval_s``."""
        while not self.stopping:
            self._wake.clear()
            try:
                handled = await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - try again next time; the database may be restarting
                log.warning("periodic_task_failed", task="notify-sender", error=type(exc).__name__)
                handled = 0
            if handled >= self.settings.send_batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.send_interval_s):
                    await self._wake.wait()

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Finish the message on each connection, record what was done, give the rest back; then close."""
        self.stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(self.settings.smtp_timeout_s * 2 + 5):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.close()

    async def close(self) -> None:
        await asyncio.gather(*(postman.close() for postman in self.postmen), return_exceptions=True)

    async def round(self) -> int:
        """One round; returns how many messages it leased."""
        s = self.settings
        # A dead sender's marks only matter once their lease has run out: looked for a few times a lease, not
        # every round (at a trickle of messages a round is one message, and this is a transaction of its own).
        if (ticked := time.monotonic()) - self._settled_at >= s.send_lease_s / 4:
            self._settled_at = ticked
            await execute(
                handlers.settle_interrupted,
                SettleInterrupted(limit=s.send_batch_size, max_attempts=s.max_attempts, retry_base_s=s.retry_base_s),
                uow=self.uow(),
                clock=self.clock,
            )
        now = self.clock.now()
        async with self.uow() as claim:
            due = await claim.notify.claim_due(now, now + timedelta(seconds=s.send_lease_s), s.send_batch_size)
            await claim.commit()
        if not due:
            return 0
        queue: deque[ClaimedDelivery] = deque()
        for delivery in due:
            ruled = self._rules(delivery)
            if ruled is None:
                queue.append(delivery)
            else:
                self._outcomes.append(ruled)
        try:
            async with asyncio.TaskGroup() as connections:
                for postman in self.postmen[: len(queue)]:
                    connections.create_task(self._work(postman, queue))
        finally:
            # Stopping, or a round that failed: what was not handed over is given back untried.
            self._outcomes += [_outcome(self.settings, d, defer_until=now) for d in queue]
            await self._flush()
        return len(due)

    async def _work(self, postman: Postman, queue: deque[ClaimedDelivery]) -> None:
        async with self._marks() as marks:
            while queue and not self.stopping:
                delivery = queue.popleft()
                outcome = await self._hand_over(postman, marks, delivery)
                if outcome is not None:
                    self._outcomes.append(outcome)
                if len(self._outcomes) >= FLUSH_EVERY:
                    await self._flush()

    @contextlib.asynccontextmanager
    async def _marks(self) -> AsyncIterator[NotifyUnitOfWork]:
        """A connection outside any transaction: each mark commits on its own, before its DATA."""
        work = self.uow()
        work.transactional = False
        async with work:
            yield work

    async def _flush(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        if outcomes:
            s = self.settings
            await execute(
                handlers.record_outcomes,
                DeliveryOutcomes(
                    outcomes=tuple(outcomes),
                    max_attempts=s.max_attempts,
                    retry_base_s=s.retry_base_s,
                    retry_max_s=s.retry_max_s,
                ),
                uow=self.uow(),
                clock=self.clock,
            )

    def _rules(self, delivery: ClaimedDelivery) -> DeliveryOutcome | None:
        """What the person's wishes say before anything is tried (None: send it)."""
        s = self.settings
        if delivery.kind != "verification" and delivery.address is None:
            return _outcome(s, delivery, "dropped", drop_reason="withdrawn")
        if delivery.address is None or "unsubscribe" not in delivery.links:
            return _outcome(s, delivery, "failed", "withdrawn")
        if delivery.kind == "verification":
            return None
        # The person's wishes as they are now, not as they were when the message was queued.
        if delivery.kind not in delivery.kinds:
            return _outcome(s, delivery, "dropped", drop_reason="unsubscribed")
        zone = _zone(delivery.timezone)
        plan = domain.plan_send(self.clock.now(), zone, (delivery.quiet_start, delivery.quiet_end), delivery.not_after)
        if isinstance(plan, domain.Drop):
            return _outcome(s, delivery, "dropped", drop_reason=plan.reason)
        if isinstance(plan, domain.Defer):
            return _outcome(s, delivery, defer_until=plan.until)
        return None

    async def _hand_over(
        self, postman: Postman, marks: NotifyUnitOfWork, delivery: ClaimedDelivery
    ) -> DeliveryOutcome | None:
        s = self.settings
        assert delivery.address is not None, "checked by the rules"
        base = s.public_url()
        letter = Letter(
            purpose=delivery.purpose,
            locale=delivery.locale,
            to=delivery.address,
            message_id=delivery.message_id,
            unsubscribe_url=f"{base}/contacts/unsubscribe?key={delivery.links['unsubscribe']}",
            values={"verify_url": f"{base}/contacts/verify?token={delivery.links.get('verify', '')}"},
            template_values=delivery.template_values,
            zone=_zone(delivery.timezone),
            page_url=s.page_url(),
            place=delivery.site_name,
        )

        async def handed() -> bool:
            return await marks.notify.mark_handed(delivery.delivery_id, delivery.attempts)

        try:
            wire = write(letter, s.notify_from, delivery.message_name or s.notify_site_name, self.clock.now())
            took = await postman.hand_over(wire.data, wire.mail_from, wire.rcpt_to, handed)
        except TemporaryFailure as exc:
            log.info("notification_deferred", delivery_id=str(delivery.delivery_id), error=str(exc))
            return _outcome(s, delivery, None, str(exc))
        except PermanentFailure as exc:
            log.warning("notification_refused", delivery_id=str(delivery.delivery_id), error=str(exc))
            return _outcome(s, delivery, "failed", str(exc))
        except Interrupted as exc:
            log.warning("notification_interrupted", delivery_id=str(delivery.delivery_id), error=str(exc))
            return _outcome(s, delivery, "failed", "interrupted")
        if not took:
            log.warning("notification_lease_lost", delivery_id=str(delivery.delivery_id))
            return None
        return _outcome(s, delivery, "sent")


def _outcome(
    settings: NotifySettings,
    delivery: ClaimedDelivery,
    status: DeliveryStatus | None = None,
    error: str | None = None,
    *,
    drop_reason: DropReason | None = None,
    defer_until: datetime | None = None,
) -> DeliveryOutcome:
    return DeliveryOutcome(
        delivery_id=delivery.delivery_id,
        outcome=status,
        error=error,
        max_attempts=settings.max_attempts,
        retry_base_s=settings.retry_base_s,
        drop_reason=drop_reason,
        defer_until=defer_until,
    )


async def send_due(settings: NotifySettings, uow: Callable[[], NotifyUnitOfWork], clock: Clock) -> int:
    """One round on connections of its own (a replica's round, in tests); returns how many messages it leased."""
    sender = Sender(settings, uow, clock)
    try:
        return await sender.round()
    finally:
        await sender.close()


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


__all__ = ["OutcomeRecorded", "Sender", "send_due"]
