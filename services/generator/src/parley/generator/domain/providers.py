"""The provider chain: retries, per-provider timeouts, circuit breakers, fallback, and a last resort.

A request goes to the first provider whose circuit is not open. Rate limits, timeouts, 5xx and lost
connections are retried there with jittered exponential back-off (a ``Retry-After`` is honoured up to a
cap; a longer one means "go elsewhere"); when its attempts are used up, or the error cannot be fixed by
retrying (a bad request), the next provider gets the request. When every provider has failed, the last
good reply to the *same* request is returned if there is one, else the configured default reply: the
chain always answers.

Each provider has a :class:`CircuitBreaker`: after ``failure_threshold`` consecutive failures it opens and
the provider is skipped at once; after ``reset_timeout_s`` it lets one probe through (half-open); the
probe's success closes it, a failure opens it again. Clock, sleep and jitter are injectable so tests need
no real waiting.

Streaming follows the same rules until the first delta has been passed on; a provider that fails after
that ends the stream early (its text cannot be taken back), reported with ``finish_reason="error"``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from cachetools import LRUCache

from parley.core.logging import get_logger
from parley.generator.domain.llm import (
    ChatRequest,
    Completion,
    LlmProvider,
    ProviderBadRequestError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
)

log = get_logger(__name__)

#: What the chain answers when every provider failed and nothing is cached for the request.
DEFAULT_REPLY = "Sorry, I can't answer that right now. Please try again in a moment."

Outcome = Literal[
    "ok", "rate_limited", "timeout", "server_error", "bad_request", "unavailable", "error", "circuit_open"
]


def outcome_of(error: ProviderError) -> Outcome:
    """The metric label of a provider error."""
    if isinstance(error, RateLimitedError):
        return "rate_limited"
    if isinstance(error, ProviderTimeoutError):
        return "timeout"
    if isinstance(error, ProviderServerError):
        return "server_error"
    if isinstance(error, ProviderBadRequestError):
        return "bad_request"
    if isinstance(error, ProviderUnavailableError):
        return "unavailable"
    return "error"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one provider before falling back to the next."""

    #: Tries per provider, the first one included.
    max_attempts: int = 3
    base_delay_s: float = 0.2
    max_delay_s: float = 2.0
    #: A ``Retry-After`` longer than this is not waited for: the next provider is tried instead.
    max_retry_after_s: float = 5.0

    def delay(self, attempt: int, error: ProviderError, rng: random.Random) -> float | None:
        """Seconds to wait before try ``attempt + 1``, or ``None`` to stop retrying this provider."""
        if not error.retryable or attempt >= self.max_attempts:
            return None
        if isinstance(error, RateLimitedError) and error.retry_after_s is not None:
            if error.retry_after_s > self.max_retry_after_s:
                return None
            # The server's hint, plus a little jitter so clients that were told the same do not stampede.
            return error.retry_after_s + rng.uniform(0, self.base_delay_s)
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return rng.uniform(ceiling / 2, ceiling)  # "equal jitter": never zero, never above the ceiling


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Stops calling a provider that keeps failing; lets one probe through after a cool-down."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_timeout_s > 0")
        self._threshold = failure_threshold
        self._reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._reset_timeout_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """Whether a call may go through now; in half-open state only one probe at a time may."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            self._opened_at = self._clock()
        self._probing = False

    def release(self) -> None:
        """A call ended without a verdict (cancelled): free the probe slot, change nothing else."""
        self._probing = False


@dataclass(frozen=True)
class ChainLink:
    """A provider in the chain, with its own timeout (seconds for a whole completion, or to the first
    streamed delta and between deltas)."""

    provider: LlmProvider
    timeout_s: float = 20.0


@dataclass(frozen=True)
class Attempt:
    """One try of one provider (or a skip because its circuit was open)."""

    provider: str
    outcome: Outcome
    latency_s: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class ChainResult:
    """The answer and how it was obtained: for metrics (provider, attempts, fallbacks) and logs."""

    completion: Completion
    #: ``provider``: a provider answered; ``cache``: the last good reply to this request; ``default``.
    source: Literal["provider", "cache", "default"]
    attempts: tuple[Attempt, ...]
    #: How many providers were passed over (failed or skipped) before the answer.
    fallbacks: int

    @property
    def provider(self) -> str | None:
        """The provider that answered, ``None`` for a cached or default reply."""
        return self.completion.provider if self.source == "provider" else None

    @property
    def degraded(self) -> bool:
        return self.source != "provider"


@dataclass
class _Run:
    """Book-keeping of one request through the chain."""

    attempts: list[Attempt] = field(default_factory=list)
    passed_over: int = 0


class ProviderChain:
    """Ordered providers with retry, timeout, circuit breaking and fallback; also an :class:`LlmProvider`
    itself (``name`` ``"chain"``), so it can stand wherever one provider can (e.g. in the tool loop)."""

    def __init__(
        self,
        links: Sequence[ChainLink | LlmProvider],
        *,
        retry: RetryPolicy | None = None,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        default_reply: str = DEFAULT_REPLY,
        last_good_size: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not default_reply.strip():
            raise ValueError("default_reply must not be empty")
        self._links = tuple(link if isinstance(link, ChainLink) else ChainLink(link) for link in links)
        names = [link.provider.name for link in self._links]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must be unique in a chain, got {names}")
        self._retry = retry or RetryPolicy()
        self._breakers = {
            name: CircuitBreaker(
                failure_threshold=failure_threshold, reset_timeout_s=reset_timeout_s, clock=clock
            )
            for name in names
        }
        self._default_reply = default_reply
        self._last_good: LRUCache[str, Completion] = LRUCache(maxsize=last_good_size)
        self._sleep = sleep
        self._rng = rng or random.Random()

    @property
    def name(self) -> str:
        return "chain"

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(link.provider.name for link in self._links)

    def breaker(self, provider: str) -> CircuitBreaker:
        return self._breakers[provider]

    async def complete(self, request: ChatRequest) -> Completion:
        return (await self.run(request)).completion

    def stream(self, request: ChatRequest) -> ChainStream:
        return ChainStream(self, request)

    async def run(self, request: ChatRequest) -> ChainResult:
        """Ask the providers in order until one answers; never raises for a provider failure."""
        run = _Run()
        for link in self._links:
            completion = await self._try_provider(link, request, run)
            if completion is not None:
                self._remember(request, completion)
                return ChainResult(completion, "provider", tuple(run.attempts), run.passed_over)
            run.passed_over += 1
        return self._last_resort(request, run)

    async def _try_provider(self, link: ChainLink, request: ChatRequest, run: _Run) -> Completion | None:
        name = link.provider.name
        breaker = self._breakers[name]
        attempt = 0
        while True:
            if not breaker.allow():
                run.attempts.append(Attempt(name, "circuit_open"))
                return None
            attempt += 1
            started = time.perf_counter()
            try:
                async with asyncio.timeout(link.timeout_s):
                    completion = await link.provider.complete(request)
            except ProviderError as exc:
                error = exc
            except TimeoutError:
                error = ProviderTimeoutError(f"no answer within {link.timeout_s:g} s", provider=name)
            except asyncio.CancelledError:
                breaker.release()
                raise
            else:
                breaker.record_success()
                run.attempts.append(Attempt(name, "ok", time.perf_counter() - started))
                return completion
            delay = self._failed(breaker, name, error, started, attempt, run)
            if delay is None:
                return None
            await self._sleep(delay)

    def _failed(
        self,
        breaker: CircuitBreaker,
        name: str,
        error: ProviderError,
        started: float,
        attempt: int,
        run: _Run,
    ) -> float | None:
        """Record a failed try; the back-off before the next try, or ``None`` to move on."""
        if error.counts_as_failure:
            breaker.record_failure()
        else:
            breaker.release()
        outcome = outcome_of(error)
        run.attempts.append(Attempt(name, outcome, time.perf_counter() - started, str(error)))
        delay = self._retry.delay(attempt, error, self._rng)
        log.warning(
            "llm provider failed",
            provider=name,
            outcome=outcome,
            attempt=attempt,
            error=str(error),
            retry_in_s=None if delay is None else round(delay, 3),
            breaker=breaker.state.value,
        )
        return delay

    def _remember(self, request: ChatRequest, completion: Completion) -> None:
        if completion.text.strip() and not completion.tool_calls:
            self._last_good[request.fingerprint()] = completion

    def _last_resort(self, request: ChatRequest, run: _Run) -> ChainResult:
        cached = self._last_good.get(request.fingerprint())
        log.error("every llm provider failed", attempts=len(run.attempts), cached=cached is not None)
        if cached is not None:
            return ChainResult(cached, "cache", tuple(run.attempts), run.passed_over)
        default = Completion(text=self._default_reply, finish_reason="stop", provider="default")
        return ChainResult(default, "default", tuple(run.attempts), run.passed_over)

    async def _stream(self, request: ChatRequest, sink: ChainStream) -> AsyncGenerator[str, None]:
        run = _Run()
        for link in self._links:
            name = link.provider.name
            breaker = self._breakers[name]
            attempt = 0
            while True:
                if not breaker.allow():
                    run.attempts.append(Attempt(name, "circuit_open"))
                    break
                attempt += 1
                started = time.perf_counter()
                pieces: list[str] = []
                error: ProviderError | None = None
                try:
                    async with aclosing(_deltas(link, request, pieces)) as deltas:
                        async for delta in deltas:
                            yield delta
                except ProviderError as exc:
                    error = exc
                except (asyncio.CancelledError, GeneratorExit):
                    breaker.release()
                    raise
                if error is None:
                    breaker.record_success()
                    run.attempts.append(Attempt(name, "ok", time.perf_counter() - started))
                    completion = Completion(
                        text="".join(pieces), provider=name, latency_s=time.perf_counter() - started
                    )
                    self._remember(request, completion)
                    sink.result = ChainResult(completion, "provider", tuple(run.attempts), run.passed_over)
                    return
                delay = self._failed(breaker, name, error, started, attempt, run)
                if pieces:
                    # Text already went out: another provider's answer would not continue it.
                    completion = Completion(text="".join(pieces), finish_reason="error", provider=name)
                    sink.result = ChainResult(completion, "provider", tuple(run.attempts), run.passed_over)
                    return
                if delay is None:
                    break
                await self._sleep(delay)
            run.passed_over += 1
        result = self._last_resort(request, run)
        sink.result = result
        yield result.completion.text


async def _deltas(link: ChainLink, request: ChatRequest, pieces: list[str]) -> AsyncGenerator[str, None]:
    """One provider's non-empty deltas (also kept in ``pieces``), with the link's timeout per delta."""
    source = link.provider.stream(request)
    try:
        while True:
            try:
                async with asyncio.timeout(link.timeout_s):
                    delta = await anext(source)
            except StopAsyncIteration:
                return
            except ProviderError:
                raise
            except TimeoutError as exc:
                raise ProviderTimeoutError(
                    f"no delta within {link.timeout_s:g} s", provider=link.provider.name
                ) from exc
            if delta:
                pieces.append(delta)
                yield delta
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


class ChainStream:
    """The deltas of one streamed answer (an async iterator); after iteration, :attr:`result` says how
    it was obtained."""

    def __init__(self, chain: ProviderChain, request: ChatRequest) -> None:
        self._iterator = chain._stream(request, self)
        self.result: ChainResult | None = None

    def __aiter__(self) -> ChainStream:
        return self

    async def __anext__(self) -> str:
        return await anext(self._iterator)

    async def aclose(self) -> None:
        await self._iterator.aclose()
