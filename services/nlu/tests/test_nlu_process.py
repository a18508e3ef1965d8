"""``python -m parley.nlu`` as its own process over a real Kafka broker: gRPC, the stage, a clean stop."""

import asyncio
import contextlib
import os
import signal
import socket
import sys
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from parley.core.bus.base import Outgoing, Subscription
from parley.core.bus.kafka import KafkaBus
from parley.core.events import Topic, new_event
from parley.core.settings import KafkaSettings
from parley.nlu.v1 import nlu_pb2, nlu_pb2_grpc
from parley.turn.v1 import turn_event_pb2 as pb

from .conftest import EXAMPLE_PROJECT

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_serving(address: str, process: asyncio.subprocess.Process, timeout_s: float) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        async with asyncio.timeout(timeout_s):
            while True:
                if process.returncode is not None:
                    raise AssertionError(f"the nlu process exited early with {process.returncode}")
                with contextlib.suppress(grpc.aio.AioRpcError):
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                await asyncio.sleep(0.5)


async def test_nlu_process_serves_grpc_and_the_turn_stage(kafka_bootstrap, tmp_path):
    port = _free_port()
    prefix = f"nlu-proc-{uuid.uuid4().hex[:8]}."
    env = {
        **os.environ,
        "PARLEY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PARLEY_KAFKA_TOPIC_PREFIX": prefix,
        "PARLEY_NLU_GRPC_PORT": str(port),
        "PARLEY_NLU_MODEL_DIR": str(tmp_path / "models"),
        "PARLEY_PROJECT_DIR": str(EXAMPLE_PROJECT),
        "PARLEY_LOG_FORMAT": "json",
    }
    log_path = tmp_path / "nlu.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "parley.nlu", env=env, stdout=log_file, stderr=log_file
        )
    client = KafkaBus(KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=prefix))
    try:
        await _wait_serving(f"127.0.0.1:{port}", process, timeout_s=180)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = nlu_pb2_grpc.NluServiceStub(channel)
            reply = await stub.Parse(nlu_pb2.ParseRequest(text="When will it arrive?"))
            assert reply.result.intent.name == "delivery_question"

        understood: asyncio.Queue[pb.TurnEvent] = asyncio.Queue()

        async def collect(event: pb.TurnEvent) -> list[Outgoing]:
            await understood.put(event)
            return []

        client.subscribe(Subscription("nlu-test", (Topic.UNDERSTOOD,), collect, broadcast=True))
        await client.start()
        cause = new_event(
            conversation_id=f"conv-{uuid.uuid4().hex[:8]}",
            tenant_id="t",
            user_id="u",
            contextualized=pb.ContextualizedTurn(text="My order number is 12345", language="en"),
        )
        await client.publish(Topic.CONTEXTUALIZED, cause)
        event = await asyncio.wait_for(understood.get(), timeout=60)
        assert event.causation_id == cause.event_id
        assert event.understood.understanding.intent.name == "inform_order_id"
        assert event.understood.understanding.entities[0].value == "12345"
    finally:
        await client.stop()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=60)
    log = log_path.read_text(errors="replace")
    assert code == 0, log[-4000:]
    assert "nlu model trained" in log and "shutting down" in log
