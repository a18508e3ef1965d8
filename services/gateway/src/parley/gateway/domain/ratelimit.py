"""Per-key rate limits: a token bucket per API key, in this replica's memory.

Each key may make ``burst`` requests at once and ``rate_per_s`` per second sustained. The buckets live in
one replica, so with N gateway replicas behind a load balancer a key gets up to N times the rate: a guard
against runaway clients, not billing-grade quota (that needs a shared store).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from parley.core.errors import ParleyError


class RateLimitedError(ParleyError):
    """Too many requests for this key right now; ``retry_after_s`` says when the next one is allowed."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429
    retryable = True

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class _Bucket:
    tokens: float
    updated_at: float


class RateLimiter:
    """Token buckets keyed by any string (the key id); at most ``max_keys`` buckets are kept.

    A bucket that is dropped for room would be full again by the time it is needed in all but contrived
    cases, so dropping the least recently used one is safe.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> None:
        """Spend one request of ``key``'s budget, or raise :class:`RateLimitedError`."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[key] = bucket
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            elapsed = max(0.0, now - bucket.updated_at)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate_per_s)
            bucket.updated_at = now
        self._buckets.move_to_end(key)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        retry_after = max(1, math.ceil((1.0 - bucket.tokens) / self.rate_per_s))
        raise RateLimitedError(
            f"too many requests for this API key (limit {self.rate_per_s:g}/s, burst {self.burst}); "
            f"retry in {retry_after} s",
            retry_after,
        )
