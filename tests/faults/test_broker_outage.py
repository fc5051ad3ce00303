"""1,000 kiosk check-ins while the broker connection is cut for several seconds at a random moment: every check-in
is answered 201, the outbox holds the events while the broker is away and drains when it returns, and the audit log
ends with exactly the 1,000 check-in events, each once."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import asyncpg
import pytest

from shared.settings import Settings
from tests.support.proxy import TcpProxy
from tests.support.report import report
from tests.support.stack import Reply, eventually, make_site, services
from tests.support.tally import audit_entries, outbox, post_all, tally, unpublished

pytestmark = pytest.mark.e2e

CHECK_INS = 1_000
BY_CODE = 400  # the rest are anonymous walk-ins
CONCURRENCY = 16
PURPOSES = ["drop_in", "peer_mentoring", "education", "resource_connecting", "recovery_group"]


async def test_1000_check_ins_through_a_broker_outage_reach_the_audit_log_exactly_once(
    isolated: Settings, db: asyncpg.Pool
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    cut_after = rng.randint(100, 650)  # check-ins answered before the cut
    outage_s = rng.uniform(3.0, 6.0)
    print(f"seed {seed}: cut after {cut_after} check-ins for {outage_s:.1f} s")

    proxy = TcpProxy()
    await proxy.start()
    settings = isolated.model_copy(update={"amqp_url": proxy.url})
    site = await make_site(settings, capacity=5_000)
    kiosk = site.tokens["kiosk"]
    try:
        async with services(settings, ["checkin", "audit"]) as stack:
            await eventually(lambda: _ready(stack, "checkin"), timeout=30)
            registered = await post_all(
                stack.http,
                lambda: stack.urls["checkin"],
                [("/members", {})] * BY_CODE,
                token=kiosk,
                concurrency=CONCURRENCY,
            )
            codes = [r.body["kiosk_code"] for r in registered if isinstance(r, Reply) and r.status == 201]
            assert len(codes) == BY_CODE
            bodies = [{"kiosk_code": code, "purpose": rng.choice(PURPOSES)} for code in codes]
            bodies += [{"anonymous": True, "purpose": rng.choice(PURPOSES)} for _ in range(CHECK_INS - BY_CODE)]
            rng.shuffle(bodies)

            reached_cut = asyncio.Event()
            waiting_at_restore: list[int] = []

            async def count(done: int) -> None:
                if done >= cut_after:
                    reached_cut.set()

            async def outage() -> None:
                await reached_cut.wait()
                proxy.cut()
                await asyncio.sleep(outage_s)
                waiting_at_restore.append(await unpublished(db, "checkin"))
                proxy.restore()

            cut = asyncio.create_task(outage())
            answers = await post_all(
                stack.http,
                lambda: stack.urls["checkin"],
                [("/visits", b) for b in bodies],
                token=kiosk,
                concurrency=CONCURRENCY,
                on_answer=count,
            )
            await cut
            accepted = {r.body["visit_id"] for r in answers if isinstance(r, Reply) and r.status == 201}
            refused = [
                r if isinstance(r, BaseException) else (r.status, r.body)
                for r in answers
                if not (isinstance(r, Reply) and r.status == 201)
            ]

            async def drained() -> bool:
                return await unpublished(db, "checkin") == 0

            await eventually(drained, timeout=120, interval=0.25)

            async def all_recorded() -> bool:
                recorded = await audit_entries(db, site.site_id, ["checkin.visitor_checked_in"])
                return len({r["event_id"] for r in recorded}) >= len(accepted)

            await eventually(all_recorded, timeout=120, interval=0.25)
            verdict = await stack.call("audit", "GET", "/audit/verify", token=site.tokens["admin"])
    finally:
        await proxy.close()

    events = {
        r["subject"]: r["event_id"] for r in await outbox(db, "checkin", site.site_id, ["checkin.visitor_checked_in"])
    }
    visits = {
        str(r["visit_id"])
        for r in await db.fetch("SELECT visit_id FROM checkin.visits WHERE site_id = $1", site.site_id)
    }
    recorded = Counter(r["event_id"] for r in await audit_entries(db, site.site_id, ["checkin.visitor_checked_in"]))
    in_audit = tally((events[v] for v in accepted if v in events), recorded)
    report(
        "broker cut during 1,000 check-ins",
        {
            "refused": len(refused),
            "lost": in_audit.lost + len(accepted - events.keys()),
            "duplicated": in_audit.duplicated,
            "unexpected": in_audit.unexpected + len(visits - accepted) + len(events.keys() - accepted),
            "unpublished": await unpublished(db, "checkin"),
        },
        accepted=len(accepted),
        waiting_in_outbox_at_restore=waiting_at_restore[0],
        outage_s=round(outage_s, 1),
        cut_after=cut_after,
        broker_connections=proxy.connections_made,
        seed=seed,
    )
    assert refused == []
    assert len(accepted) == CHECK_INS
    assert waiting_at_restore[0] > 0, "the outage should have left check-ins waiting in the outbox"
    assert proxy.connections_made >= 2, "the services should have reconnected through the proxy"
    assert verdict.status == 200 and verdict.body["ok"] is True, verdict.body


async def _ready(stack: object, service: str) -> bool:
    reply = await stack.call(service, "GET", "/readyz")  # type: ignore[attr-defined]
    return reply.status == 200
