"""Building turn events: new ones at the edge, derived ones in each stage.

A derived event's id is a UUIDv5 of its cause's id and the stage name, so a stage that re-processes an
event after a crash produces the very same event id and every consumer downstream drops the duplicate.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from parley.turn.v1 import turn_event_pb2 as pb

SCHEMA_VERSION = 1
_NAMESPACE = uuid.UUID("6f1d1f4e-4a4b-4f5e-9d0c-2b7a1e9c5a10")


class Topic:
    """Logical topic names; the bus adds the configured prefix."""

    USER_MESSAGE = "user.message"
    CONTEXTUALIZED = "turn.contextualized"
    UNDERSTOOD = "turn.understood"
    DECIDED = "turn.decided"
    REPLIED = "turn.replied"
    #: Pieces of replies still being generated (best effort; ``turn.replied`` is authoritative).
    REPLY_CHUNK = "turn.reply-chunks"
    DEAD_LETTER = "dead-letter"

    ALL = (USER_MESSAGE, CONTEXTUALIZED, UNDERSTOOD, DECIDED, REPLIED, REPLY_CHUNK, DEAD_LETTER)


def now_timestamp() -> Timestamp:
    """The current time as a protobuf Timestamp."""
    ts = Timestamp()
    ts.FromDatetime(datetime.now(UTC))
    return ts


def new_event(
    *,
    conversation_id: str,
    tenant_id: str,
    user_id: str,
    turn_id: str | None = None,
    origin: str = "",
    **payload: Any,
) -> pb.TurnEvent:
    """A fresh event at the edge of the system (a user message accepted by the gateway)."""
    return pb.TurnEvent(
        event_id=str(uuid.uuid4()),
        conversation_id=conversation_id,
        turn_id=turn_id or str(uuid.uuid4()),
        tenant_id=tenant_id,
        user_id=user_id,
        occurred_at=now_timestamp(),
        schema_version=SCHEMA_VERSION,
        origin=origin,
        **payload,
    )


def derive_event(cause: pb.TurnEvent, stage: str, **payload: Any) -> pb.TurnEvent:
    """The event ``stage`` emits for ``cause``; same cause and stage always give the same event id."""
    return pb.TurnEvent(
        event_id=str(uuid.uuid5(_NAMESPACE, f"{cause.event_id}/{stage}")),
        conversation_id=cause.conversation_id,
        turn_id=cause.turn_id,
        tenant_id=cause.tenant_id,
        user_id=cause.user_id,
        occurred_at=now_timestamp(),
        schema_version=SCHEMA_VERSION,
        causation_id=cause.event_id,
        origin=cause.origin,
        **payload,
    )


def event_type(event: pb.TurnEvent) -> str:
    """The payload's field name ("user_message", "understood", ...); empty when no payload is set."""
    return event.WhichOneof("payload") or ""
