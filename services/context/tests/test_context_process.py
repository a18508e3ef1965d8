"""``python -m parley.context`` as its own process on real PostgreSQL and Kafka: gRPC, the stage, SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from parley.core.bus import Outgoing, Subscription
from parley.core.bus.kafka import KafkaBus
from parley.core.context_client import ContextClient
from parley.core.events import Topic, new_event
from parley.core.settings import KafkaSettings
from parley.turn.v1 import turn_event_pb2 as pb

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_serving(address: str, process: asyncio.subprocess.Process, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout), grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while process.returncode is None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.2)
    raise AssertionError(f"the context process exited with {process.returncode} before serving")


@pytest_asyncio.fixture
async def context_process(
    database_dsn: str, kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[tuple[str, KafkaSettings, asyncio.subprocess.Process]]:
    port = _free_port()
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=f"ctx{uuid.uuid4().hex[:8]}.")
    env = {
        **os.environ,
        "PARLEY_DATABASE_URL": database_dsn,
        "PARLEY_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "PARLEY_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "PARLEY_CONTEXT_GRPC_PORT": str(port),
        "PARLEY_CONTEXT_WINDOW": "5",
    }
    log = (tmp_path / "context.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parley.context", env=env, stdout=log, stderr=log
    )
    address = f"127.0.0.1:{port}"
    try:
        await _wait_serving(address, process)
        yield address, kafka, process
    except BaseException:
        print((tmp_path / "context.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()


async def test_the_service_process_serves_grpc_runs_its_stage_and_stops_on_sigterm(
    context_process: tuple[str, KafkaSettings, asyncio.subprocess.Process],
) -> None:
    address, kafka, process = context_process
    client = ContextClient.connect(address)
    conversation = await client.create_conversation("acme", "alice")
    cid = conversation.conversation_id

    seen: asyncio.Queue[pb.TurnEvent] = asyncio.Queue()

    async def collect(event: pb.TurnEvent) -> list[Outgoing]:
        await seen.put(event)
        return []

    bus = KafkaBus(kafka)
    bus.subscribe(Subscription("test-listener", (Topic.CONTEXTUALIZED,), collect, broadcast=True))
    await bus.start()
    try:
        text = pb.UserMessage(text="hi there")
        message = new_event(conversation_id=cid, tenant_id="acme", user_id="alice", user_message=text)
        await bus.publish(Topic.USER_MESSAGE, message)
        async with asyncio.timeout(60):
            out = await seen.get()
    finally:
        await bus.stop()

    assert out.causation_id == message.event_id
    assert [m.text for m in out.contextualized.context.recent_messages] == ["hi there"]
    stored = await client.get_conversation(cid, "acme", "alice")
    assert [m.text for m in stored.messages] == ["hi there"]

    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        assert await process.wait() == 0
