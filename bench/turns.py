"""Turn latency and throughput through the whole assistant: embedded, and over Kafka with every service
as its own process. Each conversation is the example order conversation, repeated."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from tqdm import tqdm

from bench.stats import summary

PROJECT = Path("examples/order-support").resolve()
SCRIPT = ["Hello, I need help with my order", "My order number is 12345", "When will it arrive?"]


async def _drive(base_url: str, turns: int, concurrency: int, label: str) -> list[dict[str, object]]:
    latencies: list[float] = []
    progress = tqdm(total=turns, desc=label, unit="turn")
    per_worker = max(1, turns // concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        conversation_id = (await client.post("/v1/conversations", json={})).json()["conversation_id"]
        for i in range(per_worker):
            started = time.perf_counter()
            response = await client.post(
                f"/v1/conversations/{conversation_id}/messages", json={"text": SCRIPT[i % len(SCRIPT)]}
            )
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)
            progress.update()

    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        # Warm-up turn: first-call costs (model, connections) are not what users see later.
        warm = (await client.post("/v1/messages", json={"text": "hello"})).json()
        assert warm["reply"]["text"]
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    progress.close()
    return summary(f"{label} (c={concurrency})", latencies, elapsed)


async def bench_turns_embedded(turns: int, concurrency: int) -> list[dict[str, object]]:
    """All services in one process, in-process bus, embedded PostgreSQL."""
    from parley.cli.embedded import EmbeddedSettings, EmbeddedStack  # noqa: PLC0415
    from parley.core.infra import free_port  # noqa: PLC0415
    from parley.gateway.settings import GatewaySettings  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        stack = EmbeddedStack(
            project_dir=PROJECT,
            settings=EmbeddedSettings(data_dir=Path(tmp), grpc_port=free_port()),
            gateway_settings=GatewaySettings(http_port=free_port(), grpc_port=free_port()),
        )
        await stack.start()
        try:
            return await _drive(stack.url, turns, concurrency, "turns embedded")
        finally:
            await stack.stop()


async def bench_turns_kafka(turns: int, concurrency: int) -> list[dict[str, object]]:
    """Every service as its own process over a local Kafka broker and PostgreSQL."""
    from parley.cli.stack import Stack, StackConfig  # noqa: PLC0415
    from parley.core.infra.kafka import LocalKafka  # noqa: PLC0415
    from parley.core.infra.postgres import LocalPostgres  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        root = Path(tmp)
        kafka = LocalKafka(root / "kafka", stop_at_exit=True)
        postgres = LocalPostgres(root / "postgres", stop_at_exit=True, durable=False)
        stack: Stack | None = None
        try:
            bootstrap = await asyncio.to_thread(kafka.start)
            dsn = await asyncio.to_thread(postgres.start)
            config = StackConfig.with_free_ports(
                kafka_bootstrap=bootstrap,
                database_url=dsn,
                project_dir=PROJECT,
                run_dir=root / "stack",
                topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
                model_dir=root / "models",
                extra_env={"PARLEY_LOG_LEVEL": "WARNING"},
            )
            stack = Stack(config)
            await asyncio.to_thread(stack.start)
            return await _drive(config.gateway_url, turns, concurrency, "turns kafka")
        finally:
            if stack is not None:
                await asyncio.to_thread(stack.stop)
            await asyncio.to_thread(postgres.stop)
            await asyncio.to_thread(kafka.stop)
