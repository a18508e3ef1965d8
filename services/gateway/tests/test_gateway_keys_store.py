"""The API key table in a real PostgreSQL: migrations, the store, and the ``parley keys`` actions."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from parley.core.db import create_pool
from parley.core.errors import ConfigurationError, InvalidInputError
from parley.gateway.adapters.keys import PostgresKeyStore, migrate
from parley.gateway.domain.keys import digest_of, key_id_of
from parley.gateway.keys_admin import keys_command

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(postgres_dsn)
    try:
        await migrate(pool)
        yield pool
    finally:
        await pool.close()


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def test_migrations_are_recorded_and_idempotent(pool: asyncpg.Pool) -> None:
    assert await migrate(pool) == []
    versions = await pool.fetch("SELECT version FROM schema_migrations WHERE component = 'gateway'")
    assert [r["version"] for r in versions] == [1]


async def test_create_find_list_and_revoke(pool: asyncpg.Pool) -> None:
    store = PostgresKeyStore(pool)
    acme = tenant()
    first, key = await store.create_key(acme, "  web shop ")
    second, _ = await store.create_key(acme)
    assert first.name == "web shop" and first.tenant_id == acme and first.revoked_at is None
    assert key_id_of(key) == first.key_id
    found = await store.find_key(first.key_id)
    assert found is not None and found.digest == digest_of(key)
    assert await store.find_key("0" * 16) is None

    assert [k.key_id for k in await store.list_keys(acme)] == [first.key_id, second.key_id]
    await store.revoke_key(first.key_id)
    assert [k.key_id for k in await store.list_keys(acme)] == [second.key_id]
    listed = await store.list_keys(acme, include_revoked=True)
    assert [k.revoked for k in listed] == [True, False]
    assert await store.revoke_key("f" * 16) is None

    await store.mark_used(second.key_id)
    used = await store.find_key(second.key_id)
    assert used is not None and used.last_used_at is not None


async def test_create_refuses_bad_tenants_and_names(pool: asyncpg.Pool) -> None:
    store = PostgresKeyStore(pool)
    with pytest.raises(InvalidInputError, match="tenant id"):
        await store.create_key("no spaces please")
    with pytest.raises(InvalidInputError, match="name"):
        await store.create_key(tenant(), "x" * 201)


async def test_a_store_for_a_url_connects_on_open(postgres_dsn: str) -> None:
    store = PostgresKeyStore.for_url(postgres_dsn)
    with pytest.raises(Exception, match="not connected"):
        await store.find_key("0" * 16)
    await store.open()
    try:
        assert await store.find_key("0" * 16) is None
    finally:
        await store.close()


async def test_the_keys_command_prints_the_key_once_and_manages_it(
    postgres_dsn: str, pool: asyncpg.Pool
) -> None:
    acme = tenant()
    out, err = io.StringIO(), io.StringIO()
    assert (
        await keys_command("create", database_url=postgres_dsn, tenant=acme, name="bot", out=out, err=err)
        == 0
    )
    key = out.getvalue().strip()
    key_id = key_id_of(key)
    assert key_id is not None
    assert "shown only once" in err.getvalue() and key not in err.getvalue()

    listing = io.StringIO()
    await keys_command("list", database_url=postgres_dsn, tenant=acme, out=listing)
    assert f"pk_{key_id}" in listing.getvalue() and "bot" in listing.getvalue()
    assert key not in listing.getvalue()  # never the secret

    revoked = io.StringIO()
    assert await keys_command("revoke", database_url=postgres_dsn, key=key, out=revoked) == 0
    assert f"revoked pk_{key_id}" in revoked.getvalue()
    row = await pool.fetchrow("SELECT revoked_at FROM gateway_api_keys WHERE key_id = $1", key_id)
    assert row is not None and row["revoked_at"] is not None
    empty = io.StringIO()
    await keys_command("list", database_url=postgres_dsn, tenant=acme, out=empty)
    assert empty.getvalue().strip() == "no keys"

    missing = io.StringIO()
    assert await keys_command("revoke", database_url=postgres_dsn, key="a" * 16, out=missing) == 1
    with pytest.raises(InvalidInputError):
        await keys_command("revoke", database_url=postgres_dsn, key="not-a-key")


async def test_the_keys_command_needs_a_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARLEY_DATABASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="PARLEY_DATABASE_URL"):
        await keys_command("list")


@pytest.mark.integration
def test_the_keys_command_runs_without_the_cli_inside_a_gateway_install(postgres_dsn: str) -> None:
    """``python -m parley.gateway.keys_admin``: what an operator runs in a gateway container."""
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    env = {**os.environ, "PARLEY_DATABASE_URL": postgres_dsn}
    tenant = f"t-{uuid.uuid4().hex[:10]}"

    def keys(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "parley.gateway.keys_admin", *args],
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    created = keys("create", "--tenant", tenant)
    assert created.returncode == 0, created.stderr
    (key,) = created.stdout.split()
    assert key.startswith("pk_")
    listed = keys("list", "--tenant", tenant)
    assert listed.returncode == 0 and tenant in listed.stdout and key not in listed.stdout
    missing = keys("list", PARLEY_DATABASE_URL="")
    assert missing.returncode == 2 and "PARLEY_DATABASE_URL" in missing.stderr
