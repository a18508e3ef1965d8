"""One turn as the engine sees it: what came in (:class:`Turn`), the working copy while deciding
(:class:`Work`), and what went out (:class:`TurnResult`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from parley.context.v1 import context_pb2
from parley.dialog.domain.catalog import Catalog
from parley.dialog.domain.slots import coerce, entities_by_type, first_values
from parley.dialog.domain.state import STEP_KINDS, Action, DialogState, Frame, Option, ToolCall
from parley.dialog.ports import ToolRunner
from parley.nlu.v1 import nlu_pb2

#: The intent NLU reports when nothing is confident enough.
FALLBACK_INTENT = "nlu_fallback"

#: Reasons that describe the outcome of the whole turn, whatever happened before them.
_FINAL_REASONS = frozenset({"conflict", "handoff", "end", "error", "tool_error"})


@dataclass(frozen=True)
class ContextView:
    """What the engine uses of the context snapshot a turn arrived with."""

    #: Tracked entity type -> its current value in the conversation (most recently mentioned first).
    entities: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""

    @classmethod
    def from_snapshot(cls, snapshot: context_pb2.ContextSnapshot | None) -> ContextView | None:
        if snapshot is None:
            return None
        entities: dict[str, str] = {}
        for entity in snapshot.entities:
            if entity.entity_type and entity.value and entity.entity_type not in entities:
                entities[entity.entity_type] = entity.value
        return cls(entities=entities, summary=snapshot.summary)


@dataclass(frozen=True)
class Turn:
    """One understood user message to decide on."""

    #: Idempotency key of the decision (the understood event's id, or the gRPC turn id).
    event_id: str
    understanding: nlu_pb2.ParseResult
    #: The clock of this turn, seconds since the epoch (question timeouts are measured against it).
    now: float
    context: ContextView | None = None


@dataclass(frozen=True)
class Message:
    """The parts of a ParseResult the engine reads."""

    text: str
    #: The top intent ("" when NLU fell back) and its confidence.
    top: str
    confidence: float
    #: Every intent of the message, best first, with confidences (``nlu_fallback`` left out).
    intents: tuple[tuple[str, float], ...]
    #: Runners-up (best first), for clarification.
    ranking: tuple[tuple[str, float], ...]
    #: Entity type -> values in text order.
    entities: Mapping[str, list[Any]]
    out_of_scope: bool
    requires_clarification: bool

    @classmethod
    def of(cls, parse: nlu_pb2.ParseResult) -> Message:
        top = parse.intent.name if parse.intent.name != FALLBACK_INTENT else ""
        intents: dict[str, float] = {}
        for intent in parse.intents:
            if intent.name and intent.name != FALLBACK_INTENT:
                intents.setdefault(intent.name, intent.confidence)
        if top and top not in intents:
            intents = {top: parse.intent.confidence, **intents}
        ranking = tuple((i.name, i.confidence) for i in parse.ranking if i.name and i.name != FALLBACK_INTENT)
        return cls(
            text=(parse.corrected_text or parse.text).strip(),
            top=top,
            confidence=parse.intent.confidence if top else 0.0,
            intents=tuple(intents.items()),
            ranking=ranking,
            entities=entities_by_type(parse.entities),
            out_of_scope=parse.out_of_scope,
            requires_clarification=parse.requires_clarification,
        )


@dataclass
class Work:
    """The engine's scratchpad for one turn: a private copy of the state and everything decided so far."""

    catalog: Catalog
    state: DialogState
    turn: Turn
    message: Message
    actions: list[Action] = field(default_factory=list)
    tools: list[ToolCall] = field(default_factory=list)
    #: Intents of the message not yet acted on (name, confidence), best first.
    intents: list[tuple[str, float]] = field(default_factory=list)
    #: Slots whose value changed this turn (for constraint checks).
    changed: set[str] = field(default_factory=set)
    reason: str = ""
    #: Steps executed this turn (the loop guard).
    steps: int = 0
    #: The conversation ended or was handed over: nothing more happens this turn.
    stopped: bool = False
    #: Runs this turn's tool calls (the engine's runner unless the caller gave one, e.g. a replay).
    runner: ToolRunner | None = None

    @property
    def now(self) -> float:
        return self.turn.now

    @property
    def settings(self) -> Any:
        return self.catalog.settings

    # -- intents

    def confident(self, intent: str, threshold: float | None = None) -> bool:
        """Whether ``intent`` is among the message's unconsumed intents with enough confidence."""
        limit = self.catalog.threshold if threshold is None else threshold
        return any(name == intent and conf >= limit for name, conf in self.intents)

    def consume(self, intent: str) -> None:
        self.intents = [(name, conf) for name, conf in self.intents if name != intent]

    def understood_top(self) -> str:
        """The top intent when it is confident enough, else ""."""
        msg = self.message
        return msg.top if msg.top and msg.confidence >= self.catalog.threshold else ""

    # -- slots and values

    def set_slot(self, name: str, value: Any) -> bool:
        """Set a slot (already coerced); returns whether its value changed."""
        old = self.state.slots.get(name)
        if value is None:
            self.state.slots.pop(name, None)
        else:
            self.state.slots[name] = value
        if old != value:
            self.changed.add(name)
            return True
        return False

    def fill(self, name: str, raw: Any) -> bool:
        """Coerce and validate ``raw`` for slot ``name``; set it when valid. Returns whether it was valid."""
        result = coerce(self.catalog.slot_spec(name), raw)
        if result.ok:
            self.set_slot(name, result.value)
        return result.ok

    def entity_values(self) -> dict[str, Any]:
        return first_values(self.message.entities)

    def namespace(self, **extra: Any) -> dict[str, Any]:
        """What conditions read: ``slots`` (every declared slot, ``None`` when empty), ``entities`` (of this
        message), ``intent`` (the intent that started the running flow; outside flows, the message's),
        ``results`` (and ``value`` for a collect step's check)."""
        slots: dict[str, Any] = dict.fromkeys(self.catalog.slots)
        slots.update(self.state.slots)
        frame = self.active()
        return {
            "slots": slots,
            "entities": self.entity_values(),
            "intent": frame.intent if frame is not None and frame.intent else self.message.top,
            "results": dict(self.state.results),
            **extra,
        }

    def params(self) -> dict[str, Any]:
        """Values for response templates: this message's entities, tool results (a dict result's keys
        flattened), then slots (which win)."""
        params: dict[str, Any] = dict(self.entity_values())
        for key, result in self.state.results.items():
            if isinstance(result, Mapping):
                params.update({k: v for k, v in result.items() if v is not None})
            elif result is not None:
                params[key] = result
        params.update({k: v for k, v in self.state.slots.items() if v is not None})
        return params

    # -- output

    def emit(
        self, name: str, kind: str, extra: Mapping[str, Any] | None = None, options: Sequence[Option] = ()
    ) -> None:
        self.actions.append(
            Action(name=name, kind=kind, params={**self.params(), **(extra or {})}, options=tuple(options))
        )

    def set_reason(self, reason: str) -> None:
        """The turn's reason: the first one given, unless a later one describes the whole outcome."""
        if not self.reason or reason in _FINAL_REASONS:
            self.reason = reason

    # -- the stack

    @property
    def top(self) -> Frame | None:
        return self.state.top

    def active(self) -> Frame | None:
        """The running flow's frame (the top, unless it is paused)."""
        top = self.state.top
        return top if top is not None and not top.paused else None

    def waiting(self) -> bool:
        """Whether the top flow waits on the user at its current step."""
        pending, top = self.state.pending, self.active()
        return (
            pending is not None
            and pending.kind in STEP_KINDS
            and top is not None
            and pending.flow == top.flow
            and pending.step == top.step
        )

    def reprompt(self) -> None:
        """Drop the step's pending question, so the flow asks it again when it next runs."""
        if self.state.pending is not None and self.state.pending.kind in STEP_KINDS:
            self.state.pending = None


@dataclass(frozen=True)
class TurnResult:
    """The decision of one turn and the state after it."""

    state: DialogState
    actions: tuple[Action, ...]
    reason: str
    active_flow: str = ""
    step: str = ""
    slots: Mapping[str, Any] = field(default_factory=dict)
    ended: bool = False
    handoff: bool = False
    tools: tuple[ToolCall, ...] = ()
    #: The turn had been decided before; this is that decision, and ``state`` is unchanged.
    replayed: bool = False
