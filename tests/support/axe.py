"""Accessibility checks with axe-core (the script ``axe-playwright-python`` ships) on a page Playwright has open."""

from __future__ import annotations

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

BLOCKING = ("serious", "critical")
_axe = Axe()


async def violations(page: Page, impacts: tuple[str, ...] = BLOCKING) -> list[str]:
    """axe's violations of the given impacts on the page as it is now, one line each (rule, impact, where)."""
    results = await _axe.run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[node['target'] for node in v['nodes']][:5]}"
        for v in results.response["violations"]
        if v["impact"] in impacts
    ]
