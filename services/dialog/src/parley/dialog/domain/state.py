"""The dialog state of one conversation (version 2), as kept (JSON) in the context service.

The context service versions the document and the manager writes it by compare-and-set. Shape::

    {"schema": 2,
     "stack": [{"flow", "intent", "step", "step_id", "attempts": {step: n}, "paused", "via", "confirmed"}],
     "slots": {...}, "results": {...},
     "pending": {"kind", "flow", "step", "slot", "asked_at", "attempts", "options": [...]} | null,
     "failures": int, "turns": int, "queue": [{"intent", "confidence"}],
     "history": [{"flow", "status", "slots", "turn"}],
     "ended": bool, "handoff": bool, "last_turn_at": float | null,
     "applied": [{"event_id", "at", "actions", "tools", "decision"}]}

``applied`` remembers the last decisions by idempotency key, so a turn replayed after a crash returns what
was decided the first time instead of deciding again on a state that already holds its effects; it also
records the turn's clock and tool results, which is what makes :mod:`parley.dialog.domain.replay` faithful.
Reading is lenient: a malformed field falls back to its default rather than blocking every later turn of
the conversation, and keys this module does not know are carried through untouched, so a newer writer's
additions survive an older dialog replica. The classes are plain mutable dataclasses: the engine works on
a private copy (:meth:`DialogState.copy`) and never changes the state it was given.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: How many past decisions the state remembers for idempotency.
APPLIED_LIMIT = 16
#: How many finished flows the state remembers (to offer "that thing we discussed").
HISTORY_LIMIT = 10
#: The document schema this module writes.
SCHEMA = 2

PendingKind = Literal["collect", "confirm", "question", "clarify", "conflict", "resume"]
#: Pending interactions that belong to the top flow's current step (the flow waits on them).
STEP_KINDS = frozenset({"collect", "confirm", "question"})
_PENDING_KINDS = frozenset({*STEP_KINDS, "clarify", "conflict", "resume"})

_KNOWN_KEYS = frozenset(
    {
        "schema",
        "stack",
        "slots",
        "results",
        "pending",
        "failures",
        "turns",
        "queue",
        "history",
        "ended",
        "handoff",
        "last_turn_at",
        "applied",
    }
)
#: Keys of the version 1 document (the rule policy) that mean nothing any more: dropped, not carried.
_LEGACY_KEYS = frozenset({"requested_slot", "pending_intent"})


# --- lenient readers -------------------------------------------------------------------------------------


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


def _opt_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else False


def _dict(value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _json_number(value: Any) -> Any:
    """Whole floats back to ints: the stored document passes through a protobuf Struct (doubles only)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_json_number(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_number(v) for k, v in value.items()}
    return value


# --- parts -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """A choice offered to the user (a quick reply), with what choosing it means to the engine.

    ``intent``/``flow`` (clarification: start that flow, with ``slots`` preset), or ``slot``/``value``
    (a conflict: keep this value).
    """

    title: str
    payload: str = ""
    intent: str | None = None
    flow: str | None = None
    slot: str | None = None
    value: Any = None
    slots: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"title": self.title, "payload": self.payload}
        for key in ("intent", "flow", "slot"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.value is not None:
            data["value"] = self.value
        if self.slots:
            data["slots"] = dict(self.slots)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Option:
        return cls(
            title=_str(data.get("title")),
            payload=_str(data.get("payload")),
            intent=_opt_str(data.get("intent")),
            flow=_opt_str(data.get("flow")),
            slot=_opt_str(data.get("slot")),
            value=_json_number(data.get("value")),
            slots=_json_number(_dict(data.get("slots"))),
        )


@dataclass(frozen=True)
class Action:
    """One thing the assistant does next; the domain's form of ``parley.dialog.v1.Action``."""

    name: str
    kind: str = "provide_info"
    params: Mapping[str, Any] = field(default_factory=dict)
    options: tuple[Option, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "params": dict(self.params)}
        if self.options:
            data["options"] = [{"title": o.title, "payload": o.payload} for o in self.options]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Action:
        return cls(
            name=_str(data.get("name")),
            kind=_str(data.get("kind"), "provide_info"),
            params=_json_number(_dict(data.get("params"))),
            options=tuple(Option.from_dict(o) for o in _items(data.get("options"))),
        )


@dataclass
class Frame:
    """A flow on the stack: where it is, how often its current step was asked, whether it is paused.

    ``via`` says how it started: ``trigger`` (an intent), ``call`` (a sub-flow returning to the frame
    below) or ``link``; ``intent`` is the intent that started it (what ``intent`` means in its conditions;
    a called or linked flow inherits it). ``confirmed`` is the index of the last confirmation the user
    accepted in this flow (a later correction asks it again).
    """

    flow: str
    step: int = 0
    step_id: str | None = None
    attempts: dict[str, int] = field(default_factory=dict)
    paused: bool = False
    via: str = "trigger"
    confirmed: int | None = None
    intent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "intent": self.intent,
            "step": self.step,
            "step_id": self.step_id,
            "attempts": dict(self.attempts),
            "paused": self.paused,
            "via": self.via,
            "confirmed": self.confirmed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Frame | None:
        flow = _opt_str(data.get("flow"))
        if flow is None:
            return None
        confirmed = data.get("confirmed")
        return cls(
            flow=flow,
            step=max(0, _int(data.get("step"))),
            step_id=_opt_str(data.get("step_id")),
            attempts={k: _int(v) for k, v in _dict(data.get("attempts")).items()},
            paused=_bool(data.get("paused")),
            via=_str(data.get("via"), "trigger") or "trigger",
            confirmed=_int(confirmed) if confirmed is not None else None,
            intent=_opt_str(data.get("intent")),
        )


@dataclass
class Pending:
    """What the assistant asked and waits on.

    ``collect``/``confirm``/``question`` belong to the top flow's step ``step`` (its index) of ``flow``;
    ``clarify`` and ``conflict`` carry their ``options``; ``resume`` offers to resume ``flow``.
    """

    kind: str
    flow: str | None = None
    step: int | None = None
    slot: str | None = None
    asked_at: float | None = None
    attempts: int = 1
    options: list[Option] = field(default_factory=list)
    #: The response that asked (said again when the answer is not understood).
    response: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "flow": self.flow,
            "step": self.step,
            "slot": self.slot,
            "asked_at": self.asked_at,
            "attempts": self.attempts,
            "options": [o.to_dict() for o in self.options],
            "response": self.response,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Pending | None:
        if not isinstance(data, Mapping) or data.get("kind") not in _PENDING_KINDS:
            return None
        step = data.get("step")
        return cls(
            kind=data["kind"],
            flow=_opt_str(data.get("flow")),
            step=_int(step) if step is not None else None,
            slot=_opt_str(data.get("slot")),
            asked_at=_opt_float(data.get("asked_at")),
            attempts=max(1, _int(data.get("attempts"), 1)),
            options=[Option.from_dict(o) for o in _items(data.get("options"))],
            response=_opt_str(data.get("response")),
        )


@dataclass
class QueuedIntent:
    """An intent of an earlier message waiting for the current flow to finish."""

    intent: str
    confidence: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "confidence": self.confidence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QueuedIntent | None:
        intent = _opt_str(data.get("intent"))
        if intent is None:
            return None
        confidence = _opt_float(data.get("confidence"))
        return cls(intent, 1.0 if confidence is None else confidence)


@dataclass
class HistoryEntry:
    """A flow that finished (``completed``, ``cancelled``, ``handoff``...) with its key slot values."""

    flow: str
    status: str
    slots: dict[str, Any] = field(default_factory=dict)
    turn: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"flow": self.flow, "status": self.status, "slots": dict(self.slots), "turn": self.turn}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistoryEntry | None:
        flow = _opt_str(data.get("flow"))
        if flow is None:
            return None
        return cls(
            flow=flow,
            status=_str(data.get("status"), "completed"),
            slots=_json_number(_dict(data.get("slots"))),
            turn=_int(data.get("turn")),
        )


@dataclass(frozen=True)
class ToolCall:
    """A tool call made while deciding a turn, with its result (recorded so a replay is faithful)."""

    name: str
    args: Mapping[str, Any]
    ok: bool
    data: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "args": dict(self.args),
            "ok": self.ok,
            "data": self.data,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        return cls(
            name=_str(data.get("name")),
            args=_json_number(_dict(data.get("args"))),
            ok=_bool(data.get("ok")),
            data=_json_number(data.get("data")),
            error=_opt_str(data.get("error")),
        )


@dataclass(frozen=True)
class DecisionInfo:
    """What a decision said besides its actions (returned again when a turn is replayed)."""

    reason: str = ""
    active_flow: str = ""
    step: str = ""
    slots: Mapping[str, Any] = field(default_factory=dict)
    ended: bool = False
    handoff: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "active_flow": self.active_flow,
            "step": self.step,
            "slots": dict(self.slots),
            "ended": self.ended,
            "handoff": self.handoff,
        }

    @classmethod
    def from_dict(cls, data: Any) -> DecisionInfo:
        data = data if isinstance(data, Mapping) else {}
        return cls(
            reason=_str(data.get("reason")),
            active_flow=_str(data.get("active_flow")),
            step=_str(data.get("step")),
            slots=_json_number(_dict(data.get("slots"))),
            ended=_bool(data.get("ended")),
            handoff=_bool(data.get("handoff")),
        )


@dataclass(frozen=True)
class AppliedDecision:
    """A decision already written, keyed by the event (or turn) that caused it."""

    event_id: str
    actions: tuple[Action, ...]
    at: float | None = None
    tools: tuple[ToolCall, ...] = ()
    decision: DecisionInfo = DecisionInfo()

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "at": self.at,
            "actions": [a.to_dict() for a in self.actions],
            "tools": [t.to_dict() for t in self.tools],
            "decision": self.decision.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AppliedDecision | None:
        event_id = data.get("event_id")
        if not isinstance(event_id, str):
            return None
        return cls(
            event_id=event_id,
            actions=tuple(Action.from_dict(a) for a in _items(data.get("actions"))),
            at=_opt_float(data.get("at")),
            tools=tuple(ToolCall.from_dict(t) for t in _items(data.get("tools"))),
            decision=DecisionInfo.from_dict(data.get("decision")),
        )


def _parsed(items: Any, reader: Any, limit: int | None = None) -> list[Any]:
    parsed = [p for item in _items(items) if (p := reader(item)) is not None]
    return parsed[-limit:] if limit else parsed


# --- the state -------------------------------------------------------------------------------------------


@dataclass
class DialogState:
    """The working memory of one conversation; see the module docstring for the stored shape."""

    stack: list[Frame] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    #: Tool results by ``save_as`` name (``results.<name>`` in conditions).
    results: dict[str, Any] = field(default_factory=dict)
    pending: Pending | None = None
    #: Consecutive turns not understood (the fallback ladder); reset by any understood turn.
    failures: int = 0
    turns: int = 0
    queue: list[QueuedIntent] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    ended: bool = False
    handoff: bool = False
    #: Clock of the last turn (seconds since the epoch, as given to the engine).
    last_turn_at: float | None = None
    applied: list[AppliedDecision] = field(default_factory=list)
    #: Keys of the stored document this version does not know; written back unchanged.
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DialogState:
        """Read a stored document leniently (version 1 documents included: their slots, turn count and
        applied log survive; their question bookkeeping is dropped)."""
        return cls(
            stack=_parsed(data.get("stack"), Frame.from_dict),
            slots={k: v for k, v in _json_number(_dict(data.get("slots"))).items() if v is not None},
            results=_json_number(_dict(data.get("results"))),
            pending=Pending.from_dict(data.get("pending")),
            failures=max(0, _int(data.get("failures"))),
            turns=max(0, _int(data.get("turns"))),
            queue=_parsed(data.get("queue"), QueuedIntent.from_dict),
            history=_parsed(data.get("history"), HistoryEntry.from_dict, HISTORY_LIMIT),
            ended=_bool(data.get("ended")),
            handoff=_bool(data.get("handoff")),
            last_turn_at=_opt_float(data.get("last_turn_at")),
            applied=_parsed(data.get("applied"), AppliedDecision.from_dict, APPLIED_LIMIT),
            extra={k: v for k, v in data.items() if k not in _KNOWN_KEYS and k not in _LEGACY_KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON document to store."""
        return {
            **copy.deepcopy(self.extra),
            "schema": SCHEMA,
            "stack": [f.to_dict() for f in self.stack],
            "slots": copy.deepcopy(self.slots),
            "results": copy.deepcopy(self.results),
            "pending": self.pending.to_dict() if self.pending else None,
            "failures": self.failures,
            "turns": self.turns,
            "queue": [q.to_dict() for q in self.queue],
            "history": [h.to_dict() for h in self.history[-HISTORY_LIMIT:]],
            "ended": self.ended,
            "handoff": self.handoff,
            "last_turn_at": self.last_turn_at,
            "applied": [a.to_dict() for a in self.applied[-APPLIED_LIMIT:]],
        }

    def copy(self) -> DialogState:
        """A deep, independent copy (what the engine works on)."""
        return DialogState.from_dict(self.to_dict())

    @property
    def top(self) -> Frame | None:
        """The frame on top of the stack (the active flow, or a paused one waiting to be resumed)."""
        return self.stack[-1] if self.stack else None

    def applied_for(self, event_id: str) -> AppliedDecision | None:
        """The decision already taken for ``event_id``, if it is still remembered."""
        return next((entry for entry in reversed(self.applied) if entry.event_id == event_id), None)

    def remember(self, entry: AppliedDecision) -> None:
        """Add a decision to ``applied`` (the oldest dropped beyond the limit)."""
        self.applied = [*self.applied, entry][-APPLIED_LIMIT:]
