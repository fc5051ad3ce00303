"""Notify rules without I/O: addresses, secrets, quiet hours, retries, the relay URL, and how a message is written."""

from __future__ import annotations

import email
import email.policy
import random
import uuid
from datetime import UTC, datetime, time, timedelta

import pytest

from services.notify import domain
from services.notify.mail import Letter, Relay, compose
from shared.errors import InvalidInput

AT = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "typed", ["plain", "a@b", "a b@c.example", "a@b.example\r\nBcc: x@y.example", "<a@b.example>", "a@-b.example", ""]
)
def test_bad_addresses_are_refused(typed: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        domain.normalize_address("email", typed)
    assert refused.value.code == "bad_address"


def test_an_address_keeps_its_local_part_and_lowers_its_domain() -> None:
    assert domain.normalize_address("email", "  Ana.Lopez+x@Mail.Example ") == "Ana.Lopez+x@mail.example"


def test_only_email_for_now() -> None:
    with pytest.raises(InvalidInput) as refused:
        domain.normalize_address("sms", "+15550100")
    assert refused.value.code == "channel_not_supported"


def test_quiet_hours_are_whole_and_not_empty() -> None:
    domain.check_quiet_hours(None, None)
    domain.check_quiet_hours(time(22), time(7))  # over midnight
    for start, end in [(time(22), None), (None, time(7)), (time(8), time(8))]:
        with pytest.raises(InvalidInput) as refused:
            domain.check_quiet_hours(start, end)
        assert refused.value.code == "bad_quiet_hours"


def test_secrets_are_stored_as_hashes() -> None:
    secret = domain.new_secret()
    assert len(secret) >= 43 and domain.hash_secret(secret) != secret and len(domain.hash_secret(secret)) == 64
    assert domain.new_secret() != secret


def test_a_link_works_once_and_until_it_expires() -> None:
    domain.check_verification(None, AT + timedelta(seconds=1), AT)
    with pytest.raises(domain.LinkGone) as used:
        domain.check_verification(AT, AT + timedelta(hours=1), AT)
    assert used.value.code == "verification_used"
    with pytest.raises(domain.LinkGone) as expired:
        domain.check_verification(None, AT, AT)
    assert expired.value.code == "verification_expired" and expired.value.status == 410


def test_message_id_is_deterministic() -> None:
    contact = uuid.uuid4()
    assert domain.message_id("verification", contact, "Center <mail@center.example>") == (
        f"<verification.{contact}@center.example>"
    )
    assert domain.message_id("verification", contact, "x@center.example") == domain.message_id(
        "verification", contact, "x@center.example"
    )


def test_retry_delay_grows_with_jitter() -> None:
    rng = random.Random(1)
    delays = [domain.retry_delay(n, 5.0, rng).total_seconds() for n in (1, 2, 3, 4)]
    for n, delay in enumerate(delays, start=1):
        assert 5.0 * 2 ** (n - 1) * 0.5 <= delay <= 5.0 * 2 ** (n - 1)


def test_relay_url() -> None:
    assert Relay.parse("smtp://user%40x:p%3Ass@127.0.0.1:2525") == Relay(
        "127.0.0.1", 2525, "user@x", "p:ss", False, False
    )
    assert Relay.parse("smtps://relay.example") == Relay("relay.example", 465, None, None, True, False)
    assert Relay.parse("smtp://relay.example:587?starttls=1").start_tls is True
    with pytest.raises(ValueError):
        Relay.parse("http://relay.example")


def _letter(locale: str = "en", **values: str) -> Letter:
    return Letter(
        purpose="verification",
        locale=locale,  # type: ignore[arg-type]
        to="ana@mail.example",
        message_id="<verification.x@center.example>",
        unsubscribe_url="https://center.example/contacts/unsubscribe?key=k",
        values={"verify_url": "https://center.example/contacts/verify?token=t", **values},
    )


def test_a_message_has_both_parts_and_the_one_click_headers() -> None:
    message = compose(_letter(), "mail@center.example", "your center", AT)
    assert message["List-Unsubscribe"] == "<https://center.example/contacts/unsubscribe?key=k>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"] == "<verification.x@center.example>"
    assert message["Subject"] == "Please confirm your email for your center"
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    assert "https://center.example/contacts/verify?token=t" in plain.get_content()


def test_spanish_message() -> None:
    message = compose(_letter("es"), "mail@center.example", "su centro", AT)
    assert str(message["Subject"]).startswith("Confirme su correo")


def test_hostile_values_are_inert_and_cannot_add_headers() -> None:
    message = compose(_letter(), "mail@center.example", "<script>x()</script>\r\nBcc: thief@evil.example", AT)
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert "<script>" not in html.get_content() and "&lt;script&gt;" in html.get_content()
    assert message["Bcc"] is None
    assert "\r" not in str(message["Subject"]) and "\n" not in str(message["Subject"])
    parsed = email.message_from_string(message.as_string(), policy=email.policy.default)
    assert "Bcc" not in parsed and parsed["To"] == "ana@mail.example"
