"""Test doubles of the gateway's own ports and a gateway wired to a real in-process bus.

``FakeConversations`` stands in for the context service (the ``Conversations`` port); ``FakeAssistant`` is
a subscription on ``user.message`` that answers on ``turn.replied`` the way the generator does, so the
gateway's real reply path (bus -> broadcast subscription -> router) is exercised end to end.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import httpx
import pytest

from parley.common.v1 import common_pb2
from parley.context.v1 import context_pb2 as ctx
from parley.core.bus import InMemoryBus, Outgoing, Subscription
from parley.core.errors import InvalidInputError, NotFoundError
from parley.core.events import Topic, derive_event, now_timestamp
from parley.gateway.app import GatewayService, build_gateway
from parley.gateway.settings import GatewaySettings
from parley.generator.v1 import generator_pb2
from parley.turn.v1 import turn_event_pb2 as pb


class FakeConversations:
    """An in-memory system of record with the context service's ownership and paging rules."""

    def __init__(self) -> None:
        self.conversations: dict[str, ctx.Conversation] = {}
        self.messages: dict[str, list[common_pb2.ChatMessage]] = {}
        self.feedback: list[ctx.Feedback] = []
        self.calls = 0

    async def create_conversation(
        self, tenant_id: str, user_id: str, conversation_id: str = ""
    ) -> ctx.Conversation:
        self.calls += 1
        conversation_id = conversation_id or str(uuid.uuid4())
        conversation = ctx.Conversation(
            conversation_id=conversation_id,
            principal=common_pb2.Principal(tenant_id=tenant_id, user_id=user_id),
            created_at=now_timestamp(),
        )
        self.conversations[conversation_id] = conversation
        self.messages.setdefault(conversation_id, [])
        return conversation

    async def get_conversation(
        self, conversation_id: str, tenant_id: str, user_id: str, page_size: int = 50, page_token: str = ""
    ) -> ctx.GetConversationResponse:
        self.calls += 1
        conversation = self.conversations.get(conversation_id)
        if conversation is None or (conversation.principal.tenant_id, conversation.principal.user_id) != (
            tenant_id,
            user_id,
        ):
            raise NotFoundError(f"conversation {conversation_id} not found")
        if page_token and not page_token.isdigit():
            raise InvalidInputError("page_token is not valid")
        start = int(page_token or 0)
        stored = self.messages[conversation_id]
        page = stored[start : start + page_size]
        more = start + page_size < len(stored)
        return ctx.GetConversationResponse(
            conversation=conversation,
            messages=page,
            next_page_token=str(start + page_size) if more else "",
        )

    async def record_feedback(
        self,
        conversation_id: str,
        tenant_id: str,
        user_id: str,
        *,
        rating: int = 0,
        resolved: bool | None = None,
        comment: str = "",
        turn_id: str = "",
        feedback_id: str = "",
    ) -> ctx.Feedback:
        self.calls += 1
        conversation = self.conversations.get(conversation_id)
        if conversation is None or (conversation.principal.tenant_id, conversation.principal.user_id) != (
            tenant_id,
            user_id,
        ):
            raise NotFoundError(f"conversation {conversation_id} not found")
        feedback = ctx.Feedback(
            feedback_id=feedback_id or str(uuid.uuid4()),
            conversation_id=conversation_id,
            turn_id=turn_id,
            rating=rating,
            comment=comment,
            created_at=now_timestamp(),
        )
        if resolved is not None:
            feedback.resolved = resolved
        self.feedback.append(feedback)
        return feedback

    def add_message(self, conversation_id: str, turn_id: str, role: int, text: str) -> None:
        self.messages[conversation_id].append(
            common_pb2.ChatMessage(
                message_id=str(uuid.uuid4()),
                conversation_id=conversation_id,
                turn_id=turn_id,
                role=role,
                text=text,
                created_at=now_timestamp(),
            )
        )


@dataclass
class FakeAssistant:
    """Answers "echo: <text>" with one quick reply; stores both messages like the context stage would."""

    conversations: FakeConversations
    silent: bool = False
    delay_s: float = 0.0
    #: When silent: store the bot message in the history this long after, as a reply that came too late.
    late_s: float | None = None
    seen: list[pb.TurnEvent] = field(default_factory=list)

    def subscription(self) -> Subscription:
        return Subscription("assistant", (Topic.USER_MESSAGE,), self.handle)

    async def handle(self, event: pb.TurnEvent) -> Sequence[Outgoing]:
        self.seen.append(event)
        text = event.user_message.text
        self.conversations.add_message(event.conversation_id, event.turn_id, common_pb2.ROLE_USER, text)
        if self.silent:
            if self.late_s is not None:
                asyncio.get_running_loop().call_later(
                    self.late_s,
                    self.conversations.add_message,
                    event.conversation_id,
                    event.turn_id,
                    common_pb2.ROLE_BOT,
                    f"late echo: {text}",
                )
            return []
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        reply = generator_pb2.Reply(
            text=f"echo: {text}",
            quick_replies=[generator_pb2.QuickReply(title="Again", payload=text)],
            links=[generator_pb2.Link(title="Help", url="https://example.org/help")],
        )
        self.conversations.add_message(event.conversation_id, event.turn_id, common_pb2.ROLE_BOT, reply.text)
        replied = derive_event(event, "generator", replied=pb.RepliedTurn(reply=reply))
        return [Outgoing(Topic.REPLIED, replied)]


def make_settings(**overrides: object) -> GatewaySettings:
    values: dict[str, object] = {
        "reply_timeout_s": 2.0,
        "max_text_chars": 50,
        "max_body_bytes": 2048,
        "grpc_port": 0,
        "http_port": 0,
        "instance_id": "gateway-test",
    }
    values.update(overrides)
    return GatewaySettings(**values)


@dataclass
class Harness:
    settings: GatewaySettings
    bus: InMemoryBus
    conversations: FakeConversations
    assistant: FakeAssistant
    gateway: GatewayService


@pytest.fixture
def settings() -> GatewaySettings:
    return make_settings()


@pytest.fixture
async def harness(settings: GatewaySettings) -> AsyncIterator[Harness]:
    bus = InMemoryBus()
    conversations = FakeConversations()
    assistant = FakeAssistant(conversations)
    gateway = build_gateway(settings, bus, conversations)
    bus.subscribe(assistant.subscription())
    for subscription in gateway.subscriptions:
        bus.subscribe(subscription)
    await bus.start()
    try:
        yield Harness(settings, bus, conversations, assistant, gateway)
    finally:
        await bus.stop()


@pytest.fixture
async def client(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=harness.gateway.http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield http
