"""Accepting a user message: validate it, check the conversation, publish it and wait for the reply.

The gateway never waits on the pipeline forever: after ``reply_timeout_s`` it answers "pending" and the
client reads the reply from the conversation history once the pipeline delivers it.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass

from parley.core.errors import InvalidInputError
from parley.core.events import Topic, new_event
from parley.core.logging import get_logger
from parley.gateway.domain.identity import Principal, check_conversation_id
from parley.gateway.domain.router import ReplyRouter
from parley.gateway.ports import Conversations, Publisher
from parley.generator.v1 import generator_pb2
from parley.turn.v1 import turn_event_pb2 as pb

log = get_logger(__name__)

# BCP-47 in the shape clients actually send ("en", "pt-BR", "zh-Hant-TW"); the NLU decides the rest.
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,4}")


@dataclass(frozen=True)
class SendResult:
    """The outcome of one message: where it went and, when it came in time, the reply."""

    conversation_id: str
    turn_id: str
    reply: generator_pb2.Reply | None


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
        text = self._check_text(text)
        language = self._check_language(language)
        conversation_id = await self._conversation_for(Principal(tenant_id, user_id), conversation_id)
        turn_id = str(uuid.uuid4())
        event = new_event(
            conversation_id=conversation_id,
            tenant_id=tenant_id,
            user_id=user_id,
            turn_id=turn_id,
            origin=self._instance_id,
            user_message=pb.UserMessage(text=text, language=language),
        )
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

    async def start_conversation(self, tenant_id: str, user_id: str) -> str:
        """Create an empty conversation for the principal and return its id."""
        conversation = await self._conversations.create_conversation(tenant_id, user_id)
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
