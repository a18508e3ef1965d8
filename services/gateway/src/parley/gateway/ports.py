"""What the gateway needs from the rest of the system.

``parley.core.context_client.ContextClient`` satisfies :class:`Conversations` and every
``parley.core.bus.EventBus`` satisfies :class:`Publisher`, so the embedded and distributed wirings plug
straight in while tests hand in small fakes. :class:`KeyStore` is the gateway's own table of API keys
(``parley.gateway.adapters.keys.PostgresKeyStore``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from parley.context.v1 import context_pb2 as ctx
from parley.turn.v1 import turn_event_pb2 as pb

if TYPE_CHECKING:
    from parley.gateway.domain.keys import StoredKey


class Conversations(Protocol):
    """The conversations of the system of record (the context service)."""

    async def create_conversation(
        self, tenant_id: str, user_id: str, conversation_id: str = ""
    ) -> ctx.Conversation:
        """Create a conversation owned by the principal (idempotent for the same id and owner)."""
        ...

    async def get_conversation(
        self, conversation_id: str, tenant_id: str, user_id: str, page_size: int = 50, page_token: str = ""
    ) -> ctx.GetConversationResponse:
        """A conversation and a page of its messages, oldest first.

        Raises :class:`~parley.core.errors.NotFoundError` when it does not exist or belongs to another
        principal.
        """
        ...

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
        """Store the principal's feedback on their conversation (``rating`` 0 = not given).

        Raises :class:`~parley.core.errors.NotFoundError` when the conversation does not exist or belongs
        to another principal.
        """
        ...


class Publisher(Protocol):
    """Where accepted user messages go (the event bus)."""

    async def publish(self, topic: str, event: pb.TurnEvent) -> None:
        """Publish ``event`` on the logical ``topic``, keyed by its conversation id."""
        ...


class KeyStore(Protocol):
    """Where API keys are looked up when a request presents one."""

    async def find_key(self, key_id: str) -> StoredKey | None:
        """The key with this id, revoked or not; ``None`` when there is none."""
        ...

    async def mark_used(self, key_id: str) -> None:
        """Record that the key was just used (best effort, for operators deciding what to revoke)."""
        ...
