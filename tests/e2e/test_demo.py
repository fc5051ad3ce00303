"""``rcc demo``, the README's first command, in this process on ports of its own and with no mail relay configured:
it starts an SMTP server of its own, the demo volunteer's address is confirmed from the message that server got, a
waitlist promotion reaches them there, and the delivery log it prints names no address."""

from __future__ import annotations

import pytest

from services.demo import DEMO_ADDRESS, run_demo
from services.registry import SERVABLE
from shared.settings import Settings

pytestmark = pytest.mark.e2e


async def test_the_demo_starts_its_own_mail_server_and_shows_what_it_received(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("RCC_SMTP_URL", "RCC_NOTIFY_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    on_free_ports = settings.model_copy(update={f"{name}_port": 0 for name in SERVABLE})

    assert await run_demo(on_free_ports, keep_serving=False) == 0

    out = capsys.readouterr().out
    assert f"[mail server] to {DEMO_ADDRESS}: Please confirm your email" in out
    assert "200  they follow the link in it: the address is confirmed" in out
    assert "can be reached: True (never where)" in out
    assert "our volunteer is promoted" in out
    # The promotion reaches the person: notify's message is in the demo's mail server, with its neutral subject.
    assert f"[mail server] to {DEMO_ADDRESS}: your center: A place opened up: you are on a volunteer shift" in out
    assert "notify e-mailed them that a place opened up" in out
    log = out.split("The delivery log")[1].split("Tokens for")[0]
    assert "verification" in log and " sent " in log
    assert "@" not in log, "the delivery log printed an address"
