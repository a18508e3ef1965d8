"""``parley keys create|list|revoke``: manage tenants' API keys in the gateway's PostgreSQL table.

The same commands run without the ``parley`` CLI, e.g. inside a gateway container:
``python -m parley.gateway.keys_admin create --tenant acme``.

The plaintext key is printed once, at creation, and never stored; lost keys are revoked and replaced.
Running gateways notice a revocation within ``PARLEY_GATEWAY_API_KEY_CACHE_TTL_S`` (their key cache).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from typing import TextIO

from parley.core.db import create_pool
from parley.core.errors import ConfigurationError, InvalidInputError
from parley.core.settings import DatabaseSettings
from parley.gateway.adapters.keys import PostgresKeyStore, migrate
from parley.gateway.domain.keys import StoredKey, parse_key_id


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "-"


def _table(keys: list[StoredKey]) -> str:
    header = ("KEY", "TENANT", "NAME", "CREATED", "LAST USED", "REVOKED")
    rows = [
        (
            k.prefix,
            k.tenant_id,
            k.name or "-",
            _when(k.created_at),
            _when(k.last_used_at),
            _when(k.revoked_at),
        )
        for k in keys
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    )


async def keys_command(
    action: str,
    *,
    database_url: str | None = None,
    tenant: str | None = None,
    name: str = "",
    key: str | None = None,
    include_revoked: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one ``parley keys`` action; returns the exit status (1: nothing to revoke).

    ``create`` prints only the key on ``out`` (so ``KEY=$(parley keys create ...)`` works) and the notice
    on ``err``.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    settings = DatabaseSettings()
    url = database_url or settings.url
    if not url:
        raise ConfigurationError(
            "API keys live in PostgreSQL: set PARLEY_DATABASE_URL (the gateway's) or pass --database-url"
        )
    pool = await create_pool(url, settings.model_copy(update={"pool_min": 1, "pool_max": 2}))
    try:
        await migrate(pool)
        store = PostgresKeyStore(pool)
        if action == "create":
            if not tenant:
                raise InvalidInputError("--tenant is required")
            row, plaintext = await store.create_key(tenant, name)
            print(plaintext, file=out)
            print(
                f"created {row.prefix} for tenant {row.tenant_id!r}"
                + (f" ({row.name})" if row.name else "")
                + ". Store the key now: it is shown only once.",
                file=err,
            )
            return 0
        if action == "list":
            keys = await store.list_keys(tenant, include_revoked=include_revoked)
            print(_table(keys) if keys else "no keys", file=out)
            return 0
        if action == "revoke":
            try:
                key_id = parse_key_id(key or "")
            except ValueError as exc:
                raise InvalidInputError(str(exc)) from exc
            revoked = await store.revoke_key(key_id)
            if revoked is None:
                print(f"no key pk_{key_id}", file=out)
                return 1
            print(
                f"revoked pk_{key_id} of tenant {revoked.tenant_id!r} at {_when(revoked.revoked_at)}; "
                "running gateways refuse it once their key cache expires "
                "(PARLEY_GATEWAY_API_KEY_CACHE_TTL_S)",
                file=out,
            )
            return 0
        raise InvalidInputError(f"unknown action {action!r} (create, list, revoke)")
    finally:
        await pool.close()


def add_arguments(keys: argparse.ArgumentParser) -> None:
    """The options and sub-commands of ``keys`` (shared by ``parley keys`` and ``python -m``)."""
    keys.add_argument("--database-url", default=None, help="PostgreSQL URL (default: PARLEY_DATABASE_URL)")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="a new key for a tenant; prints the key once")
    create.add_argument("--tenant", required=True, help="tenant id the key acts for")
    create.add_argument("--name", default="", help="what the key is for, e.g. 'web shop'")
    listing = keys_sub.add_parser("list", help="keys (never the secrets), with last use")
    listing.add_argument("--tenant", default=None, help="only this tenant's keys")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key (its id, pk_<id> or the whole key)")
    revoke.add_argument("key", help="key id as shown by `parley keys list`")


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; logs go to stderr, so stdout of ``create`` is only the key."""
    from parley.core.logging import configure_logging  # noqa: PLC0415

    configure_logging(service="parley")
    return asyncio.run(
        keys_command(
            args.action,
            database_url=args.database_url,
            tenant=getattr(args, "tenant", None),
            name=getattr(args, "name", "") or "",
            key=getattr(args, "key", None),
            include_revoked=getattr(args, "all", False),
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m parley.gateway.keys_admin",
        description="API keys of the gateway, kept (hashed) in PostgreSQL (PARLEY_DATABASE_URL).",
    )
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except (ConfigurationError, InvalidInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
