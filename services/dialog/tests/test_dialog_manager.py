"""Read-decide-write on versioned state: a lost compare-and-set is re-decided on the fresh state (never
lost), replays write nothing, and a retried turn does not repeat its tool calls."""

from __future__ import annotations

import asyncio

import pytest
from dialog_testkit import FakeStateStore, flows_file, parse
from google.protobuf.json_format import MessageToDict

from parley.core.errors import ConflictError, InvalidInputError
from parley.dialog.domain import DialogManager, DialogState, Engine

CONV = "conv-1"


@pytest.fixture
def manager(store, tools) -> DialogManager:
    return DialogManager(
        Engine(flows_file(), tools), store, max_attempts=5, backoff_s=0.001, clock=lambda: 100.0
    )


def stored(store, conversation_id=CONV) -> DialogState:
    return DialogState.from_dict(store.docs[conversation_id][1])


async def test_a_turn_is_written_once_with_its_decision(manager, store):
    decision = await manager.decide(CONV, "e1", parse("book_flight"))
    assert [(a.name, a.kind) for a in decision.actions] == [("utter_ask_origin", "ask")]
    assert (decision.reason, decision.active_flow, decision.step) == ("flow", "book_flight", "collect:origin")
    assert MessageToDict(decision.slots) == {"city": "Berlin"}
    assert (decision.state_version, decision.ended, decision.handoff) == (1, False, False)
    assert len(store.writes) == 1
    state = stored(store)
    assert state.pending.kind == "collect" and state.pending.slot == "origin"
    assert state.applied_for("e1").at == 100.0


async def test_a_conflict_is_retried_on_the_fresh_state_and_not_lost(manager, store):
    await manager.decide(CONV, "e1", parse("order_status"))  # asks for the order id

    def concurrent_turn(s, conversation_id):
        # Another replica decided a turn in between: the order id is known now.
        data = dict(s.docs[conversation_id][1])
        data["slots"] = {**data["slots"], "order_id": "12345"}
        s.put(conversation_id, data)

    store.before_update = concurrent_turn
    decision = await manager.decide(CONV, "e2", parse("greet"))

    assert store.conflicts == 1
    # Decided again on the fresh state: the greeting and the flow's next step use the other turn's order id.
    assert [a.name for a in decision.actions] == ["utter_greet", "get_order", "utter_order_status"]
    assert decision.state_version == store.docs[CONV][0] == 3
    state = stored(store)
    assert state.applied_for("e2") is not None and state.applied_for("e1") is not None


async def test_concurrent_turns_of_one_conversation_are_both_applied(tools):
    class Interleaving(FakeStateStore):
        """Yields after each read, so both turns read the same version before either writes."""

        async def get_state(self, conversation_id):
            state = await super().get_state(conversation_id)
            await asyncio.sleep(0)
            return state

    store = Interleaving()
    manager = DialogManager(Engine(flows_file(), tools), store, backoff_s=0.001)
    first, second = await asyncio.gather(
        manager.decide(CONV, "a", parse("order_status", order_id="12345")),
        manager.decide(CONV, "b", parse("weather")),
    )
    assert store.conflicts >= 1
    assert sorted([first.state_version, second.state_version]) == [1, 2]
    state = stored(store)
    assert state.turns == 2
    assert {e.event_id for e in state.applied} == {"a", "b"}
    assert {h.flow for h in state.history} == {"order_status", "weather"}


async def test_a_retried_turn_does_not_repeat_its_tool_calls(manager, store, tools):
    await manager.decide(CONV, "e1", parse("order.cancel", order_id="12345"))  # asks to confirm

    def unrelated_write(s, conversation_id):
        s.put(conversation_id, {**s.docs[conversation_id][1], "other": "writer"})

    store.before_update = unrelated_write
    decision = await manager.decide(CONV, "e2", parse("affirm"))
    assert store.conflicts == 1
    assert [a.name for a in decision.actions] == ["cancel_order", "utter_order_cancelled"]
    assert tools.calls == [("cancel_order", {"order_id": "12345"})]
    assert stored(store).extra == {"other": "writer"}


async def test_replaying_a_turn_returns_the_same_decision_and_writes_nothing(manager, store):
    first = await manager.decide(CONV, "e1", parse("order_status", order_id="12345"))
    writes = len(store.writes)
    again = await manager.decide(CONV, "e1", parse("order_status", order_id="12345"))
    assert again == first
    # Even when the replayed understanding differs (a re-parse), the first decision stands.
    third = await manager.decide(CONV, "e1", parse("goodbye"))
    assert (list(third.actions), third.reason) == (list(first.actions), first.reason)
    assert len(store.writes) == writes


async def test_a_conversation_that_keeps_changing_raises_a_retryable_conflict(store, tools):
    class AlwaysMoving:
        async def get_state(self, conversation_id):
            return await store.get_state(conversation_id)

        async def update_state(self, conversation_id, expected_version, data):
            store.put(conversation_id, {})
            return await store.update_state(conversation_id, expected_version, data)

    manager = DialogManager(Engine(flows_file(), tools), AlwaysMoving(), max_attempts=3, backoff_s=0.001)
    with pytest.raises(ConflictError) as info:
        await manager.decide(CONV, "e1", parse("greet"))
    assert info.value.retryable
    assert store.conflicts == 3
    assert store.writes == []


async def test_missing_keys_are_rejected(manager):
    with pytest.raises(InvalidInputError):
        await manager.decide("", "e1", parse("greet"))
    with pytest.raises(InvalidInputError):
        await manager.decide(CONV, "", parse("greet"))


def test_max_attempts_must_be_positive(store, tools):
    with pytest.raises(ValueError, match="max_attempts"):
        DialogManager(Engine(flows_file(), tools), store, max_attempts=0)
