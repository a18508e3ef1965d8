"""The rule policy: from the state and what NLU understood, the next actions and the next state.

Pure: no I/O, no clock, no randomness, so one (state, understanding) always gives one decision and the
policy is tested without any service running.

One turn:
1. slots mapped ``from_entity`` take the value of the first entity of that type in the utterance;
2. the intent's rule is looked up (a low-confidence or ``nlu_fallback`` intent has none);
3. if the assistant was waiting for a slot that this turn filled and it had a pending intent, that
   intent resumes -- when no rule matched, or when the matched rule itself needs the requested slot (the
   user answered the question, e.g. "12345" parsed as ``inform_order_id`` after a delivery question);
4. a rule with a missing ``requires`` slot asks for it (``utter_ask_<slot>``, or ``utter_ask_<slot>_again``
   when that response exists and the same slot was already being asked for) and remembers the intent;
   otherwise the rule's actions run and its ``asks`` slot (if any) becomes the requested one;
5. with no rule, the project's fallback actions run and an unanswered question stays open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from parley.core.context_client import to_struct
from parley.core.errors import ConfigurationError
from parley.core.project import FlowsFile, Project, RuleSpec
from parley.dialog.domain.state import DialogState
from parley.dialog.v1 import dialog_pb2
from parley.nlu.v1 import nlu_pb2

#: The intent NLU reports when nothing is confident enough.
FALLBACK_INTENT = "nlu_fallback"


@dataclass(frozen=True)
class TurnOutcome:
    """What the policy decided for one turn."""

    state: DialogState
    actions: tuple[dialog_pb2.Action, ...]
    #: Why: ``rule``, ``ask``, ``resume`` or ``fallback`` (for logs and tests).
    reason: str


def _has_value(value: Any) -> bool:
    return value is not None and value != ""


def _entity_values(understanding: nlu_pb2.ParseResult) -> dict[str, str]:
    """Entity type -> resolved value, the first mention of each type winning."""
    values: dict[str, str] = {}
    for entity in understanding.entities:
        value = entity.value or entity.text
        if entity.type and value and entity.type not in values:
            values[entity.type] = value
    return values


class RulePolicy:
    """Decides turns with the rules of a project's ``flows.yml``."""

    def __init__(
        self, flows: FlowsFile, response_names: Iterable[str], fallback_threshold: float = 0.0
    ) -> None:
        self._flows = flows
        self._responses = frozenset(response_names)
        self._threshold = fallback_threshold
        self._rules: dict[str, RuleSpec] = {}
        for rule in flows.rules:
            self._rules.setdefault(rule.intent, rule)
        missing = sorted(
            {
                f"utter_ask_{slot}"
                for rule in flows.rules
                for slot in rule.requires
                if f"utter_ask_{slot}" not in self._responses
            }
        )
        if missing:
            raise ConfigurationError(
                "flows.yml requires slots the assistant cannot ask for; add to responses.yml: "
                + ", ".join(missing)
            )

    @classmethod
    def from_project(cls, project: Project) -> RulePolicy:
        """The policy of ``project``, with its NLU fallback threshold as the confidence floor."""
        return cls(
            project.flows,
            project.responses.responses.keys(),
            fallback_threshold=project.assistant.nlu.fallback_threshold,
        )

    def decide(self, state: DialogState, understanding: nlu_pb2.ParseResult, event_id: str) -> TurnOutcome:
        """The actions for this turn and the state after it (with the decision remembered under
        ``event_id`` and the turn counted)."""
        entities = _entity_values(understanding)
        slots = dict(state.slots)
        filled: set[str] = set()
        for name, spec in self._flows.slots.items():
            if spec.from_entity and spec.from_entity in entities:
                slots[name] = entities[spec.from_entity]
                filled.add(name)
        params = {**{k: v for k, v in slots.items() if _has_value(v)}, **entities}

        intent = understanding.intent
        confident = (
            bool(intent.name) and intent.name != FALLBACK_INTENT and intent.confidence >= self._threshold
        )
        rule = self._rules.get(intent.name) if confident else None
        requested, pending = state.requested_slot, state.pending_intent
        answered = requested is not None and requested in filled
        reason = "rule"
        if answered and pending in self._rules and (rule is None or requested in rule.requires):
            rule = self._rules[pending]  # type: ignore[index]  # pending is a key of _rules here
            reason = "resume"

        if rule is None:
            names: list[str] = list(self._flows.fallback)
            if answered:
                requested, pending = None, None
            reason = "fallback"
        else:
            missing = [slot for slot in rule.requires if not _has_value(slots.get(slot))]
            if missing:
                slot = missing[0]
                again = f"utter_ask_{slot}_again"
                names = [again if requested == slot and again in self._responses else f"utter_ask_{slot}"]
                requested, pending = slot, rule.intent
                reason = "ask"
            else:
                names = list(rule.actions)
                requested, pending = rule.asks, None

        actions = tuple(_action(name, params) for name in names)
        new_state = replace(
            state, slots=slots, requested_slot=requested, pending_intent=pending, turns=state.turns + 1
        ).remember(event_id, actions)
        return TurnOutcome(state=new_state, actions=actions, reason=reason)


def _action(name: str, params: Mapping[str, Any]) -> dialog_pb2.Action:
    return dialog_pb2.Action(name=name, params=to_struct(params))
