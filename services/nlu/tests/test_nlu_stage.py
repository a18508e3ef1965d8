"""The turn stage: contextualized in, understood out, same id for the same input."""

import pytest

from parley.common.v1 import common_pb2
from parley.context.v1 import context_pb2
from parley.core.bus.memory import InMemoryBus
from parley.core.errors import PoisonEventError
from parley.core.events import Topic, new_event
from parley.nlu.adapters.stage import NluStage
from parley.turn.v1 import turn_event_pb2 as pb


def _contextualized(text: str = "My order number is 12345", conversation_id: str = "c-1") -> pb.TurnEvent:
    context = context_pb2.ContextSnapshot(
        recent_messages=[
            common_pb2.ChatMessage(
                conversation_id=conversation_id, role=common_pb2.ROLE_BOT, text="Your number?"
            )
        ],
        state=context_pb2.DialogState(conversation_id=conversation_id, version=3),
    )
    return new_event(
        conversation_id=conversation_id,
        tenant_id="t-1",
        user_id="u-1",
        contextualized=pb.ContextualizedTurn(text=text, context=context, language="en"),
    )


async def test_contextualized_turn_becomes_understood(parser):
    stage = NluStage(parser)
    cause = _contextualized()
    [out] = await stage.handle(cause)
    assert out.topic == Topic.UNDERSTOOD
    event = out.event
    assert event.WhichOneof("payload") == "understood"
    assert (event.conversation_id, event.turn_id, event.tenant_id, event.user_id) == (
        cause.conversation_id,
        cause.turn_id,
        cause.tenant_id,
        cause.user_id,
    )
    assert event.causation_id == cause.event_id
    understood = event.understood
    assert understood.text == "My order number is 12345"
    assert understood.language == "en"
    assert understood.context == cause.contextualized.context
    assert understood.understanding.intent.name == "inform_order_id"
    assert understood.understanding.entities[0].value == "12345"


async def test_same_input_gives_the_same_event_id(parser):
    stage = NluStage(parser)
    cause = _contextualized()
    [first] = await stage.handle(cause)
    [second] = await stage.handle(cause)
    assert first.event.event_id == second.event.event_id
    assert first.event.understood == second.event.understood
    [other] = await stage.handle(_contextualized())
    assert other.event.event_id != first.event.event_id


async def test_other_payloads_are_poison(parser):
    stage = NluStage(parser)
    message = new_event(
        conversation_id="c", tenant_id="t", user_id="u", user_message=pb.UserMessage(text="hi")
    )
    with pytest.raises(PoisonEventError, match="contextualized"):
        await stage.handle(message)
    with pytest.raises(PoisonEventError, match="empty"):
        await stage.handle(_contextualized(text=""))


async def test_stage_on_the_in_memory_bus(parser):
    bus = InMemoryBus(partitions=2, max_attempts=1)
    subscription = NluStage(parser).subscription()
    assert (subscription.name, subscription.topics) == ("nlu", (Topic.CONTEXTUALIZED,))
    bus.subscribe(subscription)
    await bus.start()
    try:
        good = _contextualized("When will it arrive?", conversation_id="c-good")
        await bus.publish(Topic.CONTEXTUALIZED, good)
        await bus.publish(Topic.CONTEXTUALIZED, _contextualized("", conversation_id="c-bad"))
        await bus.drain()
    finally:
        await bus.stop()
    understood = [e for topic, e in bus.published if topic == Topic.UNDERSTOOD]
    assert [e.understood.understanding.intent.name for e in understood] == ["delivery_question"]
    assert understood[0].causation_id == good.event_id
    assert [d.key for d in bus.dead_letters] == ["c-bad"]


async def test_referenced_entities_join_the_result_and_dates_use_the_users_clock(parser):
    from datetime import UTC, datetime  # noqa: PLC0415

    stage = NluStage(parser)
    cause = _contextualized("Will it arrive tomorrow?")
    turn = cause.contextualized
    turn.references.append(
        context_pb2.Reference(
            kind="pronoun",
            text="it",
            start=5,
            end=7,
            entity_type="order_id",
            entity_value="12345",
            confidence=0.9,
        )
    )
    turn.reference_time.FromDatetime(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    turn.timezone = "Pacific/Auckland"  # already Thursday 26 November there
    [out] = await stage.handle(cause)
    entities = {e.type: e for e in out.event.understood.understanding.entities}
    assert (entities["order_id"].value, entities["order_id"].extractor) == ("12345", "context")
    assert (entities["order_id"].start, entities["order_id"].end) == (5, 7)
    dates = [
        e
        for e in out.event.understood.understanding.entities
        if "kind" in e.resolved and e.resolved["kind"] == "date"
    ]
    assert [d.value for d in dates] == ["2026-11-27"]


async def test_an_entity_the_text_names_wins_over_a_reference_and_a_bad_timezone_reads_as_utc(parser):
    stage = NluStage(parser)
    cause = _contextualized("My order number is 12345")
    cause.contextualized.references.append(
        context_pb2.Reference(kind="pronoun", text="it", entity_type="order_id", entity_value="99999")
    )
    cause.contextualized.timezone = "Not/AZone"
    [out] = await stage.handle(cause)
    values = [e.value for e in out.event.understood.understanding.entities if e.type == "order_id"]
    assert values == ["12345"]
