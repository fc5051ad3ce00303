"""Services as real processes, killed with SIGKILL where it hurts most:

- the check-in service between its database commit and the publish (its events wait in the outbox while the broker
  is away, then the process dies): a new process publishes every one of them, once;
- the check-in service again and again while it publishes (a kill between the broker's confirm and marking the row
  sent re-sends it): no visit without its event, no event without its visit, each in the audit log once;
- the consumers (audit, gatherings) again and again during a steady flow (a kill between a batch's commit and its ack
  redelivers it): after a final restart every event is in the audit log once and every check-in is one attendance.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from shared.settings import Settings
from tests.support.processes import ServiceProcess, service_processes
from tests.support.proxy import TcpProxy
from tests.support.report import report
from tests.support.stack import eventually, make_site
from tests.support.tally import audit_entries, outbox, tally, unpublished

pytestmark = pytest.mark.e2e

KILLS = 4


async def check_in(http: aiohttp.ClientSession, url: str | None, token: str, body: dict) -> str | None:
    """A visit id, or None when the process was not there to answer (killed, restarting: no URL yet)."""
    if url is None:
        await asyncio.sleep(0.05)
        return None
    try:
        async with http.post(
            url + "/visits",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=10),
        ) as response:
            if response.status == 201:
                return (await response.json())["visit_id"]
            raise AssertionError(f"check-in refused: {response.status} {await response.text()}")
    except (TimeoutError, aiohttp.ClientError):
        return None


async def state_and_events(db: asyncpg.Pool, site_id: str) -> tuple[set[str], dict[str, uuid.UUID], Counter]:
    visits = {
        str(r["visit_id"]) for r in await db.fetch("SELECT visit_id FROM checkin.visits WHERE site_id = $1", site_id)
    }
    events = {r["subject"]: r["event_id"] for r in await outbox(db, "checkin", site_id, ["checkin.visitor_checked_in"])}
    audited = Counter(r["event_id"] for r in await audit_entries(db, site_id, ["checkin.visitor_checked_in"]))
    return visits, events, audited


async def test_a_check_in_service_killed_with_its_events_in_the_outbox_publishes_them_after_restart(
    isolated: Settings, db: asyncpg.Pool, tmp_path: Path
) -> None:
    proxy = TcpProxy()
    await proxy.start()
    site = await make_site(isolated)
    kiosk = site.tokens["kiosk"]
    checkin = ServiceProcess("checkin", isolated, tmp_path, amqp_url=proxy.url)
    try:
        async with service_processes(isolated, tmp_path, ["audit"]), aiohttp.ClientSession() as http:
            await checkin.start()
            proxy.cut()  # the broker is away: committed check-ins wait in the outbox
            accepted = [
                await check_in(http, checkin.urls["checkin"], kiosk, {"anonymous": True, "purpose": "drop_in"})
                for _ in range(100)
            ]
            waiting = await unpublished(db, "checkin")
            checkin.kill()  # between the commit and the publish
            await checkin.wait()
            proxy.restore()
            await checkin.start()

            async def drained() -> bool:
                return await unpublished(db, "checkin") == 0

            await eventually(drained, timeout=90, interval=0.25)

            async def all_audited() -> bool:
                return len((await state_and_events(db, site.site_id))[2]) >= 100

            await eventually(all_audited, timeout=90, interval=0.25)
    finally:
        await checkin.stop()
        await proxy.close()
    visits, events, audited = await state_and_events(db, site.site_id)
    in_audit = tally(events.values(), audited)
    report(
        "check-in killed with its events in the outbox",
        {
            "refused": accepted.count(None),
            **in_audit.counts(),
            "state_without_event": len(visits - events.keys()),
            "event_without_state": len(events.keys() - visits),
        },
        check_ins=len(visits),
        waiting_when_killed=waiting,
    )
    assert waiting == 100


async def test_a_check_in_service_killed_again_and_again_while_publishing_loses_and_duplicates_nothing(
    isolated: Settings, db: asyncpg.Pool, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    site = await make_site(isolated)
    kiosk = site.tokens["kiosk"]
    checkin = ServiceProcess("checkin", isolated, tmp_path)
    answers: list[str | None] = []
    stop = asyncio.Event()
    try:
        async with service_processes(isolated, tmp_path, ["audit"]), aiohttp.ClientSession() as http:
            await checkin.start()

            async def kiosk_loop() -> None:
                while not stop.is_set():
                    answers.append(
                        await check_in(
                            http, checkin.urls.get("checkin"), kiosk, {"anonymous": True, "purpose": "education"}
                        )
                    )
                    if answers[-1] is None:
                        await asyncio.sleep(0.05)

            kiosks = [asyncio.create_task(kiosk_loop()) for _ in range(8)]
            kills = 0
            for _ in range(3):
                await asyncio.sleep(rng.uniform(0.4, 1.2))
                checkin.kill()
                await checkin.wait()
                kills += 1
                await checkin.start()
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*kiosks)

            async def settled() -> bool:
                _, events, audited = await state_and_events(db, site.site_id)
                return await unpublished(db, "checkin") == 0 and set(audited) >= set(events.values())

            await eventually(settled, timeout=120, interval=0.25)
    finally:
        stop.set()
        await checkin.stop()
    visits, events, audited = await state_and_events(db, site.site_id)
    accepted = {a for a in answers if a is not None}
    in_audit = tally(events.values(), audited)
    report(
        "check-in killed 3 times while publishing",
        {
            **in_audit.counts(),
            "acknowledged_but_missing": len(accepted - visits),
            "state_without_event": len(visits - events.keys()),
            "event_without_state": len(events.keys() - visits),
        },
        answered=len(accepted),
        unanswered=answers.count(None),
        committed=len(visits),
        kills=kills,
        seed=seed,
    )


async def test_consumers_killed_again_and_again_apply_every_event_once(
    isolated: Settings, db: asyncpg.Pool, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    site = await make_site(isolated)
    kiosk = site.tokens["kiosk"]
    stop = asyncio.Event()
    accepted: list[str] = []
    async with (
        service_processes(isolated, tmp_path, ["checkin", "gatherings", "audit"]) as procs,
        aiohttp.ClientSession() as http,
    ):
        starts = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
        async with http.post(
            procs["gatherings"].urls["gatherings"] + "/events",
            headers={"Authorization": f"Bearer {site.tokens['coordinator']}"},
            json={
                "title": "Recovery walk",
                "kind": "sports",
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=2)).isoformat(),
                "capacity": 900,
            },
        ) as r:
            assert r.status == 201, await r.text()
            event_id = (await r.json())["event_id"]

        async def kiosk_loop() -> None:
            while not stop.is_set():
                visit = await check_in(
                    http,
                    procs["checkin"].urls.get("checkin"),
                    kiosk,
                    {"anonymous": True, "purpose": "sober_event", "ref": event_id},
                )
                if visit is not None:
                    accepted.append(visit)

        kiosks = [asyncio.create_task(kiosk_loop()) for _ in range(6)]
        kills = Counter[str]()
        try:
            victims = ["audit", "gatherings"] * (KILLS // 2)
            rng.shuffle(victims)
            for victim in victims:
                await asyncio.sleep(rng.uniform(0.3, 0.8))
                procs[victim].kill()  # with batches in flight: some committed and not yet acked
                await procs[victim].wait()
                kills[victim] += 1
                await procs[victim].start()
        finally:
            stop.set()
            await asyncio.gather(*kiosks)

        async def settled() -> bool:
            _, events, audited = await state_and_events(db, site.site_id)
            attended = await db.fetchval(
                "SELECT count(*) FROM gatherings.attendance WHERE gathering_id = $1", uuid.UUID(event_id)
            )
            return set(audited) >= set(events.values()) and attended >= len(events)

        await eventually(settled, timeout=120, interval=0.25)
        await asyncio.sleep(0)
    visits, events, audited = await state_and_events(db, site.site_id)
    attendance = Counter(
        str(r["visit_id"])
        for r in await db.fetch(
            "SELECT visit_id FROM gatherings.attendance WHERE gathering_id = $1", uuid.UUID(event_id)
        )
    )
    attended_events = {r["subject"] for r in await outbox(db, "gatherings", site.site_id, ["gatherings.attended"])}
    attendance_ids = {
        str(r["attendance_id"])
        for r in await db.fetch(
            "SELECT attendance_id FROM gatherings.attendance WHERE gathering_id = $1", uuid.UUID(event_id)
        )
    }
    report(
        f"audit and gatherings consumers killed {KILLS} times",
        {
            **tally(events.values(), audited).counts("audit_"),
            **tally(visits, attendance).counts("attendance_"),
            "attendance_without_event": len(attendance_ids - attended_events),
            "event_without_attendance": len(attended_events - attendance_ids),
        },
        check_ins=len(visits),
        answered=len(accepted),
        kills=dict(kills),
        seed=seed,
    )
