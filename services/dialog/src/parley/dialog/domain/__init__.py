"""Dialog logic: the flow engine over ``flows.yml`` (version 2) and the read-decide-write loop on versioned
state. Everything here is pure except :class:`DialogManager` (the state store) and the tool runner port."""

from parley.dialog.domain.engine import Engine
from parley.dialog.domain.manager import DialogManager, decision_proto
from parley.dialog.domain.replay import (
    RecordedTools,
    ReplayTurn,
    replay,
    turns_from_applied,
    turns_from_events,
)
from parley.dialog.domain.state import APPLIED_LIMIT, Action, AppliedDecision, DialogState, Option
from parley.dialog.domain.turn import FALLBACK_INTENT, ContextView, Turn, TurnResult

__all__ = [
    "APPLIED_LIMIT",
    "FALLBACK_INTENT",
    "Action",
    "AppliedDecision",
    "ContextView",
    "DialogManager",
    "DialogState",
    "Engine",
    "Option",
    "RecordedTools",
    "ReplayTurn",
    "Turn",
    "TurnResult",
    "decision_proto",
    "replay",
    "turns_from_applied",
    "turns_from_events",
]
