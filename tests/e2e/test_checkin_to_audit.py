"""HTTP → outbox → RabbitMQ → audit log, over the real servers."""

from __future__ import annotations

import pytest

from tests.support.stack import Client, SiteUnderTest, eventually

pytestmark = pytest.mark.e2e


async def audit_entries(stack: Client, site: SiteUnderTest, **filters: str) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in {"site": site.site_id, "limit": "500", **filters}.items())
    reply = await stack.call("audit", "GET", f"/audit?{query}", token=site.tokens["admin"])
    assert reply.status == 200, reply.body
    return reply.body["items"]


async def test_a_check_in_reaches_the_audit_log_with_the_same_event_id(stack: Client, site: SiteUnderTest) -> None:
    member = await stack.call("checkin", "POST", "/members", token=site.tokens["kiosk"], json={})
    assert member.status == 201
    visit = await stack.call(
        "checkin",
        "POST",
        "/visits",
        token=site.tokens["kiosk"],
        json={"kiosk_code": member.body["kiosk_code"], "purpose": "peer_mentoring"},
    )
    assert visit.status == 201, visit.body
    assert visit.body["member_id"] == member.body["member_id"]
    assert visit.body["support_type"] == "emotional"

    async def arrived() -> bool:
        entries = await audit_entries(stack, site, subject=visit.body["visit_id"])
        return len(entries) == 1

    await eventually(arrived)
    [entry] = await audit_entries(stack, site, subject=visit.body["visit_id"])
    event = entry["event"]
    assert entry["type"] == event["type"] == "checkin.visitor_checked_in"
    assert entry["event_id"] == event["id"]
    assert event["source"] == "/rcc/checkin"
    assert event["siteid"] == site.site_id
    assert event["data"]["member_id"] == member.body["member_id"]
    assert event["data"]["purpose"] == "peer_mentoring"

    verdict = await stack.call("audit", "GET", "/audit/verify", token=site.tokens["admin"])
    assert verdict.status == 200
    assert verdict.body["ok"] is True
    assert verdict.body["first_bad_sequence"] is None
    assert verdict.body["entries"] >= 2
