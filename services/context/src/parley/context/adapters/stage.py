"""The "context" stage: stores each user message and bot reply, tracks entities, and hands each turn on
with its bounded context and the references it resolved.

* ``user.message``: store the message, load the bounded context (window, summary, entities, profile,
  state, relevant long-term memories), resolve references ("it", "what about 67890?", "tomorrow") against
  it, and emit ``turn.contextualized``.
* ``turn.understood``: fold the NLU's entities into the conversation's entity state (that is what "it"
  refers to on the next turn).
* ``turn.replied``: store the bot's message.

At-least-once delivery is safe: messages, logged events and entity updates are keyed by the event id, and
the contextualized event is derived from its cause, so a redelivered user message is stored once and yields
the same event id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from parley.context.adapters.protobuf import from_timestamp, reference_pb, snapshot_pb, timestamp
from parley.context.assembler import ContextAssembler
from parley.context.domain.models import EntityUpdate, NewMessage, Principal, Role
from parley.context.domain.references import ReferenceResolver
from parley.context.ports import ConversationStore
from parley.core.bus.base import Outgoing, Subscription
from parley.core.context_client import from_struct
from parley.core.errors import ConflictError, InvalidInputError, PoisonEventError
from parley.core.events import Topic, derive_event, event_type
from parley.core.logging import get_logger
from parley.nlu.v1 import nlu_pb2
from parley.turn.v1 import turn_event_pb2 as pb

log = get_logger(__name__)

STAGE = "context"
#: Entity values longer than this are not tracked (they are free text, not something to refer back to).
MAX_ENTITY_VALUE = 256


def entity_updates(understanding: nlu_pb2.ParseResult) -> list[EntityUpdate]:
    """The entities of an NLU result as entity-state updates (canonical value, resolution as attributes).

    Entities context itself put back (extractor "context") are not re-tracked: they only repeat the state.
    """
    updates: list[EntityUpdate] = []
    for entity in understanding.entities:
        if not entity.type or entity.extractor == "context":
            continue
        value = (entity.value or entity.text).strip()
        if not value or len(value) > MAX_ENTITY_VALUE:
            continue
        attributes: dict[str, Any] = {
            "text": entity.text,
            "extractor": entity.extractor,
            "confidence": round(float(entity.confidence), 4),
        }
        if entity.HasField("resolved"):
            attributes.update(from_struct(entity.resolved))
        updates.append(EntityUpdate(entity.type, value, attributes))
    return updates


class ContextStage:
    """Handles ``user.message``, ``turn.understood`` and ``turn.replied`` for one store."""

    def __init__(
        self, store: ConversationStore, assembler: ContextAssembler, resolver: ReferenceResolver
    ) -> None:
        self._store = store
        self._assembler = assembler
        self._resolver = resolver

    def subscription(self) -> Subscription:
        """The consumer group "context" on user messages, understood turns and replies."""
        return Subscription(STAGE, (Topic.USER_MESSAGE, Topic.UNDERSTOOD, Topic.REPLIED), self.handle)

    async def handle(self, event: pb.TurnEvent) -> Sequence[Outgoing]:
        kind = event_type(event)
        if kind == "user_message":
            return [await self._on_user_message(event)]
        if kind == "understood":
            await self._on_understood(event)
            return []
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
        owner = Principal(event.tenant_id, event.user_id)
        assembled = await self._assembler.assemble(
            event.conversation_id, owner, message.text, up_to_event_id=event.event_id, maintain=True
        )
        spoken_at = from_timestamp(event.occurred_at) or datetime.now(UTC)
        timezone = assembled.load.profile.timezone
        earlier = [m for m in assembled.load.recent if m.event_id != event.event_id]
        previous_user = next((m.text for m in reversed(earlier) if m.role is Role.USER), None)
        resolution = self._resolver.resolve(
            message.text,
            recent=earlier,
            entities=assembled.load.entities,
            reference_time=spoken_at,
            timezone=timezone or "UTC",
            previous_user_text=previous_user,
            language=message.language or "en",
        )
        contextualized = pb.ContextualizedTurn(
            text=message.text,
            context=snapshot_pb(assembled),
            language=message.language,
            references=[reference_pb(r) for r in resolution.references],
            resolved_text=resolution.resolved_text,
            reference_time=timestamp(spoken_at),
            timezone=timezone,
            topic_shift=resolution.topic_shift,
        )
        if resolution.references:
            log.info(
                "references resolved",
                conversation_id=event.conversation_id,
                kinds=[r.kind for r in resolution.references],
            )
        return Outgoing(Topic.CONTEXTUALIZED, derive_event(event, STAGE, contextualized=contextualized))

    async def _on_understood(self, event: pb.TurnEvent) -> None:
        updates = entity_updates(event.understood.understanding)
        if not updates:
            return
        try:
            await self._store.update_entities(event.conversation_id, event.turn_id, event.event_id, updates)
        except InvalidInputError as exc:
            raise PoisonEventError(
                f"event {event.event_id} carries entities that cannot be stored: {exc}"
            ) from exc

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
