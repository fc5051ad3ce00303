"""Which parts a process role runs, and the broker node list (``rcc serve --role``, ``RCC_AMQP_URL``)."""

from __future__ import annotations

import pytest

from services.cli import build_parser
from shared.runtime import uses_broker
from shared.settings import PROCESS_ROLES, Settings


@pytest.mark.parametrize(
    ("role", "parts"),
    [
        ("web", {"web"}),
        ("relay", {"relay"}),
        ("consumers", {"consumers"}),
        ("scheduler", {"scheduler"}),
        ("all", {"web", "relay", "consumers", "scheduler"}),
    ],
)
def test_a_role_runs_its_own_part_and_all_runs_every_part(role: str, parts: set[str]) -> None:
    settings = Settings(role=role)  # type: ignore[arg-type]
    assert {part for part in PROCESS_ROLES if part != "all" and settings.runs(part)} == parts
    assert uses_broker(settings) == bool(parts & {"relay", "consumers"})


def test_broker_nodes_come_from_a_comma_separated_url_or_the_list_setting() -> None:
    one = "amqp://guest:guest@127.0.0.1:5672/"
    assert Settings(amqp_url=one).amqp_nodes == [one]
    listed = "amqp://a:5701/, amqp://b:5702/,amqp://c:5703/"
    assert Settings(amqp_url=listed).amqp_nodes == ["amqp://a:5701/", "amqp://b:5702/", "amqp://c:5703/"]
    assert Settings(amqp_url=one, amqp_urls="amqp://x:1/,amqp://y:2/").amqp_nodes == ["amqp://x:1/", "amqp://y:2/"]


def test_serve_takes_a_role_and_refuses_an_unknown_one() -> None:
    assert build_parser().parse_args(["serve", "checkin", "--role", "relay"]).role == "relay"
    assert build_parser().parse_args(["serve", "checkin"]).role is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "checkin", "--role", "everything"])


def test_the_token_cache_cannot_outlive_five_seconds() -> None:
    with pytest.raises(ValueError):
        Settings(token_cache_ttl_s=5.5)
