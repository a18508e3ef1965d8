"""Fixtures of the context tests: a fresh PostgreSQL database per test module, migrated."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest_asyncio

from parley.context.app import ContextService, build_context
from parley.context.settings import ContextSettings
from parley.core.db import create_pool
from parley.core.settings import DatabaseSettings


def _with_database(dsn: str, name: str) -> str:
    """The same server, another database (works for host:port and ?host=/socket URIs alike)."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


@pytest_asyncio.fixture(scope="module")
async def database_dsn(postgres_dsn: str) -> AsyncIterator[str]:
    """A database of its own for one test module, dropped afterwards, so modules never see each other."""
    name = f"context_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_database(postgres_dsn, name)
    finally:
        admin = await asyncpg.connect(postgres_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest_asyncio.fixture(scope="module")
async def pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_dsn, DatabaseSettings(pool_min=1, pool_max=4))
    try:
        yield pool
    finally:
        await pool.close()


@pytest_asyncio.fixture(scope="module")
async def context_service(pool: asyncpg.Pool) -> ContextService:
    """The service built the way the composition root builds it (migrations applied)."""
    return await build_context(ContextSettings(window=3), pool)
