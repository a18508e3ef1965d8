"""The embedded default: every service in one process on a real PostgreSQL, one trace per turn."""

from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parley.cli.embedded import EmbeddedSettings, EmbeddedStack
from parley.core.infra import free_port
from parley.core.telemetry import setup_tracing
from parley.gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[3] / "examples" / "order-support"


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_tracing("test", extra_processors=[SimpleSpanProcessor(exporter)])
    return exporter


@pytest.fixture(scope="module")
async def stack(postgres_dsn, tmp_path_factory, spans):
    tmp_path = tmp_path_factory.mktemp("embedded")
    stack = EmbeddedStack(
        project_dir=PROJECT,
        settings=EmbeddedSettings(data_dir=tmp_path, grpc_port=free_port()),
        gateway_settings=GatewaySettings(http_port=free_port(), grpc_port=free_port()),
        database_url=postgres_dsn,
    )
    await stack.start()
    yield stack
    await stack.stop()


async def test_the_order_conversation_in_one_process(stack):
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        first = await client.post("/v1/messages", json={"text": "Hello, I need help with my order"})
        assert first.status_code == 200, first.text
        conversation_id = first.json()["conversation_id"]
        second = await client.post(
            f"/v1/conversations/{conversation_id}/messages", json={"text": "My order number is 12345"}
        )
        third = await client.post(
            f"/v1/conversations/{conversation_id}/messages", json={"text": "When will it arrive?"}
        )
        assert "12345" in third.json()["reply"]["text"], third.text
        history = (await client.get(f"/v1/conversations/{conversation_id}/messages")).json()["messages"]
    assert [m["role"] for m in history] == ["user", "bot"] * 3
    assert history[3]["text"] == second.json()["reply"]["text"]


async def test_one_trace_spans_gateway_every_stage_and_postgres(stack, spans):
    spans.clear()
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        response = await client.post("/v1/messages", json={"text": "My order number is 12345"})
        assert response.status_code == 200
    await stack.bus.drain()  # the bot message is stored after the reply reached the client
    by_trace: dict[int, list] = defaultdict(list)
    for span in spans.get_finished_spans():
        by_trace[span.context.trace_id].append(span)
    turn_trace = next(
        (
            group
            for group in by_trace.values()
            if any("process" in s.name and "context" in s.name for s in group)
        ),
        None,
    )
    assert turn_trace is not None, [s.name for s in spans.get_finished_spans()]
    names = [s.name for s in turn_trace]
    assert any(n.startswith("POST /v1/messages") for n in names), names
    for stage in ("context", "nlu", "dialog", "generator", "gateway"):
        assert any(n.startswith(f"{stage} process") for n in names), (stage, names)
    assert any(s.attributes.get("db.system") == "postgresql" for s in turn_trace), names
