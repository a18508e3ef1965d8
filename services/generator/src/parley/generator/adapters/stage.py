"""The generator stage: ``turn.decided`` in, ``turn.replied`` out.

Template rendering is a pure function of the turn id and the actions, and the output id is derived from
the cause, so a redelivered decision yields the same reply event (same id; an LLM-written text may differ).
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.core.bus.base import Outgoing, Subscription
from parley.core.errors import PoisonEventError
from parley.core.events import Topic, derive_event, event_type
from parley.generator.domain.replies import ReplyService
from parley.turn.v1 import turn_event_pb2 as pb

STAGE = "generator"


class GeneratorStage:
    """Handler of decided turns."""

    def __init__(self, replies: ReplyService) -> None:
        self._replies = replies

    async def handle(self, event: pb.TurnEvent) -> Sequence[Outgoing]:
        if event_type(event) != "decided":
            raise PoisonEventError(f"generator expects a decided turn, got {event_type(event) or 'nothing'}")
        decided = event.decided
        generated = await self._replies.reply(
            event.turn_id, decided.decision.actions, language=decided.language or None
        )
        replied = pb.RepliedTurn(reply=generated.reply)
        return [Outgoing(Topic.REPLIED, derive_event(event, STAGE, replied=replied))]

    def subscription(self) -> Subscription:
        """The consumer group ``generator`` on ``turn.decided``."""
        return Subscription(name=STAGE, topics=(Topic.DECIDED,), handler=self.handle)
