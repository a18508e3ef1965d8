"""Translating the store's records to and from the protobuf messages of the contracts."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from parley.common.v1 import common_pb2
from parley.context.assembler import AssembledContext
from parley.context.domain.models import (
    Conversation,
    DialogState,
    EntityChange,
    EntityValue,
    Feedback,
    MemoryItem,
    Message,
    Role,
    StoredEvent,
    UserProfile,
)
from parley.context.domain.references import Reference
from parley.context.v1 import context_pb2 as ctx
from parley.core.context_client import to_struct
from parley.core.errors import InvalidInputError

_ROLE_TO_PB = {Role.USER: common_pb2.ROLE_USER, Role.BOT: common_pb2.ROLE_BOT}
_ROLE_FROM_PB = {v: k for k, v in _ROLE_TO_PB.items()}


def timestamp(value: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp, or None (field left unset) for no time."""
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def from_timestamp(value: Timestamp) -> datetime | None:
    """An aware datetime, or None when the Timestamp was never set."""
    if value.seconds == 0 and value.nanos == 0:
        return None
    return value.ToDatetime(tzinfo=UTC)


def role_from_pb(role: int, what: str = "role") -> Role:
    """Our role for a protobuf Role; ROLE_UNSPECIFIED and unknown numbers are the caller's error."""
    try:
        return _ROLE_FROM_PB[role]
    except KeyError as exc:
        raise InvalidInputError(f"{what} must be ROLE_USER or ROLE_BOT") from exc


def conversation_pb(conversation: Conversation) -> ctx.Conversation:
    return ctx.Conversation(
        conversation_id=conversation.conversation_id,
        principal=common_pb2.Principal(
            tenant_id=conversation.owner.tenant_id, user_id=conversation.owner.user_id
        ),
        created_at=timestamp(conversation.created_at),
    )


def message_pb(message: Message) -> common_pb2.ChatMessage:
    return common_pb2.ChatMessage(
        message_id=message.message_id,
        conversation_id=message.conversation_id,
        turn_id=message.turn_id,
        role=_ROLE_TO_PB[message.role],
        text=message.text,
        created_at=timestamp(message.created_at),
        event_id=message.event_id,
    )


def state_pb(state: DialogState) -> ctx.DialogState:
    return ctx.DialogState(
        conversation_id=state.conversation_id,
        version=state.version,
        data=to_struct(state.data),
        updated_at=timestamp(state.updated_at),
    )


def event_pb(event: StoredEvent) -> ctx.StoredEvent:
    """A logged turn event as its protobuf message."""
    return ctx.StoredEvent(
        event_id=event.event_id,
        conversation_id=event.conversation_id,
        turn_id=event.turn_id,
        type=event.type,
        payload=event.payload,
        occurred_at=timestamp(event.occurred_at),
    )


def profile_pb(profile: UserProfile) -> ctx.UserProfile:
    return ctx.UserProfile(
        principal=common_pb2.Principal(tenant_id=profile.tenant_id, user_id=profile.user_id),
        display_name=profile.display_name,
        timezone=profile.timezone,
        locale=profile.locale,
        preferences=to_struct(profile.preferences),
        updated_at=timestamp(profile.updated_at),
    )


def entity_pb(entity: EntityValue) -> ctx.EntityValue:
    return ctx.EntityValue(
        entity_type=entity.entity_type,
        value=entity.value,
        attributes=to_struct(entity.attributes),
        turn_id=entity.turn_id,
        updated_at=timestamp(entity.updated_at),
        mentions=entity.mentions,
    )


def entity_change_pb(change: EntityChange) -> ctx.EntityChange:
    return ctx.EntityChange(
        entity_type=change.entity_type,
        previous_value=change.previous_value or "",
        value=change.value or "",
        attributes=to_struct(change.attributes),
        turn_id=change.turn_id,
        changed_at=timestamp(change.changed_at),
    )


def memory_pb(memory: MemoryItem) -> ctx.MemoryItem:
    return ctx.MemoryItem(
        memory_id=memory.memory_id,
        text=memory.text,
        kind=memory.kind,
        metadata=to_struct(memory.metadata),
        score=memory.score,
        conversation_id=memory.conversation_id,
        created_at=timestamp(memory.created_at),
    )


def feedback_pb(feedback: Feedback) -> ctx.Feedback:
    out = ctx.Feedback(
        feedback_id=feedback.feedback_id,
        conversation_id=feedback.conversation_id,
        turn_id=feedback.turn_id,
        rating=feedback.rating or 0,
        comment=feedback.comment,
        created_at=timestamp(feedback.created_at),
    )
    if feedback.resolved is not None:
        out.resolved = feedback.resolved
    return out


def snapshot_pb(assembled: AssembledContext) -> ctx.ContextSnapshot:
    """The bounded context of a turn as handed downstream (and returned by GetContext)."""
    load = assembled.load
    return ctx.ContextSnapshot(
        recent_messages=[message_pb(m) for m in assembled.recent],
        state=state_pb(load.state),
        summary=assembled.summary,
        entities=[entity_pb(e) for e in load.entities],
        profile=profile_pb(load.profile),
        memories=[memory_pb(m) for m in assembled.memories],
        total_messages=load.total_messages,
    )


def reference_pb(reference: Reference) -> ctx.Reference:
    """A resolved reference as carried by the contextualized turn."""
    return ctx.Reference(
        kind=reference.kind,
        text=reference.text,
        start=reference.start,
        end=reference.end,
        resolved_text=reference.resolved_text,
        entity_type=reference.entity_type or "",
        entity_value=reference.entity_value or "",
        resolved=to_struct(reference.resolved or {}),
        confidence=reference.confidence,
    )
