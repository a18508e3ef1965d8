"""The function-calling loop: the model calls tools, sees their results (or errors), then answers.

Each round the model gets the conversation so far and the tools' JSON schemas. If it answers with text,
the loop ends. If it asks for tool calls, each call's arguments are parsed and the tool is run through the
registry; the result -- or the error (arguments that are not JSON, that fail the tool's schema, an
unknown tool, a timeout) -- goes back to the model as a ``tool`` message, so it can correct itself. After
``max_rounds`` rounds of tool calls the model is asked once more with ``tool_choice="none"`` for a final
text answer, so a model that keeps calling tools cannot loop forever.

The registry is a port (:class:`ToolRegistryPort`) shaped like :class:`parley.core.tools.ToolRegistry`: a
call never raises, failures come back as a result with ``ok=False`` and an ``error`` text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from parley.core.logging import get_logger
from parley.generator.domain.llm import ChatMessage, ChatRequest, Completion, LlmProvider, ToolCall, Usage

log = get_logger(__name__)

#: Tool results longer than this (as JSON text) are cut before they go back to the model.
MAX_RESULT_CHARS = 4000


class ToolResultLike(Protocol):
    """The outcome of one tool call (:class:`parley.core.tools.ToolResult`)."""

    @property
    def ok(self) -> bool: ...
    @property
    def data(self) -> Any: ...
    @property
    def error(self) -> str | None: ...
    @property
    def duration_ms(self) -> float: ...


class ToolRegistryPort(Protocol):
    """Tools callable by name (:class:`parley.core.tools.ToolRegistry`)."""

    async def call(self, name: str, args: Mapping[str, Any] | None = None) -> ToolResultLike:
        """Run tool ``name``; never raises for a bad call, reports it in the result."""
        ...

    def json_schemas(self) -> list[dict[str, Any]]:
        """The tools as OpenAI function specs."""
        ...


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call the loop made, for logs, metrics and the dialog state."""

    round: int
    name: str
    arguments: Mapping[str, Any] | None
    ok: bool
    data: Any = None
    error: str | None = None
    duration_ms: float = 0.0


@dataclass(frozen=True)
class ToolLoopResult:
    """The final answer, the calls made on the way, and the summed token usage of all rounds."""

    completion: Completion
    calls: tuple[ToolCallRecord, ...]
    rounds: int
    usage: Usage
    #: Whether the loop hit ``max_rounds`` and forced a final text answer.
    exhausted: bool = False


def _result_message(payload: Mapping[str, Any]) -> str:
    text = json.dumps(payload, ensure_ascii=False, default=str)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + '..." (truncated)'
    return text


async def _execute(registry: ToolRegistryPort, call: ToolCall, round_no: int) -> tuple[ToolCallRecord, str]:
    """Run one call; the record and the text fed back to the model."""
    try:
        arguments = call.parsed_arguments()
    except ValueError as exc:
        error = f"invalid arguments for {call.name}: {exc}. Call it again with a JSON object."
        return ToolCallRecord(round_no, call.name, None, ok=False, error=error), _result_message(
            {"error": error}
        )
    result = await registry.call(call.name, arguments)
    record = ToolCallRecord(
        round_no, call.name, arguments, result.ok, result.data, result.error, result.duration_ms
    )
    if result.ok:
        return record, _result_message({"ok": True, "data": result.data})
    hint = " Fix the arguments and call it again, or answer without it." if result.error else ""
    return record, _result_message({"ok": False, "error": f"{result.error}{hint}"})


def _add(usage: Usage, more: Usage) -> Usage:
    return Usage(usage.prompt_tokens + more.prompt_tokens, usage.completion_tokens + more.completion_tokens)


async def run_tool_loop(
    llm: LlmProvider,
    request: ChatRequest,
    registry: ToolRegistryPort,
    *,
    max_rounds: int = 3,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> ToolLoopResult:
    """Answer ``request`` letting the model call ``registry``'s tools (all of them unless ``tools`` is
    given) for at most ``max_rounds`` rounds. ``request.tool_choice`` applies to the first round only
    (e.g. to force one tool); later rounds use ``"auto"``."""
    if max_rounds < 1:
        raise ValueError("max_rounds must be >= 1")
    schemas = tuple(tools if tools is not None else registry.json_schemas())
    messages = list(request.messages)
    calls: list[ToolCallRecord] = []
    usage = Usage()
    choice = request.tool_choice or "auto"
    for round_no in range(1, max_rounds + 1):
        current = ChatRequest(
            messages=tuple(messages),
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            stop=request.stop,
            tools=schemas,
            tool_choice=choice if schemas else None,
        )
        completion = await llm.complete(current)
        usage = _add(usage, completion.usage)
        if not completion.tool_calls:
            return ToolLoopResult(completion, tuple(calls), round_no, usage)
        messages.append(ChatMessage.assistant(completion.text or None, completion.tool_calls))
        for call in completion.tool_calls:
            record, fed_back = await _execute(registry, call, round_no)
            calls.append(record)
            messages.append(ChatMessage.tool(call, fed_back))
            log.info(
                "tool called by the model", tool=call.name, ok=record.ok, round=round_no, error=record.error
            )
        choice = "auto"
    final = await llm.complete(
        ChatRequest(
            messages=tuple(messages),
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            stop=request.stop,
            tools=schemas,
            tool_choice="none",
        )
    )
    usage = _add(usage, final.usage)
    if final.tool_calls:
        # A model that ignores tool_choice="none": keep its text, drop the calls.
        final = Completion(final.text, (), "stop", final.usage, final.provider, final.latency_s)
    return ToolLoopResult(final, tuple(calls), max_rounds + 1, usage, exhausted=True)
