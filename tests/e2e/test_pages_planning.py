"""Volunteers reach full shifts and coordinators plan, in headless Chromium against the real services: a volunteer
joins and leaves a waitlist; a coordinator sees the week's gaps and full shifts, drops a confirmed volunteer from a
roster and sees who moves up, by the name the volunteers gave; the report's figures keep label and value together."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from services.registry import SERVICES
from shared.settings import Settings
from tests.support import members
from tests.support.browser import CHROMIUM, PHONE, Pages, chromium
from tests.support.pagesetup import role, shift, sign_up, volunteer
from tests.support.stack import Client, SiteUnderTest, services

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def center(settings: Settings) -> AsyncIterator[Client]:
    async with services(settings, [*SERVICES, "pages"]) as client:
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
    browser_session.console.clear()
    yield browser_session
    await browser_session.close()
    assert browser_session.errors == [], "the pages raised script errors"
    assert browser_session.console == [], "the pages logged errors"


async def signups(center: Client, site: SiteUnderTest, shift_id: str) -> list[tuple[str, str, int | None]]:
    reply = await center.call("volunteering", "GET", f"/shifts/{shift_id}/signups", token=site.tokens["coordinator"])
    assert reply.status == 200, reply.body
    active = [s for s in reply.body["items"] if s["status"] in ("confirmed", "waitlisted")]
    return [(s["member_id"], s["status"], s["position"]) for s in active]


async def test_a_volunteer_joins_and_leaves_the_waitlist_of_a_full_shift(
    center: Client, settings: Settings, site: SiteUnderTest, pages: Pages
) -> None:
    role_id = await role(center, site)
    member_id, token = await volunteer(center, settings, site, role_id)
    first, first_token = await volunteer(center, settings, site, role_id)
    waiting, waiting_token = await volunteer(center, settings, site, role_id)
    full = await shift(center, site, role_id, days_ahead=3, capacity=1)
    await sign_up(center, full, first_token)
    await sign_up(center, full, waiting_token)

    page = await pages.open("/volunteer", token=token, viewport=PHONE)
    page.on("dialog", lambda dialog: dialog.accept())
    card = page.locator(f"#open-shifts li[data-shift='{full}']")
    await expect(card).to_contain_text("Full · 1 waiting")
    await card.get_by_role("button", name="Join the waitlist").click()
    await expect(page.locator("#status")).to_have_text("You are on the waitlist (#2).")
    await expect(card).to_contain_text("Full · 2 waiting")
    await expect(card).to_contain_text("You are #2 on the waitlist")
    await expect(page.locator(f"#my-shifts li[data-shift='{full}']")).to_contain_text("Waitlist #2")
    assert await signups(center, site, full) == [
        (first, "confirmed", None),
        (waiting, "waitlisted", 1),
        (member_id, "waitlisted", 2),
    ]

    # The one ahead leaves: this volunteer moves up to #1.
    reply = await center.call("volunteering", "DELETE", f"/shifts/{full}/signups/{waiting}", token=waiting_token)
    assert reply.status == 200, reply.body
    await page.reload()
    await expect(card).to_contain_text("You are #1 on the waitlist")

    await card.get_by_role("button", name="Leave the waitlist").click()
    await expect(page.locator("#status")).to_have_text("You left the waitlist.")
    await expect(card.get_by_role("button", name="Join the waitlist")).to_be_visible()
    await expect(card).to_contain_text("Full · 0 waiting")
    await expect(page.locator(f"#my-shifts li[data-shift='{full}']")).to_have_count(0)
    assert await signups(center, site, full) == [(first, "confirmed", None)]


async def test_a_coordinator_drops_a_confirmed_volunteer_and_sees_who_moves_up_by_name(
    center: Client, settings: Settings, site: SiteUnderTest, pages: Pages
) -> None:
    role_id = await role(center, site, "Kitchen")
    confirmed, confirmed_token = await volunteer(center, settings, site, role_id)
    waiting, waiting_token = await volunteer(center, settings, site, role_id)
    _, another_token = await volunteer(center, settings, site, role_id)
    full = await shift(center, site, role_id, days_ahead=1, capacity=1)
    gap = await shift(center, site, role_id, days_ahead=1, capacity=3)
    await sign_up(center, full, confirmed_token)
    await sign_up(center, full, waiting_token)
    await sign_up(center, gap, another_token)

    # The waiting volunteer gives a name on their phone; the confirmed one gives none.
    phone = await pages.open("/volunteer", token=waiting_token, viewport=PHONE)
    await phone.get_by_label("Name the coordinators see (optional)").fill("Rosa Díaz")
    await phone.get_by_role("button", name="Save my name").click()
    await expect(phone.locator("#status")).to_have_text("Saved. Coordinators see you as Rosa Díaz.")
    await phone.reload()
    await expect(phone.get_by_label("Name the coordinators see (optional)")).to_have_value("Rosa Díaz")

    page = await pages.open("/coordinator", token=site.tokens["coordinator"])
    page.on("dialog", lambda dialog: dialog.accept())
    week = page.locator("#gaps")
    await expect(week.locator("li.day")).to_have_count(7)
    if await week.locator(f"li[data-shift='{full}']").count() == 0:  # today is the week's last day
        await page.get_by_role("button", name="Week after").click()
    await expect(week.locator(f"li[data-shift='{full}']")).to_have_attribute("data-state", "full")
    await expect(week.locator(f"li[data-shift='{full}']")).to_contain_text("1 waiting")
    await expect(week.locator(f"li[data-shift='{gap}']")).to_have_attribute("data-state", "open")
    await expect(week.locator(f"li[data-shift='{gap}']")).to_contain_text("2 open")

    await week.locator(f"li[data-shift='{full}']").get_by_role("button", name="Roster").click()
    await expect(page.locator("#roster-title")).to_be_focused()
    await expect(page.locator("#roster-title")).to_contain_text("Roster: Kitchen")
    fallback = f"Volunteer {confirmed[:8]}"
    await expect(page.locator("#roster-confirmed li")).to_have_text([re.compile(f"^{fallback}")])
    await expect(page.locator("#roster-waiting li")).to_have_text([re.compile(r"^#1\s*Rosa Díaz")])

    await page.locator("#roster-confirmed li").get_by_role("button", name="Drop").click()
    await expect(page.locator("#status")).to_have_text(
        f"{fallback} is off the roster. Moved up from the waitlist: Rosa Díaz."
    )
    await expect(page.locator("#roster-confirmed li")).to_have_text([re.compile("^Rosa Díaz")])
    await expect(page.locator("#roster-waiting li")).to_have_text(["Nobody is waiting."])
    await expect(week.locator(f"li[data-shift='{full}']")).not_to_contain_text("waiting")
    assert await signups(center, site, full) == [(waiting, "confirmed", None)]

    # The volunteer removes the name: the board shows a number again (after its next look-up).
    await phone.get_by_role("button", name="Remove my name").click()
    await expect(phone.locator("#status")).to_have_text("Removed. Coordinators see you by a number.")
    await page.reload()
    await expect(week.locator("li.day")).to_have_count(7)
    if await week.locator(f"li[data-shift='{full}']").count() == 0:
        await page.get_by_role("button", name="Week after").click()
    await week.locator(f"li[data-shift='{full}']").get_by_role("button", name="Roster").click()
    await expect(page.locator("#roster-confirmed li")).to_have_text([re.compile(f"^Volunteer {waiting[:8]}")])


async def test_a_coordinator_seats_the_first_one_waiting_by_adding_a_seat(
    center: Client, settings: Settings, site: SiteUnderTest, pages: Pages
) -> None:
    role_id = await role(center, site)
    _, confirmed_token = await volunteer(center, settings, site, role_id)
    first, first_token = await volunteer(center, settings, site, role_id)
    second, second_token = await volunteer(center, settings, site, role_id)
    full = await shift(center, site, role_id, days_ahead=1, capacity=1)
    for token in (confirmed_token, first_token, second_token):
        await sign_up(center, full, token)

    page = await pages.open("/coordinator", token=site.tokens["coordinator"])
    await expect(page.locator("#gaps li.day")).to_have_count(7)
    if await page.locator(f"#gaps li[data-shift='{full}']").count() == 0:  # today is the week's last day
        await page.get_by_role("button", name="Week after").click()
    await page.locator(f"#gaps li[data-shift='{full}']").get_by_role("button", name="Roster").click()
    await expect(page.locator("#roster-waiting li")).to_have_count(2)
    await page.get_by_role("button", name="Add a seat (the first one waiting gets it)").click()
    await expect(page.locator("#status")).to_have_text(
        f"One more seat: Volunteer {first[:8]} moved up from the waitlist."
    )
    await expect(page.locator("#roster-confirmed li")).to_have_count(2)
    await expect(page.locator("#roster-waiting li")).to_have_text([re.compile(f"^#1\\s*Volunteer {second[:8]}")])
    reply = await center.call("volunteering", "GET", f"/shifts/{full}", token=site.tokens["coordinator"])
    assert (reply.body["capacity"], reply.body["confirmed"]) == (2, 2)


@pytest.mark.parametrize("width", [360, 1280])
async def test_each_figure_of_the_monthly_report_keeps_its_label_and_value_in_one_cell(
    center: Client, site: SiteUnderTest, pages: Pages, width: int
) -> None:
    page = await pages.open("/coordinator", token=site.tokens["coordinator"], viewport={"width": width, "height": 900})
    cells = page.locator("#summary .figure-cell")
    await expect(cells).to_have_count(8)
    boxes = await cells.evaluate_all(
        """cells => cells.map((cell) => ({
             cell: cell.getBoundingClientRect().toJSON(),
             label: cell.querySelector("dt").getBoundingClientRect().toJSON(),
             value: cell.querySelector("dd").getBoundingClientRect().toJSON(),
             children: cell.children.length,
           }))"""
    )
    for box in boxes:
        cell, label, value = box["cell"], box["label"], box["value"]
        assert box["children"] == 2
        for part in (label, value):
            assert cell["left"] <= part["left"] and part["right"] <= cell["right"] + 0.5, box
            assert cell["top"] <= part["top"] and part["bottom"] <= cell["bottom"] + 0.5, box
        assert abs(label["left"] - value["left"]) < 1, f"label and value are not in one column: {box}"
        assert value["top"] >= label["bottom"] - 0.5, f"the value is not under its label: {box}"
    # Cells of one row share their top; no cell overlaps another.
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = (
                a["cell"]["right"] <= b["cell"]["left"] + 0.5
                or b["cell"]["right"] <= a["cell"]["left"] + 0.5
                or a["cell"]["bottom"] <= b["cell"]["top"] + 0.5
                or b["cell"]["bottom"] <= a["cell"]["top"] + 0.5
            )
            assert apart, (a, b)
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the board scrolls sideways by {overflow}px at {width}px"


async def test_a_coordinator_cancels_a_registration_on_an_events_roster_and_the_first_waiting_is_seated(
    center: Client, site: SiteUnderTest, pages: Pages
) -> None:
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    reply = await center.call(
        "gatherings",
        "POST",
        "/events",
        token=site.tokens["coordinator"],
        json={
            "title": "Sober bowling night",
            "kind": "sports",
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=2)).isoformat(),
            "capacity": 2,
        },
    )
    assert reply.status == 201, reply.body
    event_id = reply.body["event_id"]
    seated, first, second = [str(m) for m in await members.register(center, site, 3, known_to=["gatherings"])]
    for member_id, adults in ((seated, 2), (first, 1), (second, 1)):
        reply = await center.call(
            "gatherings",
            "POST",
            f"/events/{event_id}/registrations",
            token=site.tokens["coordinator"],
            json={"member_id": member_id, "adults": adults},
        )
        assert reply.status == 201, reply.body

    page = await pages.open("/coordinator", token=site.tokens["coordinator"])
    page.on("dialog", lambda dialog: dialog.accept())
    await page.locator(f"#gatherings li[data-gathering='{event_id}']").get_by_role("button", name="Roster").click()
    await expect(page.locator("#roster-title")).to_contain_text("Roster: Sober bowling night")
    await expect(page.locator("#roster-summary")).to_have_text("1 of 2 seats taken · 2 waiting")
    await expect(page.locator("#roster-confirmed li")).to_have_text(
        [re.compile(f"^Volunteer {seated[:8]}\\s*2 adults")]
    )
    await expect(page.locator("#roster-waiting li")).to_have_text(
        [re.compile(f"^#1\\s*Volunteer {first[:8]}"), re.compile(f"^#2\\s*Volunteer {second[:8]}")]
    )

    await page.locator("#roster-confirmed li").get_by_role("button", name="Cancel registration").click()
    await expect(page.locator("#status")).to_have_text(
        f"Volunteer {seated[:8]} is off the roster. "
        f"Moved up from the waitlist: Volunteer {first[:8]}, Volunteer {second[:8]}."
    )
    await expect(page.locator("#roster-waiting li")).to_have_text(["Nobody is waiting."])
    reply = await center.call(
        "gatherings", "GET", f"/events/{event_id}/registrations", token=site.tokens["coordinator"]
    )
    assert [r["member_id"] for r in reply.body["confirmed"]] == [first, second]
