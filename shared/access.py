"""Sites and bearer tokens (schema ``access``), shared by every service.

Tokens are random (256 bits), shown once, stored only as SHA-256, and carry a role, a site and, for a volunteer,
the member id they act as. Lookups are cached for a few seconds so the kiosk hot path does not pay a round trip
per request; a revocation therefore takes effect within ``token_cache_ttl_s``. Each process caches for itself
(safe to diverge per replica: each forgets within the TTL)."""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
import time
import uuid
import zoneinfo
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as time_of_day
from typing import Generic, TypeVar

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    Time,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import NAMING_CONVENTION
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized

SCHEMA = "access"
metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)

SITE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
TOKEN_PREFIX = "rcc_"

sites = Table(
    "sites",
    metadata,
    Column("site_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("closes_at", Time, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("capacity > 0", name="capacity_positive"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_id", UUID(as_uuid=True), primary_key=True),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("role", Text, nullable=False),
    Column("site_id", Text, ForeignKey(sites.c.site_id), nullable=False),
    Column("member_id", UUID(as_uuid=True)),
    Column("label", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
    CheckConstraint("role IN ('kiosk', 'volunteer', 'coordinator', 'admin')", name="role_known"),
    CheckConstraint("role <> 'volunteer' OR member_id IS NOT NULL", name="volunteer_has_member"),
)


class Role(enum.StrEnum):
    KIOSK = "kiosk"
    VOLUNTEER = "volunteer"
    COORDINATOR = "coordinator"
    ADMIN = "admin"


STAFF = (Role.COORDINATOR, Role.ADMIN)


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: uuid.UUID
    role: Role
    site_id: str
    member_id: uuid.UUID | None
    # What events and logs record as the actor: the token's id, never a person's name. Formatted once per principal
    # (the token cache keeps it), not on every read: a UUID's str() on each request showed in the check-in profile.
    actor_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "actor_id", f"token:{self.token_id}")

    def require_site(self, site_id: str) -> None:
        """A kiosk, volunteer or coordinator works only on its own site; an admin on any."""
        if self.role is not Role.ADMIN and site_id != self.site_id:
            raise Forbidden("This token belongs to another site.", code="wrong_site")


@dataclass(frozen=True, slots=True)
class Site:
    site_id: str
    name: str
    capacity: int
    timezone: str
    closes_at: time_of_day

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def validate_site(site_id: str, capacity: int, timezone: str) -> None:
    if not SITE_ID_PATTERN.fullmatch(site_id):
        raise InvalidInput("A site id is 1-40 lowercase letters, digits or dashes.", code="bad_site_id")
    if capacity <= 0:
        raise InvalidInput("Capacity must be positive.", code="bad_capacity")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:  # "America" is a directory: OSError
        raise InvalidInput(f"Unknown time zone {timezone!r}.", code="bad_timezone") from exc


async def create_site(
    conn: AsyncConnection, site_id: str, *, name: str, capacity: int, timezone: str, closes_at: time_of_day
) -> Site:
    validate_site(site_id, capacity, timezone)
    existing = await conn.scalar(select(sites.c.site_id).where(sites.c.site_id == site_id))
    if existing:
        raise Conflict(f"Site {site_id} exists.", code="site_exists")
    await conn.execute(
        sites.insert().values(site_id=site_id, name=name, capacity=capacity, timezone=timezone, closes_at=closes_at)
    )
    return Site(site_id, name, capacity, timezone, closes_at)


async def get_site(conn: AsyncConnection, site_id: str) -> Site:
    row = (await conn.execute(select(sites).where(sites.c.site_id == site_id))).first()
    if row is None:
        raise NotFound(f"No site {site_id}.", code="site_not_found")
    return Site(row.site_id, row.name, row.capacity, row.timezone, row.closes_at)


async def list_sites(conn: AsyncConnection) -> list[Site]:
    rows = (await conn.execute(select(sites).order_by(sites.c.site_id))).all()
    return [Site(r.site_id, r.name, r.capacity, r.timezone, r.closes_at) for r in rows]


async def issue_token(
    conn: AsyncConnection,
    *,
    role: Role,
    site_id: str,
    member_id: uuid.UUID | None = None,
    label: str | None = None,
) -> tuple[uuid.UUID, str]:
    """Create a token; returns (token_id, token). The token itself is never stored and cannot be shown again."""
    await get_site(conn, site_id)
    if role is Role.VOLUNTEER and member_id is None:
        raise InvalidInput("A volunteer token acts as a member: give --member.", code="member_required")
    token = new_token()
    token_id = uuid.uuid4()
    await conn.execute(
        tokens.insert().values(
            token_id=token_id,
            token_hash=hash_token(token),
            role=role.value,
            site_id=site_id,
            member_id=member_id,
            label=label,
        )
    )
    return token_id, token


async def revoke_token(conn: AsyncConnection, token_or_id: str) -> uuid.UUID:
    try:
        condition = tokens.c.token_id == uuid.UUID(token_or_id)
    except ValueError:
        condition = tokens.c.token_hash == hash_token(token_or_id)
    token_id: uuid.UUID | None = await conn.scalar(
        update(tokens)
        .where(condition, tokens.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(tokens.c.token_id)
    )
    if token_id is None:
        raise NotFound("No such active token.", code="token_not_found")
    return token_id


V = TypeVar("V")


class RecentAnswers(Generic[V]):
    """A bounded cache of answers that expire: when full, the entry used longest ago goes, never the whole cache.
    An ``OrderedDict`` does least-recently-used in O(1) with the standard library (``cachetools.TTLCache`` would do
    the same, at the price of a dependency for twenty lines)."""

    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: V) -> None:
        self._entries[key] = (self.clock() + self.ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


# A token nobody holds is remembered only briefly and apart from the real ones: a kiosk retrying a revoked token in
# a loop costs one lookup a second, a token issued a moment after someone tried it works within that second, and a
# flood of made-up tokens pushes out only other made-up tokens.
UNKNOWN_TOKEN_TTL_S = 1.0


class TokenStore:
    def __init__(
        self,
        engine: AsyncEngine,
        ttl_s: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._known: RecentAnswers[Principal] = RecentAnswers(ttl_s, max_entries, clock)
        self._unknown: RecentAnswers[bool] = RecentAnswers(
            min(ttl_s, UNKNOWN_TOKEN_TTL_S), max(1, max_entries // 10), clock
        )

    async def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:  # the scheme is case-insensitive (RFC 9110)
            raise Unauthorized("Send Authorization: Bearer <token>.", code="missing_token")
        token = token.strip()
        if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
            raise Unauthorized("The token is not valid.", code="invalid_token")
        principal = await self._lookup(hash_token(token))
        if principal is None:
            raise Unauthorized("The token is not valid or was revoked.", code="invalid_token")
        return principal

    async def _lookup(self, token_hash: str) -> Principal | None:
        known = self._known.get(token_hash)
        if known is not None:
            return known
        if token_hash in self._unknown:
            return None
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(tokens.c.token_id, tokens.c.role, tokens.c.site_id, tokens.c.member_id).where(
                        tokens.c.token_hash == token_hash, tokens.c.revoked_at.is_(None)
                    )
                )
            ).first()
        if row is None:
            self._unknown.put(token_hash, True)
            return None
        principal = Principal(row.token_id, Role(row.role), row.site_id, row.member_id)
        self._known.put(token_hash, principal)
        return principal


class SiteDirectory:
    """Sites change rarely; services read them through this small cache."""

    def __init__(self, engine: AsyncEngine, ttl_s: float = 30.0) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Site]] = {}

    async def get(self, site_id: str) -> Site:
        now = time.monotonic()
        cached = self._cache.get(site_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.engine.connect() as conn:
            site = await get_site(conn, site_id)
        self._cache[site_id] = (now + self.ttl_s, site)
        return site

    async def all(self) -> list[Site]:
        async with self.engine.connect() as conn:
            return await list_sites(conn)


def parse_closes_at(text: str) -> time_of_day:
    try:
        return datetime.strptime(text, "%H:%M").time()
    except ValueError as exc:
        raise InvalidInput("Closing time is HH:MM.", code="bad_closing_time") from exc
