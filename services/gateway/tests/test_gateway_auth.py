"""Authentication end to end against a real PostgreSQL: keys in the gateway's table, conversations in the
real context service (its PostgreSQL store, called in-process), replies from an echo stage on the bus.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from parley.context.app import build_context
from parley.context.settings import ContextSettings
from parley.core.bus import InMemoryBus, Outgoing, Subscription
from parley.core.context_client import ContextClient
from parley.core.db import create_pool
from parley.core.errors import ConfigurationError
from parley.core.events import Topic, derive_event
from parley.core.grpc import GrpcServer
from parley.core.settings import DatabaseSettings
from parley.gateway.adapters.keys import PostgresKeyStore, migrate
from parley.gateway.app import GatewayServer, GatewayService, build_gateway
from parley.gateway.settings import GatewaySettings
from parley.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from parley.generator.v1 import generator_pb2
from parley.turn.v1 import turn_event_pb2 as pb

from .conftest import FakeConversations, make_settings

pytestmark = pytest.mark.integration

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
ORIGIN = "https://shop.example"


class Echo:
    """The rest of the pipeline, reduced to "echo: <text>" on turn.replied."""

    def subscription(self) -> Subscription:
        return Subscription("echo", (Topic.USER_MESSAGE,), self.handle)

    async def handle(self, event: pb.TurnEvent) -> Sequence[Outgoing]:
        reply = generator_pb2.Reply(text=f"echo: {event.user_message.text}")
        return [
            Outgoing(Topic.REPLIED, derive_event(event, "generator", replied=pb.RepliedTurn(reply=reply)))
        ]


@dataclass
class World:
    pool: asyncpg.Pool
    keys: PostgresKeyStore
    conversations: ContextClient


@pytest.fixture(scope="module")
async def world(postgres_dsn: str) -> AsyncIterator[World]:
    pool = await create_pool(postgres_dsn)
    try:
        await migrate(pool)
        context = await build_context(ContextSettings(), pool)
        yield World(pool, PostgresKeyStore(pool), ContextClient.in_process(context.servicer))
    finally:
        await pool.close()


def auth_settings(**overrides: object) -> GatewaySettings:
    values: dict[str, object] = {
        "auth": "api_key",
        "jwt_secret": SECRET,
        "jwt_required_tenants": [],
        "cors_origins": [ORIGIN],
        "api_key_cache_ttl_s": 0.0,
        "rate_limit_per_s": 100.0,
        "rate_limit_burst": 100,
    }
    values.update(overrides)
    return make_settings(**values)


@dataclass
class Gateway:
    service: GatewayService
    http: httpx.AsyncClient


@pytest.fixture
async def gateway_factory(world: World) -> AsyncIterator[Any]:
    started: list[tuple[InMemoryBus, httpx.AsyncClient]] = []

    async def make(**overrides: object) -> Gateway:
        bus = InMemoryBus()
        service = build_gateway(auth_settings(**overrides), bus, world.conversations, world.keys)
        bus.subscribe(Echo().subscription())
        for subscription in service.subscriptions:
            bus.subscribe(subscription)
        await bus.start()
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=service.http_app), base_url="http://gateway.test"
        )
        started.append((bus, http))
        return Gateway(service, http)

    yield make
    for bus, http in started:
        await http.aclose()
        await bus.stop()


@pytest.fixture
async def gateway(gateway_factory: Any) -> Gateway:
    return await gateway_factory()


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def new_key(world: World, tenant_id: str) -> str:
    _, plaintext = await world.keys.create_key(tenant_id, "test")
    return plaintext


def bearer(key: str, user: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **({"X-Parley-User": user} if user else {})}


def user_token(sub: str, *, expires_in: float = 300, key: str = SECRET, **claims: object) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + int(expires_in), **claims}, key, "HS256")


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


# ------------------------------------------------------------------------------------------ API keys


async def test_a_created_key_works_and_its_use_is_recorded(world: World, gateway: Gateway) -> None:
    acme = tenant()
    stored, key = await world.keys.create_key(acme, "web shop")
    assert key.startswith(f"pk_{stored.key_id}_")
    row = await world.pool.fetchrow("SELECT * FROM gateway_api_keys WHERE key_id = $1", stored.key_id)
    assert row is not None and row["last_used_at"] is None
    assert key.encode() not in bytes(row["digest"]) and len(row["digest"]) == 32  # only a digest is stored

    response = await gateway.http.post("/v1/messages", json={"text": "hi"}, headers=bearer(key, "ann"))
    assert response.status_code == 200, response.text
    assert response.json()["reply"]["text"] == "echo: hi"
    conversation = await world.conversations.get_conversation(response.json()["conversation_id"], acme, "ann")
    assert conversation.conversation.principal.tenant_id == acme

    # X-API-Key works as well as the bearer form.
    response = await gateway.http.post("/v1/conversations", headers={"X-API-Key": key})
    assert response.status_code == 201
    used = await world.pool.fetchval(
        "SELECT last_used_at FROM gateway_api_keys WHERE key_id = $1", stored.key_id
    )
    assert used is not None


async def test_no_key_is_401_with_a_challenge(gateway: Gateway) -> None:
    response = await gateway.http.post("/v1/messages", json={"text": "hi"})
    assert_error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "API key is required" in response.json()["error"]["message"]
    # In api_key mode the identity headers alone are not credentials.
    response = await gateway.http.post("/v1/conversations", headers={"X-Parley-Tenant": "default"})
    assert_error(response, 401, "unauthenticated")


async def test_unknown_wrong_and_malformed_keys_are_401(world: World, gateway: Gateway) -> None:
    key = await new_key(world, tenant())
    prefix, _, secret = key.rpartition("_")
    wrong_secret = f"{prefix}_{'A' * len(secret)}"
    unknown_id = f"pk_{'0' * 16}_{secret}"
    for presented in (wrong_secret, unknown_id, "pk_nonsense", key + "x"):
        response = await gateway.http.post("/v1/conversations", headers=bearer(presented))
        assert_error(response, 401, "unauthenticated")
        assert "WWW-Authenticate" in response.headers


async def test_a_revoked_key_is_401(world: World, gateway: Gateway) -> None:
    stored, key = await world.keys.create_key(tenant())
    assert (await gateway.http.post("/v1/conversations", headers=bearer(key))).status_code == 201
    revoked = await world.keys.revoke_key(stored.key_id)
    assert revoked is not None and revoked.revoked_at is not None
    again = await world.keys.revoke_key(stored.key_id)
    assert again is not None and again.revoked_at == revoked.revoked_at  # idempotent

    response = await gateway.http.post("/v1/conversations", headers=bearer(key))
    assert_error(response, 401, "unauthenticated")


async def test_a_revoked_key_keeps_working_only_until_the_cache_expires(
    world: World, gateway_factory: Any
) -> None:
    gateway = await gateway_factory(api_key_cache_ttl_s=0.3)
    stored, key = await world.keys.create_key(tenant())
    assert (await gateway.http.post("/v1/conversations", headers=bearer(key))).status_code == 201
    await world.keys.revoke_key(stored.key_id)
    assert (await gateway.http.post("/v1/conversations", headers=bearer(key))).status_code == 201  # cached
    await asyncio.sleep(0.35)
    assert (await gateway.http.post("/v1/conversations", headers=bearer(key))).status_code == 401


async def test_the_key_decides_the_tenant(world: World, gateway: Gateway) -> None:
    key = await new_key(world, tenant())
    response = await gateway.http.post(
        "/v1/conversations", headers={**bearer(key), "X-Parley-Tenant": "someone-else"}
    )
    assert_error(response, 403, "permission_denied")


# ------------------------------------------------------------------------------------------ ownership


async def test_another_tenants_conversation_is_not_found(world: World, gateway: Gateway) -> None:
    mine, theirs = await new_key(world, tenant()), await new_key(world, tenant())
    created = await gateway.http.post("/v1/messages", json={"text": "hi"}, headers=bearer(theirs, "ann"))
    conversation_id = created.json()["conversation_id"]
    # Same user id, other tenant: still not theirs to see.
    read = await gateway.http.get(
        f"/v1/conversations/{conversation_id}/messages", headers=bearer(mine, "ann")
    )
    assert_error(read, 404, "not_found")
    post = await gateway.http.post(
        f"/v1/conversations/{conversation_id}/messages", json={"text": "x"}, headers=bearer(mine, "ann")
    )
    assert_error(post, 404, "not_found")
    anywhere = await gateway.http.post(
        "/v1/messages", json={"text": "x", "conversation_id": conversation_id}, headers=bearer(mine, "ann")
    )
    assert_error(anywhere, 404, "not_found")
    # The owner still can.
    own = await gateway.http.get(
        f"/v1/conversations/{conversation_id}/messages", headers=bearer(theirs, "ann")
    )
    assert own.status_code == 200


async def test_another_users_conversation_is_not_found(world: World, gateway: Gateway) -> None:
    key = await new_key(world, tenant())
    created = await gateway.http.post("/v1/messages", json={"text": "hi"}, headers=bearer(key, "ann"))
    conversation_id = created.json()["conversation_id"]
    read = await gateway.http.get(f"/v1/conversations/{conversation_id}/messages", headers=bearer(key, "bob"))
    assert_error(read, 404, "not_found")
    post = await gateway.http.post(
        f"/v1/conversations/{conversation_id}/messages", json={"text": "x"}, headers=bearer(key, "bob")
    )
    assert_error(post, 404, "not_found")


# ---------------------------------------------------------------------------------------- user tokens


async def test_a_valid_user_token_names_the_user(world: World, gateway: Gateway) -> None:
    acme = tenant()
    key = await new_key(world, acme)
    headers = {"X-API-Key": key, "Authorization": f"Bearer {user_token('carol', tenant=acme)}"}
    response = await gateway.http.post("/v1/messages", json={"text": "hi"}, headers=headers)
    assert response.status_code == 200, response.text
    conversation_id = response.json()["conversation_id"]
    await world.conversations.get_conversation(conversation_id, acme, "carol")  # owned by the token's sub

    # The same token in X-Parley-User-Token, with the key as the bearer: same user.
    other = {**bearer(key), "X-Parley-User-Token": user_token("carol")}
    read = await gateway.http.get(f"/v1/conversations/{conversation_id}/messages", headers=other)
    assert read.status_code == 200
    # A stated user id that contradicts the token is refused.
    clash = await gateway.http.post("/v1/conversations", headers={**other, "X-Parley-User": "dave"})
    assert_error(clash, 403, "permission_denied")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (user_token("carol", expires_in=-120), "expired"),
        (user_token("carol", key="another-secret-that-is-long-enough-for-hs256"), "Signature"),
        ("not.a.jwt", "not valid"),
        (jwt.encode({"sub": "carol"}, SECRET, "HS256"), "exp"),  # no expiry at all
    ],
)
async def test_bad_user_tokens_are_401(world: World, gateway: Gateway, token: str, reason: str) -> None:
    key = await new_key(world, tenant())
    response = await gateway.http.post(
        "/v1/conversations", headers={**bearer(key), "X-Parley-User-Token": token}
    )
    assert_error(response, 401, "unauthenticated")
    assert reason in response.json()["error"]["message"]
    assert "WWW-Authenticate" in response.headers


async def test_a_token_for_another_tenant_is_refused(world: World, gateway: Gateway) -> None:
    key = await new_key(world, tenant())
    token = user_token("carol", tenant="another-tenant")
    response = await gateway.http.post(
        "/v1/conversations", headers={**bearer(key), "X-Parley-User-Token": token}
    )
    assert_error(response, 403, "permission_denied")


async def test_a_tenant_that_requires_user_tokens_refuses_stated_users(
    world: World, gateway_factory: Any
) -> None:
    strict = tenant()
    gateway = await gateway_factory(jwt_required_tenants=[strict])
    strict_key, lax_key = await new_key(world, strict), await new_key(world, tenant())
    response = await gateway.http.post("/v1/conversations", headers=bearer(strict_key, "ann"))
    assert_error(response, 401, "unauthenticated")
    assert "requires a user token" in response.json()["error"]["message"]
    ok = await gateway.http.post(
        "/v1/conversations", headers={**bearer(strict_key), "X-Parley-User-Token": user_token("ann")}
    )
    assert ok.status_code == 201
    assert (await gateway.http.post("/v1/conversations", headers=bearer(lax_key, "ann"))).status_code == 201


async def test_rs256_user_tokens_are_checked_with_the_public_key(world: World, gateway_factory: Any) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    gateway = await gateway_factory(
        jwt_algorithm="RS256", jwt_secret=None, jwt_public_key=public_pem, jwt_audience="parley"
    )
    acme = tenant()
    key = await new_key(world, acme)
    now = int(time.time())
    claims = {"sub": "erin", "exp": now + 60, "aud": "parley"}
    good = jwt.encode(claims, private, "RS256")
    response = await gateway.http.post(
        "/v1/messages", json={"text": "hi"}, headers={**bearer(key), "X-Parley-User-Token": good}
    )
    assert response.status_code == 200, response.text
    await world.conversations.get_conversation(response.json()["conversation_id"], acme, "erin")
    # An HS256 token signed with the public key as secret (algorithm confusion) is refused.
    forged = jwt.encode(claims, SECRET, "HS256")
    bad = await gateway.http.post("/v1/conversations", headers={**bearer(key), "X-Parley-User-Token": forged})
    assert_error(bad, 401, "unauthenticated")
    wrong_audience = jwt.encode({**claims, "aud": "other"}, private, "RS256")
    bad = await gateway.http.post(
        "/v1/conversations", headers={**bearer(key), "X-Parley-User-Token": wrong_audience}
    )
    assert_error(bad, 401, "unauthenticated")


# --------------------------------------------------------------------------------- rate limits, CORS


async def test_the_rate_limit_answers_429_with_retry_after(world: World, gateway_factory: Any) -> None:
    gateway = await gateway_factory(rate_limit_per_s=0.5, rate_limit_burst=2)
    key, other = await new_key(world, tenant()), await new_key(world, tenant())
    for _ in range(2):
        assert (await gateway.http.post("/v1/conversations", headers=bearer(key))).status_code == 201
    limited = await gateway.http.post("/v1/conversations", headers=bearer(key))
    assert_error(limited, 429, "rate_limited")
    assert limited.headers["Retry-After"] == "2"  # one request at 0.5/s
    assert (await gateway.http.post("/v1/conversations", headers=bearer(other))).status_code == 201  # per key
    assert (await gateway.http.get("/healthz")).status_code == 200  # probes are not limited


async def test_cors_preflight_allows_only_the_configured_origins(gateway: Gateway) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    allowed = await gateway.http.options("/v1/messages", headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()

    denied = await gateway.http.options(
        "/v1/messages", headers={"Origin": "https://evil.example", **preflight}
    )
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers

    # A refused request still carries CORS headers, so the page can read the 401.
    refused = await gateway.http.post("/v1/conversations", headers={"Origin": ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN


async def test_without_cors_origins_no_cross_origin_access_is_granted(gateway_factory: Any) -> None:
    gateway = await gateway_factory(cors_origins=[])
    response = await gateway.http.options(
        "/v1/messages", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in response.headers


# -------------------------------------------------------------------------------------------- gRPC


async def test_grpc_requires_the_same_credentials(world: World, gateway_factory: Any) -> None:
    gateway = await gateway_factory(rate_limit_per_s=0.5, rate_limit_burst=2)
    acme = tenant()
    key = await new_key(world, acme)
    server = GrpcServer([gateway.service.registration], port=0)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            request = gateway_pb2.SendMessageRequest(text="hi", user_id="ann")
            for metadata in ((), (("authorization", "Bearer pk_nope"),), (("x-parley-tenant", acme),)):
                with pytest.raises(grpc.aio.AioRpcError) as missing:
                    await stub.SendMessage(request, metadata=metadata)
                assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED

            response = await stub.SendMessage(request, metadata=(("authorization", f"Bearer {key}"),))
            assert response.reply.text == "echo: hi"
            await world.conversations.get_conversation(response.conversation_id, acme, "ann")

            token = user_token("zoe")
            call = stub.Converse(metadata=(("x-api-key", key), ("authorization", f"Bearer {token}")))
            await call.write(gateway_pb2.ConverseRequest(text="hello"))
            first = await call.read()
            assert first.reply.text == "echo: hello"
            await world.conversations.get_conversation(first.conversation_id, acme, "zoe")
            await call.write(gateway_pb2.ConverseRequest(text="again"))  # the third request: over the limit
            with pytest.raises(grpc.aio.AioRpcError) as limited:
                await call.read()
            assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert ("retry-after", "2") in tuple(limited.value.trailing_metadata() or ())
    finally:
        await server.stop(0)


# ------------------------------------------------------------------------------------ the process


async def test_the_gateway_process_opens_its_own_key_store(world: World, postgres_dsn: str) -> None:
    settings = auth_settings(database=DatabaseSettings(url=postgres_dsn))
    server = GatewayServer(settings, InMemoryBus(), world.conversations)
    key = await new_key(world, tenant())
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as http:
            assert (await http.post("/v1/conversations")).status_code == 401
            assert (await http.post("/v1/conversations", headers=bearer(key))).status_code == 201
            ready = await http.get("/readyz")
            assert ready.json()["checks"]["keys"] == "ok"
    finally:
        await server.stop()


def test_api_keys_without_a_database_stop_the_process_at_once() -> None:
    with pytest.raises(ConfigurationError, match="PARLEY_DATABASE_URL"):
        GatewayServer(auth_settings(database=DatabaseSettings(url=None)), InMemoryBus(), FakeConversations())


async def test_every_api_route_requires_a_key(gateway: Gateway) -> None:
    """Whatever routes the app has (REST, streaming, OpenAI-compatible, Rasa, ...), none is open."""
    open_paths = {"/", "/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
    checked = 0
    for route in gateway.service.http_app.routes:
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None)
        if path in open_paths or not methods:
            continue
        url = path.replace("{conversation_id}", str(uuid.uuid4()))
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            response = await gateway.http.request(method, url, json={"text": "hi"})
            assert response.status_code == 401, f"{method} {path}: {response.status_code} {response.text}"
            checked += 1
    assert checked >= 4
