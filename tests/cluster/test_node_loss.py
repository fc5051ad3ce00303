"""Two replicas of each role against a three-node RabbitMQ cluster: during 2,000 kiosk check-ins at a steady rate the
node leading the audit queue is stopped and later started again, and one check-in web replica and one audit consumer
replica are killed (SIGKILL). Every accepted check-in must be in the audit log exactly once, the chain must verify,
the reports must equal a rebuild, and the time the audit log takes to catch up after the node returns is printed.

Run alone with ``.venv/bin/python -m pytest tests/cluster -s`` (about two minutes here; it skips where no
``rabbitmq-server`` is installed)."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from services.registry import ROOT
from shared.db import asyncpg_dsn
from shared.settings import Settings
from tests.support.processes import ServiceProcess
from tests.support.rabbit import RabbitCluster
from tests.support.report import report
from tests.support.stack import eventually, make_site
from tests.support.tally import audit_entries, outbox, tally, unpublished

pytestmark = pytest.mark.cluster

CHECK_INS = 2_000
RATE_PER_S = 80  # steady: one check-in every 12.5 ms, whatever happens to the replicas and the broker
STOP_NODE_AT = 400  # check-ins sent before the audit queue's leader is stopped
KILL_WEB_AT = 700
KILL_CONSUMER_AT = 900
START_NODE_AT = 1_700
PURPOSES = ["drop_in", "peer_mentoring", "education", "resource_connecting"]


class Replicas:
    """``rcc serve SERVICE --role ROLE`` twice, each replica with its own log directory."""

    def __init__(self, service: str, role: str, settings: Settings, log_dir: Path, count: int = 2) -> None:
        self.processes = [
            ServiceProcess(service, settings, log_dir / f"{service}-{role}-{n}", role=role) for n in range(count)
        ]
        for process in self.processes:
            process.log_dir.mkdir(parents=True, exist_ok=True)
        self.service = service

    async def start(self) -> None:
        await asyncio.gather(*(process.start(timeout=120) for process in self.processes))

    def urls(self) -> list[str]:
        return [p.urls[self.service] for p in self.processes if p.process and p.process.returncode is None]

    async def stop(self) -> None:
        await asyncio.gather(*(process.stop() for process in self.processes), return_exceptions=True)


async def test_2000_check_ins_through_a_lost_broker_node_and_killed_replicas_reach_the_audit_log_once(
    cluster: RabbitCluster, cluster_settings: Settings, tmp_path: Path
) -> None:
    settings = cluster_settings
    audit_queue = settings.queue_name("audit")
    members = await cluster.queue_members(audit_queue)
    assert members == {node.name for node in cluster.nodes}, members  # replication factor 3 on 3 nodes

    site = await make_site(settings, capacity=5_000)
    kiosk = site.tokens["kiosk"]
    roles = {
        "checkin web": Replicas("checkin", "web", settings, tmp_path),
        "checkin relay": Replicas("checkin", "relay", settings, tmp_path),
        "audit consumers": Replicas("audit", "consumers", settings, tmp_path),
    }
    db = await asyncpg.create_pool(asyncpg_dsn(settings.database_url), min_size=1, max_size=4)
    accepted: set[str] = set()
    refused: list[Any] = []
    timeline: dict[str, float] = {}
    try:
        await asyncio.gather(*(replicas.start() for replicas in roles.values()))
        web_replicas = roles["checkin web"]
        leader = await cluster.queue_leader(audit_queue)
        started = time.monotonic()
        behind: list[int] = []

        async def audited() -> set[str]:
            return {r["subject"] for r in await audit_entries(db, site.site_id, ["checkin.visitor_checked_in"])}

        async def _holds_all(subjects: set[str]) -> bool:
            return await audited() >= subjects

        async def events_at(sent: int) -> None:
            if sent == STOP_NODE_AT:
                timeline["node stopped"] = time.monotonic() - started
                await cluster.stop_app(leader)
            elif sent == KILL_WEB_AT:
                timeline["web replica killed"] = time.monotonic() - started
                web_replicas.processes[0].kill()
            elif sent == KILL_CONSUMER_AT:
                timeline["consumer replica killed"] = time.monotonic() - started
                roles["audit consumers"].processes[0].kill()
            elif sent == START_NODE_AT:
                await cluster.start_app(leader)
                timeline["node back"] = time.monotonic() - started
                # What had been accepted by then, and how long the audit log took to hold all of it.
                waiting = set(accepted)
                behind.append(len(waiting - await audited()))
                await eventually(lambda: _holds_all(waiting), timeout=180, interval=0.1)
                timeline["accepted at node return audited"] = time.monotonic() - started

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            sends = []
            side_effects = []
            turn = itertools.count()
            loop = asyncio.get_running_loop()
            first = loop.time()
            for n in range(CHECK_INS):
                body = {"anonymous": True, "purpose": PURPOSES[n % len(PURPOSES)]}
                sends.append(asyncio.create_task(_check_in(http, web_replicas, turn, kiosk, body, accepted, refused)))
                side_effects.append(asyncio.create_task(events_at(n + 1)))
                await asyncio.sleep(max(0.0, first + (n + 1) / RATE_PER_S - loop.time()))  # on the clock, no drift
            sent_in = loop.time() - first
            await asyncio.gather(*sends)
            await asyncio.gather(*side_effects)
        load_done = time.monotonic() - started

        async def all_audited() -> bool:
            return await _holds_all(accepted)

        try:
            await eventually(all_audited, timeout=180, interval=0.2)
        except AssertionError:
            audited = {r["subject"] for r in await audit_entries(db, site.site_id, ["checkin.visitor_checked_in"])}
            raise AssertionError(
                f"{len(accepted - audited)} of {len(accepted)} accepted check-ins not in the audit log;"
                f" {await unpublished(db, 'checkin')} unpublished in the outbox; timeline {timeline}"
            ) from None
        drained = time.monotonic() - started
        events = {r["subject"]: r["event_id"] for r in await outbox(db, "checkin", site.site_id)}
        recorded = Counter(r["event_id"] for r in await audit_entries(db, site.site_id, ["checkin.visitor_checked_in"]))
    finally:
        for replicas in roles.values():
            await replicas.stop()
        await db.close()
    # Every process lists the nodes in the same order, so all of them started on the first; when that node is the
    # one stopped, the relays and consumers that stayed up must have gone on to another node.
    moved = [
        process.log_path.parent.name
        for key in ("checkin relay", "audit consumers")
        for process in roles[key].processes
        if any(line.get("event") == "broker_trying_next_node" for line in process.log_lines())
    ]
    if leader is cluster.nodes[0]:
        assert moved, "no relay or consumer replica moved to another broker node"

    in_audit = tally((events[v] for v in accepted if v in events), recorded)
    verify = await _rcc(settings, "audit", "verify")
    reports_before = await _reports(settings, site.site_id, site.tokens["admin"], tmp_path)
    await _rcc(settings, "reports", "rebuild")
    reports_after = await _reports(settings, site.site_id, site.tokens["admin"], tmp_path)

    report(
        "3-node RabbitMQ cluster, leader of the audit queue stopped, a web and a consumer replica killed",
        {
            "refused": len(refused),
            "lost": in_audit.lost + len(accepted - events.keys()),
            "duplicated": in_audit.duplicated,
            "unexpected": in_audit.unexpected,
        },
        accepted=len(accepted),
        rate_per_s=round(CHECK_INS / sent_in),
        stopped_node=leader.name,
        moved_to_another_node=len(moved),
        not_yet_audited_at_node_return=behind[0],
        drain_after_node_back_s=round(timeline["accepted at node return audited"] - timeline["node back"], 2),
        drain_after_last_answer_s=round(max(0.0, drained - load_done), 2),
        load_s=round(load_done, 1),
        **{key.replace(" ", "_") + "_at_s": round(value, 1) for key, value in timeline.items()},
    )
    assert len(accepted) == CHECK_INS
    assert '"ok":true' in verify, verify
    assert reports_after == reports_before


async def _check_in(
    http: aiohttp.ClientSession,
    web_replicas: Replicas,
    turn: itertools.count[int],
    kiosk: str,
    body: dict[str, Any],
    accepted: set[str],
    refused: list[Any],
) -> None:
    """One kiosk check-in, sent to the web replicas in turn; a replica that is gone is left for the next (as a load
    balancer does), with the same Idempotency-Key, so a retry can never check in twice."""
    headers = {"Authorization": f"Bearer {kiosk}", "Idempotency-Key": str(uuid.uuid4())}
    for _ in range(20):
        urls = web_replicas.urls()
        url = urls[next(turn) % len(urls)]
        try:
            async with http.post(url + "/visits", json=body, headers=headers) as response:
                answer = await response.json(content_type=None)
                if response.status == 201:
                    accepted.add(answer["visit_id"])
                    return
                if response.status < 500:
                    refused.append(answer)
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.1)
    refused.append("no replica answered")


async def _rcc(settings: Settings, *args: str) -> str:
    env = {**os.environ, "RCC_DATABASE_URL": settings.database_url, "RCC_LOG_LEVEL": "WARNING"}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _reports(settings: Settings, site_id: str, admin: str, log_dir: Path) -> list[Any]:
    """The site's summary and daily report, from an audit web replica."""
    process = ServiceProcess("audit", settings, log_dir / f"audit-web-{uuid.uuid4().hex[:6]}", role="web")
    process.log_dir.mkdir(parents=True)
    await process.start(timeout=120)
    today = datetime.now(UTC).date()
    query = f"site={site_id}&from={today - timedelta(days=1)}&to={today + timedelta(days=1)}"
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as http:
            answers = []
            for path in ("/reports/summary", "/reports/daily"):
                async with http.get(f"{process.urls['audit']}{path}?{query}") as response:
                    assert response.status == 200, await response.text()
                    answers.append(await response.json())
            return answers
    finally:
        await process.stop()
