"""The response cache: a repeated question in the same context gets the same reply without a model call.

The key is a hash of the *normalised* message (case, Unicode form, whitespace and surrounding punctuation
do not matter), a hash of the conversation context that shaped the answer (intent, slots, recent turns:
see :func:`context_fingerprint`), the personality, and the provider parameters (model, temperature ...).
Entries expire after a TTL and the least recently used go first when the cache is full. Hits and misses
are counted so the hit rate can be exported as a metric.

Only replies that passed output validation should be stored (the caller's job); a cached reply is
therefore as safe as a fresh one.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

_SPACE = re.compile(r"\s+")
_EDGE_PUNCTUATION = " \t\n.,!?;:¡¿…\"'`"


def normalise_message(text: str) -> str:
    """``text`` as the cache compares it: NFKC, case-folded, single spaces, no edge punctuation."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip(_EDGE_PUNCTUATION)


def _digest(value: Any) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, default=str, ensure_ascii=False).encode()
    ).hexdigest()


def context_fingerprint(
    intent: str | None = None,
    slots: Mapping[str, Any] | None = None,
    history: Sequence[tuple[str, str]] = (),
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A hash of the context a reply depends on: ``history`` is ``(role, text)`` pairs, in order."""
    return _digest({"intent": intent, "slots": dict(slots or {}), "history": list(history), "extra": extra})


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    size: int

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0.0 before the first lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class ResponseCache:
    """A TTL + LRU cache of replies with hit/miss counters; ``clock`` is injectable for tests."""

    def __init__(
        self, *, max_size: int = 1024, ttl_s: float = 600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_size < 1 or ttl_s <= 0:
            raise ValueError("max_size must be >= 1 and ttl_s > 0")
        self._entries: TTLCache[str, str] = TTLCache(maxsize=max_size, ttl=ttl_s, timer=clock)
        self._hits = 0
        self._misses = 0

    @staticmethod
    def key(
        message: str,
        context_hash: str = "",
        personality: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """The cache key of a reply to ``message`` in a context, a personality and provider settings."""
        return _digest([normalise_message(message), context_hash, personality, dict(params or {})])

    def get(self, key: str) -> str | None:
        """The cached reply, counting a hit or a miss."""
        reply = self._entries.get(key)
        if reply is None:
            self._misses += 1
        else:
            self._hits += 1
        return reply

    def put(self, key: str, reply: str) -> None:
        """Store ``reply`` (empty replies are never cached)."""
        if reply.strip():
            self._entries[key] = reply

    def clear(self) -> None:
        self._entries.clear()

    @property
    def stats(self) -> CacheStats:
        self._entries.expire()
        return CacheStats(hits=self._hits, misses=self._misses, size=len(self._entries))

    @property
    def hit_rate(self) -> float:
        return self.stats.hit_rate
