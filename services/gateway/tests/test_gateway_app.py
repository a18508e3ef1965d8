"""The composition root and the process wiring: real uvicorn and gRPC servers on free ports, one loop."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from parley.core.bus import InMemoryBus
from parley.core.bus.kafka import KafkaBus
from parley.core.errors import UnavailableError
from parley.core.events import Topic, derive_event, new_event
from parley.core.settings import KafkaSettings
from parley.gateway.adapters.stage import reply_subscription
from parley.gateway.app import GatewayServer, build_gateway
from parley.gateway.domain import ReplyRouter
from parley.gateway.settings import GatewaySettings
from parley.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from parley.generator.v1 import generator_pb2
from parley.turn.v1 import turn_event_pb2 as pb

from .conftest import FakeAssistant, FakeConversations, make_settings


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = GatewaySettings()
    assert (defaults.grpc_port, defaults.http_host, defaults.http_port) == (50055, "127.0.0.1", 8080)
    assert (defaults.max_text_chars, defaults.reply_timeout_s, defaults.max_body_bytes) == (4096, 15.0, 65536)
    assert defaults.context_address == "127.0.0.1:50054"
    assert defaults.instance_id != GatewaySettings().instance_id  # one per replica

    monkeypatch.setenv("PARLEY_GATEWAY_HTTP_PORT", "9999")
    monkeypatch.setenv("PARLEY_GATEWAY_HTTP_HOST", "0.0.0.0")
    monkeypatch.setenv("PARLEY_CONTEXT_ADDRESS", "context:50054")
    monkeypatch.setenv("PARLEY_GATEWAY_INSTANCE_ID", "gateway-pod-1")
    configured = GatewaySettings()
    assert (configured.http_host, configured.http_port) == ("0.0.0.0", 9999)
    assert configured.context_address == "context:50054"
    assert configured.instance_id == "gateway-pod-1"


async def test_the_reply_subscription_is_a_broadcast_on_replies_and_chunks_that_publishes_nothing() -> None:
    router = ReplyRouter()
    subscription = reply_subscription(router)
    assert subscription.name == "gateway"
    assert subscription.topics == (Topic.REPLIED, Topic.REPLY_CHUNK)
    assert subscription.broadcast is True

    cause = new_event(conversation_id="c", tenant_id="t", user_id="u", user_message=pb.UserMessage(text="x"))
    replied = derive_event(cause, "generator", replied=pb.RepliedTurn(reply=generator_pb2.Reply(text="y")))
    with router.expect(cause.turn_id, "c") as future:
        assert await subscription.handler(replied) == []
        assert (await future).text == "y"


@pytest.fixture
async def running() -> AsyncIterator[GatewayServer]:
    bus = InMemoryBus()
    conversations = FakeConversations()
    bus.subscribe(FakeAssistant(conversations).subscription())
    server = GatewayServer(make_settings(), bus, conversations)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_the_gateway_serves_http_and_grpc_in_one_loop(running: GatewayServer) -> None:
    assert running.http_port and running.grpc_port
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http_port}") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).json()["status"] == "ready"
        response = await client.post("/v1/messages", json={"text": "over http"})
        assert response.json()["reply"]["text"] == "echo: over http"
        assert "<form" in (await client.get("/")).text

    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        reply = await stub.SendMessage(gateway_pb2.SendMessageRequest(text="over grpc"))
    assert reply.reply.text == "echo: over grpc"


async def test_stopping_closes_both_ports() -> None:
    bus = InMemoryBus()
    conversations = FakeConversations()
    server = GatewayServer(make_settings(), bus, conversations)
    await server.start()
    http_port = server.http_port
    await server.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", http_port), timeout=1):
        pass
    await server.stop()  # stopping twice is harmless


async def test_a_taken_http_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = GatewayServer(make_settings(http_port=port), InMemoryBus(), FakeConversations())
        with pytest.raises(UnavailableError, match=f"cannot listen for HTTP on 127.0.0.1:{port}"):
            await server.start()
        await server.stop()


@pytest.mark.integration
async def test_over_kafka_each_reply_reaches_the_replica_that_waits_for_it(kafka_bootstrap: str) -> None:
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=f"test-gw-{uuid.uuid4().hex[:8]}.")
    conversations = FakeConversations()
    assistant_bus = KafkaBus(kafka, instance_id="assistant")
    assistant_bus.subscribe(FakeAssistant(conversations).subscription())
    replicas = []
    for name in ("gw-a", "gw-b"):
        bus = KafkaBus(kafka, instance_id=name)
        gateway = build_gateway(make_settings(instance_id=name, reply_timeout_s=30), bus, conversations)
        for subscription in gateway.subscriptions:
            bus.subscribe(subscription)
        replicas.append((bus, gateway))
    buses = [assistant_bus, *(bus for bus, _ in replicas)]
    for bus in buses:
        await bus.start()
    try:
        (_, a), (_, b) = replicas
        conversation = await conversations.create_conversation("default", "ann")
        results = await asyncio.gather(
            a.chat.send("default", "ann", conversation.conversation_id, "to a"),
            b.chat.send("default", "ann", conversation.conversation_id, "to b"),
            a.chat.send("default", "bob", None, "new one"),
        )
    finally:
        for bus in reversed(buses):
            await bus.stop()

    assert [r.reply.text if r.reply else None for r in results] == [
        "echo: to a",
        "echo: to b",
        "echo: new one",
    ]
    assert len(a.router) == len(b.router) == 0
