"""Dialog logic: the rule policy over ``flows.yml`` and the read-decide-write loop on versioned state."""

from parley.dialog.domain.manager import DialogManager
from parley.dialog.domain.policy import FALLBACK_INTENT, RulePolicy, TurnOutcome
from parley.dialog.domain.state import APPLIED_LIMIT, AppliedDecision, DialogState

__all__ = [
    "APPLIED_LIMIT",
    "FALLBACK_INTENT",
    "AppliedDecision",
    "DialogManager",
    "DialogState",
    "RulePolicy",
    "TurnOutcome",
]
