"""The dialog state of one conversation, as kept (JSON) in the context service.

Shape: ``{"slots": {...}, "requested_slot": str|None, "pending_intent": str|None, "turns": int,
"applied": [{"event_id": ..., "actions": [{"name": ..., "params": {...}}]}]}``. ``applied`` remembers the
last decisions by idempotency key, so a turn replayed after a crash returns what was decided the first
time instead of deciding again on a state that already holds its effects. Keys this module does not know
are carried through untouched, so a newer writer's additions survive an older dialog replica.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from google.protobuf.json_format import MessageToDict

from parley.core.context_client import to_struct
from parley.dialog.v1 import dialog_pb2

#: How many past decisions the state remembers for idempotency.
APPLIED_LIMIT = 16

_KNOWN_KEYS = frozenset({"slots", "requested_slot", "pending_intent", "turns", "applied"})


def action_to_dict(action: dialog_pb2.Action) -> dict[str, Any]:
    """An action as JSON, for the ``applied`` log."""
    return {"name": action.name, "params": MessageToDict(action.params)}


def action_from_dict(data: Mapping[str, Any]) -> dialog_pb2.Action:
    """An action back from the ``applied`` log."""
    params = data.get("params")
    return dialog_pb2.Action(
        name=str(data.get("name", "")), params=to_struct(params if isinstance(params, Mapping) else {})
    )


@dataclass(frozen=True)
class AppliedDecision:
    """A decision already written, keyed by the event (or turn) that caused it."""

    event_id: str
    actions: tuple[dialog_pb2.Action, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "actions": [action_to_dict(a) for a in self.actions]}


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _applied_from(value: Any) -> tuple[AppliedDecision, ...]:
    if not isinstance(value, list):
        return ()
    entries = []
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("event_id"), str):
            continue
        actions = item.get("actions")
        actions = actions if isinstance(actions, list) else []
        entries.append(
            AppliedDecision(
                event_id=item["event_id"],
                actions=tuple(action_from_dict(a) for a in actions if isinstance(a, Mapping)),
            )
        )
    return tuple(entries[-APPLIED_LIMIT:])


@dataclass(frozen=True)
class DialogState:
    """Slots, the question the assistant is waiting on, and the recent decisions."""

    slots: Mapping[str, Any] = field(default_factory=dict)
    #: The slot the assistant last asked the user for.
    requested_slot: str | None = None
    #: The intent to resume once ``requested_slot`` is filled (``None`` for a plain question).
    pending_intent: str | None = None
    turns: int = 0
    applied: tuple[AppliedDecision, ...] = ()
    #: Keys of the stored document this version does not know; written back unchanged.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DialogState:
        """Read a stored document leniently: a malformed field falls back to its default rather than
        blocking every later turn of the conversation."""
        slots = data.get("slots")
        turns = data.get("turns")
        return cls(
            slots=dict(slots) if isinstance(slots, Mapping) else {},
            requested_slot=_optional_str(data.get("requested_slot")),
            pending_intent=_optional_str(data.get("pending_intent")),
            turns=int(turns) if isinstance(turns, int | float) and not isinstance(turns, bool) else 0,
            applied=_applied_from(data.get("applied")),
            extra={k: v for k, v in data.items() if k not in _KNOWN_KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON document to store."""
        return {
            **self.extra,
            "slots": dict(self.slots),
            "requested_slot": self.requested_slot,
            "pending_intent": self.pending_intent,
            "turns": self.turns,
            "applied": [entry.to_dict() for entry in self.applied],
        }

    def applied_for(self, event_id: str) -> AppliedDecision | None:
        """The decision already taken for ``event_id``, if it is still remembered."""
        return next((entry for entry in reversed(self.applied) if entry.event_id == event_id), None)

    def remember(self, event_id: str, actions: tuple[dialog_pb2.Action, ...]) -> DialogState:
        """This state with one more decision in ``applied`` (the oldest dropped beyond the limit)."""
        applied = (*self.applied, AppliedDecision(event_id, actions))[-APPLIED_LIMIT:]
        return replace(self, applied=applied)
