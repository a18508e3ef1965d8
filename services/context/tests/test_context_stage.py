"""The "context" stage against a real database: store, log, contextualize; duplicates change nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from parley.common.v1 import common_pb2
from parley.context.adapters.postgres import PostgresStore
from parley.context.adapters.stage import ContextStage
from parley.context.app import ContextService
from parley.context.domain.models import NewMessage, Role, UserProfile
from parley.core.bus.memory import InMemoryBus
from parley.core.context_client import from_struct
from parley.core.errors import PoisonEventError
from parley.core.events import Topic, derive_event, new_event
from parley.generator.v1 import generator_pb2
from parley.nlu.v1 import nlu_pb2
from parley.turn.v1 import turn_event_pb2 as pb

pytestmark = pytest.mark.integration

WINDOW = 3  # the conftest builds the service with window=3


@pytest.fixture
def stage(context_service: ContextService) -> ContextStage:
    return context_service.stage


def _user_message(cid: str, text: str, tenant: str = "acme", user: str = "alice") -> pb.TurnEvent:
    return new_event(
        conversation_id=cid,
        tenant_id=tenant,
        user_id=user,
        user_message=pb.UserMessage(text=text, language="en"),
    )


def _replied(cause: pb.TurnEvent, text: str) -> pb.TurnEvent:
    return derive_event(cause, "generator", replied=pb.RepliedTurn(reply=generator_pb2.Reply(text=text)))


async def _count(pool: asyncpg.Pool, sql: str, *args: object) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def test_subscription_is_the_context_group_on_user_messages_understood_turns_and_replies(
    context_service: ContextService,
) -> None:
    [subscription] = context_service.subscriptions
    assert subscription.name == "context"
    assert set(subscription.topics) == {Topic.USER_MESSAGE, Topic.UNDERSTOOD, Topic.REPLIED}
    assert not subscription.broadcast


async def test_user_message_is_stored_and_contextualized_with_history_and_state(
    stage: ContextStage, context_service: ContextService, pool: asyncpg.Pool
) -> None:
    store: PostgresStore = context_service.store
    cid = str(uuid.uuid4())
    await store.create_conversation(cid, "acme", "alice")
    first = _user_message(cid, "where is my order")
    await stage.handle(first)
    await stage.handle(_replied(first, "Which order number?"))
    await store.update_state(cid, 0, {"slots": {"topic": "order"}})

    second = _user_message(cid, "A-1234")
    [out] = await stage.handle(second)

    assert out.topic == Topic.CONTEXTUALIZED
    event = out.event
    assert event.WhichOneof("payload") == "contextualized"
    assert event.causation_id == second.event_id
    assert (event.conversation_id, event.turn_id) == (cid, second.turn_id)
    assert (event.tenant_id, event.user_id) == ("acme", "alice")
    turn = event.contextualized
    assert (turn.text, turn.language) == ("A-1234", "en")
    recent = list(turn.context.recent_messages)
    assert [(m.role, m.text) for m in recent] == [
        (common_pb2.ROLE_USER, "where is my order"),
        (common_pb2.ROLE_BOT, "Which order number?"),
        (common_pb2.ROLE_USER, "A-1234"),
    ]
    assert recent[-1].event_id == second.event_id
    assert turn.context.state.version == 1
    assert from_struct(turn.context.state.data) == {"slots": {"topic": "order"}}
    logged = await _count(pool, "SELECT count(*) FROM turn_events WHERE conversation_id = $1", uuid.UUID(cid))
    assert logged == 3

    # The window bounds the history: a fourth message pushes the first one out.
    [later] = await stage.handle(_user_message(cid, "thanks"))
    assert [m.text for m in later.event.contextualized.context.recent_messages] == [
        "Which order number?",
        "A-1234",
        "thanks",
    ]


async def test_duplicate_user_message_appends_once_and_re_emits_the_same_event(
    stage: ContextStage, pool: asyncpg.Pool
) -> None:
    cid = str(uuid.uuid4())
    event = _user_message(cid, "hello")  # no conversation yet: the stage creates it for the event's owner
    [first] = await stage.handle(event)
    await stage.handle(_replied(event, "hi there"))  # history moves on before the redelivery
    [again] = await stage.handle(event)

    assert again.event.event_id == first.event.event_id
    first_history = first.event.contextualized.context.recent_messages
    assert again.event.contextualized.context.recent_messages == first_history
    rows = await _count(pool, "SELECT count(*) FROM messages WHERE event_id = $1", event.event_id)
    logged = await _count(pool, "SELECT count(*) FROM turn_events WHERE event_id = $1", event.event_id)
    assert (rows, logged) == (1, 1)
    owner = await _count(
        pool, "SELECT count(*) FROM conversations WHERE id = $1 AND user_id = 'alice'", uuid.UUID(cid)
    )
    assert owner == 1


async def test_replied_stores_the_bot_message_in_the_same_turn_and_emits_nothing(
    stage: ContextStage, context_service: ContextService, pool: asyncpg.Pool
) -> None:
    cid = str(uuid.uuid4())
    user = _user_message(cid, "hi")
    await stage.handle(user)
    reply = _replied(user, "Hello! How can I help?")
    assert await stage.handle(reply) == []
    assert await stage.handle(reply) == []
    page = await context_service.store.list_messages(cid, 10)
    assert [(m.role.value, m.text, m.turn_id) for m in page.messages] == [
        ("user", "hi", user.turn_id),
        ("bot", "Hello! How can I help?", user.turn_id),
    ]
    assert page.messages[1].event_id == reply.event_id
    logged = await _count(pool, "SELECT type FROM turn_events WHERE event_id = $1", reply.event_id)
    assert logged == "replied"


async def test_events_that_can_never_be_processed_are_poison(stage: ContextStage) -> None:
    cid = str(uuid.uuid4())
    await stage.handle(_user_message(cid, "mine", user="alice"))
    with pytest.raises(PoisonEventError, match="another principal"):
        await stage.handle(_user_message(cid, "not mine", user="mallory"))
    with pytest.raises(PoisonEventError, match="does not handle"):
        await stage.handle(new_event(conversation_id=cid, tenant_id="acme", user_id="alice"))


async def test_stage_runs_on_the_bus_and_dead_letters_a_bad_conversation_id(
    context_service: ContextService,
) -> None:
    bus = InMemoryBus(partitions=2, max_attempts=2, backoff_s=0.01)
    for subscription in context_service.subscriptions:
        bus.subscribe(subscription)
    await bus.start()
    try:
        cid = str(uuid.uuid4())
        event = _user_message(cid, "over the bus")
        await bus.publish(Topic.USER_MESSAGE, event)
        await bus.publish(Topic.USER_MESSAGE, _user_message("not-a-uuid", "bad"))
        await bus.drain()
    finally:
        await bus.stop()
    outputs = [(t, e) for t, e in bus.published if t == Topic.CONTEXTUALIZED]
    assert [e.causation_id for _, e in outputs] == [event.event_id]
    assert [m.text for m in outputs[0][1].contextualized.context.recent_messages] == ["over the bus"]
    [letter] = bus.dead_letters
    assert "conversation_id must be a UUID" in letter.error


def _understood(cause: pb.TurnEvent, *entities: nlu_pb2.Entity) -> pb.TurnEvent:
    understanding = nlu_pb2.ParseResult(entities=list(entities))
    return derive_event(
        cause, "nlu", understood=pb.UnderstoodTurn(text=cause.user_message.text, understanding=understanding)
    )


async def test_entities_of_understood_turns_are_tracked_and_it_resolves_to_the_order_in_focus(
    stage: ContextStage, context_service: ContextService
) -> None:
    cid = str(uuid.uuid4())
    first = _user_message(cid, "My order number is 12345")
    await stage.handle(first)
    order = nlu_pb2.Entity(type="order_id", text="12345", value="12345", start=19, end=24, extractor="regex")
    understood = _understood(first, order)
    assert await stage.handle(understood) == []
    assert await stage.handle(understood) == []  # redelivered: nothing changes
    await stage.handle(_replied(first, "Thanks, I found order 12345."))

    [entity] = await context_service.store.current_entities(cid)
    assert (entity.entity_type, entity.value, entity.mentions) == ("order_id", "12345", 1)

    [out] = await stage.handle(_user_message(cid, "When will it arrive?"))
    turn = out.event.contextualized
    assert turn.text == "When will it arrive?"
    assert turn.resolved_text == "When will order 12345 arrive?"
    [reference] = [r for r in turn.references if r.kind == "pronoun"]
    assert (reference.text, reference.entity_type, reference.entity_value) == ("it", "order_id", "12345")
    assert turn.text[reference.start : reference.end] == "it"
    assert [(e.entity_type, e.value) for e in turn.context.entities] == [("order_id", "12345")]


async def test_relative_dates_resolve_in_the_users_timezone_from_their_profile(
    stage: ContextStage, context_service: ContextService
) -> None:
    cid = str(uuid.uuid4())
    await context_service.store.create_conversation(cid, "acme", "kiri")
    await context_service.store.upsert_profile(UserProfile("acme", "kiri", timezone="Pacific/Auckland"))
    event = _user_message(cid, "Can you deliver it tomorrow?", user="kiri")
    # 12:00 UTC on Wednesday 25 November is already 01:00 on Thursday 26 November in Auckland.
    event.occurred_at.FromDatetime(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    [out] = await stage.handle(event)
    turn = out.event.contextualized
    assert turn.timezone == "Pacific/Auckland"
    assert turn.reference_time.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    [temporal] = [r for r in turn.references if r.kind == "temporal"]
    assert temporal.text == "tomorrow"
    assert temporal.resolved_text == "2026-11-27"
    assert turn.context.profile.timezone == "Pacific/Auckland"


async def test_a_long_conversation_is_summarised_and_a_turn_still_loads_a_bounded_window(
    stage: ContextStage, context_service: ContextService
) -> None:
    store = context_service.store
    settings = context_service.settings
    cid = str(uuid.uuid4())
    await store.create_conversation(cid, "acme", "alice")
    history = [NewMessage(cid, "t0", Role.USER, "My order number is 12345", f"{cid}-0")]
    history += [
        NewMessage(cid, f"t{i}", Role.BOT if i % 2 else Role.USER, f"filler message number {i}", f"{cid}-{i}")
        for i in range(1, 300)
    ]
    await store.append_messages(history)

    [out] = await stage.handle(_user_message(cid, "and what now?"))
    context = out.event.contextualized.context
    assert context.total_messages == 301
    assert len(context.recent_messages) == WINDOW
    assert context.recent_messages[-1].text == "and what now?"
    assert "12345" in context.summary
    summary = await store.get_summary(cid)
    assert summary is not None
    # Everything but the newest max_context_length messages is folded; those stay out of the summary.
    assert summary.message_count == 301 - settings.max_context_length
