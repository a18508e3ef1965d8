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
class UserExport:
    """Everything stored about one user."""

    conversations: list[Conversation]
    messages: list[Message]
    states: list[DialogState]
    events: list[StoredEvent]


@dataclass(frozen=True)
class UserDeletion:
    """What deleting a user's data removed."""

    conversations: int
    messages: int
    states: int
    events: int
