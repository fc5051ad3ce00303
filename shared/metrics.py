"""Prometheus metrics, defined once per process (``rcc serve all`` runs every service in one process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("rcc_http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram(
    "rcc_http_request_seconds",
    "HTTP request latency",
    ["service", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_PUBLISHED = Counter("rcc_outbox_published_total", "Outbox events confirmed by the broker", ["service"])
PUBLISH_FAILURES = Counter(
    "rcc_outbox_publish_failures_total", "Outbox publishes not confirmed (nack, unroutable, timeout, down)", ["service"]
)
OUTBOX_BACKLOG = Gauge("rcc_outbox_backlog", "Outbox rows seen waiting at the last relay pass", ["service"])
MESSAGES_CONSUMED = Counter("rcc_messages_consumed_total", "Messages handled by a consumer", ["consumer", "outcome"])
# Read when /metrics is scraped, so every replica (a web one too) shows them: an outbox whose oldest unsent row keeps
# ageing means no relay is publishing (stuck, or none running); alert on it.
OUTBOX_OLDEST_UNSENT = Gauge(
    "rcc_outbox_oldest_unsent_seconds", "Age of the oldest outbox row not yet confirmed by the broker", ["service"]
)
BROKER_CONNECTED = Gauge("rcc_broker_connected", "1 while this process's broker connection is up", ["service"])
