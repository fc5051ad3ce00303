"""Sites and tokens, without a database: validation, token shape, site checks, the header paths of authenticate."""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import time
from types import SimpleNamespace
from typing import Any

import pytest

from shared.access import (
    TOKEN_PREFIX,
    UNKNOWN_TOKEN_TTL_S,
    Principal,
    Role,
    TokenStore,
    hash_token,
    new_token,
    parse_closes_at,
    validate_site,
)
from shared.errors import Forbidden, InvalidInput, Unauthorized

# validate_site


@pytest.mark.parametrize("site_id", ["downtown", "a", "site-2", "0north", "a" * 40])
def test_good_site_ids_pass(site_id: str) -> None:
    validate_site(site_id, 40, "America/New_York")


@pytest.mark.parametrize(
    "site_id",
    [
        "",
        "Downtown",  # upper case
        "-downtown",  # starts with a dash
        "down town",
        "down_town",
        "downtown/1",
        "a" * 41,  # too long
        "downtown\n",  # a trailing newline is not part of a site id
    ],
)
def test_bad_site_ids_are_refused(site_id: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_site(site_id, 40, "America/New_York")
    assert raised.value.code == "bad_site_id"


@pytest.mark.parametrize("capacity", [0, -1])
def test_non_positive_capacity_is_refused(capacity: int) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_site("downtown", capacity, "America/New_York")
    assert raised.value.code == "bad_capacity"


@pytest.mark.parametrize(
    "timezone",
    [
        "Mars/Olympus_Mons",
        "america/new_york",
        "",
        "/etc/passwd",
        "../etc/passwd",
        "America",  # a directory of zones, not a zone
    ],
)
def test_unknown_timezone_is_refused(timezone: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_site("downtown", 40, timezone)
    assert raised.value.code == "bad_timezone"


def test_site_id_is_checked_before_capacity_and_timezone() -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_site("BAD", 0, "Nowhere")
    assert raised.value.code == "bad_site_id"


@pytest.mark.parametrize(("text", "expected"), [("21:00", time(21, 0)), ("07:30", time(7, 30))])
def test_parse_closes_at(text: str, expected: time) -> None:
    assert parse_closes_at(text) == expected


@pytest.mark.parametrize("text", ["9pm", "25:00", "21", ""])
def test_parse_closes_at_refuses_other_shapes(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_closes_at(text)
    assert raised.value.code == "bad_closing_time"


# Tokens


def test_new_token_has_the_prefix_and_at_least_128_random_bits() -> None:
    token = new_token()
    assert token.startswith(TOKEN_PREFIX)
    assert TOKEN_PREFIX == "rcc_"
    secret = token.removeprefix(TOKEN_PREFIX)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", secret)  # URL-safe base64: 6 bits per character
    assert len(secret) * 6 >= 128
    assert len(token) <= 100  # authenticate refuses longer ones


def test_new_tokens_differ() -> None:
    assert len({new_token() for _ in range(100)}) == 100


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("rcc_abc") == hashlib.sha256(b"rcc_abc").hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_token(new_token()))
    assert hash_token("rcc_abc") != hash_token("rcc_abd")


# Principal.require_site


def principal(role: Role, site: str = "downtown") -> Principal:
    return Principal(token_id=uuid.uuid4(), role=role, site_id=site, member_id=None)


@pytest.mark.parametrize("role", [Role.KIOSK, Role.VOLUNTEER, Role.COORDINATOR])
def test_non_admin_of_another_site_is_forbidden(role: Role) -> None:
    with pytest.raises(Forbidden) as raised:
        principal(role).require_site("uptown")
    assert raised.value.code == "wrong_site"
    assert raised.value.status == 403


@pytest.mark.parametrize("role", list(Role))
def test_every_role_works_on_its_own_site(role: Role) -> None:
    principal(role).require_site("downtown")


def test_admin_works_on_any_site() -> None:
    principal(Role.ADMIN).require_site("uptown")


def test_actor_id_is_the_token_id() -> None:
    who = principal(Role.KIOSK)
    assert who.actor_id == f"token:{who.token_id}"


# TokenStore.authenticate: the paths decided before any lookup


@pytest.fixture
def store() -> TokenStore:
    return TokenStore(engine=None)  # type: ignore[arg-type]  # these paths never reach the database


@pytest.mark.parametrize("header", [None, "", "rcc_abc", "Basic dXNlcjpwYXNz", "Token rcc_abc", "Bearer"])
async def test_missing_or_non_bearer_header_is_missing_token(store: TokenStore, header: str | None) -> None:
    with pytest.raises(Unauthorized) as raised:
        await store.authenticate(header)
    assert raised.value.code == "missing_token"
    assert raised.value.status == 401


@pytest.mark.parametrize("token", ["abc", "xyz_" + "a" * 43, "RCC_abc", "rcc_" + "a" * 97])
async def test_token_without_the_prefix_or_too_long_is_invalid_token(store: TokenStore, token: str) -> None:
    with pytest.raises(Unauthorized) as raised:
        await store.authenticate(f"Bearer {token}")
    assert raised.value.code == "invalid_token"


# TokenStore caching: bounded, least recently used out first, unknown tokens apart and briefly


class Tokens:
    """Stands in for the engine: answers the token look-up from a dict, and counts the look-ups."""

    def __init__(self) -> None:
        self.rows: dict[str, Principal] = {}
        self.lookups: list[str] = []

    def issue(self, role: Role = Role.KIOSK) -> str:
        token = new_token()
        self.rows[hash_token(token)] = principal(role)
        return token

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Tokens]:
        yield self

    async def execute(self, statement: Any) -> Any:
        (token_hash,) = statement.compile().params.values()
        self.lookups.append(token_hash)
        found = self.rows.get(token_hash)
        row = (
            None
            if found is None
            else SimpleNamespace(
                token_id=found.token_id, role=found.role.value, site_id=found.site_id, member_id=found.member_id
            )
        )
        return SimpleNamespace(first=lambda: row)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_flood_of_made_up_tokens_leaves_a_real_token_cached() -> None:
    db = Tokens()
    store = TokenStore(db, ttl_s=60, max_entries=100)  # type: ignore[arg-type]
    real = db.issue()
    who = await store.authenticate(f"Bearer {real}")

    for _ in range(2_000):
        with pytest.raises(Unauthorized):
            await store.authenticate(f"Bearer {new_token()}")

    assert await store.authenticate(f"Bearer {real}") == who
    assert db.lookups.count(hash_token(real)) == 1  # still answered from the cache
    assert len(store._unknown) <= 10  # the misses stayed in their own, smaller cache


async def test_a_full_cache_of_real_tokens_forgets_the_least_recently_used_one_only() -> None:
    db = Tokens()
    store = TokenStore(db, ttl_s=60, max_entries=3)  # type: ignore[arg-type]
    first, second, third, fourth = (db.issue() for _ in range(4))
    for token in (first, second, third, first, fourth):  # first used again: second is now the oldest
        await store.authenticate(f"Bearer {token}")

    for token in (first, third, fourth):
        await store.authenticate(f"Bearer {token}")
    assert db.lookups.count(hash_token(first)) == 1
    assert db.lookups.count(hash_token(third)) == 1
    assert db.lookups.count(hash_token(fourth)) == 1
    await store.authenticate(f"Bearer {second}")
    assert db.lookups.count(hash_token(second)) == 2  # only it was forgotten


async def test_an_unknown_token_is_remembered_only_briefly() -> None:
    db, clock = Tokens(), Clock()
    store = TokenStore(db, ttl_s=5, clock=clock)  # type: ignore[arg-type]
    token = new_token()
    for _ in range(3):  # a kiosk retrying a token that does not exist yet costs one look-up
        with pytest.raises(Unauthorized):
            await store.authenticate(f"Bearer {token}")
    assert len(db.lookups) == 1

    db.rows[hash_token(token)] = principal(Role.KIOSK)  # the token is issued now
    clock.now += UNKNOWN_TOKEN_TTL_S
    assert (await store.authenticate(f"Bearer {token}")).role is Role.KIOSK
    assert store.ttl_s > UNKNOWN_TOKEN_TTL_S


async def test_a_cached_token_is_looked_up_again_after_the_ttl() -> None:
    db, clock = Tokens(), Clock()
    store = TokenStore(db, ttl_s=5, clock=clock)  # type: ignore[arg-type]
    token = db.issue()
    await store.authenticate(f"Bearer {token}")
    clock.now += 4.9
    await store.authenticate(f"Bearer {token}")
    assert len(db.lookups) == 1
    del db.rows[hash_token(token)]  # revoked
    clock.now += 0.1
    with pytest.raises(Unauthorized):
        await store.authenticate(f"Bearer {token}")
