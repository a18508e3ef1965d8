"""Replaying a conversation's understood turns rebuilds the state the dialog stored, without calling tools."""

from __future__ import annotations

import itertools

from dialog_testkit import FakeTools, flows_file, parse

from parley.core.events import Topic, derive_event, new_event
from parley.dialog.adapters.stage import DialogStage
from parley.dialog.domain import (
    DialogManager,
    DialogState,
    Engine,
    RecordedTools,
    replay,
    turns_from_applied,
    turns_from_events,
)
from parley.dialog.domain.state import ToolCall
from parley.turn.v1 import turn_event_pb2 as pb

#: A conversation through most patterns: tools, a digression, a resume, a correction, a queued intent.
TURNS = [
    parse("greet", text="hi"),
    parse("order_status", text="where is 12345", order_id="12345"),
    parse("book_flight", text="book a flight"),
    parse("weather", text="weather in Oslo?", city="Oslo"),
    parse("affirm", text="yes"),
    parse("", text="Rome", city="Rome"),
    parse("", text="Oslo", city="Oslo"),
    parse("", text="on the 4th", date="2026-12-04"),
    parse("", text="2", number="2"),
    parse("correct", text="no, make it the 5th", date="2026-12-05"),
    parse("affirm", text="yes", intents=["weather"]),
    parse("", text="I want that thing we discussed", out_of_scope=True),
]


def stored_state(store, conversation_id="c1") -> DialogState:
    return DialogState.from_dict(store.docs[conversation_id][1])


async def test_replaying_the_applied_log_gives_the_stored_state(store):
    tools = FakeTools()
    clock = itertools.count(1_000, 7)
    manager = DialogManager(Engine(flows_file(), tools), store, clock=lambda: float(next(clock)))
    log = []
    for i, understanding in enumerate(TURNS):
        await manager.decide("c1", f"t{i}", understanding)
        log.append((f"t{i}", understanding))
    stored = stored_state(store)
    assert tools.weather_calls == 2  # the weather answer differs per call: a replay must not call again

    fresh_tools = FakeTools()
    replayed = await replay(Engine(flows_file(), fresh_tools), turns_from_applied(stored, log))

    assert fresh_tools.calls == []
    assert replayed.to_dict() == stored.to_dict()
    assert [h.flow for h in stored.history] == ["order_status", "weather", "book_flight", "weather"]


async def test_replaying_the_turn_events_gives_the_stored_state(store):
    stage = DialogStage(DialogManager(Engine(flows_file(), FakeTools()), store))
    events = []
    user = new_event(conversation_id="c1", tenant_id="t", user_id="u", user_message=pb.UserMessage(text="x"))
    for understanding in TURNS:
        understood = derive_event(
            user, "nlu", understood=pb.UnderstoodTurn(text="x", understanding=understanding)
        )
        understood.event_id = f"u{len(events)}"  # distinct turns of one conversation
        (out,) = await stage.handle(understood)
        assert out.topic == Topic.DECIDED
        events += [understood, out.event]

    replayed = await replay(Engine(flows_file(), FakeTools()), turns_from_events(events))
    assert replayed.to_dict() == stored_state(store).to_dict()


async def test_recorded_tools_answer_in_order_and_refuse_unrecorded_calls():
    tools = RecordedTools([ToolCall("a", {}, True, 1), ToolCall("b", {}, False, None, "boom")])
    assert (await tools.call("a", {})).data == 1
    assert (await tools.call("a", {})).ok is False  # "b" was next
    assert (await tools.call("b", {})).error == "boom"
    assert "no recorded result" in (await tools.call("c", {})).error
