"""What a problem+json answer says to a person (``title`` and ``detail``), in the language the client asked for.

The ``code`` and the status never change with the language. The source writes English; each other language has one
JSON catalogue beside this module (``es.json``):

- ``titles``: a title for every code ``docs/errors.md`` lists (a unit test names any that is missing);
- ``details``: by code, the English detail as ``docs/errors.md`` lists it (``…`` where the answer fills in a value)
  and the same in the language, its ``…`` filled with the values in the same order (a detail no template matches
  stays in English);
- ``values``: the words English details fill in themselves (``body``, ``event``…), translated where they appear.

To add a language: write ``<language>.json`` the same way and add the language to ``LANGUAGES``.

``request_context_middleware`` (shared/web.py) sets :data:`LANGUAGE` from ``Accept-Language`` for each request;
``shared.web.problem`` reads it, as it reads the request id, so every problem any route answers is translated in
one place."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import resources

from babel import negotiate_locale

DEFAULT = "en"
LANGUAGES = (DEFAULT, "es")
PLACEHOLDER = "…"
# More language ranges than any browser sends; the rest of a longer header is not read.
MAX_RANGES = 20

LANGUAGE: ContextVar[str] = ContextVar("problem_language", default=DEFAULT)


@dataclass(frozen=True)
class Catalogue:
    language: str
    titles: Mapping[str, str]
    details: Mapping[str, Mapping[str, str]]
    values: Mapping[str, str]
    # By code: each detail template with values, as a pattern of the English and the translation's pieces.
    templates: Mapping[str, tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]]

    def detail(self, code: str, english: str) -> str | None:
        exact = self.details.get(code, {}).get(english)
        if exact is not None:
            return exact
        for pattern, pieces in self.templates.get(code, ()):
            matched = pattern.fullmatch(english)
            if matched is not None:
                values = [self.values.get(value, value) for value in matched.groups()]
                return pieces[0] + "".join(value + piece for value, piece in zip(values, pieces[1:], strict=True))
        return None


def template_pattern(english: str) -> re.Pattern[str]:
    """The English detail template as a pattern: each ``…`` a value (as short as the rest allows)."""
    return re.compile("(.+?)".join(re.escape(piece) for piece in english.split(PLACEHOLDER)), re.DOTALL)


@functools.cache
def catalogue(language: str) -> Catalogue:
    text = resources.files(__package__).joinpath(f"{language}.json").read_text(encoding="utf-8")
    data = json.loads(text)
    details: dict[str, dict[str, str]] = data["details"]
    templates = {
        code: tuple(
            (template_pattern(english), tuple(translated.split(PLACEHOLDER)))
            for english, translated in by_english.items()
            if PLACEHOLDER in english
        )
        for code, by_english in details.items()
    }
    return Catalogue(language, data["titles"], details, data.get("values", {}), templates)


@functools.lru_cache(maxsize=512)
def negotiate(accept_language: str | None) -> str:
    """The language of ``LANGUAGES`` an ``Accept-Language`` header prefers (RFC 9110 §12.5.4: by q-value, then in
    the order given; ``q=0`` refuses; ``es-MX`` is served ``es``); English when it names none of them."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")[:MAX_RANGES]):
        tag, _, parameters = item.partition(";")
        tag = tag.strip()
        if not tag or tag == "*":
            continue
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(1.0, float(value))
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, tag))
    preferred = [tag for _, _, tag in sorted(ranked)]
    chosen = negotiate_locale(preferred, LANGUAGES, sep="-")
    return chosen.lower() if chosen is not None and chosen.lower() in LANGUAGES else DEFAULT


def localize(code: str, title: str, detail: str | None, language: str) -> tuple[str, str | None]:
    """``title`` and ``detail`` of a problem with ``code`` in ``language``; what the catalogue lacks stays English."""
    if language == DEFAULT:
        return title, detail
    words = catalogue(language)
    translated_detail = None if detail is None else words.detail(code, detail) or detail
    return words.titles.get(code, title), translated_detail
