"""Read-decide-write on versioned state: conflicts re-decide on fresh state, replays write nothing."""

from __future__ import annotations

import pytest
from google.protobuf.json_format import MessageToDict

from parley.core.errors import ConflictError, InvalidInputError
from parley.dialog.domain import DialogManager, DialogState, RulePolicy
from parley.nlu.v1 import nlu_pb2

CONV = "conv-1"


def understood(intent: str, **entities: str) -> nlu_pb2.ParseResult:
    return nlu_pb2.ParseResult(
        intent=nlu_pb2.Intent(name=intent, confidence=0.9),
        entities=[nlu_pb2.Entity(type=k, value=v) for k, v in entities.items()],
    )


@pytest.fixture
def manager(project, store) -> DialogManager:
    return DialogManager(RulePolicy.from_project(project), store, max_attempts=5, backoff_s=0.001)


async def test_a_turn_is_written_once_with_its_decision(manager, store):
    decision = await manager.decide(CONV, "e1", understood("order_help"))
    assert [a.name for a in decision.actions] == ["utter_ask_order_id"]
    assert decision.state_version == 1
    assert len(store.writes) == 1
    stored = DialogState.from_dict(store.docs[CONV][1])
    assert stored.requested_slot == "order_id"
    assert stored.applied_for("e1") is not None


async def test_a_lost_compare_and_set_re_decides_on_the_fresh_state(manager, store, project):
    await manager.decide(CONV, "e1", understood("delivery_question"))  # asks for the order id

    def concurrent_turn(s, conversation_id):
        # Another replica decided turn "e0" in between and filled the order id.
        data = dict(s.docs[conversation_id][1])
        data["slots"] = {"order_id": "12345"}
        data["requested_slot"] = None
        data["pending_intent"] = None
        s.put(conversation_id, data)

    store.before_update = concurrent_turn
    writes_before = len(store.writes)
    decision = await manager.decide(CONV, "e2", understood("delivery_question"))

    assert store.conflicts == 1
    # Decided on the fresh state: the order id written by the other turn is used, not asked again.
    assert [a.name for a in decision.actions] == ["utter_delivery_estimate"]
    assert MessageToDict(decision.actions[0].params) == {"order_id": "12345"}
    assert len(store.writes) == writes_before + 1
    assert decision.state_version == store.docs[CONV][0] == 3
    assert DialogState.from_dict(store.docs[CONV][1]).applied_for("e2") is not None


async def test_replaying_a_turn_returns_the_same_decision_and_writes_nothing(manager, store):
    first = await manager.decide(CONV, "e1", understood("order_status", order_id="12345"))
    writes = len(store.writes)
    again = await manager.decide(CONV, "e1", understood("order_status", order_id="12345"))
    assert again == first
    assert len(store.writes) == writes
    # Even when the replayed understanding differs (a re-parse), the first decision stands.
    third = await manager.decide(CONV, "e1", understood("goodbye"))
    assert list(third.actions) == list(first.actions)
    assert len(store.writes) == writes


async def test_a_conversation_that_keeps_changing_raises_a_retryable_conflict(project, store):
    class AlwaysMoving:
        async def get_state(self, conversation_id):
            return await store.get_state(conversation_id)

        async def update_state(self, conversation_id, expected_version, data):
            store.put(conversation_id, {})
            return await store.update_state(conversation_id, expected_version, data)

    manager = DialogManager(RulePolicy.from_project(project), AlwaysMoving(), max_attempts=3, backoff_s=0.001)
    with pytest.raises(ConflictError) as info:
        await manager.decide(CONV, "e1", understood("greet"))
    assert info.value.retryable
    assert store.conflicts == 3
    assert store.writes == []


async def test_missing_keys_are_rejected(manager):
    with pytest.raises(InvalidInputError):
        await manager.decide("", "e1", understood("greet"))
    with pytest.raises(InvalidInputError):
        await manager.decide(CONV, "", understood("greet"))
