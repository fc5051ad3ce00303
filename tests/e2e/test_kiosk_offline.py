"""The kiosk as an installed web app, in headless Chromium against the real services: it comes up with the network
down (its service worker serves the shell), queues check-ins in IndexedDB with the time they were tapped (its clock
corrected by the server's Date header) and sends them when the network returns; the code is checked before the
visitor picks why they came; English and Spanish, switched by one button, the keyboard alone, axe-core; and what
its first load weighs."""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Dialog, Page, Request, expect

from services.checkin.domain import KIOSK_CODE_ALPHABET
from services.pages import app as pages_app
from services.pages.app import KIOSK_SHELL, STATIC
from shared.settings import Settings
from tests.support.browser import CHROMIUM, TABLET, chromium
from tests.support.stack import Client, SiteUnderTest, eventually, make_site, services

pytestmark = pytest.mark.e2e

START = "What would you like to do?"
# How far a queued check-in's time may be from the moment of the tap: the Date header has whole seconds.
SKEW_BOUND = timedelta(seconds=1.5)
QUEUE = """new Promise((resolve, reject) => {
  const open = indexedDB.open("rcc-kiosk", 1);
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const all = open.result.transaction("queue").objectStore("queue").getAll();
    all.onsuccess = () => {
      open.result.close();
      resolve(all.result);
    };
  };
})"""


@pytest.fixture(scope="module")
async def center(settings: Settings) -> AsyncIterator[Client]:
    tuned = settings.model_copy(update={"pages_port": 0, "rate_limit_per_minute": 0})
    async with services(tuned, ["checkin", "gatherings", "pages"]) as client:
        yield client


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; deploy/local.sh ensure_chromium)")
    async with chromium() as browser:
        yield browser


@pytest.fixture
async def site(settings: Settings) -> SiteUnderTest:
    return await make_site(settings)


class Kiosk:
    """Fresh browser contexts (each a new device), their script errors collected; all closed after the test."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.errors: list[str] = []
        self.contexts: list[BrowserContext] = []

    async def context(self, **options: Any) -> BrowserContext:
        context = await self.browser.new_context(base_url=self.base_url, viewport=TABLET, **options)
        self.contexts.append(context)
        return context

    async def open(
        self, token: str, *, query: str = "idle=600", clock_behind: timedelta | None = None, **options: Any
    ) -> Page:
        context = await self.context(**options)
        if clock_behind is not None:
            # This device's clock is wrong (and keeps running from there).
            await context.clock.install(time=datetime.now(UTC) - clock_behind)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        await page.goto(f"/kiosk?{query}")
        await page.locator("#token").fill(token)
        await page.locator("#token-form button[type=submit]").click()
        return page


@pytest.fixture
async def kiosk(browser: Browser, center: Client) -> AsyncIterator[Kiosk]:
    opened = Kiosk(browser, center.urls["pages"])
    yield opened
    for context in opened.contexts:
        await context.close()
    assert opened.errors == [], "the kiosk raised script errors"


async def register(center: Client, site: SiteUnderTest) -> dict[str, Any]:
    reply = await center.call("checkin", "POST", "/members", token=site.tokens["kiosk"], json={})
    assert reply.status == 201, reply.body
    return dict(reply.body)


async def visits(center: Client, site: SiteUnderTest) -> list[dict[str, Any]]:
    reply = await center.call("checkin", "GET", "/visits?limit=200", token=site.tokens["coordinator"])
    assert reply.status == 200, reply.body
    return list(reply.body["items"])


def unknown_code(known: str) -> str:
    return next(code for code in ("ZZZZZZ", "YYYYYY") if code != known and set(code) <= set(KIOSK_CODE_ALPHABET))


async def installed(page: Page) -> None:
    """The service worker controls the page (so its shell is cached: it activates only after caching it)."""
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null")


async def check_in(page: Page, code: str, *, start: str, label: str, next_: str, purpose: str) -> None:
    await page.get_by_role("button", name=start, exact=True).click()
    await page.get_by_label(label).fill(code)
    await page.get_by_role("button", name=next_).click()
    await page.get_by_role("button", name=purpose).click()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_a_kiosk_reloaded_offline_comes_up_queues_and_the_visit_is_at_the_time_of_the_tap(
    center: Client, site: SiteUnderTest, kiosk: Kiosk
) -> None:
    member = await register(center, site)
    # Ten minutes slow: the time sent must be the server's, told by its Date header.
    page = await kiosk.open(site.tokens["kiosk"], clock_behind=timedelta(minutes=10))
    await expect(page.get_by_role("heading", name=START)).to_be_visible()
    # Its first answer from the server (today's groups) came, with the server's Date: it knows how slow it is.
    await expect(page.locator("#today-list")).to_have_text("No groups or events later today.")
    await installed(page)

    await page.context.set_offline(True)
    await page.reload()
    await expect(page.get_by_role("heading", name=START)).to_be_visible()
    before = datetime.now(UTC)
    await check_in(
        page,
        member["kiosk_code"],
        start="Check in",
        label="Your 6-character code",
        next_="Next",
        purpose="Just dropping in",
    )
    await expect(page.get_by_role("heading", name="Welcome!")).to_be_visible()
    after = datetime.now(UTC)
    waiting = "1 check-in saved — it will be sent when we're back online"
    await expect(page.locator("#sync-state")).to_have_text(waiting)
    await page.get_by_role("button", name="OK").click()

    # Rebooted, still offline: it comes up with its queue.
    await page.reload()
    await expect(page.get_by_role("heading", name=START)).to_be_visible()
    await expect(page.locator("#sync-state")).to_have_text(waiting)
    [saved] = await page.evaluate(QUEUE)
    assert saved["path"] == "/visits"
    assert before - SKEW_BOUND <= instant(saved["body"]["occurred_at"]) <= after + SKEW_BOUND
    assert await visits(center, site) == []

    # Some time passes before the network returns (the gap the visit's time must not take).
    await asyncio.sleep(2)
    online_at = datetime.now(UTC)
    await page.context.set_offline(False)
    await expect(page.locator("#sync-state")).to_have_text("All saved check-ins are sent.")
    assert await page.evaluate(QUEUE) == []
    [visit] = await visits(center, site)
    assert (visit["member_id"], visit["purpose"], visit["recorded_offline"]) == (
        member["member_id"],
        "drop_in",
        True,
    )
    assert before - SKEW_BOUND <= instant(visit["checked_in_at"]) <= after + SKEW_BOUND
    assert instant(visit["checked_in_received_at"]) >= online_at


async def test_an_offline_check_out_is_sent_later_at_the_time_of_the_tap(
    center: Client, site: SiteUnderTest, kiosk: Kiosk
) -> None:
    member = await register(center, site)
    checked_in = await center.call(
        "checkin",
        "POST",
        "/visits",
        token=site.tokens["kiosk"],
        json={"kiosk_code": member["kiosk_code"], "purpose": "drop_in"},
    )
    assert checked_in.status == 201, checked_in.body
    page = await kiosk.open(site.tokens["kiosk"])
    await expect(page.get_by_role("heading", name=START)).to_be_visible()
    await page.context.set_offline(True)
    await page.get_by_role("button", name="Check out").click()
    await page.get_by_label("Your 6-character code").fill(member["kiosk_code"])
    before = datetime.now(UTC)
    await page.get_by_role("button", name="Next").click()
    await expect(page.get_by_role("heading", name="See you soon")).to_be_visible()
    after = datetime.now(UTC)
    await page.context.set_offline(False)
    await expect(page.locator("#sync-state")).to_have_text("All saved check-ins are sent.")
    [visit] = await visits(center, site)
    assert visit["recorded_offline"] is True
    assert before - SKEW_BOUND <= instant(visit["checked_out_at"]) <= after + SKEW_BOUND


async def test_a_wrong_code_is_said_before_the_visitor_picks_why_they_came(
    center: Client, site: SiteUnderTest, kiosk: Kiosk
) -> None:
    member = await register(center, site)
    page = await kiosk.open(site.tokens["kiosk"])
    await page.get_by_role("button", name="Check in", exact=True).click()
    await page.get_by_label("Your 6-character code").fill(unknown_code(member["kiosk_code"]))
    await page.get_by_role("button", name="Next").click()
    await expect(page.locator("#message")).to_have_text(
        "We could not find that code. Please check it, or choose “New here?”."
    )
    await expect(page.get_by_label("Your 6-character code")).to_be_focused()
    await expect(page.get_by_role("heading", name="What brings you in today?")).to_be_hidden()
    assert await visits(center, site) == []


async def test_the_kiosk_in_spanish_from_start_to_welcome_and_back_to_its_own_language_for_the_next_person(
    center: Client, site: SiteUnderTest, kiosk: Kiosk
) -> None:
    member = await register(center, site)
    page = await kiosk.open(site.tokens["kiosk"], query="idle=3")
    await page.get_by_role("button", name="Español").click()
    await expect(page.get_by_role("heading", name="¿Qué le gustaría hacer?")).to_be_visible()
    assert await page.evaluate("document.documentElement.lang") == "es"
    await expect(page.get_by_role("button", name="English")).to_be_visible()

    await page.get_by_role("button", name="Registrar entrada", exact=True).click()
    await page.get_by_label("Su código de 6 caracteres").fill(unknown_code(member["kiosk_code"]))
    await page.get_by_role("button", name="Siguiente").click()
    await expect(page.locator("#message")).to_have_text(
        "No encontramos ese código. Revíselo o elija «¿Primera vez aquí?»."
    )
    await page.get_by_label("Su código de 6 caracteres").fill(member["kiosk_code"])
    await page.get_by_role("button", name="Siguiente").click()
    await page.get_by_role("button", name="Solo paso a visitar").click()
    await expect(page.get_by_role("heading", name="¡Le damos la bienvenida!")).to_be_visible()
    await expect(page.locator("#done-text")).to_have_text("Entrada registrada. Disfrute su tiempo aquí.")
    [visit] = await visits(center, site)
    assert (visit["member_id"], visit["purpose"]) == (member["member_id"], "drop_in")

    # Left alone: the start screen, in the kiosk's own language, for whoever comes next.
    await expect(page.get_by_role("heading", name=START)).to_be_visible(timeout=15_000)
    await expect(page.get_by_role("button", name="Español")).to_be_visible()


async def test_a_spanish_speaking_browser_starts_the_kiosk_in_spanish_and_an_offline_queue_is_told_in_spanish(
    center: Client, site: SiteUnderTest, kiosk: Kiosk
) -> None:
    page = await kiosk.open(site.tokens["kiosk"], locale="es-MX")
    await expect(page.get_by_role("heading", name="¿Qué le gustaría hacer?")).to_be_visible()
    await page.context.set_offline(True)
    await page.get_by_role("button", name="Entrar sin código").click()
    await page.get_by_role("button", name="Una clase").click()
    await expect(page.get_by_role("heading", name="¡Le damos la bienvenida!")).to_be_visible()
    await expect(page.locator("#sync-state")).to_have_text("1 registro guardado — se enviará cuando vuelva la conexión")
    await page.context.set_offline(False)
    await expect(page.locator("#sync-state")).to_have_text("Se enviaron todos los registros guardados.")
    [visit] = await visits(center, site)
    assert (visit["anonymous"], visit["purpose"]) == (True, "education")


async def test_a_member_switches_to_spanish_and_checks_in_with_the_keyboard_alone(
    center: Client, site: SiteUnderTest, kiosk: Kiosk
) -> None:
    member = await register(center, site)
    page = await kiosk.open(site.tokens["kiosk"])
    await expect(page.get_by_role("heading", name=START)).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await expect(page.get_by_role("button", name="Español")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="¿Qué le gustaría hacer?")).to_be_visible()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Registrar entrada", exact=True)).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Su código de 6 caracteres")).to_be_focused()
    await page.keyboard.type(member["kiosk_code"])
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="¿Qué le trae hoy por aquí?")).to_be_focused()
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Me reúno con mi mentor par")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="¡Le damos la bienvenida!")).to_be_visible()
    [visit] = await visits(center, site)
    assert (visit["member_id"], visit["purpose"]) == (member["member_id"], "peer_mentoring")


# --- accessibility ------------------------------------------------------------------------------------------------


def axe_script() -> str:
    """axe-core as the ``axe-playwright-python`` package (a test dependency) ships it."""
    import axe_playwright_python

    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()


async def serious_violations(page: Page) -> list[str]:
    """The pages' shared axe helper (tests/support/axe.py) where it exists, else the same check made here."""
    try:
        shared = importlib.import_module("tests.support.axe")
    except ImportError:
        shared = None
    if shared is not None:
        return list(await shared.violations(page))
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(axe_script())
    result = await page.evaluate("axe.run(document, { resultTypes: ['violations'] })")
    return [
        f"{v['id']} ({v['impact']}) at {[n['target'] for n in v['nodes']][:5]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("language", ["en", "es"])
async def test_the_kiosk_screens_have_no_serious_accessibility_violations(
    center: Client, site: SiteUnderTest, kiosk: Kiosk, language: str
) -> None:
    member = await register(center, site)
    page = await kiosk.open(site.tokens["kiosk"], locale="es-ES" if language == "es" else "en-US")
    await expect(page.locator("html")).to_have_attribute("lang", language)
    found: dict[str, list[str]] = {}
    await expect(page.locator("#home")).to_be_visible()
    found["start"] = await serious_violations(page)
    await page.locator("#go-checkin").click()
    await page.locator("#code").fill(unknown_code(member["kiosk_code"]))
    await page.locator("#code-form button[type=submit]").click()
    await expect(page.locator("#message")).to_be_visible()
    found["wrong code"] = await serious_violations(page)
    await page.locator("#code").fill(member["kiosk_code"])
    await page.locator("#code-form button[type=submit]").click()
    await expect(page.locator("#purpose-screen")).to_be_visible()
    found["purpose"] = await serious_violations(page)
    await page.locator("[data-purpose=drop_in]").click()
    await expect(page.locator("#done-screen")).to_be_visible()
    found["welcome"] = await serious_violations(page)
    assert {screen: v for screen, v in found.items() if v} == {}


# --- weight and speed ---------------------------------------------------------------------------------------------


async def gzipped_size(url: str) -> int:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as http,
        http.get(url, headers={"Accept-Encoding": "gzip"}) as response,
    ):
        assert response.headers.get("Content-Encoding") == "gzip"
        return len(await response.read())


async def test_the_kiosk_first_load_weighs_under_30_kb_with_its_worker_and_catalogue(
    center: Client, site: SiteUnderTest, kiosk: Kiosk
) -> None:
    """Everything a new kiosk fetches (page, scripts, styles, manifest, icon, the worker and all it caches, the
    Spanish catalogue among them) as transferred (gzip); the API calls are not the page. The figures are printed."""
    context = await kiosk.context()
    await context.add_init_script(f"localStorage.setItem('rcc.kiosk.token', {json.dumps(site.tokens['kiosk'])})")
    finished: list[Request] = []
    context.on("requestfinished", lambda request: finished.append(request))
    page = await context.new_page()
    page.on("pageerror", lambda error: kiosk.errors.append(str(error)))
    await page.goto("/kiosk")
    await expect(page.get_by_role("heading", name=START)).to_be_visible()
    await installed(page)
    first_usable = await page.evaluate("performance.getEntriesByName('kiosk-usable')[0].startTime")

    transferred: dict[str, int] = {}
    for request in finished:
        path = request.url.removeprefix(kiosk.base_url)
        if path.startswith("/api/"):
            continue
        sizes = await request.sizes()
        body = sizes["responseBodySize"]
        if path == "/sw.js":
            # Chromium reports no body size for a worker's own script: the size it has gzipped, asked again.
            body = await gzipped_size(kiosk.base_url + path)
        transferred[path] = transferred.get(path, 0) + body + sizes["responseHeadersSize"]
    # The worker's own fetches are among them: it cached every file of the shell.
    assert {"/sw.js", "/static/i18n/kiosk.es.json"} <= set(transferred), sorted(transferred)
    total = sum(transferred.values())
    shipped = sum((STATIC / p.removeprefix("/static/")).stat().st_size for p in KIOSK_SHELL if p.startswith("/static/"))

    await page.reload()
    await expect(page.get_by_role("heading", name=START)).to_be_visible()
    cached_usable = await page.evaluate("performance.getEntriesByName('kiosk-usable')[0].startTime")
    print(
        f"\nkiosk first load: {total} bytes transferred in {len(finished)} requests "
        f"(static shell files {shipped} bytes uncompressed); usable after {first_usable:.0f} ms, "
        f"{cached_usable:.0f} ms from the worker's cache\n  "
        + "\n  ".join(f"{size:6d}  {path}" for path, size in sorted(transferred.items()))
    )
    assert total < 30_000, transferred


# --- deploys ------------------------------------------------------------------------------------------------------


async def test_a_deploy_replaces_the_kiosk_cache_and_the_kiosk_takes_it_on_back_at_its_start_screen(
    center: Client, site: SiteUnderTest, kiosk: Kiosk, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = await kiosk.open(site.tokens["kiosk"])
    await expect(page.get_by_role("heading", name=START)).to_be_visible()
    await installed(page)
    [before] = await page.evaluate("caches.keys()")
    assert before == f"rcc-kiosk-{pages_app.kiosk_shell_version()}"

    # A deploy: the shell's files differ, so their hash and the worker do.
    monkeypatch.setattr(pages_app, "kiosk_shell_version", lambda: "0123456789abcdef")
    async with page.expect_event("load"):
        await page.evaluate("navigator.serviceWorker.getRegistration('/kiosk').then((r) => r.update())")
    await expect(page.get_by_role("heading", name=START)).to_be_visible()
    assert await page.evaluate("caches.keys()") == ["rcc-kiosk-0123456789abcdef"]


async def test_the_worker_is_named_by_the_shell_files_contents_so_any_change_to_one_is_a_new_worker(
    center: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with center.http.get(center.urls["pages"] + "/sw.js") as response:
        assert response.status == 200 and response.content_type == "text/javascript"
        served = await response.text()
    assert f'const VERSION = "{pages_app.kiosk_shell_version()}";' in served
    assert f"const SHELL = {json.dumps(list(KIOSK_SHELL))};" in served
    for url in KIOSK_SHELL:
        async with center.http.get(center.urls["pages"] + url) as response:
            assert response.status == 200, url

    copy = tmp_path / "static"
    shutil.copytree(STATIC, copy)
    monkeypatch.setattr(pages_app, "STATIC", copy)
    first = pages_app.kiosk_shell_version()
    assert pages_app.kiosk_shell_version() == first
    (copy / "i18n" / "kiosk.es.json").write_text(
        (copy / "i18n" / "kiosk.es.json").read_text().replace("Hoy", "Hoy día")
    )
    assert pages_app.kiosk_shell_version() != first


async def test_check_ins_left_in_the_old_queue_by_an_updated_kiosk_are_sent_at_the_time_they_were_saved(
    center: Client, site: SiteUnderTest, kiosk: Kiosk
) -> None:
    member = await register(center, site)
    saved_at = (datetime.now(UTC) - timedelta(minutes=20)).replace(microsecond=0)
    old = [
        {
            "key": str(uuid.uuid4()),
            "what": "check-in",
            "path": "/visits",
            "body": {"kiosk_code": member["kiosk_code"], "purpose": "education"},
            "saved_at": saved_at.isoformat().replace("+00:00", "Z"),
        }
    ]
    context = await kiosk.context()
    await context.add_init_script(
        f"if (!localStorage.getItem('rcc.kiosk.token')) {{"
        f" localStorage.setItem('rcc.kiosk.token', {json.dumps(site.tokens['kiosk'])});"
        f" localStorage.setItem('rcc.kiosk.queue', {json.dumps(json.dumps(old))}); }}"
    )
    page = await context.new_page()
    page.on("pageerror", lambda error: kiosk.errors.append(str(error)))
    await page.goto("/kiosk?idle=600")
    await expect(page.locator("#sync-state")).to_have_text("All saved check-ins are sent.")
    assert await page.evaluate("localStorage.getItem('rcc.kiosk.queue')") is None
    [visit] = await visits(center, site)
    assert (visit["member_id"], visit["purpose"], visit["recorded_offline"]) == (member["member_id"], "education", True)
    assert instant(visit["checked_in_at"]) == saved_at


async def test_forgetting_the_device_asks_while_check_ins_wait_then_deletes_them_with_the_token(
    center: Client, site: SiteUnderTest, kiosk: Kiosk
) -> None:
    member = await register(center, site)
    page = await kiosk.open(site.tokens["kiosk"])
    await expect(page.get_by_role("heading", name=START)).to_be_visible()
    await installed(page)
    await page.context.set_offline(True)
    await check_in(
        page, member["kiosk_code"], start="Check in", label="Your 6-character code", next_="Next", purpose="A class"
    )
    await expect(page.locator("#sync-state")).to_have_text("1 check-in saved — it will be sent when we're back online")
    await page.get_by_role("button", name="OK").click()

    questions: list[str] = []

    async def answer(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await (dialog.dismiss() if len(questions) == 1 else dialog.accept())

    page.on("dialog", answer)
    await page.get_by_text("Kiosk settings").click()
    forget = page.get_by_role("button", name="Forget this device")
    await forget.click()

    async def asked_once() -> bool:
        return len(questions) == 1

    await eventually(asked_once, timeout=5)
    # Called off: the check-in still waits, and the kiosk keeps its token.
    assert len(await page.evaluate(QUEUE)) == 1
    assert await page.evaluate("localStorage.getItem('rcc.kiosk.token')") == site.tokens["kiosk"]

    # A second tab of the kiosk holds the queue open: the deletion waits for it, the forgetting does not.
    other = await page.context.new_page()
    await other.goto("/kiosk?idle=600")
    await expect(other.get_by_role("heading", name=START)).to_be_visible()
    await forget.click()
    await expect(page.locator("#token")).to_be_visible()
    await other.close()
    assert (
        questions
        == ["1 saved check-in has not been sent yet. Forgetting this device deletes it. Forget this device anyway?"] * 2
    )
    # The page came up again and opened its (new, empty) queue.
    await page.wait_for_function("async () => (await indexedDB.databases()).some((db) => db.name === 'rcc-kiosk')")
    assert await page.evaluate(QUEUE) == []
    assert [key for key in await page.evaluate("Object.keys(localStorage)") if key.startswith("rcc.kiosk.")] == []
    await page.context.set_offline(False)
    assert await visits(center, site) == []


async def test_staff_can_make_spanish_the_language_the_kiosk_starts_in(
    center: Client, site: SiteUnderTest, kiosk: Kiosk
) -> None:
    page = await kiosk.open(site.tokens["kiosk"])
    await page.get_by_role("button", name="Español").click()
    await page.get_by_text("Ajustes del quiosco").click()
    await page.get_by_role("button", name="Empezar siempre en este idioma").click()
    await expect(page.locator("#message")).to_have_text("Este quiosco empezará en este idioma.")
    await page.reload()
    await expect(page.get_by_role("heading", name="¿Qué le gustaría hacer?")).to_be_visible()


async def test_the_queue_is_sent_as_soon_as_the_browser_is_back_online_not_at_the_next_retry(
    center: Client, site: SiteUnderTest, kiosk: Kiosk
) -> None:
    page = await kiosk.open(site.tokens["kiosk"], clock_behind=timedelta(0))
    await expect(page.get_by_role("heading", name=START)).to_be_visible()
    # The page's timers stop: no retry can come on its own, so only the `online` event can send the queue.
    await page.clock.pause_at(datetime.now(UTC) + timedelta(seconds=1))
    await page.context.set_offline(True)
    await page.get_by_role("button", name="Check in without a code").click()
    await page.get_by_role("button", name="Just dropping in").click()
    await expect(page.locator("#sync-state")).to_have_text("1 check-in saved — it will be sent when we're back online")
    await page.context.set_offline(False)
    await expect(page.locator("#sync-state")).to_have_text("All saved check-ins are sent.")
    [visit] = await visits(center, site)
    assert (visit["anonymous"], visit["recorded_offline"]) == (True, True)
