"""The generator stage: decided turn in, replied turn out, with a deterministic event id."""

from __future__ import annotations

import pytest

from parley.core.context_client import to_struct
from parley.core.errors import PoisonEventError
from parley.core.events import Topic, derive_event, new_event
from parley.dialog.v1 import dialog_pb2
from parley.generator.app import build_generator
from parley.generator.settings import GeneratorSettings
from parley.turn.v1 import turn_event_pb2 as pb


@pytest.fixture(scope="module")
def subscription(project):
    (sub,) = build_generator(GeneratorSettings(), project).subscriptions
    return sub


def decided_event() -> pb.TurnEvent:
    user = new_event(conversation_id="c1", tenant_id="t", user_id="u", user_message=pb.UserMessage(text="x"))
    decision = dialog_pb2.Decision(
        actions=[
            dialog_pb2.Action(name="utter_order_was_cancelled", params=to_struct({"order_id": "12345"}))
        ],
        state_version=2,
    )
    return derive_event(user, "dialog", decided=pb.DecidedTurn(decision=decision, language="en"))


async def test_a_decided_turn_becomes_a_replied_turn(subscription):
    assert (subscription.name, subscription.topics) == ("generator", (Topic.DECIDED,))
    cause = decided_event()
    (out,) = await subscription.handler(cause)
    assert out.topic == Topic.REPLIED
    assert out.event.event_id == derive_event(cause, "generator").event_id
    assert (out.event.causation_id, out.event.turn_id) == (cause.event_id, cause.turn_id)
    assert out.event.replied.reply.text == "Order 12345 was cancelled, so it won't be delivered."
    (again,) = await subscription.handler(cause)
    assert again.event.event_id == out.event.event_id
    assert again.event.replied == out.event.replied


async def test_other_payloads_are_poison(subscription):
    with pytest.raises(PoisonEventError):
        await subscription.handler(
            new_event(conversation_id="c", tenant_id="t", user_id="u", user_message=pb.UserMessage(text="x"))
        )
