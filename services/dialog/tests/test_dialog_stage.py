"""The dialog stage: understood turn in, decided turn out, idempotent on the cause's event id."""

from __future__ import annotations

import pytest
from dialog_testkit import parse

from parley.core.bus.memory import InMemoryBus
from parley.core.events import Topic, derive_event, new_event
from parley.dialog.app import build_dialog
from parley.dialog.domain import DialogState
from parley.dialog.settings import DialogSettings
from parley.nlu.v1 import nlu_pb2
from parley.turn.v1 import turn_event_pb2 as pb


def understood_event(understanding: nlu_pb2.ParseResult, conversation_id: str = "c1") -> pb.TurnEvent:
    user = new_event(
        conversation_id=conversation_id, tenant_id="t", user_id="u", user_message=pb.UserMessage(text="hi")
    )
    return derive_event(
        user, "nlu", understood=pb.UnderstoodTurn(text="hi", understanding=understanding, language="en")
    )


@pytest.fixture
def service(project, store, tools):
    return build_dialog(DialogSettings(), store, project, tools=tools)


async def test_an_understood_turn_becomes_a_decided_turn(service, store):
    (sub,) = service.subscriptions
    assert (sub.name, sub.topics) == ("dialog", (Topic.UNDERSTOOD,))
    cause = understood_event(parse("order_status", order_id="12345"))
    (out,) = await sub.handler(cause)
    assert out.topic == Topic.DECIDED
    assert out.event.event_id == derive_event(cause, "dialog").event_id
    assert out.event.causation_id == cause.event_id
    decided = out.event.decided
    assert [a.name for a in decided.decision.actions] == ["get_order", "utter_order_status"]
    assert (decided.decision.state_version, decided.decision.reason) == (1, "flow")
    assert decided.understanding == cause.understood.understanding
    assert decided.language == "en"
    # The event's time is the turn's clock.
    applied = DialogState.from_dict(store.docs["c1"][1]).applied_for(cause.event_id)
    assert applied.at == pytest.approx(cause.occurred_at.ToMicroseconds() / 1e6)

    (again,) = await sub.handler(cause)  # redelivery
    assert again.event.event_id == out.event.event_id
    assert again.event.decided.decision == decided.decision
    assert len(store.writes) == 1


async def test_other_payloads_are_dead_lettered(service):
    bus = InMemoryBus(max_attempts=1)
    for sub in service.subscriptions:
        bus.subscribe(sub)
    await bus.start()
    try:
        wrong = new_event(
            conversation_id="c", tenant_id="t", user_id="u", user_message=pb.UserMessage(text="x")
        )
        await bus.publish(Topic.UNDERSTOOD, wrong)
        await bus.publish(Topic.UNDERSTOOD, understood_event(parse("greet")))
        await bus.drain()
    finally:
        await bus.stop()
    assert len(bus.dead_letters) == 1
    assert "understood" in bus.dead_letters[0].error
    decided = [e for topic, e in bus.published if topic == Topic.DECIDED]
    assert [[a.name for a in e.decided.decision.actions] for e in decided] == [["utter_greet"]]


async def test_two_turns_back_to_back_decide_in_order_on_each_others_state(service):
    bus = InMemoryBus()
    for sub in service.subscriptions:
        bus.subscribe(sub)
    await bus.start()
    try:
        await bus.publish(Topic.UNDERSTOOD, understood_event(parse("order_status"), conversation_id="c9"))
        await bus.publish(
            Topic.UNDERSTOOD, understood_event(parse("inform", order_id="12345"), conversation_id="c9")
        )
        await bus.drain()
    finally:
        await bus.stop()
    decided = [e.decided.decision for topic, e in bus.published if topic == Topic.DECIDED]
    assert [[a.name for a in d.actions] for d in decided] == [
        ["utter_ask_order_id"],
        ["get_order", "utter_order_status"],
    ]
    assert [d.state_version for d in decided] == [1, 2]
