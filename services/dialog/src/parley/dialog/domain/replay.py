"""Rebuilding a conversation's dialog state by replaying its understood turns through the engine.

The engine is deterministic given the turn's clock and its tool results, so a replay needs, per turn, the
ParseResult, the event id, the clock and the tool results recorded when the turn was first decided. They
come from the state's ``applied`` log (:func:`turns_from_applied`, for the recent turns) or from the turn
events (:func:`turns_from_events`: the understood events, and the ``execute_task`` actions of the decided
events that record each tool call). Tools are never called again: :class:`RecordedTools` answers from the
record, so a replay has no side effects and gives the state the conversation had.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.json_format import MessageToDict

from parley.core.errors import InvalidInputError
from parley.dialog.domain.engine import Engine
from parley.dialog.domain.state import DialogState, ToolCall
from parley.dialog.domain.turn import ContextView, Turn
from parley.dialog.ports import ToolOutcome, ToolResult
from parley.nlu.v1 import nlu_pb2
from parley.turn.v1 import turn_event_pb2 as pb


@dataclass(frozen=True)
class ReplayTurn:
    """One understood turn with what its first decision saw."""

    event_id: str
    understanding: nlu_pb2.ParseResult
    at: float
    tools: tuple[ToolCall, ...] = ()
    context: ContextView | None = None


class RecordedTools:
    """A tool runner answering from recorded calls, in order; a call that was not recorded fails."""

    def __init__(self, calls: Iterable[ToolCall]) -> None:
        self._calls = list(calls)

    async def call(self, name: str, args: Mapping[str, Any]) -> ToolOutcome:
        if not self._calls or self._calls[0].name != name:
            return ToolResult(ok=False, error=f"replay: no recorded result for tool {name!r}")
        call = self._calls.pop(0)
        return ToolResult(ok=call.ok, data=call.data, error=call.error)


async def replay(
    engine: Engine, turns: Iterable[ReplayTurn], initial: DialogState | None = None
) -> DialogState:
    """The state after deciding ``turns`` in order, starting from ``initial`` (a new conversation)."""
    state = initial if initial is not None else DialogState()
    for item in turns:
        turn = Turn(
            event_id=item.event_id, understanding=item.understanding, now=item.at, context=item.context
        )
        result = await engine.decide(state, turn, tools=RecordedTools(item.tools))
        state = result.state
    return state


def turns_from_applied(
    state: DialogState, understood: Sequence[tuple[str, nlu_pb2.ParseResult]]
) -> list[ReplayTurn]:
    """Replay input for ``(event_id, parse)`` pairs whose decisions are still in ``state.applied``."""
    turns = []
    for event_id, parse in understood:
        entry = state.applied_for(event_id)
        if entry is None or entry.at is None:
            raise InvalidInputError(
                f"turn {event_id!r} is not in the applied log (it keeps the last turns only)"
            )
        turns.append(ReplayTurn(event_id, parse, entry.at, entry.tools))
    return turns


def _tool_calls(decided: pb.TurnEvent) -> tuple[ToolCall, ...]:
    calls = []
    for action in decided.decided.decision.actions:
        if action.kind != "execute_task":
            continue
        record = MessageToDict(action.params).get("tool")
        if isinstance(record, dict):
            calls.append(ToolCall.from_dict(record))
    return tuple(calls)


def turns_from_events(events: Sequence[pb.TurnEvent]) -> list[ReplayTurn]:
    """Replay input from a conversation's turn events: each understood event (its id is the decision's
    idempotency key, its time the decision's clock) with the tool results its decided event recorded."""
    decided = {e.causation_id: e for e in events if e.WhichOneof("payload") == "decided"}
    turns = []
    for event in events:
        if event.WhichOneof("payload") != "understood":
            continue
        answer = decided.get(event.event_id)
        turns.append(
            ReplayTurn(
                event_id=event.event_id,
                understanding=event.understood.understanding,
                at=event.occurred_at.ToMicroseconds() / 1e6,
                tools=_tool_calls(answer) if answer is not None else (),
                context=ContextView.from_snapshot(event.understood.context),
            )
        )
    return turns
