"""Dialog state v2: JSON round trip, lenient reading, unknown keys carried, version 1 documents read."""

from __future__ import annotations

from dialog_testkit import parse

from parley.core.context_client import from_struct, to_struct
from parley.dialog.domain import APPLIED_LIMIT, DialogState, Turn


async def test_a_state_in_the_middle_of_everything_round_trips_through_json(engine, conv):
    await conv.say(parse("order_status", order_id="12345"))
    await conv.say(parse("book_flight", intents=["meal_preference"], city=["Rome", "Oslo"]))
    await conv.say(parse("weather"))  # a digression: book_flight paused, resume offered
    state = conv.state
    assert state.pending is not None and state.pending.kind == "resume"
    assert state.stack[0].paused and state.queue and state.history and state.applied[-1].tools
    data = {**state.to_dict(), "future_key": {"a": [1, 2]}}
    # Through a protobuf Struct, as the context service stores it (numbers come back as floats).
    stored = from_struct(to_struct(data))
    back = DialogState.from_dict(stored)
    assert back.to_dict() == data
    assert back.extra == {"future_key": {"a": [1, 2]}}
    # The state read back decides exactly as the original does.
    turn = Turn("next", parse("affirm"), conv.now + 1)
    a, b = await engine.decide(state, turn), await engine.decide(back, turn)
    assert a.actions == b.actions
    assert {**a.state.to_dict(), "future_key": {"a": [1, 2]}} == b.state.to_dict()


def test_malformed_fields_fall_back_to_defaults():
    state = DialogState.from_dict(
        {
            "slots": "oops",
            "turns": "x",
            "failures": -3,
            "stack": [{"flow": 3}, "junk", {"flow": "f", "step": "two", "attempts": {"0": "x"}}],
            "pending": {"kind": "nonsense"},
            "queue": [{"intent": ""}, {"intent": "weather", "confidence": "high"}],
            "history": [{"status": "completed"}],
            "applied": [1, {"event_id": 3}, {"event_id": "e1", "actions": "no"}],
            "ended": "yes",
            "last_turn_at": "noon",
        }
    )
    assert (state.slots, state.turns, state.failures, state.ended, state.last_turn_at) == (
        {},
        0,
        0,
        False,
        None,
    )
    assert [(f.flow, f.step, f.attempts) for f in state.stack] == [("f", 0, {"0": 0})]
    assert state.pending is None and state.history == []
    assert [(q.intent, q.confidence) for q in state.queue] == [("weather", 1.0)]
    assert [(a.event_id, a.actions) for a in state.applied] == [("e1", ())]


def test_a_version_1_document_keeps_its_slots_and_log_and_drops_the_rest():
    v1 = {
        "slots": {"order_id": "12345", "gone": None},
        "requested_slot": "order_id",
        "pending_intent": "delivery_question",
        "turns": 4,
        "applied": [{"event_id": "e4", "actions": [{"name": "utter_ask_order_id", "params": {}}]}],
    }
    state = DialogState.from_dict(v1)
    assert (state.slots, state.turns, state.extra) == ({"order_id": "12345"}, 4, {})
    assert state.applied_for("e4").actions[0].name == "utter_ask_order_id"
    assert state.to_dict()["schema"] == 2


async def test_applied_keeps_only_the_last_decisions(engine):
    state = DialogState()
    for i in range(APPLIED_LIMIT + 4):
        state = (await engine.decide(state, Turn(f"e{i}", parse("greet"), float(i)))).state
    assert len(state.applied) == APPLIED_LIMIT
    assert state.applied_for("e0") is None
    assert state.applied_for(f"e{APPLIED_LIMIT + 3}") is not None
    assert state.turns == APPLIED_LIMIT + 4


async def test_a_state_written_for_other_flows_is_cleaned_up(engine):
    state = DialogState.from_dict(
        {
            "stack": [
                {"flow": "retired_flow", "step": 2},
                {"flow": "book_flight", "step": 1, "step_id": None},
            ],
            "pending": {"kind": "collect", "flow": "book_flight", "step": 1, "slot": "destination"},
        }
    )
    r = await engine.decide(state, Turn("e", parse("", text="Paris", city="Paris"), 1.0))
    assert [f.flow for f in r.state.stack] == ["book_flight"]
    assert r.slots["destination"] == "Paris"
