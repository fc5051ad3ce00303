"""The sender: after commit, never inside a request's transaction. Each tick leases the due messages (``FOR UPDATE
SKIP LOCKED``: replicas share them), writes and sends each, and records what the relay said."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import datetime, timedelta

from services.notify import domain, handlers
from services.notify.commands import DeliveryOutcome, OutcomeRecorded
from services.notify.domain import DeliveryStatus, DropReason
from services.notify.mail import Letter, PermanentFailure, Relay, TemporaryFailure, compose, send
from services.notify.models import ClaimedDelivery, NotifyUnitOfWork
from services.notify.settings import NotifySettings
from shared.clock import Clock
from shared.logging import get_logger
from shared.uow import execute

log = get_logger(component="notify-sender")


async def send_due(settings: NotifySettings, uow: Callable[[], NotifyUnitOfWork], clock: Clock) -> int:
    """One round; returns how many messages it handled."""
    now = clock.now()
    async with uow() as claim:
        due = await claim.notify.claim_due(
            now, now + timedelta(seconds=settings.send_lease_s), settings.send_batch_size
        )
        await claim.commit()
    relay = Relay.parse(settings.smtp_url)
    for delivery in due:
        outcome = await _deliver(delivery, settings, relay, clock)
        await execute(handlers.record_outcome, outcome, uow=uow(), clock=clock)
    return len(due)


async def _deliver(delivery: ClaimedDelivery, settings: NotifySettings, relay: Relay, clock: Clock) -> DeliveryOutcome:
    def outcome(
        status: DeliveryStatus | None,
        error: str | None,
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

    if delivery.kind != "verification" and delivery.address is None:
        return outcome("dropped", None, "withdrawn")
    if delivery.address is None or "unsubscribe" not in delivery.links:
        return outcome("failed", "withdrawn")
    zone = _zone(delivery.timezone)
    if delivery.kind != "verification":
        # The person's wishes as they are now, not as they were when the message was queued.
        if delivery.kind not in delivery.kinds:
            return outcome("dropped", None, "unsubscribed")
        plan = domain.plan_send(clock.now(), zone, (delivery.quiet_start, delivery.quiet_end), delivery.not_after)
        if isinstance(plan, domain.Drop):
            return outcome("dropped", None, plan.reason)
        if isinstance(plan, domain.Defer):
            return outcome("pending", None, defer_until=plan.until)
    base = settings.public_url()
    letter = Letter(
        purpose=delivery.purpose,
        locale=delivery.locale,
        to=delivery.address,
        message_id=delivery.message_id,
        unsubscribe_url=f"{base}/contacts/unsubscribe?key={delivery.links['unsubscribe']}",
        values={"verify_url": f"{base}/contacts/verify?token={delivery.links.get('verify', '')}"},
        template_values=delivery.template_values,
        zone=zone,
        page_url=settings.page_url(),
        place=delivery.site_name,
    )
    name = delivery.message_name or settings.notify_site_name
    try:
        await send(compose(letter, settings.notify_from, name, clock.now()), relay, settings.smtp_timeout_s)
    except TemporaryFailure as exc:
        log.info("notification_deferred", delivery_id=str(delivery.delivery_id), error=str(exc))
        return outcome(None, str(exc))
    except PermanentFailure as exc:
        log.warning("notification_refused", delivery_id=str(delivery.delivery_id), error=str(exc))
        return outcome("failed", str(exc))
    return outcome("sent", None)


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


__all__ = ["OutcomeRecorded", "send_due"]
