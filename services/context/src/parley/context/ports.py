"""The port the context service's adapters (gRPC, stage) need: a store of conversations and state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from parley.context.domain.models import (
    Conversation,
    DialogState,
    Message,
    MessagePage,
    NewMessage,
    UserDeletion,
    UserExport,
)


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
