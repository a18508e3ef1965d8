"""API keys: their format, how they are stored (a digest, never the key) and how a presented key is verified.

A key looks like ``pk_<key id>_<secret>``: ``pk_`` makes it recognisable (secret scanners, logs), the 16 hex
characters of the key id find its row without scanning, and the secret carries 256 random bits. Only the
SHA-256 digest of the whole key is stored; with that much entropy a plain digest cannot be brute-forced, so
no slow password hash is needed and verification stays cheap. Digests are compared in constant time.

:class:`KeyVerifier` keeps verified rows in a small in-process cache for ``ttl_s`` seconds so a turn does not
query PostgreSQL every time; the price is that a revocation takes effect on a replica within ``ttl_s``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from parley.core.errors import UnauthenticatedError
from parley.core.logging import get_logger
from parley.gateway.ports import KeyStore

log = get_logger(__name__)

KEY_PREFIX = "pk_"
_KEY_ID_BYTES = 8  # 16 hex characters
_SECRET_BYTES = 32  # 256 bits, 43 url-safe base64 characters
_KEY_PATTERN = re.compile(r"pk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_KEY_ID_PATTERN = re.compile(r"(?:pk_)?([0-9a-f]{16})")


@dataclass(frozen=True)
class StoredKey:
    """One row of the key table: whose key it is and the digest to check a presented key against."""

    key_id: str
    tenant_id: str
    name: str
    digest: bytes
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def prefix(self) -> str:
        """The public part of the key (``pk_<key id>``): safe to show in lists and logs."""
        return f"{KEY_PREFIX}{self.key_id}"


@dataclass(frozen=True)
class IssuedKey:
    """A freshly generated key: ``plaintext`` is shown to its owner once and never stored."""

    key_id: str
    plaintext: str
    digest: bytes


def digest_of(plaintext: str) -> bytes:
    """The stored form of a key."""
    return hashlib.sha256(plaintext.encode()).digest()


def new_api_key() -> IssuedKey:
    """A new random key."""
    key_id = secrets.token_hex(_KEY_ID_BYTES)
    plaintext = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    return IssuedKey(key_id, plaintext, digest_of(plaintext))


def key_id_of(presented: str) -> str | None:
    """The key id of a well-formed key, ``None`` for anything else."""
    match = _KEY_PATTERN.fullmatch(presented)
    return match.group(1) if match else None


def parse_key_id(text: str) -> str:
    """A key id from what an operator types: the id, ``pk_<id>`` or the whole key."""
    text = text.strip()
    match = _KEY_PATTERN.fullmatch(text) or _KEY_ID_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(f"{text[:24]!r} is neither a key id (16 hex characters) nor a pk_ key")
    return match.group(1)


_INVALID = "the API key is not valid (unknown, revoked or mistyped)"


@dataclass
class _Entry:
    key: StoredKey | None
    loaded_at: float
    marked_used_at: float | None = None


class KeyVerifier:
    """Turns a presented key into its verified row, or raises :class:`UnauthenticatedError`.

    Rows (and "no such key") are cached for ``ttl_s`` seconds, at most ``max_entries`` of them; the last
    use is written back at most once per ``ttl_s`` per key, so it is accurate to about the TTL.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        ttl_s: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, _Entry] = OrderedDict()

    async def verify(self, presented: str) -> StoredKey:
        """The key's row when ``presented`` is a valid, unrevoked key."""
        key_id = key_id_of(presented.strip())
        if key_id is None:
            raise UnauthenticatedError(f"the API key is malformed (keys look like {KEY_PREFIX}...)")
        entry = await self._entry(key_id)
        key = entry.key
        # Compare even when the key is unknown or revoked, so timing does not tell them apart.
        expected = key.digest if key is not None else digest_of("")
        matches = hmac.compare_digest(expected, digest_of(presented.strip()))
        if key is None or key.revoked or not matches:
            raise UnauthenticatedError(_INVALID)
        now = self._clock()
        if entry.marked_used_at is None or now - entry.marked_used_at >= self._ttl_s:
            entry.marked_used_at = now
            await self._store.mark_used(key_id)
        return key

    def forget(self, key_id: str | None = None) -> None:
        """Drop one cached key (or all), e.g. right after revoking it through this process."""
        if key_id is None:
            self._cache.clear()
        else:
            self._cache.pop(key_id, None)

    async def _entry(self, key_id: str) -> _Entry:
        now = self._clock()
        entry = self._cache.get(key_id)
        if entry is not None and now - entry.loaded_at < self._ttl_s:
            self._cache.move_to_end(key_id)
            return entry
        key = await self._store.find_key(key_id)
        entry = _Entry(key, now)
        if self._ttl_s > 0:
            self._cache[key_id] = entry
            self._cache.move_to_end(key_id)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return entry
