"""The "context" stage against a real database: store, log, contextualize; duplicates change nothing."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from parley.common.v1 import common_pb2
from parley.context.adapters.postgres import PostgresStore
from parley.context.adapters.stage import ContextStage
from parley.context.app import ContextService
from parley.core.bus.memory import InMemoryBus
from parley.core.context_client import from_struct
from parley.core.errors import PoisonEventError
from parley.core.events import Topic, derive_event, new_event
from parley.generator.v1 import generator_pb2
from parley.turn.v1 import turn_event_pb2 as pb

pytestmark = pytest.mark.integration

WINDOW = 3  # the conftest builds the service with window=3


@pytest.fixture
def stage(context_service: ContextService) -> ContextStage:
    return ContextStage(context_service.store, WINDOW)


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


async def test_subscription_is_the_context_group_on_user_messages_and_replies(
    context_service: ContextService,
) -> None:
    [subscription] = context_service.subscriptions
    assert subscription.name == "context"
    assert set(subscription.topics) == {Topic.USER_MESSAGE, Topic.REPLIED}
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
