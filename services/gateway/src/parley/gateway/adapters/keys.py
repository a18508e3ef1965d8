"""The gateway's API keys in PostgreSQL (table ``gateway_api_keys``, created by the gateway's migrations).

Used by the gateway to verify keys (the :class:`~parley.gateway.ports.KeyStore` port) and by
``parley keys`` to create, list and revoke them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from parley.core.db import apply_migrations, create_pool, load_migrations
from parley.core.errors import InvalidInputError, UnavailableError
from parley.core.settings import DatabaseSettings
from parley.gateway.domain.identity import principal_of
from parley.gateway.domain.keys import StoredKey, new_api_key

COMPONENT = "gateway"
_COLUMNS = "key_id, tenant_id, name, digest, created_at, last_used_at, revoked_at"
MAX_NAME_CHARS = 200


async def migrate(pool: asyncpg.Pool) -> list[int]:
    """Apply the gateway's migrations not applied yet (under core's advisory lock); returns those applied."""
    return await apply_migrations(pool, COMPONENT, load_migrations("parley.gateway.migrations", "."))


def _key(row: asyncpg.Record) -> StoredKey:
    return StoredKey(
        key_id=row["key_id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        digest=bytes(row["digest"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


class PostgresKeyStore:
    """API keys in PostgreSQL.

    Built on a pool the caller owns (``PostgresKeyStore(pool)``, after :func:`migrate`), or on its own pool
    opened later (``PostgresKeyStore.for_url(...)`` then :meth:`open`), which lets the gateway's process
    wiring build everything first and connect when it starts.
    """

    def __init__(self, pool: asyncpg.Pool | None) -> None:
        self._pool = pool
        self._url: str | None = None
        self._settings: DatabaseSettings | None = None
        self._owns_pool = False

    @classmethod
    def for_url(cls, url: str, settings: DatabaseSettings | None = None) -> PostgresKeyStore:
        """A store that connects (and migrates) on :meth:`open` and closes its pool on :meth:`close`."""
        store = cls(None)
        store._url = url
        store._settings = settings
        return store

    async def open(self) -> None:
        """Connect and apply the migrations (no-op for a store built on a caller's pool)."""
        if self._pool is not None or self._url is None:
            return
        pool = await create_pool(self._url, self._settings)
        try:
            await migrate(pool)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        self._owns_pool = True

    async def close(self) -> None:
        """Close the pool if this store opened it."""
        if self._owns_pool and self._pool is not None:
            await self._pool.close()
            self._pool = None
            self._owns_pool = False

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise UnavailableError("the API key store is not connected yet")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError) as exc:
            raise UnavailableError(f"cannot reach PostgreSQL for API keys ({exc})") from exc

    # -- the port ---------------------------------------------------------------------------------

    async def find_key(self, key_id: str) -> StoredKey | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM gateway_api_keys WHERE key_id = $1", key_id)
        return _key(row) if row is not None else None

    async def mark_used(self, key_id: str) -> None:
        async with self._connection() as conn:
            await conn.execute("UPDATE gateway_api_keys SET last_used_at = now() WHERE key_id = $1", key_id)

    # -- administration (``parley keys``) -------------------------------------------------------------

    async def create_key(self, tenant_id: str, name: str = "") -> tuple[StoredKey, str]:
        """A new key of ``tenant_id``: its row and the plaintext key, which exists only in this result."""
        tenant = principal_of(tenant_id, None).tenant_id
        name = name.strip()
        if len(name) > MAX_NAME_CHARS:
            raise InvalidInputError(f"the key name must be at most {MAX_NAME_CHARS} characters")
        issued = new_api_key()
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"INSERT INTO gateway_api_keys (key_id, tenant_id, name, digest) VALUES ($1, $2, $3, $4) "
                f"RETURNING {_COLUMNS}",
                issued.key_id,
                tenant,
                name,
                issued.digest,
            )
        assert row is not None  # INSERT ... RETURNING always returns the row
        return _key(row), issued.plaintext

    async def list_keys(
        self, tenant_id: str | None = None, *, include_revoked: bool = False
    ) -> list[StoredKey]:
        """Keys, oldest first, of one tenant or all."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM gateway_api_keys "
                "WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2 OR revoked_at IS NULL) "
                "ORDER BY tenant_id, created_at, key_id",
                tenant_id,
                include_revoked,
            )
        return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str) -> StoredKey | None:
        """Revoke the key (idempotent: the first revocation time is kept); ``None`` when there is none."""
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "UPDATE gateway_api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE key_id = $1 "
                f"RETURNING {_COLUMNS}",
                key_id,
            )
        return _key(row) if row is not None else None
