"""The port the context service's adapters (gRPC, stage) need: a store of conversations and state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from parley.context.domain.models import (
    ContextLoad,
    Conversation,
    DialogState,
    EntityChange,
    EntityUpdate,
    EntityValue,
    Feedback,
    MemoryItem,
    Message,
    MessagePage,
    NewMessage,
    Summary,
    UserDeletion,
    UserExport,
    UserProfile,
)


class Embedder(Protocol):
    """Text to a fixed-size, L2-normalised vector (long-term memory similarity, topic shifts)."""

    dimensions: int

    def embed(self, text: str) -> list[float]:
        """The vector of ``text``."""
        ...


class ConversationStore(Protocol):
    """The system of record. Ids are validated here too: a malformed one raises InvalidInputError."""

    async def create_conversation(self, conversation_id: str, tenant_id: str, user_id: str) -> Conversation:
        """Create it, or return it when it exists with the same owner; another owner -> ConflictError."""
        ...

    async def get_conversation(self, conversation_id: str, tenant_id: str, user_id: str) -> Conversation:
        """The conversation if this principal owns it; NotFoundError otherwise (missing or not theirs)."""
        ...

    async def list_messages(self, conversation_id: str, page_size: int, page_token: str = "") -> MessagePage:
        """A page of messages, oldest first; pass the returned token back for the next page."""
        ...

    async def append_message(self, message: NewMessage) -> bool:
        """Append once per event id; returns whether the message was new."""
        ...

    async def append_messages(self, messages: Sequence[NewMessage]) -> int:
        """Append several in one transaction; returns how many were new."""
        ...

    async def recent_messages(
        self, conversation_id: str, limit: int, up_to_event_id: str | None = None
    ) -> list[Message]:
        """The last ``limit`` messages, oldest first; with ``up_to_event_id``, those up to that message."""
        ...

    async def get_state(self, conversation_id: str) -> DialogState:
        """The current state; version 0 and empty data when none is stored."""
        ...

    async def update_state(
        self, conversation_id: str, expected_version: int, data: Mapping[str, Any]
    ) -> DialogState:
        """Compare-and-set; ConflictError when the stored version is not ``expected_version``."""
        ...

    async def record_event(
        self,
        event_id: str,
        conversation_id: str,
        turn_id: str,
        event_type: str,
        payload: bytes,
        occurred_at: datetime,
    ) -> bool:
        """Log a consumed turn event once; returns whether it was new."""
        ...

    async def search_messages(self, tenant_id: str, user_id: str, query: str, limit: int) -> list[Message]:
        """That user's messages matching ``query``, best first."""
        ...

    async def export_user(self, tenant_id: str, user_id: str) -> UserExport:
        """Everything stored about one user."""
        ...

    async def delete_user(self, tenant_id: str, user_id: str) -> UserDeletion:
        """Remove everything stored about one user, and nothing of anyone else."""
        ...

    # -- profiles

    async def get_profile(self, tenant_id: str, user_id: str) -> UserProfile:
        """The stored profile, or an empty one (``updated_at`` None) when there is none."""
        ...

    async def upsert_profile(self, profile: UserProfile) -> UserProfile:
        """Create or replace; InvalidInputError for a timezone that is not an IANA name."""
        ...

    # -- entity state

    async def update_entities(
        self, conversation_id: str, turn_id: str, event_id: str, updates: Sequence[EntityUpdate]
    ) -> list[EntityValue]:
        """Fold a turn's entities into the state, logging a change for each new value. Idempotent per
        ``event_id``: a redelivered turn changes nothing. Returns the current values of the types touched."""
        ...

    async def current_entities(
        self,
        conversation_id: str,
        entity_type: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        limit: int = 50,
    ) -> list[EntityValue]:
        """Current values, most recently updated first; ``attributes`` filters by JSON containment."""
        ...

    async def entity_history(
        self, conversation_id: str, entity_type: str | None = None
    ) -> list[EntityChange]:
        """Every change, oldest first."""
        ...

    # -- long-term memory

    async def remember(
        self,
        tenant_id: str,
        user_id: str,
        text: str,
        kind: str,
        embedding: Sequence[float],
        metadata: Mapping[str, Any] | None = None,
        conversation_id: str = "",
    ) -> MemoryItem:
        """Store a memory; the same text of the same user and kind is stored once (the stored one returns)."""
        ...

    async def search_memories(
        self, tenant_id: str, user_id: str, embedding: Sequence[float], limit: int, min_score: float = -1.0
    ) -> list[MemoryItem]:
        """That user's memories by cosine similarity to ``embedding``, best first (pgvector when present)."""
        ...

    # -- feedback

    async def record_feedback(self, tenant_id: str, user_id: str, feedback: Feedback) -> Feedback:
        """Store feedback on a conversation this principal owns (NotFoundError otherwise)."""
        ...

    # -- bounded context, summaries, retention

    async def load_context(
        self, conversation_id: str, window: int, entity_limit: int = 20, up_to_event_id: str | None = None
    ) -> ContextLoad:
        """What a turn loads: last ``window`` messages, the summary, entities, profile, state, message count.
        Its cost does not grow with the length of the conversation."""
        ...

    async def get_summary(self, conversation_id: str) -> Summary | None:
        """The rolling summary, None when the conversation was never summarised."""
        ...

    async def messages_after(self, conversation_id: str, after_seq: int, limit: int) -> list[Message]:
        """The first ``limit`` messages with ``seq > after_seq``, oldest first (what a summary folds in)."""
        ...

    async def save_summary(
        self, conversation_id: str, text: str, covers_up_to_seq: int, message_count: int
    ) -> Summary:
        """Store the summary unless a stored one already covers more (summaries only move forward)."""
        ...

    async def purge_expired(self, older_than: datetime) -> int:
        """Delete messages and logged events that occurred before ``older_than``; returns rows deleted."""
        ...
