"""The function-calling loop.

Two kinds of model answer it:

* the real llama.cpp server with SmolLM2-135M (chat format ``chatml-function-calling``): a 135M model
  does not decide to call tools reliably on its own, so the round trip forces the first call through
  ``tool_choice`` (llama.cpp then constrains the arguments to the tool's JSON schema with a grammar); the
  tool's result goes back and the model writes the final answer;
* a scripted OpenAI-compatible server (Starlette on a real socket) for what a small model cannot be made to
  do on cue: malformed arguments, arguments that fail the schema, an unknown tool, and a model that never
  stops calling tools (the round limit).

The registry is a fake of our own ``ToolRegistryPort`` (validates ``required`` like the real one), plus one
test with the real ``parley.core.tools.ToolRegistry`` to show it fits the port.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley.core.tools import ToolRegistry, ToolsFile
from parley.generator.adapters.llm_openai import OpenAICompatibleProvider
from parley.generator.domain.function_calling import run_tool_loop
from parley.generator.domain.llm import ChatMessage, ChatRequest

ORDER_STATUS = {
    "type": "function",
    "function": {
        "name": "order_status",
        "description": "Look up the delivery status of an order by its number.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "the order number"}},
            "required": ["order_id"],
        },
    },
}


@dataclass(frozen=True)
class Result:
    ok: bool
    data: Any = None
    error: str | None = None
    duration_ms: float = 0.1


class FakeRegistry:
    """One tool, ``order_status``; checks required arguments like the real registry does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def json_schemas(self) -> list[dict[str, Any]]:
        return [ORDER_STATUS]

    async def call(self, name: str, args: Mapping[str, Any] | None = None) -> Result:
        args = dict(args or {})
        self.calls.append((name, args))
        if name != "order_status":
            return Result(ok=False, error=f"unknown tool {name!r} (known: order_status)")
        if not isinstance(args.get("order_id"), str):
            return Result(
                ok=False, error="invalid arguments for order_status: 'order_id' is a required property"
            )
        return Result(ok=True, data={"order_id": args["order_id"], "status": "shipped"})


def question(text: str = "Where is my order 12345?") -> ChatRequest:
    return ChatRequest(
        messages=(ChatMessage.system("You are a shop assistant. Use the tools."), ChatMessage.user(text)),
        temperature=0.0,
        max_tokens=24,
    )


async def test_tool_round_trip_with_the_real_server(llama_server):
    registry = FakeRegistry()
    forced = {"type": "function", "function": {"name": "order_status"}}
    request = ChatRequest(messages=question().messages, temperature=0.0, max_tokens=24, tool_choice=forced)
    async with OpenAICompatibleProvider(base_url=llama_server.base_url, model="smollm2", name="llama") as llm:
        result = await run_tool_loop(llm, request, registry, max_rounds=1)

    assert registry.calls and registry.calls[0][0] == "order_status"
    assert isinstance(registry.calls[0][1].get("order_id"), str)  # grammar-constrained to the schema
    first = result.calls[0]
    assert first.ok and first.data["status"] == "shipped" and first.round == 1
    assert result.completion.text.strip() and not result.completion.tool_calls
    assert result.usage.completion_tokens > 0


def tool_call_response(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": arguments},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
    }


def text_response(text: str) -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3},
    }


class Script:
    """Answers the scripted server's requests in order and keeps the bodies it received."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, request: Request) -> Response:
        self.bodies.append(json.loads(await request.body()))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return JSONResponse(answer)


async def test_errors_are_fed_back_until_the_model_gets_the_call_right(scripted_server):
    script = Script(
        tool_call_response("c1", "order_status", "{order_id: 12345"),  # not JSON
        tool_call_response("c2", "order_status", '{"order": "12345"}'),  # fails the schema
        tool_call_response("c3", "track_parcel", '{"id": "12345"}'),  # no such tool
        tool_call_response("c4", "order_status", '{"order_id": "12345"}'),
        text_response("Order 12345 has shipped."),
    )
    registry = FakeRegistry()
    async with scripted_server(script) as url, OpenAICompatibleProvider(base_url=url, model="m") as llm:
        result = await run_tool_loop(llm, question(), registry, max_rounds=5)

    assert (
        result.completion.text == "Order 12345 has shipped." and result.rounds == 5 and not result.exhausted
    )
    assert [c.ok for c in result.calls] == [False, False, False, True]
    assert registry.calls == [
        ("order_status", {"order": "12345"}),
        ("track_parcel", {"id": "12345"}),
        ("order_status", {"order_id": "12345"}),
    ]  # the malformed JSON never reached the registry
    assert result.usage.prompt_tokens == 50

    fed_back = [m for m in script.bodies[-1]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in fed_back] == ["c1", "c2", "c3", "c4"]
    assert "not valid JSON" in fed_back[0]["content"]
    assert "'order_id' is a required property" in fed_back[1]["content"]
    assert "unknown tool 'track_parcel'" in fed_back[2]["content"]
    assert json.loads(fed_back[3]["content"]) == {
        "ok": True,
        "data": {"order_id": "12345", "status": "shipped"},
    }
    assert script.bodies[0]["tools"] == [ORDER_STATUS] and script.bodies[0]["tool_choice"] == "auto"


async def test_the_round_limit_forces_a_final_answer(scripted_server):
    script = Script(tool_call_response("c", "order_status", '{"order_id": "1"}'))
    registry = FakeRegistry()
    async with scripted_server(script) as url, OpenAICompatibleProvider(base_url=url, model="m") as llm:
        result = await run_tool_loop(llm, question(), registry, max_rounds=2)
    assert result.exhausted and len(registry.calls) == 2
    assert len(script.bodies) == 3 and script.bodies[-1]["tool_choice"] == "none"
    assert not result.completion.tool_calls  # the calls of a model that ignores "none" are dropped


async def test_the_real_core_registry_fits_the_port(scripted_server, tmp_path):
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "orders.py").write_text(
        "def order_status(order_id):\n    return {'order_id': order_id, 'status': 'in transit'}\n"
    )
    tools = ToolsFile.model_validate(
        {
            "tools": {
                "order_status": {
                    "description": "Look up an order.",
                    "parameters": ORDER_STATUS["function"]["parameters"],
                    "python": "orders:order_status",
                }
            }
        }
    )
    registry = ToolRegistry(tmp_path, tools)
    script = Script(
        tool_call_response("c1", "order_status", '{"order_id": 12345}'),  # a number: the schema says string
        tool_call_response("c2", "order_status", '{"order_id": "12345"}'),
        text_response("It is in transit."),
    )
    async with scripted_server(script) as url, OpenAICompatibleProvider(base_url=url, model="m") as llm:
        result = await run_tool_loop(llm, question(), registry)
    assert [c.ok for c in result.calls] == [False, True]
    assert "is not of type 'string'" in (result.calls[0].error or "")
    assert result.calls[1].data == {"order_id": "12345", "status": "in transit"}
    assert result.completion.text == "It is in transit."
