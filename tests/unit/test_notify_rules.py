"""The rules of what is told and when, without I/O: quiet hours (over midnight, across clock changes), the daily
cap, which reminder a catch-up sends, site message settings, and neutral wording in English and Spanish."""

from __future__ import annotations

import dataclasses
import zoneinfo
from datetime import UTC, datetime, time, timedelta
from typing import get_args

import pytest

from services.notify import domain, wording
from services.notify.domain import Locale
from services.notify.mail import Letter, compose
from shared.contracts.notify import MessagePurpose
from shared.errors import InvalidInput

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
NIGHT = (time(22), time(7))
SITE_FULL_NAME = "Riverside Recovery Center"
# What a lock screen must never show: the site's full name, what the center is for, a group's title.
REVEALING = ("recovery", "recuperación", "recuperacion", "riverside", "sober", "sobri", "addict", "adicc", "alcohol",
             "narcotics", "anonymous", "anónimos")  # fmt: skip


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CHICAGO)


def test_quiet_hours_over_midnight_end_next_morning_or_this_morning() -> None:
    late = local(2026, 6, 10, 23, 30)
    assert domain.quiet_until(late, CHICAGO, *NIGHT) == local(2026, 6, 11, 7, 0)
    early = local(2026, 6, 11, 3, 0)
    assert domain.quiet_until(early, CHICAGO, *NIGHT) == local(2026, 6, 11, 7, 0)
    assert domain.quiet_until(local(2026, 6, 11, 7, 0), CHICAGO, *NIGHT) is None
    assert domain.quiet_until(local(2026, 6, 11, 12, 0), CHICAGO, *NIGHT) is None
    assert domain.quiet_until(local(2026, 6, 11, 21, 59), CHICAGO, *NIGHT) is None
    assert domain.quiet_until(late, CHICAGO, None, None) is None


def test_quiet_hours_within_a_day() -> None:
    assert domain.quiet_until(local(2026, 6, 11, 13, 30), CHICAGO, time(13), time(15)) == local(2026, 6, 11, 15)
    assert domain.quiet_until(local(2026, 6, 11, 15, 30), CHICAGO, time(13), time(15)) is None


def test_quiet_hours_end_on_the_wall_clock_across_daylight_saving_changes() -> None:
    # Spring forward (8 March 2026, 02:00 -> 03:00): the night is an hour shorter, the end is still 07:00.
    before_spring = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 23:00 CST on the 7th
    until = domain.quiet_until(before_spring, CHICAGO, *NIGHT)
    assert until == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)  # 07:00 CDT
    assert until is not None and until.astimezone(CHICAGO).hour == 7
    # Fall back (1 November 2026, 02:00 -> 01:00): an hour longer, and still 07:00.
    before_fall = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 23:00 CDT on the 31st
    until = domain.quiet_until(before_fall, CHICAGO, *NIGHT)
    assert until == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)  # 07:00 CST
    # In the repeated hour (01:30 twice) it is quiet both times.
    assert domain.quiet_until(datetime(2026, 11, 1, 6, 30, tzinfo=UTC), CHICAGO, *NIGHT) == until
    assert domain.quiet_until(datetime(2026, 11, 1, 7, 30, tzinfo=UTC), CHICAGO, *NIGHT) == until


def test_plan_sends_defers_or_drops() -> None:
    night = local(2026, 6, 10, 23, 0)
    assert domain.plan_send(local(2026, 6, 10, 12), CHICAGO, NIGHT, None) == domain.Send()
    assert domain.plan_send(night, CHICAGO, NIGHT, None) == domain.Defer(local(2026, 6, 11, 7))
    # A reminder of a 9:00 shift, due at 23:00: deferred to 07:00, still before the start.
    assert domain.plan_send(night, CHICAGO, NIGHT, local(2026, 6, 11, 9)) == domain.Defer(local(2026, 6, 11, 7))
    # A reminder of a 06:00 shift: the quiet hours outlast the start, so it is dropped, not sent late.
    assert domain.plan_send(night, CHICAGO, NIGHT, local(2026, 6, 11, 6)) == domain.Drop("quiet_hours")
    assert domain.plan_send(night, CHICAGO, (None, None), night) == domain.Drop("too_late")


def test_daily_cap() -> None:
    assert not domain.over_daily_cap(9, 10)
    assert domain.over_daily_cap(10, 10)


def test_catch_up_sends_only_the_latest_reminder_still_ahead() -> None:
    start = datetime(2026, 6, 11, 15, 0, tzinfo=UTC)
    [(_, day_before), (_, two_hours)] = domain.reminder_due((1440, 120), start)
    assert (day_before, two_hours) == (start - timedelta(days=1), start - timedelta(hours=2))
    both_due = [day_before, two_hours]
    # Down from the day before until an hour before the start: the 2-hour one goes, the stale one does not.
    now = start - timedelta(hours=1)
    assert domain.reminder_fate(two_hours, start, both_due, now) is True
    assert domain.reminder_fate(day_before, start, both_due, now) is False
    # On time: the 24-hour one goes when it is due (the 2-hour one is not due yet).
    assert domain.reminder_fate(day_before, start, [day_before], day_before + timedelta(seconds=1)) is True
    # Down until after the start: nothing.
    after = start + timedelta(minutes=5)
    assert not any(domain.reminder_fate(due, start, both_due, after) for due in both_due)


def test_site_message_settings_are_checked() -> None:
    assert domain.check_message_name(None) is None
    assert domain.check_message_name(" Riverside Center ") == "Riverside Center"
    for name, code in [
        ("Riverside Recovery Center", "message_name_not_neutral"),
        ("Centro de Recuperación", "message_name_not_neutral"),
        ("Sober House", "message_name_not_neutral"),
        ("", "bad_message_name"),
        ("x" * 61, "bad_message_name"),
        ("Center\r\nBcc: x@y.example", "bad_message_name"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            domain.check_message_name(name)
        assert refused.value.code == code, name
    assert domain.check_reminder_offsets([120, 1440]) == (1440, 120)
    assert domain.check_reminder_offsets([]) == ()
    for offsets in ([120, 120], [1], [20161], [10, 20, 30, 40, 50]):
        with pytest.raises(InvalidInput) as refused:
            domain.check_reminder_offsets(offsets)
        assert refused.value.code == "bad_reminder_offsets"
    for cap in (0, 101):
        with pytest.raises(InvalidInput) as refused:
            domain.check_daily_cap(cap)
        assert refused.value.code == "bad_daily_cap"


VALUES: dict[str, str | int | None] = {
    "starts_at": "2026-03-07T15:00:00+00:00",
    "what": "session",
    "position": 2,
    "minutes": 135,
    "amount_cents": 4250,
    "period": "2026-02",
}
PURPOSES: tuple[MessagePurpose, ...] = tuple(p for p in get_args(MessagePurpose) if p != "verification")
LOCALES: tuple[Locale, ...] = ("en", "es")


def _letter(purpose: MessagePurpose, locale: Locale, values: dict[str, str | int | None] | None = None) -> Letter:
    return Letter(
        purpose=purpose,
        locale=locale,
        to="ana@mail.example",
        message_id=f"<{purpose}.e.c@center.example>",
        unsubscribe_url="https://center.example/contacts/unsubscribe?key=k",
        values={},
        template_values=VALUES if values is None else values,
        zone=CHICAGO,
        page_url="https://center.example/volunteer",
        place=SITE_FULL_NAME,
    )


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("purpose", PURPOSES)
def test_subject_and_first_line_are_neutral(purpose: MessagePurpose, locale: Locale) -> None:
    message = compose(_letter(purpose, locale), "mail@center.example", "your center", datetime.now(UTC))
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    first_line = plain.get_content().splitlines()[0]
    summary = wording.summary(purpose, VALUES, locale, CHICAGO, "your center")
    for shown in (str(message["Subject"]), first_line, summary):
        assert not [word for word in REVEALING if word in shown.lower()], (purpose, locale, shown)
    assert first_line == summary and str(message["Subject"]).startswith("your center: ")
    # The full name is further down, where a lock screen does not show it; so are the links.
    assert SITE_FULL_NAME in plain.get_content() and "https://center.example/volunteer" in plain.get_content()
    assert message["List-Unsubscribe"] == "<https://center.example/contacts/unsubscribe?key=k>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_dates_are_in_the_site_zone_and_the_locale() -> None:
    values: dict[str, str | int | None] = {"starts_at": "2026-03-07T15:00:00+00:00", "what": "shift"}
    assert wording.summary("shift_confirmed", values, "en", CHICAGO, "x") == (
        "You have a place on a volunteer shift, Sat 7 Mar 9:00"
    )
    assert wording.summary("shift_confirmed", values, "es", CHICAGO, "x") == (
        "Tiene un lugar en un turno de voluntariado, sáb 7 mar 9:00"
    )
    spanish = compose(_letter("shift_promoted", "es", values), "mail@center.example", "su centro", datetime.now(UTC))
    plain = spanish.get_body(preferencelist=("plain",))
    assert plain is not None and "sábado, 7 de marzo de 2026" in plain.get_content()
    assert str(spanish["Subject"]).startswith("su centro: Se liberó un lugar")


def test_a_hostile_value_is_inert_in_html_and_cannot_add_a_header() -> None:
    hostile = dataclasses.replace(_letter("shift_confirmed", "en"), place="<script>x()</script>\r\nBcc: a@b")
    message = compose(hostile, "mail@center.example", "<b>center</b>\r\nBcc: thief@evil.example", datetime.now(UTC))
    html = message.get_body(preferencelist=("html",))
    assert html is not None and "<script>" not in html.get_content() and "&lt;script&gt;" in html.get_content()
    assert message["Bcc"] is None and "\n" not in str(message["Subject"])
