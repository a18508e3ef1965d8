"""The provider chain's rules -- retry, back-off, fallback, circuit breaker, last resort -- with scripted
providers (fakes of our own LlmProvider port) and an injected clock and sleep, so nothing really waits.
The same rules against real HTTP servers are in test_generator_llm_server.py."""

from __future__ import annotations

import asyncio
import random

import pytest

from parley.generator.domain.llm import (
    ChatMessage,
    ChatRequest,
    Completion,
    ProviderBadRequestError,
    ProviderServerError,
    ProviderUnavailableError,
    RateLimitedError,
)
from parley.generator.domain.providers import (
    DEFAULT_REPLY,
    BreakerState,
    ChainLink,
    CircuitBreaker,
    ProviderChain,
    RetryPolicy,
)

REQUEST = ChatRequest(messages=(ChatMessage.user("where is my order?"),), max_tokens=8)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """A provider that plays a script: each item is a text to answer or an exception to raise."""

    def __init__(self, name: str, *script: str | Exception, delay_s: float = 0.0) -> None:
        self.name = name
        self.script = list(script)
        self.calls = 0
        self.delay_s = delay_s

    def _next(self) -> str:
        self.calls += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return item

    async def complete(self, request: ChatRequest) -> Completion:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return Completion(text=self._next(), provider=self.name)

    async def stream(self, request: ChatRequest):
        text = self._next()
        for word in text.split(" "):
            yield word + " "


def chain(*providers, sleeps=None, clock=None, **kwargs) -> ProviderChain:
    async def fake_sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return ProviderChain(
        providers,
        sleep=fake_sleep,
        clock=clock or Clock(),
        rng=random.Random(7),
        retry=kwargs.pop("retry", RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=1.0)),
        **kwargs,
    )


async def test_first_provider_answers_without_fallback():
    result = await chain(Scripted("a", "hello"), Scripted("b", "other")).run(REQUEST)
    assert (result.completion.text, result.provider, result.fallbacks, result.source) == (
        "hello",
        "a",
        0,
        "provider",
    )
    assert [a.outcome for a in result.attempts] == ["ok"]


async def test_server_errors_are_retried_with_growing_jittered_backoff():
    sleeps: list[float] = []
    flaky = Scripted("a", ProviderServerError("boom"), ProviderServerError("boom"), "finally")
    result = await chain(flaky, sleeps=sleeps).run(REQUEST)
    assert result.completion.text == "finally"
    assert [a.outcome for a in result.attempts] == ["server_error", "server_error", "ok"]
    assert len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2  # equal jitter under 0.1 * 2**(n-1)


async def test_retry_after_is_honoured_up_to_the_cap_then_falls_back():
    sleeps: list[float] = []
    limited = Scripted("a", RateLimitedError("slow down", retry_after_s=0.5), "ok after wait")
    result = await chain(limited, sleeps=sleeps).run(REQUEST)
    assert result.completion.text == "ok after wait" and 0.5 <= sleeps[0] <= 0.6

    sleeps.clear()
    too_long = Scripted("a", RateLimitedError("come back in an hour", retry_after_s=3600))
    result = await chain(too_long, Scripted("b", "from b"), sleeps=sleeps).run(REQUEST)
    assert (result.completion.text, result.provider, result.fallbacks) == ("from b", "b", 1)
    assert sleeps == [] and too_long.calls == 1


async def test_bad_request_is_not_retried_but_falls_back():
    bad = Scripted("a", ProviderBadRequestError("context too long"))
    result = await chain(bad, Scripted("b", "from b")).run(REQUEST)
    assert bad.calls == 1
    assert [a.outcome for a in result.attempts] == ["bad_request", "ok"]


async def test_per_provider_timeout_then_fallback():
    slow = Scripted("slow", "too late", delay_s=5)
    fast = Scripted("fast", "quick")
    result = await chain(ChainLink(slow, timeout_s=0.05), fast, retry=RetryPolicy(max_attempts=1)).run(
        REQUEST
    )
    assert result.provider == "fast"
    assert result.attempts[0].outcome == "timeout"


async def test_all_failing_gives_the_last_good_reply_for_the_same_prompt_then_the_default():
    provider = Scripted("a", "the good answer", ProviderUnavailableError("down"))
    c = chain(provider, retry=RetryPolicy(max_attempts=1), failure_threshold=100)
    assert (await c.run(REQUEST)).source == "provider"
    again = await c.run(REQUEST)
    assert (again.source, again.completion.text, again.degraded) == ("cache", "the good answer", True)
    other = ChatRequest(messages=(ChatMessage.user("something else"),), max_tokens=8)
    fallback = await c.run(other)
    assert (fallback.source, fallback.completion.text) == ("default", DEFAULT_REPLY)


def test_breaker_opens_after_n_failures_and_half_opens_after_the_cool_down():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=10, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record_failure()  # the probe failed: open again, for a new cool-down
    assert breaker.state is BreakerState.OPEN
    clock.now += 10
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0


async def test_chain_skips_an_open_circuit_and_probes_it_after_the_cool_down():
    clock = Clock()
    down = Scripted("a", ProviderUnavailableError("refused"))
    backup = Scripted("b", "from b")
    c = chain(
        down, backup, clock=clock, retry=RetryPolicy(max_attempts=1), failure_threshold=2, reset_timeout_s=30
    )
    for _ in range(2):
        assert (await c.run(REQUEST)).provider == "b"
    assert c.breaker("a").state is BreakerState.OPEN
    calls_before = down.calls
    skipped = await c.run(REQUEST)
    assert down.calls == calls_before  # not even tried
    assert [a.outcome for a in skipped.attempts] == ["circuit_open", "ok"]

    clock.now += 30
    down.script = ["a is back"]
    probed = await c.run(REQUEST)
    assert probed.provider == "a" and c.breaker("a").state is BreakerState.CLOSED


async def test_streaming_falls_back_before_the_first_delta():
    c = chain(
        Scripted("a", ProviderServerError("5xx")), Scripted("b", "streamed from b"), retry=RetryPolicy(1)
    )
    stream = c.stream(REQUEST)
    deltas = [d async for d in stream]
    assert "".join(deltas).strip() == "streamed from b" and len(deltas) == 3
    assert stream.result is not None and stream.result.provider == "b" and stream.result.fallbacks == 1


async def test_streaming_with_every_provider_down_yields_the_default_reply():
    c = chain(Scripted("a", ProviderUnavailableError("x")), retry=RetryPolicy(1))
    stream = c.stream(REQUEST)
    assert [d async for d in stream] == [DEFAULT_REPLY]
    assert stream.result is not None and stream.result.source == "default"


def test_provider_names_must_be_unique():
    with pytest.raises(ValueError, match="unique"):
        ProviderChain([Scripted("a", "x"), Scripted("a", "y")])
