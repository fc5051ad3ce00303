"""docs/errors.md lists every machine code the services answer with, and nothing they do not (shared/errorcatalog.py).

The catalogue's scanner is checked three ways: on small sources for each shape it reads, against a second, cruder
reader of the tree (regular expressions) so a shape it stops reading shows, and against real answers over HTTP."""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, ConfigDict, Field

from services.registry import ROOT
from shared import errorcatalog, paging
from shared.access import Role
from shared.errorcatalog import OTHER_STATUS, UNKNOWN_STATUS, Entry, Raise, Scan, ScanError, scan, source_files
from shared.settings import Settings
from shared.web import TOKENS, Api, Call, make_app
from tests.unit.test_http_conventions import GOOD_TOKEN, OneToken

ERRORS = """
class DomainError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail=None, *, code=None, **extra):
        super().__init__(detail or self.title)


class InvalidInput(DomainError):
    status, code, title = 422, "invalid_input", "The request is not valid"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"
"""


def scanned(**modules: str) -> list[Raise]:
    """The codes of the given modules (name → source) beside a small shared/errors.py, without its classes' own."""
    sources = {"shared/errors.py": ERRORS, **{f"services/{name}.py": text for name, text in modules.items()}}
    return [found for found in scan(sources).raises if found.module != "shared/errors.py"]


def codes(found: list[Raise]) -> list[tuple[str, int | str, str]]:
    return [(r.code, r.status, r.meaning) for r in found]


# The shapes the scanner reads


def test_a_class_s_own_code_status_and_title_count_where_it_is_called_without_a_code() -> None:
    found = scanned(
        views="""
from shared.errors import InvalidInput, NotFound

class Gone(NotFound):
    status = 410
    code: str = "gone"

class LongGone(Gone):
    title = "Long gone"

def view(kind):
    raise LongGone()

def other(kind):
    raise Gone(f"No {kind} {kind!r} any more.")

def third():
    raise InvalidInput
"""
    )
    assert codes(found) == [
        ("gone", 410, "Long gone"),
        ("gone", 410, "No … … any more."),
        ("invalid_input", 422, "The request is not valid"),
    ]


def test_a_call_with_code_takes_the_class_status_and_its_first_argument_as_meaning() -> None:
    found = scanned(
        handlers="""
from shared import errors

def handle(cmd):
    raise errors.NotFound(f"No such {cmd.kind} here.", code="shift_not_found", shift_id=cmd.id)

def other():
    raise errors.InvalidInput(detail="Give one.", code="duration_or_end")
"""
    )
    assert codes(found) == [("shift_not_found", 404, "No such … here."), ("duration_or_end", 422, "Give one.")]
    assert [(r.module, r.line) for r in found] == [("services/handlers.py", 5), ("services/handlers.py", 8)]


def test_an_error_class_defined_outside_shared_errors_with_its_own_init_is_read_too() -> None:
    found = scanned(
        ratelimit="""
from shared.errors import DomainError

class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, retry_after_s):
        super().__init__(f"Try again in {retry_after_s} s.", retry_after_s=retry_after_s)

def check(bucket):
    raise RateLimited(bucket.wait)
"""
    )
    assert codes(found) == [("rate_limited", 429, "Try again in … s.")]


def test_problem_calls_with_literals_are_read_where_problem_is_shared_web_s() -> None:
    found = scanned(
        proxy="""
from shared.web import problem

def forward(service):
    return problem(504, "upstream_timeout", "The service did not answer in time", f"{service} is slow.")

def titled():
    return problem(status=503, code="not_ready", title="Not ready")
""",
        unrelated="""
def problem(a, b, c):
    return a

problem(1, "not_an_answer", "x")
""",
    )
    assert codes(found) == [
        ("upstream_timeout", 504, "The service did not answer in time — … is slow."),
        ("not_ready", 503, "Not ready"),
    ]


def test_a_status_table_and_its_fallback_are_read() -> None:
    found = scanned(
        web="""
from shared.web import problem

_CODES = {
    404: ("not_found", "Not found"),
    413: ("body_too_large", "The request body is too large"),
}

def answer(exc):
    code, title = _CODES.get(exc.status, ("http_error", exc.reason))
    return problem(exc.status, code, title)

def forward(exc):
    return problem(exc.status, exc.code, exc.title, exc.detail)
"""
    )
    assert codes(found) == [
        ("not_found", 404, "Not found"),
        ("body_too_large", 413, "The request body is too large"),
        ("http_error", OTHER_STATUS, "Any other error status; the title is `exc.reason`"),
    ]


def test_another_literal_code_keyword_is_listed_with_an_unknown_status_and_a_passed_on_one_is_not() -> None:
    found = scanned(
        audit="""
def refuse(cmd, refused):
    record(Refusal(code=cmd.code))
    record(RefuseReport(code=refused.code))
    return Answer("Nope.", code="nope")
"""
    )
    assert codes(found) == [("nope", UNKNOWN_STATUS, "Nope.")]


# A code built at run time is an error of the scan


@pytest.mark.parametrize(
    ("source", "shape"),
    [
        ('raise NotFound(f"No such {kind} here.", code=f"{kind}_not_found")', "an f-string"),
        ('raise NotFound("No such thing here.", code=problem)', "`problem`"),
        ('raise NotFound("Not qualified.", code=verdict.code)', "`verdict.code`"),
        ('raise NotFound("No.", code="a" if kind else "b")', "`'a' if kind else 'b'`"),
        ('return Answer("No.", code=f"{kind}_gone")', "an f-string"),
    ],
)
def test_a_code_built_at_run_time_fails_the_scan_with_its_place(source: str, shape: str) -> None:
    module = f"from shared.errors import NotFound\n\ndef view(kind, problem, verdict):\n    {source}\n"
    with pytest.raises(ScanError) as refused:
        scanned(gatherings=module)
    assert str(refused.value).startswith("services/gatherings.py:4: ")
    assert f"built at run time ({shape})" in str(refused.value)


def test_problem_with_a_code_from_nowhere_and_a_class_with_no_literal_code_fail_the_scan() -> None:
    with pytest.raises(ScanError, match=r"services/web.py:4: the code of problem\(…\) is built at run time"):
        scanned(web='from shared.web import problem\n\ndef answer(code):\n    return problem(400, code, "Bad")\n')
    with pytest.raises(ScanError, match=r"services/errors2.py:3: Odd.code is not a literal"):
        scanned(errors2='from shared.errors import NotFound\nclass Odd(NotFound):\n    code = "od" + "d"\n')


def test_the_tree_has_no_code_built_at_run_time() -> None:
    assert tree().raises  # scanning raises ScanError naming the place


# The catalogue of this tree


@functools.cache
def tree() -> Scan:
    return scan(source_files(ROOT))


@functools.cache
def entries() -> dict[str, Entry]:
    return {entry.code: entry for entry in tree().catalogue()}


def test_the_committed_catalogue_is_the_generated_one() -> None:
    committed = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert committed == errorcatalog.document(ROOT), "docs/errors.md is stale: run `rcc docs`"


def test_the_catalogue_lists_each_code_once_with_where_it_is_raised() -> None:
    rows = [line for line in errorcatalog.document(ROOT).splitlines() if line.startswith("| `")]
    listed = [re.match(r"\| `([a-z0-9_]+)` \|", row).group(1) for row in rows]  # type: ignore[union-attr]
    assert listed == sorted(set(listed)) == sorted(entries())
    for entry in entries().values():
        assert entry.statuses and entry.meanings and all(m.strip() for m in entry.meanings), entry
        assert all((ROOT / module).is_file() for module in entry.modules), entry


# A second reader: regular expressions over the text, knowing nothing of the scanner's rules. Any code written in
# one of the shapes the house uses shows up here; if the scanner stopped reading one of them, the sets differ.
CRUDE_SHAPES = [
    r"""\bcode="([a-z0-9_]+)\"""",  # SomeError("…", code="…")
    r"""\bproblem\(\s*(?:status=)?\d+,\s*(?:code=)?"([a-z0-9_]+)\"""",  # problem(404, "…", …)
    r"""^\s*\d{3}:\s*\(\s*"([a-z0-9_]+)\"""",  # 404: ("…", "…") in a status table
    r"""\.get\([^()\n]*,\s*\(\s*"([a-z0-9_]+)\"""",  # a status table's fallback
    r""""code":\s*"([a-z0-9_]+)\"""",  # a problem body written by hand
]


def sources() -> dict[Path, str]:
    return {
        path: path.read_text(encoding="utf-8")
        for folder in ("shared", "services")
        for path in sorted((ROOT / folder).rglob("*.py"))
    }


def call_texts(text: str, name: str) -> list[str]:
    """The text of every call ``name(…)`` up to its matching parenthesis (not ``class name(…)``)."""
    calls = []
    for match in re.finditer(rf"(?<![\w])(?<!class ){name}\(", text):
        depth, end = 0, match.end() - 1
        for end in range(match.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                break
        calls.append(text[match.start() : end + 1])
    return calls


def test_a_cruder_reading_of_the_tree_finds_the_same_codes() -> None:
    texts = sources().values()
    crude = {code for text in texts for shape in CRUDE_SHAPES for code in re.findall(shape, text, flags=re.MULTILINE)}
    # An error class's own code is answered where the class is raised without a code of its own.
    for cls in tree().classes.values():
        calls = [call for text in texts for call in call_texts(text, cls.name) if not re.search(r"\bcode\s*=", call)]
        bare = [text for text in texts if re.search(rf"\braise {cls.name}\s*$", text, flags=re.MULTILINE)]
        if calls or bare:
            crude.add(cls.code)
    assert sorted(set(entries()) - crude) == [], "listed, but the cruder reading finds no place that answers it"
    assert sorted(crude - set(entries())) == [], "answered, but not listed: the scanner misses a shape"


def test_a_cruder_reading_finds_the_same_error_classes() -> None:
    bases = {
        name: base
        for text in sources().values()
        for name, base in re.findall(r"^class (\w+)\((?:\w+\.)?(\w+)\)", text, flags=re.MULTILINE)
    }
    errors = {"DomainError"}
    while grown := {name for name, base in bases.items() if base in errors} - errors:
        errors |= grown
    assert errors == set(tree().classes)
    assert {"DomainError", "NotFound", "RateLimited"} <= errors


def test_no_module_builds_a_code_with_an_f_string() -> None:
    hits = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path, text in sources().items()
        for line in text.splitlines()
        if re.search(r"\bcode\s*=\s*f[\"']", line)
    ]
    assert hits == []


def test_the_code_count_is_about_the_hundred_the_issue_counted() -> None:
    assert 100 <= len(entries()) <= 200, len(entries())


# Real answers


class RangeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: date = Field(alias="from")
    to: date


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


def small_api() -> Api:
    """Routes that go through the same shared machinery every service uses, so their answers are real ones."""
    api = Api("checkin", "Test")

    @api.get("/report", summary="A range like a report's", roles=[Role.KIOSK], query=RangeQuery)
    async def report(call: Call) -> dict[str, Any]:
        query: RangeQuery = call.query
        return {"days": len(paging.local_dates(query.from_, query.to, max_days=31))}

    @api.post("/things", summary="A body", roles=[Role.KIOSK], body=Body)
    async def things(call: Call) -> dict[str, Any]:
        return {"ok": True}

    @api.get("/staff", summary="Not for kiosks", roles=[Role.COORDINATOR])
    async def staff(_call: Call) -> dict[str, Any]:
        return {"ok": True}

    return api


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    app = make_app(small_api(), Settings(rate_limit_per_minute=0, max_body_bytes=64))
    app[TOKENS] = OneToken()
    async with TestClient(TestServer(app)) as client:
        yield client


KIOSK = {"Authorization": f"Bearer {GOOD_TOKEN}"}
JSON = {**KIOSK, "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "data", "expected"),
    [
        ("GET", "/report?from=2026-03-31&to=2026-03-01", KIOSK, None, "range_reversed"),
        ("GET", "/report?from=2026-01-01&to=2026-03-01", KIOSK, None, "range_too_long"),
        ("GET", "/report?from=2026-03-01", KIOSK, None, "invalid_request"),
        ("GET", "/report?from=2026-03-01&to=2026-03-02", {}, None, "missing_token"),
        (
            "GET",
            "/report?from=2026-03-01&to=2026-03-02",
            {"Authorization": "Bearer rcc_not_ours"},
            None,
            "invalid_token",
        ),
        ("GET", "/staff", KIOSK, None, "wrong_role"),
        ("POST", "/things", JSON, '{"name": "' + "x" * 100 + '"}', "body_too_large"),
        ("POST", "/things", JSON, '{"name": ', "malformed_json"),
        ("POST", "/things", {**KIOSK, "Content-Type": "text/plain"}, '{"name": "a"}', "unsupported_media_type"),
        ("POST", "/things", JSON, '{"name": "a\\u0000"}', "invalid_character"),
        ("GET", "/nowhere", KIOSK, None, "not_found"),
        ("DELETE", "/staff", KIOSK, None, "method_not_allowed"),
    ],
)
async def test_real_answers_carry_catalogued_codes_and_statuses(
    client: TestClient, method: str, path: str, headers: dict[str, str], data: str | None, expected: str
) -> None:
    response = await client.request(method, path, headers=headers, data=data)
    body = await response.json()
    assert body["code"] == expected, body
    assert expected in entries()
    assert response.status in entries()[expected].statuses


# Codes the integration tests expect from the running services (with the status they expect), which need a database
# or a broker to be answered for real.
EXPECTED_ELSEWHERE = {
    "already_checked_in": 409,  # tests/e2e/test_pages.py
    "visit_not_found": 404,  # tests/e2e/test_resilience_and_access.py
    "wrong_site": 403,  # tests/integration/test_reports_access.py, test_volunteering_access.py
    "not_qualified": 409,  # tests/integration/test_volunteering_signups.py
    "idempotency_key_reused": 422,  # tests/faults/test_registration_model.py
    "unknown_service": 404,  # tests/e2e/test_pages.py
}


@pytest.mark.parametrize(("code", "status"), sorted(EXPECTED_ELSEWHERE.items()))
def test_codes_other_tests_expect_are_catalogued_with_their_status(code: str, status: int) -> None:
    entry: Entry = entries()[code]
    assert status in entry.statuses
