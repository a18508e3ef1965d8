"""The rule policy on the example project's flows, as pure functions of (state, understanding)."""

from __future__ import annotations

import pytest
from google.protobuf.json_format import MessageToDict

from parley.core.errors import ConfigurationError
from parley.core.project import FlowsFile, RuleSpec, SlotSpec
from parley.dialog.domain import APPLIED_LIMIT, DialogState, RulePolicy
from parley.nlu.v1 import nlu_pb2


def understood(intent: str, confidence: float = 0.93, text: str = "", **entities: str) -> nlu_pb2.ParseResult:
    return nlu_pb2.ParseResult(
        text=text,
        intent=nlu_pb2.Intent(name=intent, confidence=confidence),
        entities=[nlu_pb2.Entity(type=k, text=v, value=v, confidence=1.0) for k, v in entities.items()],
    )


def names(outcome) -> list[str]:
    return [a.name for a in outcome.actions]


def params(action) -> dict:
    return MessageToDict(action.params)


@pytest.fixture(scope="module")
def policy(project) -> RulePolicy:
    return RulePolicy.from_project(project)


def test_example_conversation_asks_then_answers_then_uses_the_slot(policy):
    state = DialogState()

    first = policy.decide(state, understood("order_help", text="Hello, I need help with my order"), "e1")
    assert names(first) == ["utter_ask_order_id"]
    assert first.state.requested_slot == "order_id"
    assert first.state.pending_intent is None

    second = policy.decide(
        first.state, understood("inform_order_id", text="My order number is 12345", order_id="12345"), "e2"
    )
    assert names(second) == ["utter_order_status"]
    assert params(second.actions[0]) == {"order_id": "12345"}
    assert second.state.slots == {"order_id": "12345"}
    assert second.state.requested_slot is None

    third = policy.decide(second.state, understood("delivery_question", text="When will it arrive?"), "e3")
    assert names(third) == ["utter_delivery_estimate"]
    assert params(third.actions[0]) == {"order_id": "12345"}
    assert third.state.turns == 3
    assert [a.event_id for a in third.state.applied] == ["e1", "e2", "e3"]


def test_a_question_needing_a_slot_asks_for_it_and_resumes_when_answered(policy):
    asked = policy.decide(DialogState(), understood("delivery_question"), "e1")
    assert names(asked) == ["utter_ask_order_id"]
    assert asked.reason == "ask"
    assert (asked.state.requested_slot, asked.state.pending_intent) == ("order_id", "delivery_question")

    # "12345" is itself an inform_order_id example; answering the question resumes the pending intent.
    for intent in ("inform_order_id", "nlu_fallback"):
        resumed = policy.decide(asked.state, understood(intent, text="12345", order_id="12345"), "e2")
        assert names(resumed) == ["utter_delivery_estimate"], intent
        assert resumed.reason == "resume"
        assert params(resumed.actions[0]) == {"order_id": "12345"}
        assert (resumed.state.requested_slot, resumed.state.pending_intent) == (None, None)


def test_asking_again_uses_the_again_response(policy):
    asked = policy.decide(DialogState(), understood("delivery_question"), "e1")
    again = policy.decide(asked.state, understood("delivery_question"), "e2")
    assert names(again) == ["utter_ask_order_id_again"]
    assert again.state.pending_intent == "delivery_question"


def test_low_confidence_or_nlu_fallback_runs_the_fallback_and_keeps_the_question_open(policy, project):
    asked = policy.decide(DialogState(), understood("delivery_question"), "e1")
    threshold = project.assistant.nlu.fallback_threshold
    for parse in (understood("greet", confidence=threshold / 2), understood("nlu_fallback", confidence=0.2)):
        out = policy.decide(asked.state, parse, "e2")
        assert names(out) == ["utter_fallback"]
        assert out.reason == "fallback"
        assert (out.state.requested_slot, out.state.pending_intent) == ("order_id", "delivery_question")
    # The same greeting with enough confidence is answered by its rule.
    assert names(policy.decide(DialogState(), understood("greet", confidence=threshold), "e3")) == [
        "utter_greet"
    ]


def test_unknown_intent_is_a_fallback(policy):
    out = policy.decide(DialogState(), understood("buy_a_pony"), "e1")
    assert names(out) == ["utter_fallback"]


def test_a_different_topic_abandons_the_pending_question(policy):
    asked = policy.decide(DialogState(), understood("delivery_question"), "e1")
    bye = policy.decide(asked.state, understood("goodbye"), "e2")
    assert names(bye) == ["utter_goodbye"]
    assert (bye.state.requested_slot, bye.state.pending_intent) == (None, None)


def test_params_hold_slots_and_this_turns_entities(policy):
    state = DialogState(slots={"order_id": "11111", "unset": None})
    out = policy.decide(state, understood("order_status", order_id="22222", colour="red"), "e1")
    assert params(out.actions[0]) == {"order_id": "22222", "colour": "red"}
    assert out.state.slots["order_id"] == "22222"


def test_state_round_trips_through_json_and_keeps_unknown_keys(policy):
    out = policy.decide(DialogState(), understood("order_status", order_id="12345"), "e1")
    data = {**out.state.to_dict(), "future_key": {"a": 1}}
    back = DialogState.from_dict(data)
    assert back.to_dict() == data
    assert back.applied_for("e1") is not None
    assert [a.name for a in back.applied_for("e1").actions] == ["utter_order_status"]


def test_malformed_state_falls_back_to_defaults():
    state = DialogState.from_dict({"slots": "oops", "turns": "x", "applied": [1, {"event_id": 3}]})
    assert (state.slots, state.turns, state.applied) == ({}, 0, ())


def test_applied_keeps_only_the_last_decisions(policy):
    state = DialogState()
    for i in range(APPLIED_LIMIT + 4):
        state = policy.decide(state, understood("greet"), f"e{i}").state
    assert len(state.applied) == APPLIED_LIMIT
    assert state.applied_for("e0") is None
    assert state.applied_for(f"e{APPLIED_LIMIT + 3}") is not None


def test_a_required_slot_without_an_ask_response_is_a_configuration_error():
    flows = FlowsFile(
        slots={"email": SlotSpec()}, rules=[RuleSpec(intent="x", actions=["utter_x"], requires=["email"])]
    )
    with pytest.raises(ConfigurationError, match="utter_ask_email"):
        RulePolicy(flows, ["utter_x", "utter_fallback"])
