"""The language-model port: chat requests, completions, the provider protocol and its error taxonomy.

Every provider (OpenAI-compatible HTTP, Anthropic, in-process llama.cpp, transformers) speaks these types,
so the chain, the prompt builder and the tool loop never see a vendor's wire format. Provider failures are
mapped onto five errors that say what the caller may do about them: wait and retry
(:class:`RateLimitedError`, :class:`ProviderTimeoutError`, :class:`ProviderServerError`), try another provider
(:class:`ProviderUnavailableError`), or give up on this request (:class:`ProviderBadRequestError`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol, runtime_checkable

from parley.core.errors import ParleyError

Role = Literal["system", "user", "assistant", "tool"]
#: ``"auto"``, ``"none"``, ``"required"``, or ``{"type": "function", "function": {"name": ...}}``.
ToolChoice = str | Mapping[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for; ``arguments`` is the raw JSON text the model wrote."""

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises :class:`ValueError` with a model-readable reason otherwise."""
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments are not valid JSON: {exc.msg} at position {exc.pos}") from exc
        if not isinstance(value, dict):
            raise ValueError(f"arguments must be a JSON object, got {type(value).__name__}")
        return value


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation sent to a model."""

    role: Role
    content: str | None = None
    #: The calls an assistant message made (OpenAI ``tool_calls``).
    tool_calls: tuple[ToolCall, ...] = ()
    #: For ``role="tool"``: which call this message answers.
    tool_call_id: str | None = None
    #: For ``role="tool"``: the tool's name (Anthropic does not need it, some OpenAI servers do).
    name: str | None = None

    @classmethod
    def system(cls, text: str) -> ChatMessage:
        return cls("system", text)

    @classmethod
    def user(cls, text: str) -> ChatMessage:
        return cls("user", text)

    @classmethod
    def assistant(cls, text: str | None, tool_calls: Sequence[ToolCall] = ()) -> ChatMessage:
        return cls("assistant", text, tool_calls=tuple(tool_calls))

    @classmethod
    def tool(cls, call: ToolCall, content: str) -> ChatMessage:
        return cls("tool", content, tool_call_id=call.id, name=call.name)

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat-completions form of this message."""
        # Always a string: OpenAI accepts "" next to tool calls, llama.cpp's server rejects null there.
        out: dict[str, Any] = {"role": self.role, "content": self.content or ""}
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.role == "tool" and self.name:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class ChatRequest:
    """What to ask a model. ``tools`` are OpenAI function specs (``ToolRegistry.json_schemas()``)."""

    messages: tuple[ChatMessage, ...]
    temperature: float = 0.7
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: ToolChoice | None = None

    def with_messages(self, messages: Sequence[ChatMessage]) -> ChatRequest:
        return ChatRequest(
            messages=tuple(messages),
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            stop=self.stop,
            tools=self.tools,
            tool_choice=self.tool_choice,
        )

    def fingerprint(self) -> str:
        """A stable hash of everything that shapes the answer (the last-resort cache key)."""
        body = {
            "messages": [m.to_openai() for m in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
            "tools": list(self.tools),
            "tool_choice": self.tool_choice,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    """A model's answer: text and/or tool calls, why it stopped, what it cost, who answered, how fast."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    #: ``stop``, ``length``, ``tool_calls``, ``content_filter``, or a provider's own word.
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    provider: str = ""
    latency_s: float = 0.0


@runtime_checkable
class LlmProvider(Protocol):
    """A language model behind one API. Implementations raise only :class:`ProviderError` subclasses."""

    @property
    def name(self) -> str:
        """A short, log-safe name (never a key or a URL with credentials)."""
        ...

    async def complete(self, request: ChatRequest) -> Completion:
        """The whole answer at once (tool calls included)."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        """The answer's text as it is generated, delta by delta (tool calls are not streamed)."""
        ...


class ProviderError(ParleyError):
    """A provider call failed; subclasses say whether waiting, retrying or switching can help."""

    #: Whether the circuit breaker should count this failure against the provider.
    counts_as_failure: bool = True

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(f"{provider}: {message}" if provider else message)
        self.provider = provider


class RateLimitedError(ProviderError):
    """HTTP 429 or the vendor's equivalent; ``retry_after_s`` is the server's hint, if it gave one."""

    retryable = True

    def __init__(self, message: str, *, provider: str = "", retry_after_s: float | None = None) -> None:
        super().__init__(message, provider=provider)
        self.retry_after_s = retry_after_s


class ProviderTimeoutError(ProviderError, TimeoutError):
    """No (complete) answer in the time allowed."""

    retryable = True


class ProviderServerError(ProviderError):
    """The provider failed on its side (HTTP 5xx, overloaded)."""

    retryable = True


class ProviderBadRequestError(ProviderError, ValueError):
    """The provider rejected the request itself (4xx other than 429, unsupported feature); a retry of
    the same request would fail the same way, so it is not retried (another provider may still take it)."""

    retryable = False
    counts_as_failure = False


class ProviderUnavailableError(ProviderError, ConnectionError):
    """The provider cannot be reached (connection refused or reset, DNS, model not loadable)."""

    retryable = True


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
