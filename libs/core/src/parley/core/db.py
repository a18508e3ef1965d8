"""PostgreSQL: an asyncpg pool, versioned SQL migrations applied at start, and the embedded server.

Migrations are ``NNNN_description.sql`` files shipped inside a service package. They run in order, each
in its own transaction, under an advisory lock so replicas starting together do not race; each applied
file's checksum is recorded and an edited, already-applied file stops the start with a clear error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

from parley.core.errors import ConfigurationError, UnavailableError
from parley.core.logging import get_logger
from parley.core.settings import DatabaseSettings

log = get_logger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x5041524C  # "PARL"


@dataclass(frozen=True)
class Migration:
    """One SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(package: str, folder: str = "migrations") -> list[Migration]:
    """The migrations shipped in ``package``/``folder``, in version order."""
    root = resources.files(package).joinpath(folder)
    found: list[Migration] = []
    for entry in root.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if entry.name.endswith(".sql") and not match:
            raise ConfigurationError(f"migration file {entry.name} must be named NNNN_description.sql")
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigurationError(f"duplicate migration versions in {package}/{folder}: {versions}")
    return found


async def apply_migrations(pool: asyncpg.Pool, component: str, migrations: list[Migration]) -> list[int]:
    """Apply what is not applied yet; returns the versions applied now."""
    applied_now: list[int] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    component  text        NOT NULL,
                    version    integer     NOT NULL,
                    name       text        NOT NULL,
                    checksum   text        NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (component, version)
                )
                """
            )
            rows = await conn.fetch(
                "SELECT version, checksum FROM schema_migrations WHERE component = $1", component
            )
            done = {r["version"]: r["checksum"] for r in rows}
            for m in migrations:
                if m.version in done:
                    if done[m.version] != m.checksum:
                        raise ConfigurationError(
                            f"migration {component}/{m.version:04d}_{m.name}.sql was edited after it was "
                            "applied; add a new migration instead"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (component, version, name, checksum) "
                        "VALUES ($1, $2, $3, $4)",
                        component,
                        m.version,
                        m.name,
                        m.checksum,
                    )
                applied_now.append(m.version)
                log.info("migration applied", component=component, version=m.version, name=m.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def create_pool(dsn: str, settings: DatabaseSettings | None = None) -> asyncpg.Pool:
    """A connection pool, with a readable error when the server cannot be reached."""
    settings = settings or DatabaseSettings()
    try:
        pool = await asyncpg.create_pool(dsn, min_size=settings.pool_min, max_size=settings.pool_max)
    except (OSError, asyncpg.PostgresError) as exc:
        raise UnavailableError(
            f"cannot connect to PostgreSQL ({exc}); set PARLEY_DATABASE_URL or start one with `make infra-up`"
        ) from exc
    assert pool is not None
    return pool


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL in ``data_dir`` and return its URL."""
    from parley.core.infra.postgres import LocalPostgres  # noqa: PLC0415 - only the embedded mode needs it

    return LocalPostgres(data_dir, stop_at_exit=True).start()
