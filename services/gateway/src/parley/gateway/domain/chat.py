"""Accepting a user message: validate it, check the conversation, publish it and wait for the reply.

The gateway never waits on the pipeline forever: after ``reply_timeout_s`` it answers "pending" and the
client reads the reply from the conversation history once the pipeline delivers it. A streaming turn
(:meth:`ChatService.stream`) reports each step as it happens: typing, the reply's chunks, the reply.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from parley.core.errors import InvalidInputError
from parley.core.events import Topic, new_event
from parley.core.logging import get_logger
from parley.gateway.domain.identity import Principal, check_conversation_id, principal_of
from parley.gateway.domain.router import Chunk, ReplyRouter
from parley.gateway.ports import Conversations, Publisher
from parley.generator.v1 import generator_pb2
from parley.turn.v1 import turn_event_pb2 as pb

log = get_logger(__name__)

# BCP-47 in the shape clients actually send ("en", "pt-BR", "zh-Hant-TW"); the NLU decides the rest.
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,4}")
# Namespace of the conversation ids of channels that name users but not conversations (Rasa's REST channel).
_CHANNEL_NAMESPACE = uuid.UUID("0b7c3f52-9a4e-4d51-8f0e-5d6c2a1b9e37")


@dataclass(frozen=True)
class SendResult:
    """The outcome of one message: where it went and, when it came in time, the reply."""

    conversation_id: str
    turn_id: str
    reply: generator_pb2.Reply | None


@dataclass(frozen=True)
class Typing:
    """The message was accepted and published: the assistant is working on it."""

    conversation_id: str
    turn_id: str


@dataclass(frozen=True)
class Replied:
    """The turn's reply (authoritative: it replaces whatever the chunks said) ends the stream."""

    conversation_id: str
    turn_id: str
    reply: generator_pb2.Reply


@dataclass(frozen=True)
class Pending:
    """Nothing came within the reply timeout; the reply will be in the conversation's history."""

    conversation_id: str
    turn_id: str


#: What :meth:`ChatService.stream` yields: ``Typing``, then ``Chunk`` s, then ``Replied`` or ``Pending``.
StreamEvent = Typing | Chunk | Replied | Pending


class ChatService:
    """The one way a user message enters the system, whatever face (HTTP, gRPC) it came through."""

    def __init__(
        self,
        conversations: Conversations,
        publisher: Publisher,
        router: ReplyRouter,
        *,
        instance_id: str,
        max_text_chars: int = 4096,
        reply_timeout_s: float = 15.0,
    ) -> None:
        self._conversations = conversations
        self._publisher = publisher
        self._router = router
        self._instance_id = instance_id
        self._max_text_chars = max_text_chars
        self._reply_timeout_s = reply_timeout_s

    async def send(
        self,
        tenant_id: str,
        user_id: str,
        conversation_id: str | None,
        text: str,
        language: str = "",
    ) -> SendResult:
        """Post ``text`` into the conversation (a new one when ``None``) and wait a while for the reply.

        Raises :class:`InvalidInputError` for bad text or language and
        :class:`~parley.core.errors.NotFoundError` for a conversation that does not exist or belongs to
        another user. ``reply`` is ``None`` when it did not arrive within the reply timeout.
        """
        event = await self._accept(tenant_id, user_id, conversation_id, text, language)
        conversation_id, turn_id = event.conversation_id, event.turn_id
        with self._router.expect(turn_id, conversation_id) as reply_future:
            await self._publisher.publish(Topic.USER_MESSAGE, event)
            log.info("user message accepted", conversation_id=conversation_id, turn_id=turn_id)
            try:
                reply: generator_pb2.Reply | None = await asyncio.wait_for(
                    reply_future, self._reply_timeout_s
                )
            except TimeoutError:
                log.info(
                    "no reply in time; the client reads it from the history",
                    conversation_id=conversation_id,
                    turn_id=turn_id,
                    timeout_s=self._reply_timeout_s,
                )
                reply = None
        return SendResult(conversation_id, turn_id, reply)

    async def stream(
        self,
        tenant_id: str,
        user_id: str,
        conversation_id: str | None,
        text: str,
        language: str = "",
    ) -> AsyncIterator[StreamEvent]:
        """Post ``text`` like :meth:`send`, and report the turn as it happens.

        Yields :class:`Typing` as soon as the message is accepted, each :class:`Chunk` of the reply in
        order as the generator streams it (none for a template reply), then :class:`Replied`; or
        :class:`Pending` when nothing (neither a chunk nor the reply) came for ``reply_timeout_s``. Bad
        input and unknown conversations raise before the first event, so a caller that awaits the first
        event can still answer with an error status. Close the iterator (``aclose``) if you stop early.
        """
        event = await self._accept(tenant_id, user_id, conversation_id, text, language)
        conversation_id, turn_id = event.conversation_id, event.turn_id
        with self._router.stream(turn_id, conversation_id) as replies:
            await self._publisher.publish(Topic.USER_MESSAGE, event)
            log.info("user message accepted", conversation_id=conversation_id, turn_id=turn_id, stream=True)
            yield Typing(conversation_id, turn_id)
            while True:
                try:
                    async with asyncio.timeout(self._reply_timeout_s):
                        item = await replies.next()
                except TimeoutError:
                    log.info(
                        "no reply in time; the client reads it from the history",
                        conversation_id=conversation_id,
                        turn_id=turn_id,
                        timeout_s=self._reply_timeout_s,
                    )
                    yield Pending(conversation_id, turn_id)
                    return
                if isinstance(item, Chunk):
                    yield item
                else:
                    yield Replied(conversation_id, turn_id, item)
                    return

    async def _accept(
        self, tenant_id: str, user_id: str, conversation_id: str | None, text: str, language: str
    ) -> pb.TurnEvent:
        """Validate a message and find its conversation; the user-message event, not yet published."""
        text = self._check_text(text)
        language = self._check_language(language)
        conversation_id = await self._conversation_for(Principal(tenant_id, user_id), conversation_id)
        return new_event(
            conversation_id=conversation_id,
            tenant_id=tenant_id,
            user_id=user_id,
            turn_id=str(uuid.uuid4()),
            origin=self._instance_id,
            user_message=pb.UserMessage(text=text, language=language),
        )

    async def start_conversation(self, tenant_id: str, user_id: str) -> str:
        """Create an empty conversation for the principal and return its id."""
        conversation = await self._conversations.create_conversation(tenant_id, user_id)
        return conversation.conversation_id

    async def channel_conversation(self, tenant_id: str, user_id: str, channel: str) -> str:
        """The one conversation of a user on a channel that has no conversation ids (find or create).

        Its id is a UUIDv5 of the channel, tenant and user, and creating a conversation is idempotent for
        the same id and owner, so every replica finds the same one without a lookup table.
        """
        principal = principal_of(tenant_id, user_id)
        conversation_id = str(uuid.uuid5(_CHANNEL_NAMESPACE, f"{channel}\n{tenant_id}\n{user_id}"))
        conversation = await self._conversations.create_conversation(
            principal.tenant_id, principal.user_id, conversation_id
        )
        return conversation.conversation_id

    def _check_text(self, text: str) -> str:
        text = text.strip()
        if not text:
            raise InvalidInputError("text must not be empty")
        if len(text) > self._max_text_chars:
            raise InvalidInputError(
                f"text must be at most {self._max_text_chars} characters (got {len(text)})"
            )
        return text

    @staticmethod
    def _check_language(language: str | None) -> str:
        language = (language or "").strip()
        if language and not _LANGUAGE.fullmatch(language):
            raise InvalidInputError("language must be a BCP-47 tag such as 'en' or 'pt-BR', or empty")
        return language

    async def _conversation_for(self, principal: Principal, conversation_id: str | None) -> str:
        if conversation_id is None:
            return await self.start_conversation(principal.tenant_id, principal.user_id)
        conversation_id = check_conversation_id(conversation_id)
        # Raises NotFoundError for an unknown conversation and for another user's alike.
        await self._conversations.get_conversation(
            conversation_id, principal.tenant_id, principal.user_id, page_size=1
        )
        return conversation_id
