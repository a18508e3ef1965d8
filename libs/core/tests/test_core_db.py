"""Versioned migrations on a real PostgreSQL: applied once, in order, and edits are refused."""

import asyncio
import uuid

import asyncpg
import pytest

from parley.core.db import Migration, apply_migrations, create_pool
from parley.core.errors import ConfigurationError, UnavailableError

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(postgres_dsn):
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    pool = await create_pool(postgres_dsn.rsplit("/", 1)[0] + f"/{name}")
    yield pool
    await pool.close()
    await admin.execute(f'DROP DATABASE "{name}"')
    await admin.close()


MIGRATIONS = [
    Migration(1, "things", "CREATE TABLE things (id int PRIMARY KEY)"),
    Migration(2, "thing_names", "ALTER TABLE things ADD COLUMN name text"),
]


async def test_migrations_apply_once_in_order_even_when_replicas_start_together(pool):
    results = await asyncio.gather(*(apply_migrations(pool, "demo", MIGRATIONS) for _ in range(3)))
    assert sorted(results) == [[], [], [1, 2]]
    assert await apply_migrations(pool, "demo", MIGRATIONS) == []
    await pool.execute("INSERT INTO things (id, name) VALUES (1, 'a')")
    rows = await pool.fetch("SELECT version FROM schema_migrations WHERE component = 'demo' ORDER BY version")
    assert [r["version"] for r in rows] == [1, 2]


async def test_an_edited_applied_migration_stops_the_start(pool):
    await apply_migrations(pool, "demo", MIGRATIONS[:1])
    edited = [Migration(1, "things", "CREATE TABLE things (id bigint PRIMARY KEY)")]
    with pytest.raises(ConfigurationError, match="was edited after it was applied"):
        await apply_migrations(pool, "demo", edited)


async def test_a_failing_migration_leaves_nothing_half_applied(pool):
    broken = [*MIGRATIONS[:1], Migration(2, "broken", "ALTER TABLE things ADD COLUMN x int; SELECT 1/0")]
    with pytest.raises(asyncpg.PostgresError):
        await apply_migrations(pool, "demo", broken)
    columns = await pool.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'things'"
    )
    assert [c["column_name"] for c in columns] == ["id"]
    assert await apply_migrations(pool, "demo", MIGRATIONS) == [2]


async def test_an_unreachable_server_is_a_readable_error():
    with pytest.raises(UnavailableError, match="PARLEY_DATABASE_URL"):
        await create_pool("postgresql://nobody@127.0.0.1:1/none")
