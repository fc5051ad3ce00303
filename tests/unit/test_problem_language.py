"""Problem answers in the client's language: ``Accept-Language`` chooses (q-values honoured, English otherwise), the
title and detail change, the code and status do not; and the catalogue of each language covers every code the
source answers with (``docs/errors.md``), so a new code cannot ship without its Spanish title."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.registry import ROOT
from shared import errorcatalog, problemtext
from shared.errors import Conflict, NotFound
from shared.settings import Settings
from shared.web import Api, Call, make_app

OTHER_LANGUAGES = [language for language in problemtext.LANGUAGES if language != problemtext.DEFAULT]
ENTRIES = errorcatalog.scan(errorcatalog.source_files(ROOT)).catalogue()
# Details that are nothing but values, or the framework's own text: nothing to translate.
UNTRANSLATABLE = {("http_error", "Any other error status; the title is `exc.reason`"), ("not_ready", "…")}


def detail_of(meaning: str) -> str:
    """The detail part of a meaning as docs/errors.md lists it (a problem() call shows "title — detail")."""
    return meaning.split(" — ", 1)[-1]


@pytest.mark.parametrize("language", OTHER_LANGUAGES)
def test_every_code_has_a_title_in_every_language(language: str) -> None:
    titles = problemtext.catalogue(language).titles
    missing = sorted(entry.code for entry in ENTRIES if not titles.get(entry.code, "").strip())
    assert not missing, f"{language}.json has no title for: {', '.join(missing)}"
    assert not sorted(set(titles) - {entry.code for entry in ENTRIES}), "titles of codes nothing answers with"


@pytest.mark.parametrize("language", OTHER_LANGUAGES)
def test_every_detail_the_source_writes_has_a_translation_and_none_is_stale(language: str) -> None:
    words = problemtext.catalogue(language)
    meanings = {(entry.code, detail_of(m)) for entry in ENTRIES for m in entry.meanings}
    translated = {(code, english) for code, by_english in words.details.items() for english in by_english}
    assert not sorted(meanings - translated - UNTRANSLATABLE), "details without a translation"
    assert not sorted(translated - meanings), "translations of details the source no longer writes"
    for code, by_english in words.details.items():
        for english, text in by_english.items():
            assert english.count("…") == text.count("…"), (code, english, text)


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "en"),
        ("", "en"),
        ("es", "es"),
        ("es-MX", "es"),
        ("ES-419", "es"),
        ("en-US,en;q=0.9", "en"),
        ("es-ES,es;q=0.9,en;q=0.8", "es"),
        ("en;q=0.5, es", "es"),
        ("fr, de;q=0.9, es;q=0.1", "es"),
        ("es;q=0, en", "en"),
        ("es;q=0", "en"),
        ("*", "en"),
        ("de, *;q=0.5", "en"),
        ("es;q=nonsense, en;q=0.1", "en"),
        ("not a tag, es", "es"),
    ],
)
def test_accept_language_chooses_by_quality_then_order(header: str | None, language: str) -> None:
    assert problemtext.negotiate(header) == language


def test_a_detail_with_values_is_translated_around_them() -> None:
    assert problemtext.localize("rate_limited", "Too many requests; slow down", "Try again in 12 s.", "es") == (
        "Demasiadas solicitudes; vaya más despacio",
        "Inténtelo de nuevo en 12 s.",
    )
    # A value that is itself an English word of the source's (here "body") is translated too.
    assert problemtext.localize("invalid_request", "The request is not valid", "Check the body.", "es")[1] == (
        "Revise los datos enviados (cuerpo)."
    )
    # What no template matches stays as it is rather than being lost.
    assert problemtext.localize("http_error", "I'm a teapot", "418: short and stout", "es") == (
        "Error en la solicitud",
        "418: short and stout",
    )
    assert problemtext.localize("not_found", "Not found", "No such thing.", "en") == ("Not found", "No such thing.")


def build_api() -> Api:
    api = Api("checkin", "Test")

    @api.get("/member", summary="A domain error with a fixed detail", roles=None)
    async def member(_call: Call) -> dict[str, Any]:
        raise NotFound("No such member here.", code="member_not_found")

    @api.get("/capacity", summary="A domain error whose detail holds a value", roles=None)
    async def capacity(_call: Call) -> dict[str, Any]:
        raise Conflict(
            f"{3} volunteers are confirmed; drop some before lowering the capacity.", code="capacity_below_confirmed"
        )

    return api


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(build_api(), Settings(rate_limit_per_minute=0)))) as client:
        yield client


async def answer(client: TestClient, path: str, language: str | None) -> tuple[int, dict[str, Any], Any]:
    headers = {} if language is None else {"Accept-Language": language}
    async with client.get(path, headers=headers) as response:
        assert response.content_type == "application/problem+json"
        return response.status, json.loads(await response.text()), response.headers


async def test_a_problem_answers_in_the_language_asked_for_with_the_same_code_and_status(client: TestClient) -> None:
    status, english, headers = await answer(client, "/member", None)
    assert (status, english["code"], english["title"], english["detail"]) == (
        404,
        "member_not_found",
        "Not found",
        "No such member here.",
    )
    assert (headers["Content-Language"], headers["Vary"]) == ("en", "Accept-Language")

    status, spanish, headers = await answer(client, "/member", "es-MX,es;q=0.9,en;q=0.8")
    assert (status, spanish["code"], spanish["type"]) == (404, "member_not_found", english["type"])
    assert (spanish["title"], spanish["detail"]) == ("Miembro no encontrado", "Aquí no existe ese miembro.")
    assert headers["Content-Language"] == "es"

    status, spanish, _ = await answer(client, "/capacity", "es")
    assert (status, spanish["code"], spanish["detail"]) == (
        409,
        "capacity_below_confirmed",
        "Hay 3 voluntarios confirmados; quite algunos antes de reducir la capacidad.",
    )
    # The framework's own answers (no such route) and unknown languages.
    status, spanish, headers = await answer(client, "/nowhere", "es")
    assert (status, spanish["code"], spanish["title"], headers["Content-Language"]) == (
        404,
        "not_found",
        "No encontrado",
        "es",
    )
    status, fallback, headers = await answer(client, "/member", "de-DE, fr;q=0.8")
    assert (fallback["title"], headers["Content-Language"]) == ("Not found", "en")
