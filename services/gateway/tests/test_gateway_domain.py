"""The reply router and the chat service, with fakes of the gateway's own ports only."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from parley.core.errors import InvalidInputError, NotFoundError, UnavailableError
from parley.core.events import Topic, derive_event, new_event
from parley.gateway.domain import ChatService, ReplyRouter, check_conversation_id, principal_of
from parley.generator.v1 import generator_pb2
from parley.turn.v1 import turn_event_pb2 as pb

from .conftest import FakeConversations


def _replied(conversation_id: str, turn_id: str, text: str) -> pb.TurnEvent:
    cause = new_event(
        conversation_id=conversation_id,
        tenant_id="t",
        user_id="u",
        turn_id=turn_id,
        user_message=pb.UserMessage(text="hi"),
    )
    return derive_event(cause, "generator", replied=pb.RepliedTurn(reply=generator_pb2.Reply(text=text)))


class InstantPublisher:
    """Publishes by answering at once, inside ``publish``: the reply beats the publish call's return."""

    def __init__(self, router: ReplyRouter, answer: bool = True) -> None:
        self.router = router
        self.answer = answer
        self.published: list[tuple[str, pb.TurnEvent]] = []

    async def publish(self, topic: str, event: pb.TurnEvent) -> None:
        self.published.append((topic, event))
        if self.answer:
            assert self.router.resolve(_replied(event.conversation_id, event.turn_id, "instant"))


class FailingPublisher:
    async def publish(self, topic: str, event: pb.TurnEvent) -> None:
        raise UnavailableError("broker down")


# ------------------------------------------------------------------------------------------- router


async def test_router_resolves_the_waiting_turn_and_ignores_duplicates() -> None:
    router = ReplyRouter()
    with router.expect("turn-1", "conv-1") as future:
        event = _replied("conv-1", "turn-1", "hello")
        assert router.resolve(event) is True
        assert router.resolve(event) is False  # the same reply delivered twice
        assert (await future).text == "hello"
    assert len(router) == 0


async def test_router_ignores_replies_nobody_here_waits_for() -> None:
    router = ReplyRouter()
    with router.expect("turn-1", "conv-1") as future:
        assert router.resolve(_replied("conv-1", "other-turn", "x")) is False
        assert router.resolve(_replied("conv-2", "turn-1", "wrong conversation")) is False
        not_a_reply = new_event(
            conversation_id="conv-1",
            tenant_id="t",
            user_id="u",
            turn_id="turn-1",
            user_message=pb.UserMessage(),
        )
        assert router.resolve(not_a_reply) is False
        assert not future.done()


async def test_router_forgets_a_waiter_that_timed_out() -> None:
    router = ReplyRouter()
    with router.expect("turn-1", "conv-1") as future, pytest.raises(TimeoutError):
        await asyncio.wait_for(future, 0.01)
    assert len(router) == 0
    assert router.resolve(_replied("conv-1", "turn-1", "late")) is False


async def test_router_forgets_a_waiter_whose_request_was_cancelled() -> None:
    router = ReplyRouter()
    entered = asyncio.Event()

    async def wait() -> None:
        with router.expect("turn-1", "conv-1") as future:
            entered.set()
            await future

    task = asyncio.create_task(wait())
    await entered.wait()
    assert "turn-1" in router
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(router) == 0


async def test_router_refuses_more_waiters_than_its_bound() -> None:
    router = ReplyRouter(max_pending=2)
    with router.expect("a", "c"), router.expect("b", "c"):
        with pytest.raises(UnavailableError, match="try again"), router.expect("c", "c"):
            pass
        assert len(router) == 2
    with router.expect("c", "c"):
        assert len(router) == 1


# ------------------------------------------------------------------------------------- chat service


def _chat(
    conversations: FakeConversations, publisher: object, router: ReplyRouter, **kw: object
) -> ChatService:
    return ChatService(conversations, publisher, router, instance_id="gw-1", max_text_chars=20, **kw)


async def test_send_registers_the_waiter_before_publishing() -> None:
    router = ReplyRouter()
    publisher = InstantPublisher(router)
    chat = _chat(FakeConversations(), publisher, router, reply_timeout_s=1.0)

    result = await chat.send("acme", "ann", None, "  hello  ", "en")

    assert result.reply is not None and result.reply.text == "instant"
    [(topic, event)] = publisher.published
    assert topic == Topic.USER_MESSAGE
    assert event.user_message.text == "hello"
    assert event.user_message.language == "en"
    assert (event.tenant_id, event.user_id, event.origin) == ("acme", "ann", "gw-1")
    assert (event.conversation_id, event.turn_id) == (result.conversation_id, result.turn_id)
    assert len(router) == 0


async def test_send_starts_a_conversation_for_the_user_when_none_is_given() -> None:
    conversations = FakeConversations()
    router = ReplyRouter()
    chat = _chat(conversations, InstantPublisher(router), router)

    result = await chat.send("acme", "ann", None, "hi")

    owner = conversations.conversations[result.conversation_id].principal
    assert (owner.tenant_id, owner.user_id) == ("acme", "ann")


async def test_send_posts_into_an_existing_conversation_of_the_user() -> None:
    conversations = FakeConversations()
    existing = await conversations.create_conversation("acme", "ann")
    router = ReplyRouter()
    chat = _chat(conversations, InstantPublisher(router), router)

    result = await chat.send("acme", "ann", existing.conversation_id.upper(), "hi")

    assert result.conversation_id == existing.conversation_id  # canonical form
    assert len(conversations.conversations) == 1


async def test_send_returns_no_reply_when_none_comes_in_time() -> None:
    router = ReplyRouter()
    publisher = InstantPublisher(router, answer=False)
    chat = _chat(FakeConversations(), publisher, router, reply_timeout_s=0.05)

    result = await chat.send("acme", "ann", None, "hi")

    assert result.reply is None
    assert result.turn_id == publisher.published[0][1].turn_id
    assert len(router) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "text must not be empty"),
        ("   \n\t", "text must not be empty"),
        ("x" * 21, "at most 20 characters"),
    ],
)
async def test_send_rejects_bad_text_without_publishing(text: str, message: str) -> None:
    router = ReplyRouter()
    publisher = InstantPublisher(router)
    chat = _chat(FakeConversations(), publisher, router)

    with pytest.raises(InvalidInputError, match=message):
        await chat.send("acme", "ann", None, text)
    assert publisher.published == []


async def test_send_rejects_a_malformed_language() -> None:
    router = ReplyRouter()
    chat = _chat(FakeConversations(), InstantPublisher(router), router)
    with pytest.raises(InvalidInputError, match="BCP-47"):
        await chat.send("acme", "ann", None, "hi", "english please")


async def test_send_to_an_unknown_or_foreign_conversation_is_not_found() -> None:
    conversations = FakeConversations()
    theirs = await conversations.create_conversation("acme", "bob")
    router = ReplyRouter()
    publisher = InstantPublisher(router)
    chat = _chat(conversations, publisher, router)

    for conversation_id in (theirs.conversation_id, str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(NotFoundError):
            await chat.send("acme", "ann", conversation_id, "hi")
    assert publisher.published == []


async def test_a_failed_publish_leaves_no_waiter_behind() -> None:
    router = ReplyRouter()
    chat = _chat(FakeConversations(), FailingPublisher(), router)
    with pytest.raises(UnavailableError, match="broker down"):
        await chat.send("acme", "ann", None, "hi")
    assert len(router) == 0


def test_identity_rules() -> None:
    assert principal_of(None, None).tenant_id == "default"
    assert principal_of(None, None).user_id == "anonymous"
    assert principal_of("acme.eu", "ann@example.com").user_id == "ann@example.com"
    for bad in ("", "a b", "x" * 65, "ann/../bob", "é"):
        with pytest.raises(InvalidInputError, match="user id must be"):
            principal_of("t", bad)
    with pytest.raises(InvalidInputError, match="tenant id must be"):
        principal_of("bad tenant", "u")
    with pytest.raises(NotFoundError, match="not found"):
        check_conversation_id("nope")
