"""What each message says, in English and Spanish, and the neutral line a lock screen shows.

The subject, the first line of the body and the in-app summary are built from the headline alone, whose only
values are neutral by construction: the site's *message name*, what kind of thing it is ("a volunteer shift",
"a session"), a date and time, a number. A site's full name, a group's or an event's title never reach a headline;
the full name may appear further down the body, where a lock screen does not show it."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_currency

from services.notify.domain import KIND_OF, Locale
from shared.contracts.notify import MessagePurpose, Purpose

# Values a message keeps (the deliveries' ``values``): times as ISO 8601, numbers, and what the thing is.
Values = Mapping[str, str | int | None]

WHAT: dict[tuple[str, Locale], str] = {
    ("shift", "en"): "a volunteer shift",
    ("shift", "es"): "un turno de voluntariado",
    ("session", "en"): "a session",
    ("session", "es"): "una sesión",
    ("event", "en"): "an event",
    ("event", "es"): "un evento",
}

HEADLINES: dict[MessagePurpose, dict[Locale, str]] = {
    "verification": {
        "en": "Please confirm your email for {name}",
        "es": "Confirme su correo electrónico para {name}",
    },
    "shift_confirmed": {
        "en": "You have a place on a volunteer shift, {when}",
        "es": "Tiene un lugar en un turno de voluntariado, {when}",
    },
    "shift_waitlisted": {
        "en": "You are number {position} on the waiting list for a volunteer shift, {when}",
        "es": "Está en el puesto {position} de la lista de espera de un turno de voluntariado, {when}",
    },
    "shift_promoted": {
        "en": "A place opened up: you are on a volunteer shift, {when}",
        "es": "Se liberó un lugar: ya está en un turno de voluntariado, {when}",
    },
    "shift_dropped": {
        "en": "You are no longer on a volunteer shift, {when}",
        "es": "Ya no está en un turno de voluntariado, {when}",
    },
    "shift_changed": {
        "en": "A volunteer shift of yours changed: now {when}",
        "es": "Cambió uno de sus turnos de voluntariado: ahora {when}",
    },
    "shift_cancelled": {
        "en": "A volunteer shift of yours was cancelled, {when}",
        "es": "Se canceló uno de sus turnos de voluntariado, {when}",
    },
    "shift_missed": {
        "en": "A volunteer may welcome a friendly check-in (shift of {when})",
        "es": "Un voluntario agradecería que le pregunten cómo está (turno del {when})",
    },
    "hours_approved": {
        "en": "Your volunteer hours were approved: {hours} (shift of {when})",
        "es": "Se aprobaron sus horas de voluntariado: {hours} (turno del {when})",
    },
    "hours_rejected": {
        "en": "A coordinator would like a word about your volunteer hours (shift of {when})",
        "es": "Un coordinador quiere hablar con usted sobre sus horas de voluntariado (turno del {when})",
    },
    "stipend_paid": {
        "en": "Your stipend for {period} was paid: {amount}",
        "es": "Se pagó su estipendio de {period}: {amount}",
    },
    "gathering_confirmed": {
        "en": "You have a place at {what}, {when}",
        "es": "Tiene un lugar en {what}, {when}",
    },
    "gathering_waitlisted": {
        "en": "You are number {position} on the waiting list for {what}, {when}",
        "es": "Está en el puesto {position} de la lista de espera de {what}, {when}",
    },
    "gathering_promoted": {
        "en": "A place opened up: you have a place at {what}, {when}",
        "es": "Se liberó un lugar: tiene un lugar en {what}, {when}",
    },
    "gathering_cancelled": {
        "en": "Your place at {what} was cancelled, {when}",
        "es": "Se canceló su lugar en {what}, {when}",
    },
    "session_cancelled": {
        "en": "A session you had a place at was cancelled, {when}",
        "es": "Se canceló una sesión en la que tenía lugar, {when}",
    },
    "event_cancelled": {
        "en": "An event you had a place at was cancelled, {when}",
        "es": "Se canceló un evento en el que tenía lugar, {when}",
    },
    "shift_reminder": {
        "en": "Reminder: your volunteer shift, {when}",
        "es": "Recordatorio: su turno de voluntariado, {when}",
    },
    "gathering_reminder": {
        "en": "Reminder: {what}, {when}",
        "es": "Recordatorio: {what}, {when}",
    },
}

# A line further down the body, where a message needs one.
DETAILS: dict[tuple[MessagePurpose, Locale], str] = {
    ("shift_missed", "en"): "A volunteer did not check in for their shift. A kind word to ask how they are is all "
    "that is needed; nothing else follows from it.",
    ("shift_missed", "es"): "Un voluntario no registró su llegada al turno. Basta una palabra amable para preguntarle "
    "cómo está; no tiene ninguna otra consecuencia.",
    ("hours_rejected", "en"): "A coordinator will tell you more; nothing is needed from you before then.",
    ("hours_rejected", "es"): "Un coordinador le contará más; no necesita hacer nada hasta entonces.",
    ("shift_waitlisted", "en"): "If a place opens up, you get it in turn and we tell you.",
    ("shift_waitlisted", "es"): "Si se libera un lugar, lo recibe por turno y se lo avisamos.",
    ("gathering_waitlisted", "en"): "If a place opens up, you get it in turn and we tell you.",
    ("gathering_waitlisted", "es"): "Si se libera un lugar, lo recibe por turno y se lo avisamos.",
}

KIND_LABELS: dict[tuple[Purpose, Locale], str] = {
    ("verification", "en"): "this confirmation",
    ("verification", "es"): "esta confirmación",
    ("confirmations", "en"): "confirmations",
    ("confirmations", "es"): "confirmaciones",
    ("changes", "en"): "changes",
    ("changes", "es"): "cambios",
    ("reminders", "en"): "reminders",
    ("reminders", "es"): "recordatorios",
    ("approvals", "en"): "approvals",
    ("approvals", "es"): "aprobaciones",
}


@dataclass(frozen=True, slots=True)
class Wording:
    """The neutral parts of one message, in one language."""

    headline: str  # the in-app summary and the first line of the body
    subject: str
    when_long: str | None  # further down the body
    kind_label: str


def short_when(at: datetime, zone: zoneinfo.ZoneInfo, locale: Locale) -> str:
    """ "Sat 7 Mar 9:00" / "sáb 7 mar 9:00", on the site's clock."""
    return str(format_datetime(at, "EEE d MMM H:mm", tzinfo=zone, locale=locale))


def long_when(at: datetime, zone: zoneinfo.ZoneInfo, locale: Locale) -> str:
    local = at.astimezone(zone)
    return f"{format_date(local, 'full', locale=locale)}, {format_time(local, 'short', tzinfo=zone, locale=locale)}"


def _hours(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest:02d} min" if rest else f"{hours} h"


def word(purpose: MessagePurpose, values: Values, locale: Locale, zone: zoneinfo.ZoneInfo, name: str) -> Wording:
    starts = values.get("starts_at")
    at = datetime.fromisoformat(starts) if isinstance(starts, str) else None
    when = short_when(at, zone, locale) if at is not None else ""
    what = WHAT.get((str(values.get("what") or "shift"), locale), WHAT[("shift", locale)])
    minutes = values.get("minutes")
    cents = values.get("amount_cents")
    line = HEADLINES[purpose][locale]
    headline = line.format(
        name=name,
        when=when,
        what=what,
        position=values.get("position") or 1,
        hours=_hours(minutes if isinstance(minutes, int) else 0),
        # Babel's currency format is the dearest part of a message: only where the line says an amount.
        amount=format_currency((cents if isinstance(cents, int) else 0) / 100, "USD", locale=locale)
        if "{amount}" in line
        else "",
        period=values.get("period") or "",
    )
    subject = headline if purpose == "verification" else f"{name}: {headline}"
    return Wording(
        headline=headline,
        subject=subject,
        when_long=long_when(at, zone, locale) if at is not None else None,
        kind_label=KIND_LABELS[(KIND_OF[purpose], locale)],
    )


def summary(purpose: MessagePurpose, values: Values, locale: Locale, zone: zoneinfo.ZoneInfo, name: str) -> str:
    return word(purpose, values, locale, zone, name).headline


def detail(purpose: MessagePurpose, locale: Locale) -> str:
    return DETAILS.get((purpose, locale), "")
