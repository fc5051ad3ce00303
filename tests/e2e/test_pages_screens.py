"""The README's screenshots: every page, on a phone and a tablet, in English and Spanish, from one command:

    RCC_SCREENSHOTS=1 .venv/bin/python -m pytest tests/e2e/test_pages_screens.py

writes docs/screenshots/<page>-<phone|tablet>[-es].png. Without RCC_SCREENSHOTS the same pictures go to a temporary
folder, so the test still proves every page renders in both languages at both sizes without sideways scrolling."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from services.registry import ROOT, SERVICES
from shared.settings import Settings
from tests.e2e.test_pages import register, schedule_group, site_at_midday
from tests.support.browser import CHROMIUM, PHONE, TABLET, Pages, chromium
from tests.support.pagesetup import a_busy_site
from tests.support.stack import Client, services

pytestmark = pytest.mark.e2e

SCREENSHOTS = ROOT / "docs" / "screenshots"
LANGUAGES = {"en": "", "es": "-es"}  # the file name's suffix


@pytest.fixture(scope="module")
async def center(settings: Settings) -> AsyncIterator[Client]:
    async with services(settings, [*SERVICES, "pages"]) as client:
        yield client


async def test_every_page_in_both_languages_on_a_phone_and_a_tablet(
    center: Client, settings: Settings, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; deploy/local.sh ensure_chromium)")
    site = await site_at_midday(settings)
    await schedule_group(center, site, "Recovery circle", hours_ahead=1)
    await schedule_group(center, site, "Family support group", hours_ahead=3)
    volunteer = await a_busy_site(center, settings, site)
    for _ in range(3):
        member = await register(center, site)
        reply = await center.call(
            "checkin",
            "POST",
            "/visits",
            token=site.tokens["kiosk"],
            json={"kiosk_code": member["kiosk_code"], "purpose": "drop_in"},
        )
        assert reply.status == 201, reply.body
    out = SCREENSHOTS if os.environ.get("RCC_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    tokens = {
        "index": None,
        "kiosk": site.tokens["kiosk"],
        "volunteer": volunteer,
        "coordinator": site.tokens["coordinator"],
    }
    async with chromium() as browser:
        pages = Pages(browser, center.urls["pages"])
        for language, suffix in LANGUAGES.items():
            for name, token in tokens.items():
                for size, viewport in (("phone", PHONE), ("tablet", TABLET)):
                    page = await pages.open(
                        "/" if name == "index" else f"/{name}", token=token, viewport=viewport, locale=language
                    )
                    if name != "kiosk":  # the kiosk's own tests check its languages
                        await expect(page.locator("html")).to_have_attribute("lang", language)
                    await expect(page.locator("h1")).to_be_visible()
                    await page.wait_for_load_state("networkidle")
                    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                    assert overflow <= 0, f"/{name} ({language}) scrolls sideways by {overflow}px on a {size}"
                    await page.mouse.move(0, 0)  # no hover highlight left from signing in
                    path = out / f"{name}-{size}{suffix}.png"
                    await page.screenshot(path=str(path))
                    assert path.stat().st_size > 1000
                    await page.context.close()
        assert pages.errors == [], "the pages raised script errors"
