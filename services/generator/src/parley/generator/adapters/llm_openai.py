"""An OpenAI-compatible chat-completions provider over HTTP (OpenAI, vLLM, llama.cpp server, Ollama ...).

``POST {base_url}/chat/completions`` with the usual body; ``stream=true`` answers are read as server-sent
events (``data: {...}`` lines up to ``data: [DONE]``). Tool calls come back as OpenAI ``tool_calls``
(servers that send ``arguments`` as an object instead of a JSON string are accepted too).

HTTP failures are mapped onto the provider errors: 429 -> :class:`RateLimitedError` (``Retry-After``
honoured), 408 and read timeouts -> :class:`ProviderTimeoutError`, 5xx -> :class:`ProviderServerError`,
other 4xx -> :class:`ProviderBadRequestError`, refused/reset connections ->
:class:`ProviderUnavailableError`. The API key is sent as a bearer token and never logged or shown in
``repr``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from parley.core.logging import get_logger
from parley.generator.domain.llm import (
    ChatRequest,
    Completion,
    ProviderBadRequestError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    ToolCall,
    Usage,
    parse_retry_after,
)

log = get_logger(__name__)


def request_body(request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
    """The chat-completions JSON body of ``request``."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [m.to_openai() for m in request.messages],
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "stream": stream,
    }
    if request.stop:
        body["stop"] = list(request.stop)
    if request.tools:
        body["tools"] = [dict(t) for t in request.tools]
        if request.tool_choice is not None:
            choice = request.tool_choice
            body["tool_choice"] = choice if isinstance(choice, str) else dict(choice)
    return body


def _arguments(value: Any) -> str:
    if value is None:
        return "{}"
    return value if isinstance(value, str) else json.dumps(value)


def parse_completion(payload: Mapping[str, Any], provider: str, latency_s: float) -> Completion:
    """A :class:`Completion` from a chat-completions response body."""
    try:
        choice = payload["choices"][0]
        message = choice.get("message") or {}
    except (KeyError, IndexError, TypeError) as exc:
        raise ProviderServerError(f"malformed completion: {str(payload)[:200]}", provider=provider) from exc
    calls = tuple(
        ToolCall(
            id=call.get("id") or f"call_{i}",
            name=(call.get("function") or {}).get("name", ""),
            arguments=_arguments((call.get("function") or {}).get("arguments")),
        )
        for i, call in enumerate(message.get("tool_calls") or ())
    )
    usage = payload.get("usage") or {}
    return Completion(
        text=message.get("content") or "",
        tool_calls=calls,
        finish_reason=choice.get("finish_reason") or ("tool_calls" if calls else "stop"),
        usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)),
        provider=provider,
        latency_s=latency_s,
    )


def error_for_status(status: int, body: str, headers: Mapping[str, str], provider: str) -> ProviderError:
    """The provider error of an HTTP error answer."""
    detail = f"HTTP {status}: {body[:300]}"
    if status == 429:
        return RateLimitedError(
            detail, provider=provider, retry_after_s=parse_retry_after(headers.get("retry-after"))
        )
    if status == 408:
        return ProviderTimeoutError(detail, provider=provider)
    if status >= 500:
        return ProviderServerError(detail, provider=provider)
    return ProviderBadRequestError(detail, provider=provider)


class OpenAICompatibleProvider:
    """A chat-completions endpoint; ``base_url`` is the API root (``https://api.openai.com/v1``,
    ``http://127.0.0.1:8080/v1`` ...). Close it with :meth:`aclose` (or ``async with``)."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        name: str = "openai",
        api_key: str | None = None,
        timeout_s: float = 30.0,
        extra_headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json", **(extra_headers or {})}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._name = name
        self._model = model
        self._base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self._base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            transport=transport,
        )

    def __repr__(self) -> str:
        fields = f"name={self._name!r}, base_url={self._base_url!r}, model={self._model!r}"
        return f"OpenAICompatibleProvider({fields})"

    @property
    def name(self) -> str:
        return self._name

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> OpenAICompatibleProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _transport_error(self, exc: httpx.TransportError) -> ProviderError:
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return ProviderTimeoutError(f"{type(exc).__name__}: {exc}", provider=self._name)
        return ProviderUnavailableError(f"{type(exc).__name__}: {exc}", provider=self._name)

    async def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        try:
            response = await self._client.post(
                "/chat/completions", json=request_body(request, self._model, stream=False)
            )
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            raise error_for_status(response.status_code, response.text, response.headers, self._name)
        try:
            payload = response.json()
        except ValueError as exc:
            raise ProviderServerError(
                f"answer is not JSON: {response.text[:200]}", provider=self._name
            ) from exc
        return parse_completion(payload, self._name, time.perf_counter() - started)

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        body = request_body(request, self._model, stream=True)
        try:
            async with self._client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    text = (await response.aread()).decode(errors="replace")
                    raise error_for_status(response.status_code, text, response.headers, self._name)
                async for line in response.aiter_lines():
                    delta = self._delta(line)
                    if delta is None:
                        return
                    if delta:
                        yield delta
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc

    def _delta(self, line: str) -> str | None:
        """The text of one SSE line; ``""`` for lines without text, ``None`` at ``[DONE]``."""
        if not line.startswith("data:"):
            return ""  # blank separators, ``event:`` and ``:`` comment lines
        data = line[5:].strip()
        if data == "[DONE]":
            return None
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ProviderServerError(f"malformed stream chunk: {data[:200]}", provider=self._name) from exc
        if isinstance(chunk, dict) and "error" in chunk:
            raise ProviderServerError(f"error in stream: {str(chunk['error'])[:300]}", provider=self._name)
        choices = chunk.get("choices") or [{}]
        return (choices[0].get("delta") or {}).get("content") or ""
