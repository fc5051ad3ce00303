"""Headless Chromium (Debian's ``chromium``, never a downloaded browser) driving the pages the project serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
PHONE = {"width": 390, "height": 844}
TABLET = {"width": 820, "height": 1180}


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Pages:
    """Opens pages in fresh browser contexts (a fresh device each: its own storage) and collects script errors."""

    browser: Browser
    base_url: str
    errors: list[str] = field(default_factory=list)
    # What the pages wrote with console.error (a page reports its own faults there, not as an outage).
    console: list[str] = field(default_factory=list)

    async def open(
        self, path: str, *, token: str | None = None, viewport: dict[str, int] = TABLET, locale: str = "en-US"
    ) -> Page:
        """``locale`` is the browser's language: navigator.language(s), Accept-Language and Intl's default."""
        context = await self.browser.new_context(base_url=self.base_url, viewport=viewport, locale=locale)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{path}: {error}"))
        page.on("console", lambda message: self._console(path, message.type, message.text))
        await page.goto(path)
        if token is not None:
            await page.locator("#token").fill(token)
            await page.locator("#token-form button[type=submit]").click()
        return page

    def _console(self, path: str, kind: str, text: str) -> None:
        # Chromium's own line for an answer with an error status (a 404 the page expects) is not the page's.
        if kind == "error" and not text.startswith("Failed to load resource"):
            self.console.append(f"{path}: {text}")

    async def close(self) -> None:
        for context in self.browser.contexts:
            await context.close()
