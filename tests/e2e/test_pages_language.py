"""The volunteer, coordinator and start pages in English and Spanish, in headless Chromium against the real services:
the browser's language chooses and a small switch changes it, nothing is left in English, axe finds no serious or
critical accessibility violation in either language, and a failure is told for what it is."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, Route, expect

from services.pages.app import STATIC
from services.registry import SERVICES
from shared.settings import Settings
from tests.support.axe import violations
from tests.support.browser import CHROMIUM, PHONE, TABLET, Pages, chromium
from tests.support.pagesetup import a_busy_site
from tests.support.stack import Client, SiteUnderTest, eventually, services

pytestmark = pytest.mark.e2e

# English that Intl would write for a date or time: a page in Spanish must not show it.
ENGLISH_DATES = re.compile(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|AM|PM)\b")

VISIBLE_TEXTS = """() => {
  const texts = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.textContent.trim() && node.parentElement.checkVisibility()) texts.push(node.textContent.trim());
  }
  for (const el of document.querySelectorAll("[placeholder], [aria-label], img[alt]")) {
    if (!el.checkVisibility()) continue;
    for (const name of ["placeholder", "aria-label", "alt"]) {
      if (el.getAttribute(name)) texts.push(el.getAttribute(name));
    }
  }
  return texts;
}"""


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


def english_only(page: str) -> list[re.Pattern[str]]:
    """Each English text of the page whose Spanish differs, as a pattern its placeholders may fill."""
    catalogue = json.loads((STATIC / "i18n" / f"{page}.es.json").read_text())
    return [
        re.compile(re.sub(r"\\\{\w+\\\}", ".+?", re.escape(english)))
        for english, spanish in catalogue.items()
        if english != spanish
    ]


async def english_left(page: Page, name: str) -> list[str]:
    patterns = english_only(name)
    texts: list[str] = await page.evaluate(VISIBLE_TEXTS)
    return [text for text in texts if any(p.fullmatch(text) for p in patterns) or ENGLISH_DATES.search(text)]


async def sign_in(page: Page, token: str) -> None:
    await page.locator("#token").fill(token)
    await page.locator("#token-form button[type=submit]").click()


@pytest.mark.parametrize("locale", ["en-US", "es-ES"])
async def test_each_page_speaks_the_browsers_language_with_no_serious_accessibility_violation(
    center: Client, settings: Settings, site: SiteUnderTest, pages: Pages, locale: str
) -> None:
    volunteer = await a_busy_site(center, settings, site)
    language = locale[:2]
    tokens = {"index": None, "volunteer": volunteer, "coordinator": site.tokens["coordinator"]}
    for name, token in tokens.items():
        page = await pages.open("/" if name == "index" else f"/{name}", token=token, locale=locale)
        await expect(page.locator("html")).to_have_attribute("lang", language)
        if name == "volunteer":
            await expect(page.locator("#open-shifts li[data-shift]")).to_have_count(3)
            await expect(page.locator("#my-shifts li[data-shift]")).to_have_count(1)
        if name == "coordinator":
            await expect(page.locator("#pending-hours li[data-hours]")).to_have_count(1)
            await expect(page.locator("#summary .figure-cell")).to_have_count(8)
        await page.wait_for_load_state("networkidle")
        await expect(page.locator("#message")).to_be_hidden()
        if language == "es":
            assert await english_left(page, name) == [], f"/{name} in Spanish shows English"
        assert await violations(page) == [], f"/{name} ({locale}) has serious accessibility violations"
    assert pages.console == [], "the pages logged errors"


async def test_the_volunteer_page_in_a_spanish_browser_shows_spanish_dates_and_money(
    center: Client, settings: Settings, site: SiteUnderTest, pages: Pages
) -> None:
    """The issue's fault: in a Spanish-locale Chromium the volunteer page failed in every try. Here it loads, and its
    dates and times are Intl's Spanish in the site's time zone."""
    token = await a_busy_site(center, settings, site)
    page = await pages.open("/volunteer", token=token, viewport=PHONE, locale="es-ES")
    await expect(page.get_by_role("heading", name="Mi voluntariado")).to_be_visible()
    mine = page.locator("#my-shifts li[data-shift]")
    await expect(mine).to_contain_text("Confirmado")
    shown = await mine.locator("span").first.inner_text()
    [shift] = (await pages_api(center, token, "/me/shifts?past_limit=0"))["upcoming"]
    expected = await page.evaluate(
        """([iso, zone]) => new Intl.DateTimeFormat("es", { timeZone: zone, weekday: "short", month: "short",
             day: "numeric", hour: "numeric", minute: "2-digit" }).format(new Date(iso))""",
        [shift["starts_at"], "America/Chicago"],
    )
    assert shown.startswith(expected), (shown, expected)
    await expect(page.locator("#message")).to_be_hidden()
    await expect(page.locator("#hours-total")).to_have_text("Pendientes de aprobación: 2 h 30 min")


async def pages_api(center: Client, token: str, path: str) -> dict:
    reply = await center.call("volunteering", "GET", path, token=token)
    assert reply.status == 200, reply.body
    return reply.body


async def test_the_language_switch_changes_the_page_and_is_remembered(
    center: Client, settings: Settings, site: SiteUnderTest, pages: Pages
) -> None:
    token = await a_busy_site(center, settings, site)
    page = await pages.open("/volunteer", token=token, viewport=PHONE)
    await expect(page.get_by_role("heading", name="My volunteering")).to_be_visible()
    await expect(page.locator("#my-shifts li[data-shift]")).to_contain_text("Confirmed")
    await page.get_by_label("Language", exact=True).select_option("es")
    await expect(page.get_by_role("heading", name="Mi voluntariado")).to_be_visible()
    await expect(page.locator("#my-shifts li[data-shift]")).to_contain_text("Confirmado")

    # The rest of the page (the messages come last) is drawn again in Spanish; what was English goes.
    async def all_spanish() -> bool:
        return await english_left(page, "volunteer") == []

    await eventually(all_spanish, timeout=10)
    await page.reload()
    await expect(page.get_by_role("heading", name="Mi voluntariado")).to_be_visible()
    await expect(page.get_by_label("Idioma", exact=True)).to_have_value("es")
    # The other pages of this device follow the choice.
    await page.goto("/")
    await expect(page.get_by_role("link", name="Quiosco de recepción")).to_be_visible()


# --- failures told for what they are ----------------------------------------------------------------------------


async def test_a_failure_says_whether_the_network_the_service_or_the_page_is_at_fault(
    center: Client, settings: Settings, site: SiteUnderTest, pages: Pages
) -> None:
    token = await a_busy_site(center, settings, site)
    message = "#message"

    # The network: nothing reaches the services.
    page = await pages.open("/volunteer", viewport=PHONE)
    await page.route("**/api/**", lambda route: route.abort("connectionrefused"))
    await sign_in(page, token)
    await expect(page.locator(message)).to_have_text("The server cannot be reached. Try again shortly.")
    await page.context.close()

    # The service: its problem's code in words, in the page's language, never the code itself.
    async def paused(route: Route) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        problem = {"type": "/problems/volunteer_paused", "title": "Conflict", "status": 409, "code": "volunteer_paused"}
        await route.fulfill(status=409, content_type="application/problem+json", body=json.dumps(problem))

    page = await pages.open("/volunteer", viewport=PHONE, locale="es-ES")
    await page.route("**/api/volunteering/shifts/*/signups", paused)
    await sign_in(page, token)
    await page.locator("#open-shifts li[data-shift]").get_by_role("button", name="Inscribirme").first.click()
    await expect(page.locator(message)).to_have_text("Su voluntariado está en pausa; hable con su coordinador.")
    await page.context.close()

    # A code newer than the page: the service's own title, still no code.
    async def unknown(route: Route) -> None:
        problem = {
            "type": "/problems/brand_new",
            "title": "Something new went wrong",
            "status": 409,
            "code": "brand_new",
        }
        await route.fulfill(status=409, content_type="application/problem+json", body=json.dumps(problem))

    page = await pages.open("/coordinator")
    await page.route("**/api/volunteering/hours?*", unknown)
    await sign_in(page, site.tokens["coordinator"])
    await expect(page.locator(message)).to_have_text("Something new went wrong")
    await page.context.close()

    # The page itself: an answer it cannot render is its own fault, said so and logged, not passed off as an outage.
    async def odd(route: Route) -> None:
        body = {"member_id": "00000000-0000-0000-0000-000000000000", "year": 2026, "periods": None}
        await route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page = await pages.open("/volunteer", viewport=PHONE)
    await page.route("**/api/volunteering/me/stipends", odd)
    await sign_in(page, token)
    await expect(page.locator(message)).to_have_text(
        "Something went wrong on this page. Reload it; if it happens again, tell your coordinator."
    )
    assert any("TypeError" in line for line in pages.console), pages.console
    pages.console.clear()


async def test_the_pages_fit_and_read_well_on_a_tablet_in_spanish(
    center: Client, settings: Settings, site: SiteUnderTest, pages: Pages
) -> None:
    """Spanish is longer than English: no sideways scrolling on a phone or a tablet."""
    token = await a_busy_site(center, settings, site)
    for name, who in (("volunteer", token), ("coordinator", site.tokens["coordinator"])):
        for viewport in (PHONE, TABLET):
            page = await pages.open(f"/{name}", token=who, viewport=viewport, locale="es-ES")
            await expect(page.locator("main h2:visible").first).to_be_visible()
            await page.wait_for_load_state("networkidle")
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"/{name} in Spanish scrolls sideways by {overflow}px at {viewport}"
            await page.context.close()


async def test_the_kiosk_in_a_spanish_browser_shows_no_english(
    center: Client, site: SiteUnderTest, pages: Pages
) -> None:
    page = await pages.open("/kiosk?idle=600", token=site.tokens["kiosk"], locale="es-ES")
    await expect(page.locator("html")).to_have_attribute("lang", "es")
    await page.wait_for_load_state("networkidle")
    assert await english_left(page, "kiosk") == [], "the kiosk in Spanish shows English"
    assert await violations(page) == [], "the kiosk in Spanish has serious accessibility violations"
