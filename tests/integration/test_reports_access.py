"""Who may read which report, how bad ranges are refused, the CSV and SVG answers, and the accountability trail:
every report request becomes an ``audit.report_requested`` event in the log, with the token as the actor."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.audit.settings import AuditSettings
from shared.settings import Settings
from tests.support.stack import Client, SiteUnderTest, eventually, services

pytestmark = pytest.mark.integration

RANGE = "from=2026-03-01&to=2026-03-31"
SUMMARY_KEYS = {
    "unduplicated_members",
    "visits",
    "anonymous_visits",
    "new_members",
    "returning_members",
    "visits_by_purpose",
    "visits_by_support_type",
    "peak_occupancy",
    "volunteer_hours_approved",
    "volunteer_hours_by_role",
    "volunteers_active",
    "shifts_filled",
    "shifts_missed",
    "stipends_accrued_cents",
    "stipends_paid_cents",
    "group_sessions_held",
    "group_attendance",
    "events_held",
    "event_registrations",
    "event_attendance",
    "waitlist_promotions",
}


@pytest.fixture
async def audit(settings: Settings) -> AsyncIterator[Client]:
    async with services(settings, ["audit"]) as client:
        yield client


async def get(client: Client, path: str, token: str | None, headers: dict[str, str] | None = None) -> Any:
    return await client.call("audit", "GET", path, token=token, headers=headers)


async def raw(client: Client, path: str, token: str, accept: str | None = None) -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": f"Bearer {token}", **({"Accept": accept} if accept else {})}
    async with client.http.get(client.urls["audit"] + path, headers=headers) as response:
        return response.status, dict(response.headers), await response.text()


async def test_a_coordinator_reads_their_own_site_by_default(audit: Client, site: SiteUnderTest) -> None:
    reply = await get(audit, f"/reports/summary?{RANGE}", site.tokens["coordinator"])
    assert reply.status == 200, reply.body
    body = reply.body
    assert body.keys() >= SUMMARY_KEYS
    assert (body["site"], body["timezone"], body["from"], body["to"]) == (
        site.site_id,
        "America/Chicago",
        "2026-03-01",
        "2026-03-31",
    )
    assert body["visits"] == 0 and body["volunteer_hours_approved"] == "0.00" and body["suppressed"] is False
    assert set(body["visits_by_purpose"]) == {
        "drop_in",
        "peer_mentoring",
        "recovery_group",
        "sober_event",
        "resource_connecting",
        "education",
        "volunteer_shift",
    }
    assert set(body["visits_by_support_type"]) == {"emotional", "informational", "instrumental", "affiliational"}

    daily = await get(
        audit, f"/reports/daily?site={site.site_id}&from=2026-02-27&to=2026-03-02", site.tokens["coordinator"]
    )
    assert daily.status == 200
    assert [row["date"] for row in daily.body["days"]] == ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]
    assert daily.body["days"][0] == {
        "date": "2026-02-27",
        "visits": 0,
        "unduplicated_members": 0,
        "new_members": 0,
        "volunteer_hours": "0.00",
        "attendance": 0,
    }


@pytest.mark.parametrize("path", ["/reports/summary", "/reports/daily", "/reports/daily.svg"])
async def test_a_coordinator_may_not_read_another_site_or_the_network(
    audit: Client, site: SiteUnderTest, other_site: SiteUnderTest, path: str
) -> None:
    for target in (other_site.site_id, "all"):
        reply = await get(audit, f"{path}?site={target}&{RANGE}", site.tokens["coordinator"])
        assert reply.status == 403
        assert reply.body["code"] == "wrong_site"


@pytest.mark.parametrize("role", ["kiosk", "volunteer"])
async def test_kiosks_and_volunteers_read_no_reports(audit: Client, site: SiteUnderTest, role: str) -> None:
    for path in ("/reports/summary", "/reports/daily", "/reports/daily.svg"):
        reply = await get(audit, f"{path}?{RANGE}", site.tokens[role])
        assert reply.status == 403
        assert reply.body["code"] == "wrong_role"


async def test_no_token_is_401(audit: Client) -> None:
    reply = await get(audit, f"/reports/summary?{RANGE}", None)
    assert reply.status == 401


async def test_an_admin_reads_any_site_and_the_network(
    audit: Client, site: SiteUnderTest, other_site: SiteUnderTest
) -> None:
    mine = await get(audit, f"/reports/summary?site={other_site.site_id}&{RANGE}", site.tokens["admin"])
    assert mine.status == 200 and mine.body["site"] == other_site.site_id
    network = await get(audit, f"/reports/summary?site=all&{RANGE}", site.tokens["admin"])
    assert network.status == 200, network.body
    assert network.body["site"] == "all" and network.body["timezone"] is None
    daily = await get(audit, f"/reports/daily?site=all&{RANGE}", site.tokens["admin"])
    assert daily.status == 200 and len(daily.body["days"]) == 31


async def test_an_unknown_site_is_404_for_an_admin(audit: Client, site: SiteUnderTest) -> None:
    reply = await get(audit, f"/reports/summary?site=no-such-site&{RANGE}", site.tokens["admin"])
    assert reply.status == 404
    assert reply.body["code"] == "site_not_found"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("from=2026-03-31&to=2026-03-01", "range_reversed"),
        ("from=2025-02-28&to=2026-03-01", "range_too_long"),  # 367 days
        ("to=2026-03-01", "invalid_request"),
        ("from=2026-03-01", "invalid_request"),
        ("from=2026-02-30&to=2026-03-01", "invalid_request"),
        ("from=yesterday&to=2026-03-01", "invalid_request"),
        (f"{RANGE}&min_cell=0", "invalid_request"),
        (f"{RANGE}&min_cell=101", "invalid_request"),
        (f"{RANGE}&format=xml", "invalid_request"),
        (f"{RANGE}&colour=blue", "invalid_request"),
        ("from=0001-01-01&to=0001-01-03", "date_out_of_range"),  # would overflow in the site's zone
        ("from=9999-12-29&to=9999-12-31", "date_out_of_range"),
        (f"{RANGE}&site=%00", "invalid_character"),
        (f"{RANGE}&site=Main%20Street", "invalid_request"),
    ],
)
async def test_bad_ranges_and_options_are_422_with_a_code(
    audit: Client, site: SiteUnderTest, query: str, code: str
) -> None:
    reply = await get(audit, f"/reports/summary?{query}", site.tokens["coordinator"])
    assert reply.status == 422, reply.body
    assert reply.body["code"] == code


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("after=9223372036854775808", "invalid_request"),  # one past the largest bigint
        ("type=%00", "invalid_character"),
        ("subject=a%00b", "invalid_character"),
        ("from=9999-12-31T23:59:59-05:00", "date_out_of_range"),
        ("from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", "range_reversed"),
        ("to=2026-03-01T00:00:00", "naive_datetime"),
    ],
)
async def test_bad_audit_log_queries_are_422_with_a_code(
    audit: Client, site: SiteUnderTest, query: str, code: str
) -> None:
    reply = await get(audit, f"/audit?{query}", site.tokens["admin"])
    assert reply.status == 422, reply.body
    assert reply.body["code"] == code


async def test_the_longest_range_is_366_days(audit: Client, site: SiteUnderTest) -> None:
    reply = await get(audit, "/reports/daily?from=2025-03-02&to=2026-03-02", site.tokens["coordinator"])
    assert reply.status == 200
    assert len(reply.body["days"]) == 366


async def test_csv_by_accept_header_or_format(audit: Client, site: SiteUnderTest) -> None:
    token = site.tokens["coordinator"]
    status, headers, text = await raw(audit, f"/reports/summary?{RANGE}", token, accept="text/csv")
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == (
        f'attachment; filename="rcc-summary-{site.site_id}-2026-03-01-2026-03-31.csv"'
    )
    lines = text.splitlines()
    assert lines[:4] == ["metric,value", f"site,{site.site_id}", "timezone,America/Chicago", "from,2026-03-01"]
    assert "visits_by_purpose.drop_in,0" in lines and "volunteer_hours_approved,0.00" in lines

    status, headers, text = await raw(audit, f"/reports/daily?{RANGE}&format=csv", token)
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    lines = text.splitlines()
    assert lines[0] == "date,visits,unduplicated_members,new_members,volunteer_hours,attendance"
    assert lines[1] == "2026-03-01,0,0,0,0.00,0"
    assert len(lines) == 32

    status, headers, _ = await raw(audit, f"/reports/summary?{RANGE}", token, accept="text/csv;q=0.5, application/json")
    assert headers["Content-Type"].startswith("application/json")


async def test_the_daily_chart_is_well_formed_svg(audit: Client, site: SiteUnderTest) -> None:
    for path, accept in ((f"/reports/daily.svg?{RANGE}", None), (f"/reports/daily?{RANGE}", "image/svg+xml")):
        status, headers, text = await raw(audit, path, site.tokens["coordinator"], accept=accept)
        assert status == 200
        assert headers["Content-Type"] == "image/svg+xml; charset=utf-8"
        root = ET.fromstring(text.encode())
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.find("{http://www.w3.org/2000/svg}title") is not None
        assert "http" not in text.replace("http://www.w3.org/2000/svg", "")  # nothing external


async def test_every_report_request_is_an_event_in_the_audit_log(audit: Client, site: SiteUnderTest) -> None:
    token = site.tokens["coordinator"]
    assert (await get(audit, f"/reports/summary?{RANGE}&min_cell=5", token)).status == 200
    assert (await raw(audit, f"/reports/daily?{RANGE}", token, accept="text/csv"))[0] == 200
    assert (await raw(audit, f"/reports/daily.svg?{RANGE}", token))[0] == 200

    async def requests_logged() -> list[dict[str, Any]]:
        reply = await get(audit, f"/audit?type=audit.report_requested&site={site.site_id}", site.tokens["admin"])
        assert reply.status == 200
        return [item["event"] for item in reply.body["items"]]

    async def three() -> bool:
        return len(await requests_logged()) == 3

    await eventually(three)
    events = await requests_logged()
    assert {e["actorid"] for e in events} == {f"token:{site.token_ids['coordinator']}"}
    assert all(e["source"] == "/rcc/audit" and e["dataclassification"] == "internal" for e in events)
    data = sorted((e["data"] for e in events), key=lambda d: d["report"])
    assert [(d["report"], d["format"], d["min_cell"]) for d in data] == [
        ("daily", "csv", None),
        ("daily_chart", "svg", None),
        ("summary", "json", 5),
    ]
    assert all(d["site_id"] == site.site_id and d["from"] == "2026-03-01" and d["to"] == "2026-03-31" for d in data)
    assert all(d["requested_at"] for d in data)


async def test_a_network_request_is_logged_as_all(audit: Client, site: SiteUnderTest) -> None:
    assert (await get(audit, f"/reports/summary?site=all&{RANGE}", site.tokens["admin"])).status == 200

    async def logged() -> bool:
        reply = await get(audit, f"/audit?type=audit.report_requested&site={site.site_id}", site.tokens["admin"])
        return any(item["event"]["data"]["site_id"] == "all" for item in reply.body["items"])

    await eventually(logged)


async def test_a_refused_report_read_is_an_event_in_the_audit_log_too(
    audit: Client, site: SiteUnderTest, other_site: SiteUnderTest
) -> None:
    token = site.tokens["coordinator"]
    tried = [
        ("/reports/summary", other_site.site_id, "summary"),
        ("/reports/daily", "all", "daily"),
        ("/reports/daily.svg", other_site.site_id, "daily_chart"),
    ]
    for path, target, _ in tried:
        assert (await get(audit, f"{path}?site={target}&{RANGE}", token)).status == 403

    async def refusals_logged() -> list[dict[str, Any]]:
        reply = await get(audit, f"/audit?type=audit.report_refused&site={site.site_id}", site.tokens["admin"])
        assert reply.status == 200
        return [item["event"] for item in reply.body["items"]]

    async def three() -> bool:
        return len(await refusals_logged()) == 3

    await eventually(three)
    events = await refusals_logged()
    assert {e["actorid"] for e in events} == {f"token:{site.token_ids['coordinator']}"}
    assert all(e["source"] == "/rcc/audit" and e["siteid"] == site.site_id for e in events)
    assert sorted((e["data"]["route"], e["data"]["site_id"], e["data"]["report"]) for e in events) == sorted(tried)
    assert all((e["data"]["code"], e["data"]["status"]) == ("wrong_site", 403) for e in events)
    # Refused reads are not answered reads: nothing was disclosed, so nothing is logged as requested.
    answered = await get(audit, f"/audit?type=audit.report_requested&site={site.site_id}", site.tokens["admin"])
    assert answered.body["items"] == []


async def test_suppression_over_more_counts_than_the_service_allows_is_422_with_a_code(
    settings: Settings, site: SiteUnderTest
) -> None:
    # A year of a site and the network: 2 scopes x (21 summary counts + 2 x 366 daily ones) = 1,506 counts at least.
    tight = AuditSettings(**settings.model_dump(), report_suppression_max_cells=1_000)
    token = site.tokens["coordinator"]
    year = "from=2025-03-02&to=2026-03-02&min_cell=5"
    async with services(tight, ["audit"]) as audit:
        for path in (f"/reports/summary?{year}", f"/reports/daily?{year}"):
            reply = await get(audit, path, token)
            assert reply.status == 422, reply.body
            assert reply.body["code"] == "suppression_too_large"
            assert reply.body["max_cells"] == 1_000
        assert (await get(audit, "/reports/summary?from=2025-03-02&to=2026-03-02", token)).status == 200
        assert (await get(audit, "/reports/summary?from=2026-03-01&to=2026-03-01&min_cell=5", token)).status == 200
