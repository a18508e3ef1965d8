"""``parley keys``: the command line over the gateway's key table, against a real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from parley.cli.main import build_parser, main

pytestmark = pytest.mark.integration


def test_keys_create_list_revoke(postgres_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    assert main(["keys", "--database-url", postgres_dsn, "create", "--tenant", tenant, "--name", "shop"]) == 0
    created = capsys.readouterr()
    key = created.out.strip()
    assert key.startswith("pk_") and len(key.splitlines()) == 1  # stdout is just the key, for scripts
    assert "shown only once" in created.err

    assert main(["keys", "--database-url", postgres_dsn, "list", "--tenant", tenant]) == 0
    listing = capsys.readouterr().out
    assert key[:19] in listing and "shop" in listing and key not in listing

    assert main(["keys", "--database-url", postgres_dsn, "revoke", key[:19]]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "--database-url", postgres_dsn, "list", "--tenant", tenant]) == 0
    assert capsys.readouterr().out.strip() == "no keys"
    assert main(["keys", "--database-url", postgres_dsn, "list", "--tenant", tenant, "--all"]) == 0
    assert key[:19] in capsys.readouterr().out


def test_keys_without_a_database_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PARLEY_DATABASE_URL", raising=False)
    assert main(["keys", "list"]) == 2
    assert "PARLEY_DATABASE_URL" in capsys.readouterr().err


def test_chat_takes_an_api_key() -> None:
    args = build_parser().parse_args(["chat", "--api-key", "pk_x"])
    assert args.api_key == "pk_x"
