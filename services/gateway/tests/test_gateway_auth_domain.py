"""Authentication logic without I/O: key format, the key cache, token buckets, credential sorting, wiring.

``MemoryKeyStore`` is a fake of the gateway's own ``KeyStore`` port; the clock is a settable number.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import jwt
import pytest

from parley.core.bus import InMemoryBus
from parley.core.errors import (
    ConfigurationError,
    InvalidInputError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from parley.gateway.app import build_authenticator, build_gateway
from parley.gateway.domain.auth import Authenticator, Credentials
from parley.gateway.domain.identity import Principal
from parley.gateway.domain.keys import KeyVerifier, StoredKey, key_id_of, new_api_key, parse_key_id
from parley.gateway.domain.ratelimit import RateLimitedError, RateLimiter
from parley.gateway.domain.tokens import UserTokenVerifier

from .conftest import FakeConversations, make_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryKeyStore:
    def __init__(self) -> None:
        self.keys: dict[str, StoredKey] = {}
        self.finds = 0
        self.used: list[str] = []

    def add(self, tenant_id: str) -> str:
        issued = new_api_key()
        self.keys[issued.key_id] = StoredKey(issued.key_id, tenant_id, "", issued.digest, datetime.now(UTC))
        return issued.plaintext

    def revoke(self, plaintext: str) -> None:
        key_id = key_id_of(plaintext)
        assert key_id is not None
        old = self.keys[key_id]
        self.keys[key_id] = StoredKey(
            old.key_id, old.tenant_id, old.name, old.digest, old.created_at, revoked_at=datetime.now(UTC)
        )

    async def find_key(self, key_id: str) -> StoredKey | None:
        self.finds += 1
        return self.keys.get(key_id)

    async def mark_used(self, key_id: str) -> None:
        self.used.append(key_id)


# ------------------------------------------------------------------------------------------- keys


def test_keys_are_random_prefixed_and_parseable() -> None:
    first, second = new_api_key(), new_api_key()
    assert first.plaintext != second.plaintext and first.key_id != second.key_id
    assert first.plaintext.startswith(f"pk_{first.key_id}_")
    assert key_id_of(first.plaintext) == first.key_id
    assert key_id_of(first.plaintext[:-1]) is None
    assert parse_key_id(first.plaintext) == parse_key_id(f"pk_{first.key_id}") == parse_key_id(first.key_id)
    with pytest.raises(ValueError, match="key id"):
        parse_key_id("hello")


async def test_the_verifier_caches_keys_for_the_ttl_and_then_sees_revocation() -> None:
    store, clock = MemoryKeyStore(), Clock()
    verifier = KeyVerifier(store, ttl_s=30, clock=clock)
    key = store.add("acme")

    assert (await verifier.verify(key)).tenant_id == "acme"
    assert (await verifier.verify(key)).tenant_id == "acme"
    assert store.finds == 1
    assert len(store.used) == 1  # last use is written at most once per TTL

    store.revoke(key)
    clock.now += 29
    await verifier.verify(key)  # still cached: revocation takes up to the TTL
    clock.now += 2
    with pytest.raises(UnauthenticatedError, match="not valid"):
        await verifier.verify(key)
    assert store.finds == 2


async def test_a_wrong_secret_fails_even_when_the_key_id_is_cached() -> None:
    store = MemoryKeyStore()
    verifier = KeyVerifier(store, ttl_s=30, clock=Clock())
    key = store.add("acme")
    await verifier.verify(key)
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    with pytest.raises(UnauthenticatedError):
        await verifier.verify(forged)
    with pytest.raises(UnauthenticatedError, match="malformed"):
        await verifier.verify("sk_live_123")


async def test_unknown_keys_are_cached_too_and_the_cache_is_bounded() -> None:
    store, clock = MemoryKeyStore(), Clock()
    verifier = KeyVerifier(store, ttl_s=30, max_entries=2, clock=clock)
    unknown = new_api_key().plaintext
    for _ in range(3):
        with pytest.raises(UnauthenticatedError):
            await verifier.verify(unknown)
    assert store.finds == 1
    keys = [store.add("acme") for _ in range(3)]
    for key in keys:
        await verifier.verify(key)
    await verifier.verify(keys[0])  # evicted by the bound: looked up again
    assert store.finds == 5


async def test_a_zero_ttl_asks_the_store_every_time() -> None:
    store = MemoryKeyStore()
    verifier = KeyVerifier(store, ttl_s=0, clock=Clock())
    key = store.add("acme")
    await verifier.verify(key)
    await verifier.verify(key)
    assert store.finds == 2


# ------------------------------------------------------------------------------------- rate limits


def test_the_token_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("k")
    with pytest.raises(RateLimitedError) as limited:
        limiter.take("k")
    assert limited.value.retry_after_s == 1  # half a second, rounded up to whole seconds
    assert limited.value.http_status == 429
    limiter.take("other")  # buckets are per key
    clock.now += 0.5
    limiter.take("k")
    with pytest.raises(RateLimitedError):
        limiter.take("k")
    clock.now += 100
    for _ in range(3):  # refilled up to the burst, not beyond
        limiter.take("k")
    with pytest.raises(RateLimitedError):
        limiter.take("k")


def test_retry_after_is_whole_seconds_until_the_next_token() -> None:
    limiter = RateLimiter(rate_per_s=0.1, burst=1, clock=Clock())
    limiter.take("k")
    with pytest.raises(RateLimitedError) as limited:
        limiter.take("k")
    assert limited.value.retry_after_s == 10


# ------------------------------------------------------------------------------------- credentials


def test_credentials_sort_bearer_values_into_keys_and_tokens() -> None:
    assert Credentials.collect(bearer="pk_abc").api_key == "pk_abc"
    jwt_bearer = Credentials.collect(bearer="eyJ.x.y", api_key="pk_abc")
    assert (jwt_bearer.api_key, jwt_bearer.user_token) == ("pk_abc", "eyJ.x.y")
    same = Credentials.collect(bearer="pk_abc", api_key="pk_abc")
    assert same.api_key == "pk_abc"
    with pytest.raises(UnauthenticatedError, match="two different API keys"):
        Credentials.collect(bearer="pk_abc", api_key="pk_def")
    with pytest.raises(UnauthenticatedError, match="two different user tokens"):
        Credentials.collect(bearer="a.b.c", user_token="d.e.f")
    assert Credentials.collect(bearer="  ") == Credentials()


async def test_mode_none_keeps_identity_from_the_headers() -> None:
    auth = Authenticator("none")
    assert await auth.authenticate(Credentials(tenant_id="acme", user_id="ann")) == Principal("acme", "ann")
    assert await auth.authenticate(Credentials()) == Principal("default", "anonymous")
    with pytest.raises(InvalidInputError):
        await auth.authenticate(Credentials(tenant_id="bad tenant"))


async def test_api_key_mode_takes_the_tenant_from_the_key() -> None:
    store = MemoryKeyStore()
    key = store.add("acme")
    auth = Authenticator("api_key", keys=KeyVerifier(store, clock=Clock()))
    assert await auth.authenticate(Credentials(api_key=key, user_id="ann")) == Principal("acme", "ann")
    assert await auth.authenticate(Credentials(api_key=key, tenant_id="acme")) == Principal(
        "acme", "anonymous"
    )
    with pytest.raises(PermissionDeniedError):
        await auth.authenticate(Credentials(api_key=key, tenant_id="globex"))
    with pytest.raises(UnauthenticatedError, match="API key is required"):
        await auth.authenticate(Credentials(tenant_id="acme", user_id="ann"))
    assert not (await auth.authenticate(Credentials(api_key=key, user_id="ann"))).user_verified
    with pytest.raises(UnauthenticatedError, match="not accepted"):
        await auth.authenticate(Credentials(api_key=key, user_token="a.b.c"))


async def test_a_user_from_a_token_is_marked_verified() -> None:
    store = MemoryKeyStore()
    key = store.add("acme")
    secret = "s" * 32
    auth = Authenticator(
        "api_key",
        keys=KeyVerifier(store, clock=Clock()),
        user_tokens=UserTokenVerifier("HS256", secret),
        limiter=RateLimiter(1, 1, clock=Clock()),
    )
    token = jwt.encode({"sub": "ann", "exp": int(time.time()) + 60}, secret, "HS256")
    who = await auth.authenticate(Credentials(api_key=key, user_token=token))
    assert who == Principal("acme", "ann") and who.user_verified
    with pytest.raises(RateLimitedError):  # the second request of a burst of one
        await auth.authenticate(Credentials(api_key=key, user_token=token))


# ------------------------------------------------------------------------------------------ wiring


def test_settings_that_cannot_work_stop_the_start_with_a_clear_message() -> None:
    store = MemoryKeyStore()
    with pytest.raises(ConfigurationError, match="PARLEY_DATABASE_URL"):
        build_authenticator(make_settings(auth="api_key"), None)
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        build_authenticator(make_settings(auth="api_key", jwt_secret="short"), store)
    with pytest.raises(ConfigurationError, match="needs a user token key"):
        build_authenticator(make_settings(auth="api_key", jwt_required=True), store)
    with pytest.raises(ConfigurationError, match="RS256"):
        build_authenticator(make_settings(auth="api_key", jwt_public_key="-----BEGIN PUBLIC KEY-----"), store)
    with pytest.raises(ConfigurationError, match="API key store"):
        build_gateway(make_settings(auth="api_key"), InMemoryBus(), FakeConversations())
    assert build_authenticator(make_settings(), None).mode == "none"
    assert build_authenticator(make_settings(auth="api_key", rate_limit_per_s=0), store).mode == "api_key"


def test_settings_default_to_no_auth_and_read_lists_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = make_settings()
    assert (defaults.auth, defaults.cors_origins, defaults.jwt_required) == ("none", [], False)
    monkeypatch.setenv("PARLEY_GATEWAY_AUTH", "api_key")
    monkeypatch.setenv("PARLEY_GATEWAY_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("PARLEY_GATEWAY_JWT_REQUIRED_TENANTS", '["acme"]')
    settings = make_settings()
    assert settings.auth == "api_key"
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.jwt_required_tenants == ["acme"]
