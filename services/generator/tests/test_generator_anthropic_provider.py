"""The Anthropic provider through the official SDK.

No Anthropic server can run offline, so these tests answer the SDK's HTTP requests with an
``httpx2.MockTransport`` (the SDK runs on httpx2) that plays Anthropic's documented Messages API wire
format (JSON bodies, SSE events, error bodies). This fakes *their* HTTP, which is acceptable here only
because there is no real server to test against; every other provider is tested against real servers.
What is checked is our translation both ways (system prompt, tool calls and results, tool choice, stop
sequences; text, tool_use blocks, stop reasons, usage, streamed deltas) and the error mapping.
"""

from __future__ import annotations

import json

import httpx2
import pytest

from parley.generator.adapters.llm_anthropic import AnthropicProvider
from parley.generator.domain.llm import (
    ChatMessage,
    ChatRequest,
    ProviderBadRequestError,
    ProviderServerError,
    ProviderUnavailableError,
    RateLimitedError,
    ToolCall,
)

TOOLS = (
    {
        "type": "function",
        "function": {
            "name": "order_status",
            "description": "Look up an order.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    },
)


def provider(handler) -> AnthropicProvider:
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return AnthropicProvider(model="claude-test", api_key="sk-ant-secret", http_client=client)


def message_body(content, stop_reason="end_turn"):
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 21, "output_tokens": 7},
    }


async def test_completion_with_tool_round_trip_translation():
    seen = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        assert request.headers["authorization"] == "Bearer sk-ant-secret"
        return httpx2.Response(
            200,
            json=message_body(
                [
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_2",
                        "name": "order_status",
                        "input": {"order_id": "777"},
                    },
                ],
                stop_reason="tool_use",
            ),
        )

    call = ToolCall(id="toolu_1", name="order_status", arguments='{"order_id": "12345"}')
    request = ChatRequest(
        messages=(
            ChatMessage.system("Be brief."),
            ChatMessage.user("where is 12345?"),
            ChatMessage.assistant(None, [call]),
            ChatMessage.tool(call, '{"ok": true, "data": {"status": "shipped"}}'),
            ChatMessage.user("and 777?"),
        ),
        max_tokens=50,
        temperature=0.2,
        stop=("END",),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "order_status"}},
    )
    completion = await provider(handler).complete(request)

    body = seen[0]
    assert body["model"] == "claude-test" and body["system"] == "Be brief." and body["max_tokens"] == 50
    assert body["stop_sequences"] == ["END"]
    assert body["tools"] == [
        {
            "name": "order_status",
            "description": "Look up an order.",
            "input_schema": TOOLS[0]["function"]["parameters"],
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "order_status"}
    assert body["messages"] == [
        {"role": "user", "content": "where is 12345?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "order_status", "input": {"order_id": "12345"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": '{"ok": true, "data": {"status": "shipped"}}',
                }
            ],
        },
        {"role": "user", "content": "and 777?"},
    ]
    assert completion.text == "Let me check."
    assert completion.tool_calls == (ToolCall("toolu_2", "order_status", '{"order_id": "777"}'),)
    assert completion.finish_reason == "tool_calls"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (21, 7)
    assert completion.provider == "anthropic"


def sse(*events: dict) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


async def test_streaming_yields_text_deltas():
    def handler(request: httpx2.Request) -> httpx2.Response:
        assert json.loads(request.content)["stream"] is True
        body = sse(
            {"type": "message_start", "message": message_body([], stop_reason=None)},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Your order "},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "has shipped."},
            },
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
            {"type": "message_stop"},
        )
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    request = ChatRequest(messages=(ChatMessage.user("where is my order?"),), max_tokens=20)
    deltas = [d async for d in provider(handler).stream(request)]
    assert deltas == ["Your order ", "has shipped."]


def error(status: int, kind: str, headers: dict | None = None):
    def handler(request: httpx2.Request) -> httpx2.Response:
        body = {"type": "error", "error": {"type": kind, "message": f"{kind} happened"}}
        return httpx2.Response(status, json=body, headers=headers or {})

    return handler


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (error(429, "rate_limit_error", {"retry-after": "7"}), RateLimitedError),
        (error(529, "overloaded_error"), ProviderServerError),
        (error(500, "api_error"), ProviderServerError),
        (error(400, "invalid_request_error"), ProviderBadRequestError),
        (error(401, "authentication_error"), ProviderBadRequestError),
    ],
)
async def test_errors_are_mapped(handler, expected):
    request = ChatRequest(messages=(ChatMessage.user("hi"),), max_tokens=5)
    with pytest.raises(expected) as caught:
        await provider(handler).complete(request)
    if expected is RateLimitedError:
        assert caught.value.retry_after_s == 7
    assert "sk-ant-secret" not in str(caught.value)
    with pytest.raises(expected):
        [d async for d in provider(handler).stream(request)]


async def test_connection_errors_mean_unavailable():
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    with pytest.raises(ProviderUnavailableError):
        await provider(handler).complete(ChatRequest(messages=(ChatMessage.user("hi"),)))


def test_repr_does_not_show_the_key():
    assert "sk-ant-secret" not in repr(provider(error(500, "x")))
