"""The reminder scheduler: each tick locks the due reminders (``FOR UPDATE SKIP LOCKED``: replicas share them) and
queues their messages in the same transaction that marks them done, so a restart never sends one twice. After
downtime only the latest reminder still before its start is sent; the others, and any whose start has passed, are
skipped."""

from __future__ import annotations

from collections.abc import Callable

from services.notify import domain
from services.notify.messages import tell
from services.notify.models import NotifyUnitOfWork
from services.notify.settings import NotifySettings
from shared.clock import Clock


async def remind_due(settings: NotifySettings, uow: Callable[[], NotifyUnitOfWork], clock: Clock) -> int:
    """One round; returns how many due reminders it settled (sent or skipped)."""
    now = clock.now()
    async with uow() as work:
        claimed = await work.messages.claim_due_reminders(now, settings.remind_batch_size)
        for due, siblings in claimed:
            send = domain.reminder_fate(due.due_at, due.starts_at, siblings, now)
            if send:
                await tell(
                    work,
                    purpose="shift_reminder" if due.subject == "shift" else "gathering_reminder",
                    member_ids=[due.member_id],
                    site_id=due.site_id,
                    cause_id=due.reminder_id,
                    values={"starts_at": due.starts_at.isoformat(), "what": due.subject},
                    at=now,
                    not_after=due.starts_at,
                )
            await work.messages.finish_reminder(due.reminder_id, send)
        await work.commit()
    return len(claimed)
