"""Helpers of the dialog tests: a small assistant project built from the pydantic models, fakes of our own
ports (StateStore, ToolRunner), and helpers that write ParseResults and run conversations.

Imported by name (``from dialog_testkit import ...``): conftest.py puts this folder on ``sys.path``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from parley.context.v1 import context_pb2
from parley.core.context_client import from_struct, to_struct
from parley.core.errors import ConflictError
from parley.core.flows import FlowsFileV2
from parley.core.project import AssistantFile, IntentSpec, NluFile, NluSettings, Project, ResponsesFile
from parley.dialog.domain import DialogState, Engine, Turn, TurnResult
from parley.dialog.ports import ToolResult
from parley.nlu.v1 import nlu_pb2

#: The flows of the test assistant: every pattern of the engine has a flow here.
FLOWS: dict[str, Any] = {
    "version": "2",
    "slots": {
        "order_id": {"type": "text", "entity": "order_id", "regex": r"\d{5}"},
        "address": {"type": "text"},
        "origin": {"entity": "city", "fill": "when_asked"},
        "destination": {"entity": "city", "fill": "when_asked"},
        "date": {"type": "date", "entity": "date", "fill": "when_asked"},
        "passengers": {
            "type": "integer",
            "entity": "number",
            "fill": "when_asked",
            "min": 1,
            "max": 9,
            "invalid_response": "utter_invalid_passengers",
        },
        "diet": {"type": "categorical", "entity": "diet", "values": ["vegetarian", "vegan", "omnivore"]},
        "ingredients": {"type": "list", "entity": "ingredient"},
        "city": {"entity": "city", "fill": "when_asked", "initial": "Berlin"},
    },
    "constraints": [
        {
            "name": "vegetarian_meat",
            "when": "slots.diet in ['vegetarian', 'vegan']",
            "forbid": "'bacon' in slots.ingredients or 'ham' in slots.ingredients",
            "slots": ["diet", "ingredients"],
            "ask": "utter_diet_conflict",
        }
    ],
    "flows": {
        "order_status": {
            "description": "checking order {order_id}",
            "trigger": {"intents": ["order_status"]},
            "steps": [
                {"collect": "order_id"},
                {
                    "action": "get_order",
                    "args": {"order_id": "{order_id}"},
                    "save_as": "order",
                    "on_error": "missing",
                },
                {"respond": "utter_order_status"},
                {"end": True},
                {"id": "missing", "respond": "utter_order_not_found"},
            ],
        },
        "cancel_order": {
            "description": "cancelling order {order_id}",
            "trigger": {"intents": ["order.cancel"]},
            "steps": [
                {"collect": "order_id"},
                {"id": "confirm", "confirm": "utter_confirm_cancel", "on_deny": "kept"},
                {"action": "cancel_order", "args": {"order_id": "{order_id}"}},
                {"respond": "utter_order_cancelled"},
                {"end": True},
                {"id": "kept", "respond": "utter_order_kept"},
            ],
        },
        "update_address": {
            "description": "updating the delivery address",
            "trigger": {"intents": ["address.update"]},
            "steps": [{"collect": "order_id"}, {"collect": "address"}, {"respond": "utter_address_updated"}],
        },
        "book_flight": {
            "description": "booking a flight",
            "trigger": {"intents": ["book_flight"]},
            "steps": [
                {"collect": "origin"},
                {"collect": "destination"},
                {"collect": "date"},
                {"collect": "passengers", "max_attempts": 2},
                {"id": "confirm", "confirm": "utter_confirm_flight"},
                {"respond": "utter_flight_booked"},
            ],
        },
        "meal": {
            "description": "choosing a meal",
            "trigger": {"intents": ["meal_preference"]},
            "steps": [{"collect": "diet"}, {"collect": "ingredients"}, {"respond": "utter_meal_noted"}],
        },
        "weather": {
            "description": "the weather",
            "trigger": {"intents": ["weather"]},
            "steps": [
                {"collect": "city"},
                {"action": "get_weather", "args": {"city": "{city}"}, "save_as": "weather"},
                {"respond": "utter_weather"},
            ],
        },
        "feedback": {
            "description": "feedback",
            "trigger": {"intents": ["feedback"]},
            "ask_to_resume": False,
            "steps": [
                {
                    "question": "utter_ask_satisfied",
                    "expect": {"affirm": "happy", "deny": "unhappy"},
                    "timeout_s": 60,
                    "on_timeout": "timed_out",
                    "on_fail": "end",
                },
                {"id": "happy", "respond": "utter_glad", "next": "end"},
                {"id": "unhappy", "handoff": "utter_sorry", "queue": "support"},
                {"id": "timed_out", "respond": "utter_no_answer"},
            ],
        },
        "farewell": {
            "description": "saying goodbye",
            "trigger": {"intents": ["bye_for_good"]},
            "steps": [{"end": "conversation", "respond": "utter_farewell"}],
        },
    },
}

INTENTS = [
    "greet", "goodbye", "affirm", "deny", "cancel", "correct", "human_handoff", "inform",
    "order_status", "order.cancel", "address.update", "book_flight", "meal_preference", "weather",
    "feedback", "bye_for_good",
]  # fmt: skip


def flows_file(data: Mapping[str, Any] | None = None, **overrides: Any) -> FlowsFileV2:
    """The test flows (or ``data``), with top-level keys replaced by ``overrides``."""
    return FlowsFileV2.model_validate({**copy.deepcopy(dict(data or FLOWS)), **overrides})


def make_project(flows: FlowsFileV2 | None = None) -> Project:
    return Project(
        root=Path("."),
        assistant=AssistantFile(name="test", nlu=NluSettings(fallback_threshold=0.5)),
        nlu=NluFile(intents={name: IntentSpec(examples=[f"example of {name}"]) for name in INTENTS}),
        flows=flows or flows_file(),
        responses=ResponsesFile(responses={}),
    )


class FakeTools:
    """Our ToolRunner port: ``get_order``, ``cancel_order`` and ``get_weather`` over in-memory data;
    counts calls so tests can tell a replayed result from a live one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.orders = {"12345": "shipped", "67890": "processing"}
        self.weather_calls = 0
        self.handlers: dict[str, Callable[[dict[str, Any]], ToolResult]] = {
            "get_order": self._get_order,
            "cancel_order": lambda args: ToolResult(ok=True, data={"cancelled": args["order_id"]}),
            "get_weather": self._weather,
        }

    def _get_order(self, args: dict[str, Any]) -> ToolResult:
        status = self.orders.get(str(args.get("order_id")))
        if status is None:
            return ToolResult(ok=False, error="no such order")
        return ToolResult(ok=True, data={"status": status})

    def _weather(self, args: dict[str, Any]) -> ToolResult:
        self.weather_calls += 1  # a different answer every call: replays must not call again
        return ToolResult(
            ok=True, data={"weather_summary": f"sunny in {args['city']} (#{self.weather_calls})"}
        )

    async def call(self, name: str, args: Mapping[str, Any]) -> ToolResult:
        self.calls.append((name, dict(args)))
        handler = self.handlers.get(name)
        if handler is None:
            return ToolResult(ok=False, error=f"unknown tool {name}")
        return handler(dict(args))


def parse(
    intent: str = "",
    confidence: float = 0.95,
    text: str = "",
    intents: list[str] | tuple[tuple[str, float], ...] | None = None,
    ranking: list[tuple[str, float]] | None = None,
    out_of_scope: bool = False,
    clarify: bool = False,
    **entities: Any,
) -> nlu_pb2.ParseResult:
    """A ParseResult: ``intent`` (empty: nlu_fallback), extra ``intents`` (names or (name, confidence)),
    entities as keywords (a list value gives several entities of that type)."""
    top = nlu_pb2.Intent(name=intent or "nlu_fallback", confidence=confidence if intent else 0.3)
    listed = [top] if intent else []
    for item in intents or []:
        name, conf = (item, confidence) if isinstance(item, str) else item
        if name != intent:
            listed.append(nlu_pb2.Intent(name=name, confidence=conf))
    found = []
    position = 0
    for kind, value in entities.items():
        for one in value if isinstance(value, list) else [value]:
            found.append(
                nlu_pb2.Entity(type=kind, value=str(one), text=str(one), start=position, end=position + 1)
            )
            position += 2
    return nlu_pb2.ParseResult(
        text=text or intent or "hmm",
        intent=top,
        intents=listed,
        ranking=[nlu_pb2.Intent(name=n, confidence=c) for n, c in (ranking or [])] or [top],
        entities=found,
        out_of_scope=out_of_scope,
        requires_clarification=clarify,
    )


class Conversation:
    """Runs turns through an engine, keeping the state, a clock and the turn log (for replays)."""

    def __init__(self, engine: Engine, start: float = 1_000.0) -> None:
        self.engine = engine
        self.state = DialogState()
        self.now = start
        self.log: list[tuple[str, nlu_pb2.ParseResult]] = []
        self.results: list[TurnResult] = []

    async def say(self, understanding: nlu_pb2.ParseResult, after_s: float = 5.0, **kw: Any) -> TurnResult:
        self.now += after_s
        event_id = f"e{len(self.log) + 1}"
        result = await self.engine.decide(self.state, Turn(event_id, understanding, self.now, **kw))
        self.log.append((event_id, understanding))
        self.results.append(result)
        self.state = result.state
        return result


def names(result: TurnResult) -> list[str]:
    """The names of the user-facing actions (tool calls left out)."""
    return [a.name for a in result.actions if a.kind != "execute_task"]


class FakeStateStore:
    """Keeps one versioned document per conversation; ``before_update`` can simulate a concurrent writer."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[int, dict[str, Any]]] = {}
        self.writes: list[tuple[str, int, dict[str, Any]]] = []
        self.reads = 0
        self.conflicts = 0
        self.before_update: Callable[[FakeStateStore, str], None] | None = None

    def put(self, conversation_id: str, data: Mapping[str, Any]) -> int:
        """Write directly (another writer), bumping the version."""
        version = self.docs.get(conversation_id, (0, {}))[0] + 1
        self.docs[conversation_id] = (version, copy.deepcopy(dict(data)))
        return version

    async def get_state(self, conversation_id: str) -> context_pb2.DialogState:
        self.reads += 1
        version, data = self.docs.get(conversation_id, (0, {}))
        return context_pb2.DialogState(conversation_id=conversation_id, version=version, data=to_struct(data))

    async def update_state(
        self, conversation_id: str, expected_version: int, data: Mapping[str, Any]
    ) -> context_pb2.DialogState:
        hook, self.before_update = self.before_update, None
        if hook is not None:
            hook(self, conversation_id)
        current = self.docs.get(conversation_id, (0, {}))[0]
        if current != expected_version:
            self.conflicts += 1
            raise ConflictError(f"expected version {expected_version}, stored {current}")
        # Round-trip through a Struct, as the real service stores JSON.
        stored = context_pb2.DialogState(data=to_struct(data)).data
        version = self.put(conversation_id, from_struct(stored))
        self.writes.append((conversation_id, version, copy.deepcopy(dict(data))))
        return context_pb2.DialogState(conversation_id=conversation_id, version=version, data=stored)
