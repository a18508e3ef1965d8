"""Anthropic's Messages API through the official ``anthropic`` SDK (completions, streaming, tools).

Our OpenAI-shaped messages are translated: system messages become the ``system`` parameter; an assistant
message's tool calls become ``tool_use`` blocks; ``tool`` messages become ``tool_result`` blocks of a user
message (consecutive results share one); OpenAI function specs become ``{name, description,
input_schema}``; ``tool_choice`` ``auto``/``none``/``required``/a named function map to
``auto``/``none``/``any``/``tool``. The SDK's own retries are switched off: the provider chain retries.
The current Messages API (SDK 2.x) takes no ``temperature``: the request's temperature is not sent and
the model samples with its own settings.

SDK errors are mapped onto the provider errors (429 -> rate limited with ``retry-after``, 5xx and 529
"overloaded" -> server error, timeouts, connection errors -> unavailable, other 4xx -> bad request).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import anthropic
import httpx2

from parley.generator.domain.llm import (
    ChatMessage,
    ChatRequest,
    Completion,
    ProviderBadRequestError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    ToolCall,
    ToolChoice,
    Usage,
    parse_retry_after,
)

#: Anthropic's stop reasons in OpenAI's words.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


def to_anthropic_messages(messages: Sequence[ChatMessage]) -> tuple[str | None, list[dict[str, Any]]]:
    """The ``system`` text and the ``messages`` list of an Anthropic request."""
    system = [m.content for m in messages if m.role == "system" and m.content]
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.content or "",
            }
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        if message.role == "assistant" and message.tool_calls:
            blocks: list[dict[str, Any]] = []
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            for call in message.tool_calls:
                try:
                    arguments = call.parsed_arguments()
                except ValueError:
                    arguments = {}
                blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
            out.append({"role": "assistant", "content": blocks})
            continue
        out.append({"role": message.role, "content": message.content or ""})
    return ("\n\n".join(system) if system else None), out


def to_anthropic_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI function specs as Anthropic tool definitions."""
    converted = []
    for tool in tools:
        function = tool.get("function", tool)
        converted.append(
            {
                "name": function["name"],
                "description": function.get("description", ""),
                "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
            }
        )
    return converted


def to_anthropic_tool_choice(choice: ToolChoice) -> dict[str, Any]:
    if isinstance(choice, str):
        return {"type": {"auto": "auto", "none": "none", "required": "any"}.get(choice, "auto")}
    name = (choice.get("function") or {}).get("name") or choice.get("name")
    return {"type": "tool", "name": name} if name else {"type": "auto"}


def map_error(exc: anthropic.AnthropicError, provider: str) -> ProviderError:
    """The provider error of an SDK exception."""
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderTimeoutError(str(exc), provider=provider)
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderUnavailableError(str(exc), provider=provider)
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        detail = f"HTTP {status}: {exc.message}"
        if status == 429:
            retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
            return RateLimitedError(detail, provider=provider, retry_after_s=retry_after)
        if status == 408:
            return ProviderTimeoutError(detail, provider=provider)
        if status >= 500:
            return ProviderServerError(detail, provider=provider)
        return ProviderBadRequestError(detail, provider=provider)
    return ProviderServerError(f"{type(exc).__name__}: {exc}", provider=provider)


class AnthropicProvider:
    """Claude models through ``anthropic.AsyncAnthropic``; ``http_client`` lets a caller supply the
    transport (tests use an ``httpx2.MockTransport``; there is no Anthropic server to run offline)."""

    def __init__(
        self,
        *,
        model: str,
        name: str = "anthropic",
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self._name = name
        self._model = model
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,
            http_client=http_client,
        )

    def __repr__(self) -> str:
        return f"AnthropicProvider(name={self._name!r}, model={self._model!r})"

    @property
    def name(self) -> str:
        return self._name

    async def aclose(self) -> None:
        await self._client.close()

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        system, messages = to_anthropic_messages(request.messages)
        params: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            "max_tokens": request.max_tokens,
        }
        if system:
            params["system"] = system
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        if request.tools:
            params["tools"] = to_anthropic_tools(request.tools)
            if request.tool_choice is not None:
                params["tool_choice"] = to_anthropic_tool_choice(request.tool_choice)
        return params

    async def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        try:
            message = await self._client.messages.create(**self._params(request))
        except anthropic.AnthropicError as exc:
            raise map_error(exc, self._name) from exc
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                calls.append(ToolCall(id=block.id, name=block.name, arguments=json.dumps(block.input)))
        return Completion(
            text="".join(texts),
            tool_calls=tuple(calls),
            finish_reason=FINISH_REASONS.get(message.stop_reason or "", message.stop_reason or "stop"),
            usage=Usage(message.usage.input_tokens, message.usage.output_tokens),
            provider=self._name,
            latency_s=time.perf_counter() - started,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        try:
            events = await self._client.messages.create(**self._params(request), stream=True)
            async with events:  # closes the HTTP response when the consumer stops early
                async for event in events:
                    delta = getattr(event, "delta", None) if event.type == "content_block_delta" else None
                    if delta is not None and delta.type == "text_delta" and delta.text:
                        yield delta.text
        except anthropic.AnthropicError as exc:
            raise map_error(exc, self._name) from exc
