"""The pages (kiosk, volunteer, coordinator) in headless Chromium against the real services, through the pages app's
proxy; and the proxy itself."""

from __future__ import annotations

import csv
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Page, Route, expect
from sqlalchemy.ext.asyncio import create_async_engine

from services.audit.reports.exports import DAILY_COLUMNS
from services.cli import running
from services.notify.settings import NotifySettings
from services.pages.app import STATIC
from services.registry import SERVICES
from shared import access
from shared.settings import Settings
from tests.support import members
from tests.support.browser import CHROMIUM, PHONE, TABLET, Pages, chromium
from tests.support.pagesetup import shift
from tests.support.smtp import Inbox, free_port, smtp_server
from tests.support.stack import Client, SiteUnderTest, eventually, make_site, services

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
async def center(settings: Settings, inbox: Inbox) -> AsyncIterator[Client]:
    # The pages' port is chosen first, so the links in a message lead through the pages' origin, as deployed.
    pages_port = free_port()
    tuned = NotifySettings(
        **{
            **settings.model_dump(),
            "pages_port": pages_port,
            "rate_limit_per_minute": 0,
            "smtp_url": inbox.url,
            "notify_public_url": f"http://127.0.0.1:{pages_port}/api/notify",
            "send_interval_s": 0.1,
        }
    )
    async with services(tuned, [*SERVICES, "pages"]) as client:
        yield client


@pytest.fixture(scope="module")
async def browser_session(center: Client) -> AsyncIterator[Pages]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; deploy/local.sh ensure_chromium)")
    async with chromium() as browser:
        yield Pages(browser, center.urls["pages"])


@pytest.fixture
async def pages(browser_session: Pages) -> AsyncIterator[Pages]:
    browser_session.errors.clear()
    yield browser_session
    await browser_session.close()
    assert browser_session.errors == [], "the pages raised script errors"


async def audit(center: Client, site: SiteUnderTest, type_: str) -> list[dict]:
    reply = await center.call(
        "audit", "GET", f"/audit?site={site.site_id}&type={type_}&limit=500", token=site.tokens["admin"]
    )
    assert reply.status == 200, reply.body
    return reply.body["items"]


async def visits(center: Client, site: SiteUnderTest) -> list[dict]:
    reply = await center.call("checkin", "GET", "/visits?limit=200", token=site.tokens["coordinator"])
    assert reply.status == 200, reply.body
    return reply.body["items"]


async def register(center: Client, site: SiteUnderTest) -> dict:
    reply = await center.call("checkin", "POST", "/members", token=site.tokens["kiosk"], json={})
    assert reply.status == 201, reply.body
    return reply.body


# The kiosk's offline queue (IndexedDB), as a list of its items in order.
KIOSK_QUEUE = """new Promise((resolve, reject) => {
  const open = indexedDB.open("rcc-kiosk", 1);
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const all = open.result.transaction("queue").objectStore("queue").getAll();
    all.onsuccess = () => resolve(all.result);
  };
})"""


async def check_in_at_kiosk(page: Page, code: str, purpose: str) -> None:
    await page.get_by_role("button", name="Check in", exact=True).click()
    await page.get_by_label("Your 6-character code").fill(code)
    await page.get_by_role("button", name="Next").click()
    await page.get_by_role("button", name=purpose).click()


async def site_at_midday(settings: Settings) -> SiteUnderTest:
    """A site whose local time is around noon now, so "later today" exists whenever the test runs."""
    hours_from_noon = 12 - datetime.now(UTC).hour  # Etc/GMT-N is N hours ahead of UTC
    zone = "Etc/UTC" if hours_from_noon == 0 else f"Etc/GMT{'-' if hours_from_noon > 0 else '+'}{abs(hours_from_noon)}"
    return await make_site(settings, timezone=zone)


async def schedule_group(center: Client, site: SiteUnderTest, name: str, *, hours_ahead: int) -> dict:
    """A weekly group whose first session starts ``hours_ahead`` from now (site-local wall clock)."""
    now = (await center.call("gatherings", "GET", "/upcoming", token=site.tokens["coordinator"])).body["since"]
    local = datetime.fromisoformat(now).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    reply = await center.call(
        "gatherings",
        "POST",
        "/groups",
        token=site.tokens["coordinator"],
        json={
            "name": name,
            "facilitator_member_id": str((await members.register(center, site, known_to=["gatherings"]))[0]),
            "capacity": 12,
            "first_start": (local + timedelta(hours=hours_ahead)).isoformat(),
            "duration_minutes": 90,
            "rrule": "FREQ=WEEKLY",
        },
    )
    assert reply.status == 201, reply.body
    return reply.body


# --- kiosk --------------------------------------------------------------------------------------------------------


async def test_a_newcomer_registers_checks_in_and_out_at_the_kiosk_and_it_reaches_the_audit_log(
    center: Client, site: SiteUnderTest, pages: Pages
) -> None:
    page = await pages.open("/kiosk?idle=8", token=site.tokens["kiosk"])
    await page.get_by_role("button", name="New here?").click()
    await page.get_by_label("What should we call you? (optional)").fill("Sam")
    await page.get_by_role("button", name="Get my code").click()
    await expect(page.locator("#new-code")).to_have_text(re.compile(r"^[A-HJ-NP-Z2-9]{6}$"))
    code = await page.locator("#new-code").inner_text()
    await page.get_by_role("button", name="Check in now").click()
    await page.get_by_role("button", name="Meeting my peer mentor").click()
    await expect(page.get_by_role("heading", name="Welcome, Sam!")).to_be_visible()
    await page.get_by_role("button", name="OK").click()

    await page.get_by_role("button", name="Check out").click()
    await page.get_by_label("Your 6-character code").fill(code.lower())
    await page.get_by_role("button", name="Next").click()
    await expect(page.get_by_role("heading", name="See you soon")).to_be_visible()
    # Left alone, the kiosk goes back to its start screen for the next person.
    await expect(page.get_by_role("heading", name="What would you like to do?")).to_be_visible(timeout=30_000)

    async def both_arrived() -> bool:
        return bool(await audit(center, site, "checkin.visitor_checked_out"))

    await eventually(both_arrived)
    [registered] = await audit(center, site, "checkin.member_registered")
    [checked_in] = await audit(center, site, "checkin.visitor_checked_in")
    [checked_out] = await audit(center, site, "checkin.visitor_checked_out")
    member_id = registered["event"]["data"]["member_id"]
    assert checked_in["event"]["data"]["member_id"] == member_id
    assert checked_in["event"]["data"]["purpose"] == "peer_mentoring"
    assert checked_out["subject"] == checked_in["subject"]
    assert checked_out["event"]["data"]["closed_by"] == "kiosk"
    assert "Sam" not in json.dumps([registered, checked_in, checked_out]), "a nickname reached the audit log"


async def test_the_kiosk_shows_todays_groups_with_seats_and_a_group_check_in_names_its_session(
    center: Client, settings: Settings, pages: Pages
) -> None:
    site = await site_at_midday(settings)
    await schedule_group(center, site, "Evening recovery circle", hours_ahead=2)
    [session] = [
        g
        for g in (await center.call("gatherings", "GET", "/upcoming", token=site.tokens["kiosk"])).body["items"]
        if g["title"] == "Evening recovery circle"
    ]
    member = await register(center, site)
    page = await pages.open("/kiosk?idle=600", token=site.tokens["kiosk"])
    await expect(page.locator("#today-list li")).to_have_text([re.compile(r"Evening recovery circle.*12 seats left")])
    await check_in_at_kiosk(page, member["kiosk_code"], "A group")
    await page.get_by_role("button", name=re.compile("Evening recovery circle")).click()
    await expect(page.get_by_role("heading", name="Welcome!")).to_be_visible()
    [visit] = await visits(center, site)
    assert (visit["purpose"], visit["ref"]) == ("recovery_group", session["session_id"])


async def test_a_member_checks_in_with_the_keyboard_alone(center: Client, site: SiteUnderTest, pages: Pages) -> None:
    member = await register(center, site)
    page = await pages.open("/kiosk?idle=600", token=site.tokens["kiosk"])
    await expect(page.get_by_role("heading", name="What would you like to do?")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Check in", exact=True)).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Your 6-character code")).to_be_focused()
    await page.keyboard.type(member["kiosk_code"])
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="What brings you in today?")).to_be_focused()
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Meeting my peer mentor")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Welcome!")).to_be_visible()
    [visit] = await visits(center, site)
    assert (visit["member_id"], visit["purpose"]) == (member["member_id"], "peer_mentoring")


async def test_an_offline_check_in_is_saved_and_synced_exactly_once_when_the_network_returns(
    center: Client, site: SiteUnderTest, pages: Pages
) -> None:
    member = await register(center, site)
    page = await pages.open("/kiosk?sync=1&idle=600", token=site.tokens["kiosk"])
    await expect(page.get_by_role("heading", name="What would you like to do?")).to_be_visible()

    await page.context.set_offline(True)
    await check_in_at_kiosk(page, member["kiosk_code"], "Just dropping in")
    # The visitor is welcomed as ever; the kiosk says in words what waits.
    await expect(page.get_by_role("heading", name="Welcome!")).to_be_visible()
    await expect(page.locator("#sync-state")).to_have_text("1 check-in saved — it will be sent when we're back online")
    [saved] = await page.evaluate(KIOSK_QUEUE)
    assert saved["body"] == {
        "kiosk_code": member["kiosk_code"],
        "purpose": "drop_in",
        "occurred_at": saved["body"]["occurred_at"],
    }
    assert uuid.UUID(saved["key"])
    assert await visits(center, site) == []

    await page.context.set_offline(False)
    await expect(page.locator("#sync-state")).to_have_text("All saved check-ins are sent.", timeout=20_000)
    assert await page.evaluate(KIOSK_QUEUE) == []
    [visit] = await visits(center, site)
    assert visit["member_id"] == member["member_id"]
    assert visit["purpose"] == "drop_in"

    async def arrived() -> bool:
        return bool(await audit(center, site, "checkin.visitor_checked_in"))

    await eventually(arrived)
    [entry] = await audit(center, site, "checkin.visitor_checked_in")
    assert entry["subject"] == visit["visit_id"]


async def test_a_check_in_whose_answer_was_lost_is_resent_with_its_key_and_counted_once(
    center: Client, site: SiteUnderTest, pages: Pages
) -> None:
    """The request reached the server but its answer never came back: the kiosk cannot tell that from a request that
    was lost, so it keeps it and sends it again with the same Idempotency-Key; the server answers with the first
    result."""
    member = await register(center, site)
    page = await pages.open("/kiosk?sync=1&idle=600", token=site.tokens["kiosk"])
    await expect(page.get_by_role("heading", name="What would you like to do?")).to_be_visible()
    keys: list[str] = []
    replayed: list[str | None] = []

    async def lose_the_first_answer(route: Route) -> None:
        keys.append(route.request.headers["idempotency-key"])
        answer = await route.fetch()
        if len(keys) == 1:
            assert answer.status == 201
            await route.abort("connectionreset")
        else:
            replayed.append(answer.headers.get("idempotent-replayed"))
            await route.fulfill(response=answer)

    await page.route("**/api/checkin/visits", lose_the_first_answer)
    await check_in_at_kiosk(page, member["kiosk_code"], "A class")
    await expect(page.get_by_role("heading", name="Welcome!")).to_be_visible()
    await expect(page.locator("#sync-state")).to_have_text("All saved check-ins are sent.", timeout=20_000)

    assert len(keys) == 2 and keys[0] == keys[1], keys
    assert replayed == ["true"]
    [visit] = await visits(center, site)
    assert visit["member_id"] == member["member_id"] and visit["purpose"] == "education"


# --- volunteer ----------------------------------------------------------------------------------------------------


async def volunteer_with_role(center: Client, settings: Settings, site: SiteUnderTest) -> tuple[str, str, str]:
    """A role, a volunteer holding it (with a token of their own) → (role_id, member_id, token)."""
    coordinator = site.tokens["coordinator"]
    role_id = f"desk_{uuid.uuid4().hex[:6]}"
    reply = await center.call(
        "volunteering",
        "POST",
        "/roles",
        token=coordinator,
        json={"role_id": role_id, "title": "Front desk", "required_trainings": [], "supervisor": False},
    )
    assert reply.status == 201, reply.body
    [member_id] = await members.register(center, site, known_to=["volunteering"])
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            _, token = await access.issue_token(
                conn, role=access.Role.VOLUNTEER, site_id=site.site_id, member_id=member_id
            )
    finally:
        await engine.dispose()
    reply = await center.call(
        "volunteering",
        "PUT",
        f"/volunteers/{member_id}",
        token=coordinator,
        json={"roles": [role_id], "monthly_hours_goal": 10},
    )
    assert reply.status == 200, reply.body
    return role_id, str(member_id), token


async def test_a_volunteer_takes_and_drops_a_shift_on_their_phone(
    center: Client, settings: Settings, site: SiteUnderTest, pages: Pages
) -> None:
    role_id, member_id, token = await volunteer_with_role(center, settings, site)
    shift_id = await shift(center, site, role_id, days_ahead=3)
    page = await pages.open("/volunteer", token=token, viewport=PHONE)
    page.on("dialog", lambda dialog: dialog.accept())

    offer = page.locator(f"#open-shifts li[data-shift='{shift_id}']")
    await offer.get_by_role("button", name="Sign up").click()
    await expect(page.locator("#status")).to_have_text("You are signed up. Thank you!")
    await expect(page.locator(f"#my-shifts li[data-shift='{shift_id}']")).to_contain_text("Confirmed")
    reply = await center.call("volunteering", "GET", f"/shifts/{shift_id}/signups", token=site.tokens["coordinator"])
    assert [(s["member_id"], s["status"]) for s in reply.body["items"]] == [(member_id, "confirmed")]

    await page.locator(f"#my-shifts li[data-shift='{shift_id}']").get_by_role("button", name="Drop").click()
    await expect(page.locator("#status")).to_have_text("Dropped.")
    await expect(page.locator(f"#my-shifts li[data-shift='{shift_id}']")).to_have_count(0)
    await expect(offer.get_by_role("button", name="Sign up")).to_be_visible()
    reply = await center.call("volunteering", "GET", f"/shifts/{shift_id}", token=site.tokens["coordinator"])
    assert reply.body["confirmed"] == 0

    await page.get_by_role("button", name="Make my calendar link").click()
    link = page.locator("#calendar-link")
    await expect(link).to_have_attribute("href", re.compile(r"^http://.+/api/volunteering/calendar/[^/]+\.ics$"))
    feed = await link.get_attribute("href")
    assert feed and feed.startswith(center.urls["pages"])
    async with center.http.get(feed) as response:
        assert response.status == 200 and response.content_type == "text/calendar"

    await page.get_by_role("button", name="Forget this device").click()
    await expect(page.get_by_label("Your volunteer token (from your coordinator)")).to_be_visible()
    assert await page.evaluate("Object.keys(localStorage)") == []


async def test_a_volunteer_adds_an_email_confirms_it_from_the_message_and_sets_what_to_receive(
    center: Client, settings: Settings, site: SiteUnderTest, pages: Pages, inbox: Inbox
) -> None:
    _, member_id, token = await volunteer_with_role(center, settings, site)
    await members.until_known(settings.database_url, [uuid.UUID(member_id)], ["notify"])
    address = f"volunteer-{uuid.uuid4().hex[:10]}@mail.example"
    page = await pages.open("/volunteer", token=token, viewport=PHONE)
    page.on("dialog", lambda dialog: dialog.accept())
    await expect(page.locator("#contacts li")).to_have_text(["No address yet: add one below to get messages."])
    await expect(page.locator("#notifications li")).to_have_text(["No messages yet."])

    await page.get_by_label("Add an e-mail address").fill(address)
    await page.get_by_label("Language of the messages").select_option("es")
    await page.get_by_role("button", name="Add e-mail").click()
    await expect(page.locator("#status")).to_have_text(f"Check your inbox to confirm: we sent a link to {address}.")
    card = page.locator("#contacts li.contact")
    await expect(card).to_contain_text(address)
    await expect(card).to_contain_text("Check your inbox to confirm")

    async def delivered() -> bool:
        return any(address in m.rcpt_tos for m in inbox.messages)

    await eventually(delivered)
    [mail] = [m for m in inbox.messages if address in m.rcpt_tos]
    assert mail.message["Subject"].startswith("Confirme su correo")  # the language chosen on the page
    text_part = mail.message.get_body(preferencelist=("plain",))
    assert text_part is not None
    [link] = re.findall(r"http\S+/contacts/verify\?token=\S+", text_part.get_content())
    assert link.startswith(center.urls["pages"] + "/api/notify/"), link

    confirm = await pages.browser.new_page()
    await confirm.goto(link)
    await confirm.get_by_role("button", name="Confirm / Confirmar").click()
    await expect(confirm.locator("body")).to_contain_text("verified_at")
    await confirm.close()

    await page.reload()  # the token saved on the phone starts the page again
    await expect(card).to_contain_text("Confirmed")
    reach = await center.call("notify", "GET", f"/members/{member_id}/reachability", token=site.tokens["coordinator"])
    assert reach.body["reachable"] is True

    await card.get_by_label("From").fill("22:00")
    await card.get_by_label("to", exact=True).fill("07:00")
    await card.get_by_label("Reminders before a shift or event").uncheck()
    await card.get_by_role("button", name="Save").click()
    await expect(page.locator("#status")).to_have_text("Saved.")
    [contact] = (await center.call("notify", "GET", f"/members/{member_id}/contacts", token=token)).body["items"]
    assert contact["locale"] == "es"
    assert contact["quiet_hours"] == {"start": "22:00:00", "end": "07:00:00"}
    assert contact["kinds"] == ["confirmations", "changes", "approvals"]

    coordinator = await pages.open("/coordinator", token=site.tokens["coordinator"])
    await coordinator.get_by_label("Member id").fill(member_id)
    await coordinator.get_by_role("button", name="Check", exact=True).click()
    await expect(coordinator.locator("#reach-answer")).to_contain_text("Reachable by e-mail")
    assert address not in await coordinator.content(), "a coordinator's page showed an address"

    await card.get_by_role("button", name="Stop using this address").click()
    await expect(page.locator("#status")).to_have_text("Done: we deleted that address and send nothing more to it.")
    await expect(page.locator("#contacts li")).to_have_text(["No address yet: add one below to get messages."])
    await coordinator.get_by_role("button", name="Check", exact=True).click()
    await expect(coordinator.locator("#reach-answer")).to_contain_text("Not reachable")


# --- coordinator --------------------------------------------------------------------------------------------------


async def test_a_coordinator_approves_hours_and_downloads_the_monthly_csv(
    center: Client, settings: Settings, site: SiteUnderTest, pages: Pages, tmp_path: Path
) -> None:
    role_id, member_id, _ = await volunteer_with_role(center, settings, site)
    shift_id = await shift(center, site, role_id, days_ahead=2)
    reply = await center.call(
        "volunteering",
        "POST",
        "/hours",
        token=site.tokens["coordinator"],
        json={
            "member_id": member_id,
            "shift_id": shift_id,
            "minutes": 150,
            "reason": "covered the desk",
        },
    )
    assert reply.status == 201, reply.body
    hours_id = reply.body["hours_id"]
    member = await register(center, site)
    reply = await center.call(
        "checkin",
        "POST",
        "/visits",
        token=site.tokens["kiosk"],
        json={"kiosk_code": member["kiosk_code"], "purpose": "drop_in"},
    )
    assert reply.status == 201

    page = await pages.open("/coordinator", token=site.tokens["coordinator"])
    await expect(page.locator("#present")).to_have_text("1")
    await expect(page.locator("#gaps li")).to_contain_text(["Front desk"])
    pending = page.locator(f"#pending-hours li[data-hours='{hours_id}']")
    await expect(pending).to_contain_text("2 h 30 min")
    await pending.get_by_role("button", name="Approve").click()
    await expect(page.locator("#status")).to_have_text("Hours approved.")
    await expect(pending).to_have_count(0)
    reply = await center.call("volunteering", "GET", f"/hours/{hours_id}", token=site.tokens["coordinator"])
    assert reply.body["status"] == "approved"

    await expect(page.locator("#chart")).to_be_visible()
    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download CSV").click()
    download = await download_info.value
    assert download.suggested_filename.startswith(f"rcc-daily-{site.site_id}-")
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    rows = list(csv.reader(saved.read_text().splitlines()))
    assert tuple(rows[0]) == DAILY_COLUMNS
    assert 28 <= len(rows) - 1 <= 31  # one row per day of the month
    assert sum(int(row[1] or 0) for row in rows[1:]) == 1  # the visit above


# --- phone and tablet ---------------------------------------------------------------------------------------------


async def test_every_page_fits_phone_and_tablet_screens(
    center: Client, settings: Settings, pages: Pages, tmp_path: Path
) -> None:
    """No sideways scrolling at either size (the README's screenshots: tests/e2e/test_pages_screens.py)."""
    site = await site_at_midday(settings)
    await schedule_group(center, site, "Recovery circle", hours_ahead=1)
    await schedule_group(center, site, "Family support group", hours_ahead=3)
    role_id, member_id, volunteer_token = await volunteer_with_role(center, settings, site)
    for _ in range(3):
        member = await register(center, site)
        await center.call(
            "checkin",
            "POST",
            "/visits",
            token=site.tokens["kiosk"],
            json={"kiosk_code": member["kiosk_code"], "purpose": "drop_in"},
        )
    for days in (1, 2, 4):
        await shift(center, site, role_id, days_ahead=days)
    shift_id = await shift(center, site, role_id, days_ahead=5)
    await center.call("volunteering", "POST", f"/shifts/{shift_id}/signups", token=volunteer_token, json={})
    await center.call(
        "volunteering",
        "POST",
        "/hours",
        token=site.tokens["coordinator"],
        json={
            "member_id": member_id,
            "shift_id": shift_id,
            "minutes": 180,
            "reason": "set up the payday social",
        },
    )
    out = tmp_path
    tokens = {"kiosk": site.tokens["kiosk"], "volunteer": volunteer_token, "coordinator": site.tokens["coordinator"]}
    for name, token in tokens.items():
        for size, viewport in (("phone", PHONE), ("tablet", TABLET)):
            page = await pages.open(f"/{name}", token=token, viewport=viewport)
            await expect(page.locator("main h2:visible").first).to_be_visible()
            await page.wait_for_load_state("networkidle")
            unlabelled = await page.evaluate(
                "[...document.querySelectorAll('input')].filter((input) => !input.labels.length).map((i) => i.id)"
            )
            assert unlabelled == [], f"/{name} has inputs without a label"
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"/{name} scrolls sideways by {overflow}px on a {size}"
            await page.mouse.move(0, 0)  # no hover highlight left from signing in
            path = out / f"{name}-{size}.png"
            await page.screenshot(path=str(path))
            assert path.stat().st_size > 1000
            await page.context.close()


# --- the proxy ----------------------------------------------------------------------------------------------------


async def test_the_proxy_passes_status_problems_and_idempotency_through(center: Client, site: SiteUnderTest) -> None:
    anonymous = await center.call(
        "pages", "POST", "/api/checkin/visits", json={"anonymous": True, "purpose": "drop_in"}
    )
    assert anonymous.status == 401
    assert anonymous.headers["Content-Type"].startswith("application/problem+json")
    assert anonymous.body["code"] == "missing_token"
    spanish = await center.call(
        "pages", "POST", "/api/checkin/visits", json={}, headers={"Accept-Language": "es-ES,es;q=0.9"}
    )
    assert (spanish.status, spanish.body["code"]) == (401, "missing_token")
    assert spanish.headers["Content-Language"] == "es" and spanish.body["title"] != anonymous.body["title"]

    key = str(uuid.uuid4())
    first = await center.call(
        "pages", "POST", "/api/checkin/members", token=site.tokens["kiosk"], json={}, headers={"Idempotency-Key": key}
    )
    again = await center.call(
        "pages", "POST", "/api/checkin/members", token=site.tokens["kiosk"], json={}, headers={"Idempotency-Key": key}
    )
    assert (first.status, again.status) == (201, 201)
    assert again.body == first.body
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"

    body = {"kiosk_code": first.body["kiosk_code"], "purpose": "drop_in"}
    assert (
        await center.call("pages", "POST", "/api/checkin/visits", token=site.tokens["kiosk"], json=body)
    ).status == 201
    twice = await center.call("pages", "POST", "/api/checkin/visits", token=site.tokens["kiosk"], json=body)
    assert twice.status == 409 and twice.body["code"] == "already_checked_in"

    today = datetime.now(UTC).date().isoformat()
    async with center.http.get(
        f"{center.urls['pages']}/api/audit/reports/daily?from={today}&to={today}",
        headers={"Authorization": f"Bearer {site.tokens['coordinator']}", "Accept": "text/csv"},
    ) as response:
        assert response.status == 200
        assert response.content_type == "text/csv"
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert (await response.text()).startswith(",".join(DAILY_COLUMNS))

    unknown = await center.call("pages", "GET", "/api/payroll/anything")
    assert unknown.status == 404 and unknown.body["code"] == "unknown_service"


async def test_the_proxy_answers_502_problem_when_a_service_is_down(settings: Settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    down = settings.model_copy(update={"pages_port": 0, "checkin_url": f"http://127.0.0.1:{closed_port}"})
    async with (
        running(down, ["pages"]) as urls,
        aiohttp.ClientSession() as http,
        http.post(f"{urls['pages']}/api/checkin/visits", json={}) as response,
    ):
        assert response.status == 502
        assert response.content_type == "application/problem+json"
        problem = await response.json(content_type=None)
    assert problem["code"] == "upstream_unavailable" and problem["service"] == "checkin"


async def test_the_pages_are_served_with_everything_from_this_origin(center: Client) -> None:
    for path in ("/", "/kiosk", "/volunteer", "/coordinator"):
        async with center.http.get(center.urls["pages"] + path) as response:
            assert response.status == 200, path
            assert response.content_type == "text/html"
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
            html = await response.text()
        assert '<html lang="en">' in html
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
            async with center.http.get(center.urls["pages"] + asset) as response:
                assert response.status == 200, asset
    for file in STATIC.rglob("*"):
        if file.is_dir() or file.suffix == ".png":
            continue
        assert not re.search(r"https?://", file.read_text()), f"{file.name} loads something from elsewhere"
