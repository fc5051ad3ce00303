"""Settings that must agree with each other are refused together at start-up, with both names in the message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import Settings


def test_the_default_consumer_window_holds_two_batches() -> None:
    settings = Settings()
    assert settings.consumer_prefetch >= 2 * settings.consumer_batch_size


def test_a_consumer_window_narrower_than_two_batches_is_refused() -> None:
    Settings(consumer_prefetch=20, consumer_batch_size=10)
    with pytest.raises(ValidationError, match=r"RCC_CONSUMER_PREFETCH.*twice RCC_CONSUMER_BATCH_SIZE"):
        Settings(consumer_prefetch=19, consumer_batch_size=10)


def test_the_window_rule_reads_the_environment_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCC_CONSUMER_PREFETCH", "256")
    monkeypatch.setenv("RCC_CONSUMER_BATCH_SIZE", "200")
    with pytest.raises(ValidationError):
        Settings()
