"""Providers against real servers: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M (started by
the ``llama_server`` fixtures), small Starlette apps on real sockets for the answers a healthy llama.cpp
server never gives (429 with Retry-After, 5xx, 4xx, a hang), and the in-process llama.cpp provider.

Token budgets are tiny (a few tokens) to keep the suite quick on two cores; what the model says is not
asserted, only that it said something through each path.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley.generator.adapters.llm_local import LlamaCppProvider, smollm2_gguf_path
from parley.generator.adapters.llm_openai import OpenAICompatibleProvider
from parley.generator.domain.llm import (
    ChatMessage,
    ChatRequest,
    ProviderBadRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
)
from parley.generator.domain.providers import BreakerState, ChainLink, ProviderChain, RetryPolicy
from parley.generator.testing import free_port

REQUEST = ChatRequest(
    messages=(ChatMessage.system("You are a helpful assistant."), ChatMessage.user("Say hello.")),
    temperature=0.0,
    max_tokens=8,
)


def http_provider(base_url: str, name: str = "llama", **kwargs) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(base_url=base_url, model="smollm2", name=name, **kwargs)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_completion_from_the_real_server(llama_server):
    async with http_provider(llama_server.base_url) as llm:
        completion = await llm.complete(REQUEST)
    assert completion.text.strip()
    assert completion.provider == "llama"
    assert 0 < completion.usage.completion_tokens <= 8 and completion.usage.prompt_tokens > 0
    assert completion.finish_reason in {"stop", "length"}
    assert completion.latency_s > 0


async def test_streamed_completion_from_the_real_server(llama_server):
    async with http_provider(llama_server.base_url) as llm:
        deltas = [delta async for delta in llm.stream(REQUEST)]
    assert len(deltas) >= 2, deltas  # token by token, not one blob
    assert "".join(deltas).strip()


async def test_fallback_when_the_first_server_is_stopped_mid_run(llama_server, llama_server_victim):
    victim = http_provider(llama_server_victim.base_url, name="victim")
    main = http_provider(llama_server.base_url, name="main")
    chain = ProviderChain([victim, main], retry=RetryPolicy(max_attempts=2, base_delay_s=0.01))

    before = await chain.run(REQUEST)
    assert before.provider == "victim" and before.fallbacks == 0

    llama_server_victim.stop()
    after = await chain.run(REQUEST)
    assert after.provider == "main" and after.fallbacks == 1
    assert [a.outcome for a in after.attempts] == ["unavailable", "unavailable", "ok"]
    assert after.completion.text.strip()

    streamed = chain.stream(REQUEST)
    assert "".join([d async for d in streamed]).strip()
    assert streamed.result is not None and streamed.result.provider == "main"
    await victim.aclose()
    await main.aclose()


async def test_a_server_that_dies_mid_stream_ends_the_stream_and_the_next_request_falls_back(
    llama_server, llama_server_victim
):
    victim = http_provider(llama_server_victim.base_url, name="victim")
    main = http_provider(llama_server.base_url, name="main")
    chain = ProviderChain([victim, main], retry=RetryPolicy(max_attempts=1))
    long_answer = ChatRequest(
        messages=(ChatMessage.user("Write a long story about a parcel that travels the world."),),
        temperature=0.0,
        max_tokens=400,
    )
    stream = chain.stream(long_answer)
    received = []
    async for delta in stream:
        received.append(delta)
        if len(received) == 3:
            await asyncio.to_thread(llama_server_victim.kill)
    # Text already shown cannot be continued by another model: the stream ends, marked as cut off.
    assert stream.result is not None and stream.result.provider == "victim"
    assert stream.result.completion.finish_reason == "error"
    assert 3 <= len(received) < 400
    assert [a.outcome for a in stream.result.attempts] == ["unavailable"]
    after = await chain.run(REQUEST)
    assert after.provider == "main" and after.fallbacks == 1
    await victim.aclose()
    await main.aclose()


async def test_rate_limited_server_is_retried_after_its_hint_then_falls_back(llama_server, scripted_server):
    hits: list[float] = []

    async def too_many(request: Request) -> Response:
        hits.append(asyncio.get_running_loop().time())
        return JSONResponse(
            {"error": {"message": "slow down"}}, status_code=429, headers={"Retry-After": "0.2"}
        )

    async with scripted_server(too_many) as limited_url:
        limited = http_provider(limited_url, name="limited")
        main = http_provider(llama_server.base_url, name="main")
        chain = ProviderChain([limited, main], retry=RetryPolicy(max_attempts=3, base_delay_s=0.01))
        result = await chain.run(REQUEST)

    assert len(hits) == 3  # the first try and two retries
    assert all(later - earlier >= 0.2 for earlier, later in itertools.pairwise(hits))  # Retry-After kept
    assert [a.outcome for a in result.attempts] == ["rate_limited", "rate_limited", "rate_limited", "ok"]
    assert result.provider == "main" and result.fallbacks == 1
    await limited.aclose()
    await main.aclose()


async def test_a_retry_after_beyond_the_cap_falls_back_at_once(llama_server, scripted_server):
    hits = 0

    async def come_back_later(request: Request) -> Response:
        nonlocal hits
        hits += 1
        return Response(status_code=429, headers={"Retry-After": "120"})

    async with scripted_server(come_back_later) as url:
        chain = ProviderChain(
            [http_provider(url, name="limited"), http_provider(llama_server.base_url, name="main")],
            retry=RetryPolicy(max_attempts=3, max_retry_after_s=5),
        )
        result = await chain.run(REQUEST)
    assert hits == 1 and result.provider == "main"


async def test_circuit_opens_on_a_dead_server_and_half_opens_to_probe_it_again(
    llama_server, llama_server_victim
):
    clock = Clock()
    victim = http_provider(llama_server_victim.base_url, name="victim")
    main = http_provider(llama_server.base_url, name="main")
    chain = ProviderChain(
        [victim, main],
        retry=RetryPolicy(max_attempts=1),
        failure_threshold=2,
        reset_timeout_s=60,
        clock=clock,
        rng=random.Random(1),
    )
    llama_server_victim.stop()
    for _ in range(2):
        assert (await chain.run(REQUEST)).provider == "main"
    assert chain.breaker("victim").state is BreakerState.OPEN
    skipped = await chain.run(REQUEST)
    assert [a.outcome for a in skipped.attempts] == ["circuit_open", "ok"]

    llama_server_victim.start()  # back on the same port
    clock.now += 59
    assert [a.outcome for a in (await chain.run(REQUEST)).attempts] == ["circuit_open", "ok"]
    clock.now += 1
    assert chain.breaker("victim").state is BreakerState.HALF_OPEN
    probed = await chain.run(REQUEST)
    assert probed.provider == "victim" and chain.breaker("victim").state is BreakerState.CLOSED
    await victim.aclose()
    await main.aclose()


def status_handler(status: int, body: str = '{"error": "x"}'):
    async def handler(request: Request) -> Response:
        return Response(body, status_code=status, media_type="application/json")

    return handler


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, ProviderServerError),
        (503, ProviderServerError),
        (400, ProviderBadRequestError),
        (408, ProviderTimeoutError),
    ],
)
async def test_http_errors_map_to_the_taxonomy(scripted_server, status, expected):
    async with scripted_server(status_handler(status)) as url, http_provider(url) as llm:
        with pytest.raises(expected):
            await llm.complete(REQUEST)
        with pytest.raises(expected):
            [d async for d in llm.stream(REQUEST)]


async def test_a_refused_connection_is_unavailable():
    async with http_provider(f"http://127.0.0.1:{free_port()}/v1") as llm:
        with pytest.raises(ProviderUnavailableError):
            await llm.complete(REQUEST)


async def test_a_hanging_server_times_out(scripted_server):
    async def hang(request: Request) -> Response:
        await asyncio.sleep(1)
        return JSONResponse({})

    async with scripted_server(hang) as url, http_provider(url, timeout_s=0.2) as llm:
        with pytest.raises(ProviderTimeoutError):
            await llm.complete(REQUEST)


async def test_api_key_is_sent_as_bearer_and_never_shown(scripted_server):
    seen = {}

    async def answer(request: Request) -> Response:
        seen["auth"] = request.headers.get("authorization")
        seen["body"] = json.loads(await request.body())
        return JSONResponse({"error": "nope"}, status_code=429)

    async with scripted_server(answer) as url, http_provider(url, api_key="sk-very-secret") as llm:
        with pytest.raises(RateLimitedError) as caught:
            await llm.complete(REQUEST)
        assert "sk-very-secret" not in repr(llm) and "sk-very-secret" not in str(caught.value)
    assert seen["auth"] == "Bearer sk-very-secret"
    assert seen["body"]["max_tokens"] == 8 and seen["body"]["messages"][1] == {
        "role": "user",
        "content": "Say hello.",
    }


async def test_the_in_process_llama_cpp_provider_completes_and_streams():
    assert smollm2_gguf_path().name.endswith(".gguf")
    llm = LlamaCppProvider(n_ctx=512, n_threads=1, seed=1)
    try:
        completion = await llm.complete(REQUEST)
        assert completion.text.strip() and completion.provider == "local"
        assert 0 < completion.usage.completion_tokens <= 8
        deltas = [d async for d in llm.stream(REQUEST)]
        assert len(deltas) >= 2 and "".join(deltas).strip()
        with pytest.raises(ProviderBadRequestError, match="tool"):
            await llm.complete(ChatRequest(messages=REQUEST.messages, tools=({"type": "function"},)))
    finally:
        await llm.aclose()


async def test_in_process_provider_in_a_chain_behind_a_dead_server():
    dead = http_provider(f"http://127.0.0.1:{free_port()}/v1", name="dead")
    local = LlamaCppProvider(n_ctx=512, n_threads=1)
    chain = ProviderChain([dead, ChainLink(local, timeout_s=60)], retry=RetryPolicy(max_attempts=1))
    try:
        result = await chain.run(REQUEST)
        assert result.provider == "local" and result.completion.text.strip()
    finally:
        await local.aclose()
        await dead.aclose()
