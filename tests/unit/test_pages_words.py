"""Every word a page shows has a Spanish entry, and every machine code a page can show has words.

Read from the static files as shipped: each page's HTML (elements marked ``data-i18n``, attributes named in
``data-i18n-attr``) and the ES modules it loads, followed through their imports (``t("…")`` calls, and the values of
the tables of words that the pages pass to ``t`` by key, marked ``const NAME = words({code: "text"});``)."""

from __future__ import annotations

import json
import re
from functools import cache

import pytest

from services.pages.app import PAGES, STATIC
from services.registry import ROOT

LANGUAGES = ["es"]  # besides English, the key
ALL_PAGES = ["index", *PAGES]

STRING = r'"((?:[^"\\]|\\.)*)"'
T_CALL = re.compile(r"\bt\(\s*" + STRING)
TABLE = re.compile(r"^(?:export )?const ([A-Z][A-Z_]*) = words\(\{(.*?)\}\);", re.M | re.S)
TABLE_ENTRY = re.compile(r"([\w$]+):\s*" + STRING)
IMPORT = re.compile(r'^import [^;]*? from "\./([\w.-]+\.js)";', re.M)
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def unescape(text: str) -> str:
    return str(json.loads(f'"{text}"'))


def html_texts(html: str) -> set[str]:
    """The keys translateDocument() makes: an element's trimmed text, and the English value of each listed attribute."""
    texts = set()
    for match in re.finditer(r"<(\w+)\b([^>]*)>", html):
        tag, attributes = match.group(1), match.group(2)
        if re.search(r"\sdata-i18n(\s|=|$)", attributes):
            explicit = re.search(r'\sdata-i18n="([^"]+)"', attributes)
            if explicit:
                texts.add(explicit.group(1))
            else:
                inner = html[match.end() : html.index(f"</{tag}>", match.end())]
                assert "<" not in inner, f"<{tag} data-i18n> holds markup: {inner!r}"
                texts.add(inner.strip())
        listed = re.search(r'\sdata-i18n-attr="([^"]+)"', attributes)
        if listed:
            for name in listed.group(1).split(","):
                value = re.search(rf'\s{re.escape(name)}="([^"]*)"', attributes)
                assert value, f"<{tag}> lists {name} in data-i18n-attr but has no {name}"
                texts.add(value.group(1))
    return texts


def script_texts(source: str) -> set[str]:
    texts = {unescape(m) for m in T_CALL.findall(source)}
    for _, body in TABLE.findall(source):
        texts |= {unescape(value) for _, value in TABLE_ENTRY.findall(body)}
    return texts


@cache
def modules_of(page: str) -> tuple[str, ...]:
    """The page's scripts and every module they import, transitively."""
    html = (STATIC / f"{page}.html").read_text()
    todo = [src.removeprefix("/static/") for src in re.findall(r'<script[^>]*src="([^"]+)"', html)]
    seen: list[str] = []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        todo += IMPORT.findall((STATIC / name).read_text())
    return tuple(sorted(seen))


def page_texts(page: str) -> set[str]:
    texts = html_texts((STATIC / f"{page}.html").read_text())
    for module in modules_of(page):
        texts |= script_texts((STATIC / module).read_text())
    return {text for text in texts if text.strip()}


def catalogue(page: str, language: str) -> dict[str, str]:
    path = STATIC / "i18n" / f"{page}.{language}.json"
    assert path.exists(), f"{path.relative_to(ROOT)} is missing"
    entries = json.loads(path.read_text())
    assert isinstance(entries, dict) and all(isinstance(v, str) for v in entries.values()), path
    return entries


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("page", ALL_PAGES)
def test_every_text_on_a_page_has_an_entry_in_its_catalogue(page: str, language: str) -> None:
    texts = page_texts(page)
    assert texts, f"found no texts on {page}: the scan is broken"
    entries = catalogue(page, language)
    missing = sorted(text for text in texts if not entries.get(text, "").strip())
    assert missing == [], f"{page}.{language}.json lacks {len(missing)} entries: {missing}"
    for text in texts:
        assert set(PLACEHOLDER.findall(entries[text])) == set(PLACEHOLDER.findall(text)), (
            f"{page}.{language}.json: the placeholders of {text!r} differ in {entries[text]!r}"
        )


def test_the_scan_finds_what_it_should() -> None:
    """The parsing above, on a sample: a check that cannot fail is a defect."""
    html = '<h1 data-i18n>My shifts</h1><p>not this</p><nav data-i18n-attr="aria-label" aria-label="Pages"></nav>'
    assert html_texts(html) == {"My shifts", "Pages"}
    js = (
        'const KINDS = words({\n  a: "Alpha",\n  b: "Beta \\"quoted\\"",\n});\nconst IDS = { a: "not words" };\n'
        'say(x, t("Hello {name}", { name }));\nt(y);'
    )
    assert script_texts(js) == {"Alpha", 'Beta "quoted"', "Hello {name}"}
    assert "problems.js" in modules_of("volunteer") and "i18n.js" in modules_of("coordinator")


# --- machine codes have words -------------------------------------------------------------------------------------


def table(module: str, name: str) -> dict[str, str]:
    source = (STATIC / module).read_text()
    [body] = [body for found, body in TABLE.findall(source) if found == name]
    return {key: unescape(value) for key, value in TABLE_ENTRY.findall(body)}


def literal(path: str, name: str) -> set[str]:
    """The values of ``Name = Literal["a", "b"]`` in a service's source."""
    match = re.search(rf"^{name} = Literal\[([^\]]*)\]", (ROOT / path).read_text(), re.M | re.S)
    assert match, f"{name} is not a Literal in {path}"
    return set(re.findall(r'"(\w+)"', match.group(1)))


def test_every_problem_code_has_words() -> None:
    codes = set(re.findall(r"^\| `([a-z_]+)` \|", (ROOT / "docs" / "errors.md").read_text(), re.M))
    assert len(codes) > 100
    words = table("problems.js", "PROBLEMS")
    assert sorted(codes - words.keys()) == [], "problem codes without words in problems.js"
    assert all(text.strip() and "_" not in text for text in words.values())


@pytest.mark.parametrize(
    ("module", "name", "source", "literal_name"),
    [
        ("coordinator.js", "REVIEW", "services/volunteering/domain.py", "ReviewCode"),
        ("volunteer.js", "HOURS_STATUS", "services/volunteering/domain.py", "HoursStatus"),
        ("coordinator.js", "OCCUPANCY", "services/checkin/domain.py", "OccupancyStatus"),
        ("reach.js", "DELIVERY", "services/notify/domain.py", "DeliveryStatus"),
        ("reach.js", "KINDS", "services/notify/domain.py", "Kind"),
        ("reach.js", "PURPOSES", "shared/contracts/notify.py", "MessagePurpose"),
    ],
)
def test_every_status_and_check_a_page_shows_has_words(module: str, name: str, source: str, literal_name: str) -> None:
    assert table(module, name).keys() >= literal(source, literal_name)


def test_the_shift_states_a_volunteer_sees_have_words() -> None:
    shown = table("volunteer.js", "SHIFT_STATUS").keys()
    assert shown >= {"confirmed", "waitlisted"} & literal("services/volunteering/domain.py", "SignupStatus")
    assert "cancelled" in literal("services/volunteering/domain.py", "ShiftStatus") and "cancelled" in shown
