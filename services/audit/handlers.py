"""Audit handlers: append a batch of events to the chain (idempotently), verify the chain."""

from __future__ import annotations

from services.audit.commands import AppendResult, AppendToAuditLog, VerifyResult
from services.audit.domain import ChainCheck, canonicalize, chain_hash
from services.audit.models import AuditUnitOfWork
from shared.clock import Clock


async def append_to_audit_log(cmd: AppendToAuditLog, *, uow: AuditUnitOfWork, clock: Clock) -> AppendResult:
    sequence, head = await uow.audit.lock_chain_and_read_head()
    already = await uow.audit.recorded_ids([event.id for event in cmd.events])
    entries = []
    seen = set(already)
    now = clock.now()
    for event in cmd.events:
        if event.id in seen:
            continue
        seen.add(event.id)
        body = canonicalize(event.attributes)
        sequence += 1
        link = chain_hash(head, body)
        entries.append(
            {
                "sequence": sequence,
                "event_id": event.id,
                "type": event.type,
                "source": event.source,
                "site_id": event.site_id,
                "subject": event.subject,
                "time": event.time,
                "recorded_at": now,
                "body": body.decode(),
                "prev_hash": head,
                "hash": link,
            }
        )
        head = link
    await uow.audit.append(entries)
    return AppendResult(appended=len(entries), duplicates=len(cmd.events) - len(entries), head_sequence=sequence)


async def verify_audit_log(uow: AuditUnitOfWork, chunk_rows: int) -> VerifyResult:
    check = ChainCheck()
    async for links in uow.audit.links(chunk_rows):
        check.feed(links)
    return VerifyResult(
        ok=check.ok, entries=check.entries, head_hash=check.head_hash, first_bad_sequence=check.first_bad_sequence
    )
