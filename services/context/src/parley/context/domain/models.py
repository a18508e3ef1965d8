"""What the context service stores, as plain values the adapters translate to rows and messages."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Role(enum.StrEnum):
    """Who spoke; the value is what the database stores."""

    USER = "user"
    BOT = "bot"


@dataclass(frozen=True)
class Principal:
    """The tenant and end user a request acts for; every conversation has exactly one."""

    tenant_id: str
    user_id: str


@dataclass(frozen=True)
class Conversation:
    """A conversation's header."""

    conversation_id: str
    owner: Principal
    created_at: datetime


@dataclass(frozen=True)
class NewMessage:
    """A message to append; ``event_id`` is its idempotency key."""

    conversation_id: str
    turn_id: str
    role: Role
    text: str
    event_id: str


@dataclass(frozen=True)
class Message:
    """A stored message; ``seq`` orders messages of a conversation."""

    message_id: str
    conversation_id: str
    turn_id: str
    role: Role
    text: str
    event_id: str
    seq: int
    created_at: datetime


@dataclass(frozen=True)
class MessagePage:
    """One page of a conversation's messages, oldest first; an empty token means the last page."""

    messages: list[Message]
    next_page_token: str


@dataclass(frozen=True)
class DialogState:
    """Versioned state of one conversation; version 0 (and no ``updated_at``) means nothing stored yet."""

    conversation_id: str
    version: int
    data: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass(frozen=True)
class StoredEvent:
    """A turn event context consumed, as logged."""

    event_id: str
    conversation_id: str
    turn_id: str
    type: str
    payload: bytes
    occurred_at: datetime


@dataclass(frozen=True)
class UserProfile:
    """A user's profile, shared by their conversations; ``updated_at`` None means none is stored."""

    tenant_id: str
    user_id: str
    display_name: str = ""
    #: IANA name; empty means UTC.
    timezone: str = ""
    locale: str = ""
    preferences: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass(frozen=True)
class EntityUpdate:
    """An entity value a turn mentioned (from NLU), to fold into the conversation's entity state."""

    entity_type: str
    value: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EntityValue:
    """The current value of one tracked entity type in a conversation."""

    conversation_id: str
    entity_type: str
    value: str
    attributes: dict[str, Any]
    turn_id: str
    updated_at: datetime
    #: How many times it was set in this conversation.
    mentions: int = 1


@dataclass(frozen=True)
class EntityChange:
    """One change of a tracked entity; ``previous_value`` None when first set, ``value`` None when cleared."""

    conversation_id: str
    entity_type: str
    previous_value: str | None
    value: str | None
    attributes: dict[str, Any]
    turn_id: str
    changed_at: datetime


@dataclass(frozen=True)
class MemoryItem:
    """A long-term memory: a fact about a user that outlives a conversation."""

    memory_id: str
    tenant_id: str
    user_id: str
    text: str
    kind: str
    metadata: dict[str, Any]
    conversation_id: str
    created_at: datetime
    #: Cosine similarity to the query in searches; 0 elsewhere.
    score: float = 0.0


@dataclass(frozen=True)
class Feedback:
    """Feedback on a conversation (``turn_id`` empty) or a turn; ``rating`` 1-5 or None."""

    feedback_id: str
    conversation_id: str
    turn_id: str
    rating: int | None
    resolved: bool | None
    comment: str
    created_at: datetime


@dataclass(frozen=True)
class Summary:
    """The rolling summary of a conversation's messages up to ``covers_up_to_seq`` (inclusive)."""

    conversation_id: str
    text: str
    covers_up_to_seq: int
    #: How many messages the summary covers.
    message_count: int
    updated_at: datetime


@dataclass(frozen=True)
class ContextLoad:
    """What one turn loads from the store: bounded whatever the length of the conversation."""

    conversation_id: str
    #: The last messages (at most the window asked for), oldest first.
    recent: list[Message]
    summary: Summary | None
    #: Current entity values, most recently updated first (at most the limit asked for).
    entities: list[EntityValue]
    profile: UserProfile
    state: DialogState
    #: Messages stored in the conversation in all.
    total_messages: int


@dataclass(frozen=True)
class UserExport:
    """Everything stored about one user."""

    conversations: list[Conversation]
    messages: list[Message]
    states: list[DialogState]
    events: list[StoredEvent]
    profile: UserProfile | None = None
    memories: list[MemoryItem] = field(default_factory=list)
    entities: list[EntityValue] = field(default_factory=list)
    entity_history: list[EntityChange] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    summaries: list[Summary] = field(default_factory=list)


@dataclass(frozen=True)
class UserDeletion:
    """What deleting a user's data removed."""

    conversations: int
    messages: int
    states: int
    events: int
    memories: int = 0
    #: Entity states plus entity changes.
    entities: int = 0
    feedback: int = 0
    profiles: int = 0
