"""The composition root: settings, shipped migrations, wiring, and a clear failure without a database."""

from __future__ import annotations

import pytest

from parley.context.app import COMPONENT, ContextService, serve
from parley.context.settings import ContextSettings
from parley.core.db import load_migrations
from parley.core.errors import ConfigurationError, UnavailableError
from parley.core.settings import DatabaseSettings


def test_settings_read_their_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = ContextSettings()
    assert (defaults.grpc_port, defaults.window) == (50054, 10)
    monkeypatch.setenv("PARLEY_CONTEXT_WINDOW", "25")
    monkeypatch.setenv("PARLEY_CONTEXT_GRPC_PORT", "6000")
    monkeypatch.setenv("PARLEY_DATABASE_URL", "postgresql://db/parley")
    settings = ContextSettings()
    assert (settings.window, settings.grpc_port) == (25, 6000)
    assert settings.database.url == "postgresql://db/parley"
    monkeypatch.setenv("PARLEY_CONTEXT_WINDOW", "0")
    with pytest.raises(ValueError, match="window"):
        ContextSettings()


def test_migrations_ship_inside_the_package() -> None:
    migrations = load_migrations("parley.context.migrations", ".")
    assert [(m.version, m.name) for m in migrations] == [(1, "initial"), (2, "memory_entities_feedback")]
    assert "CREATE TABLE IF NOT EXISTS turn_events" in migrations[0].sql


async def test_serve_without_a_database_url_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARLEY_DATABASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="PARLEY_DATABASE_URL"):
        await serve(ContextSettings(database=DatabaseSettings(url=None)))


async def test_serve_with_an_unreachable_database_is_unavailable() -> None:
    settings = ContextSettings(database=DatabaseSettings(url="postgresql://parley@127.0.0.1:1/parley"))
    with pytest.raises(UnavailableError, match="PostgreSQL"):
        await serve(settings)


@pytest.mark.integration
async def test_build_context_wires_servicer_registration_and_stage(context_service: ContextService) -> None:
    assert COMPONENT == "context"
    assert context_service.registration.name == "parley.context.v1.ContextService"
    assert context_service.registration.servicer is context_service.servicer
    assert [s.name for s in context_service.subscriptions] == ["context"]
