"""Settings read from the environment (``RCC_*``), once, at process start."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ProcessRole = Literal["web", "relay", "consumers", "scheduler", "all"]
PROCESS_ROLES: tuple[ProcessRole, ...] = ("web", "relay", "consumers", "scheduler", "all")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RCC_", extra="ignore", frozen=True)

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/rcc"
    # One broker node, or a cluster's nodes separated by commas (or listed in ``amqp_urls``, which wins when set):
    # the connection goes to the first that answers and, when it is lost, on to the next live node.
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    amqp_urls: str | None = None
    # Prefixes every exchange and queue name so test runs (and tenants of one broker) never collide.
    broker_prefix: str = ""
    host: str = "127.0.0.1"
    checkin_port: int = 8081
    volunteering_port: int = 8082
    gatherings_port: int = 8083
    audit_port: int = 8084
    notify_port: int = 8085
    pages_port: int = 8080
    # Where the pages app forwards /api/<service>/...; unset: the service's own host and port (`rcc serve all` gives
    # the pages the ports it bound); docker compose names the containers.
    checkin_url: str | None = None
    volunteering_url: str | None = None
    gatherings_url: str | None = None
    audit_url: str | None = None
    notify_url: str | None = None
    # What a process runs (``rcc serve SERVICE --role``): ``web`` answers HTTP and publishes nothing, ``relay`` runs
    # the outbox relay, ``consumers`` the queue consumers, ``scheduler`` the periodic jobs; ``all`` is one box.
    role: ProcessRole = "all"
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON unless stderr is a TTY

    db_pool_size: int = 10
    db_statement_timeout_ms: int = 5_000
    db_connect_timeout_s: float = 3.0
    # How long a request may wait for a pooled connection before it gets 503 (bursts queue here).
    db_pool_timeout_s: float = 10.0

    publish_timeout_s: float = 5.0
    # One attempt to connect to the broker, handshake and topology included; then it starts again.
    broker_connect_timeout_s: float = 10.0
    relay_batch_size: int = 500
    relay_poll_interval_s: float = 1.0
    # A consumer takes up to a batch per transaction and acks it after the commit; the broker sends more only as
    # acks free the prefetch window. With the window at least twice the batch, the next batch is already here when
    # one commits; with less, the consumer sits out the broker's ack-to-delivery round trip after every batch and
    # its batches shrink (issue #19: 0.47 → 0.7 of the raw consumer going from 256/200 to 1000/400).
    consumer_prefetch: int = Field(default=1000, ge=1, le=65535)
    consumer_batch_size: int = Field(default=400, ge=1)
    consumer_batch_linger_s: float = 0.005
    # Deliveries of one message before the broker dead-letters it (quorum queue x-delivery-limit).
    delivery_limit: int = 5

    max_body_bytes: int = 64 * 1024
    # Per bearer token: sustained requests per minute and the burst allowed above it (0 turns limiting off).
    rate_limit_per_minute: int = 600
    rate_limit_burst: int = 60
    # At most 5 s: a revoked token must stop working on every replica within that (each caches for itself).
    token_cache_ttl_s: float = Field(default=5.0, ge=0, le=5)
    page_size_max: int = 200
    occupancy_near_ratio: float = Field(default=0.85, gt=0, le=1)

    @model_validator(mode="after")
    def _window_holds_two_batches(self) -> Self:
        if self.consumer_prefetch < 2 * self.consumer_batch_size:
            raise ValueError(
                f"RCC_CONSUMER_PREFETCH ({self.consumer_prefetch}) must be at least twice RCC_CONSUMER_BATCH_SIZE "
                f"({self.consumer_batch_size}), so the next batch is delivered while one commits"
            )
        return self

    @classmethod
    def of(cls, settings: Settings | None) -> Self:
        """A service's own settings, keeping whatever the caller (a test, ``rcc serve all``) set on the base."""
        if isinstance(settings, cls):
            return settings
        return cls(**settings.model_dump()) if settings is not None else cls()

    def port_of(self, service: str) -> int:
        port: int = getattr(self, f"{service}_port")
        return port

    def url_of(self, service: str) -> str:
        """The base URL another process reaches ``service`` at."""
        explicit: str | None = getattr(self, f"{service}_url")
        if explicit:
            return explicit.rstrip("/")
        # A wildcard bind address is where a server listens, not an address to connect to.
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port_of(service)}"

    @property
    def amqp_nodes(self) -> list[str]:
        """The broker nodes to connect to, in the order tried."""
        nodes = [url.strip() for url in (self.amqp_urls or self.amqp_url).split(",") if url.strip()]
        return nodes or [self.amqp_url]

    def runs(self, part: ProcessRole) -> bool:
        """Whether this process runs ``part`` (its role, or every part for ``all``)."""
        return self.role in (part, "all")

    @property
    def exchange_name(self) -> str:
        return f"{self.broker_prefix}rcc.events"

    @property
    def dead_exchange_name(self) -> str:
        return f"{self.broker_prefix}rcc.dead"

    def queue_name(self, consumer: str) -> str:
        return f"{self.broker_prefix}{consumer}"
