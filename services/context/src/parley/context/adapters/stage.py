"""The "context" stage: stores each user message and bot reply, and hands the turn on with its context.

At-least-once delivery is safe: the message and the logged event are keyed by the event id, and the
contextualized event is derived from its cause, so a redelivered user message is stored once and yields
the same event id (its history is bounded by the stored message, so the content matches too).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from parley.context.adapters.protobuf import from_timestamp, message_pb, state_pb
from parley.context.domain.models import NewMessage, Role
from parley.context.ports import ConversationStore
from parley.context.v1 import context_pb2 as ctx
from parley.core.bus.base import Outgoing, Subscription
from parley.core.errors import ConflictError, PoisonEventError
from parley.core.events import Topic, derive_event, event_type
from parley.core.logging import get_logger
from parley.turn.v1 import turn_event_pb2 as pb

log = get_logger(__name__)

STAGE = "context"


class ContextStage:
    """Handles ``user.message`` and ``turn.replied`` for one store and context window."""

    def __init__(self, store: ConversationStore, window: int) -> None:
        self._store = store
        self._window = window

    def subscription(self) -> Subscription:
        """The consumer group "context" on the user message and reply topics."""
        return Subscription(STAGE, (Topic.USER_MESSAGE, Topic.REPLIED), self.handle)

    async def handle(self, event: pb.TurnEvent) -> Sequence[Outgoing]:
        kind = event_type(event)
        if kind == "user_message":
            return [await self._on_user_message(event)]
        if kind == "replied":
            await self._on_replied(event)
            return []
        raise PoisonEventError(f"the context stage does not handle {kind or 'events without a payload'}")

    async def _on_user_message(self, event: pb.TurnEvent) -> Outgoing:
        await self._ensure_conversation(event)
        message = event.user_message
        await self._store.append_message(
            NewMessage(event.conversation_id, event.turn_id, Role.USER, message.text, event.event_id)
        )
        await self._record(event, "user_message")
        recent = await self._store.recent_messages(
            event.conversation_id, self._window, up_to_event_id=event.event_id
        )
        state = await self._store.get_state(event.conversation_id)
        contextualized = pb.ContextualizedTurn(
            text=message.text,
            context=ctx.ContextSnapshot(
                recent_messages=[message_pb(m) for m in recent], state=state_pb(state)
            ),
            language=message.language,
        )
        return Outgoing(Topic.CONTEXTUALIZED, derive_event(event, STAGE, contextualized=contextualized))

    async def _on_replied(self, event: pb.TurnEvent) -> None:
        await self._ensure_conversation(event)
        reply = event.replied.reply
        await self._store.append_message(
            NewMessage(event.conversation_id, event.turn_id, Role.BOT, reply.text, event.event_id)
        )
        await self._record(event, "replied")

    async def _ensure_conversation(self, event: pb.TurnEvent) -> None:
        """The gateway creates conversations first; an event for an unknown one creates it for its owner."""
        try:
            await self._store.create_conversation(event.conversation_id, event.tenant_id, event.user_id)
        except ConflictError as exc:
            raise PoisonEventError(
                f"event {event.event_id} names conversation {event.conversation_id}, "
                "which belongs to another principal"
            ) from exc

    async def _record(self, event: pb.TurnEvent, kind: str) -> None:
        occurred_at = from_timestamp(event.occurred_at) or datetime.now(UTC)
        new = await self._store.record_event(
            event.event_id, event.conversation_id, event.turn_id, kind, event.SerializeToString(), occurred_at
        )
        if not new:
            log.info("event already stored", stage=STAGE, event_id=event.event_id, type=kind)
