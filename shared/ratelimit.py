"""A token bucket per bearer token, in process: a kiosk stuck in a loop (or a leaked token) cannot crowd out the
others. Each service process keeps its own buckets; limits are per token, not per site.

With replicas the limit is per replica, on purpose: behind a load balancer a token gets at most N times the limit
from N web replicas, which still stops a runaway client, and a shared bucket in PostgreSQL would add a write (and a
hot row) to every request of the kiosk hot path. Where one exact limit matters, divide it among the replicas
(``RCC_RATE_LIMIT_PER_MINUTE`` = limit / replicas).

The buckets are bounded, least recently used out first (an ``OrderedDict``: the standard library does it in O(1)
and no dependency is needed for it). A bucket left alone for ``burst / rate`` seconds is full again, so forgetting
the one used longest ago costs nothing; emptying them all would hand every busy token a fresh burst."""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from shared.errors import DomainError


class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests; slow down"

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        super().__init__(f"Try again in {self.retry_after_s} s.", retry_after_s=self.retry_after_s)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    refilled_at: float


class RateLimiter:
    def __init__(self, per_minute: int, burst: int, max_buckets: int = 50_000) -> None:
        self.rate_per_s = per_minute / 60.0
        self.burst = float(burst)
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[uuid.UUID, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0

    def check(self, key: uuid.UUID) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_buckets:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            self._buckets.move_to_end(key)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.refilled_at) * self.rate_per_s)
        bucket.refilled_at = now
        if bucket.tokens < 1:
            raise RateLimited((1 - bucket.tokens) / self.rate_per_s)
        bucket.tokens -= 1
