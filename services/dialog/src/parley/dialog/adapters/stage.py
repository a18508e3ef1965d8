"""The dialog stage: ``turn.understood`` in, ``turn.decided`` out.

The cause's event id is the idempotency key of the decision, so a redelivered event is answered from the
state's ``applied`` log and yields the same derived event.
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.core.bus.base import Outgoing, Subscription
from parley.core.errors import PoisonEventError
from parley.core.events import Topic, derive_event, event_type
from parley.dialog.domain.manager import DialogManager
from parley.turn.v1 import turn_event_pb2 as pb

STAGE = "dialog"


class DialogStage:
    """Handler of understood turns."""

    def __init__(self, manager: DialogManager) -> None:
        self._manager = manager

    async def handle(self, event: pb.TurnEvent) -> Sequence[Outgoing]:
        if event_type(event) != "understood":
            raise PoisonEventError(f"dialog expects an understood turn, got {event_type(event) or 'nothing'}")
        understood = event.understood
        # The event's own time is the turn's clock: a redelivered event is decided exactly alike, and a
        # replay from the event log (parley.dialog.domain.replay) sees the same clock.
        at = event.occurred_at.ToMicroseconds() / 1e6 if event.HasField("occurred_at") else None
        decision = await self._manager.decide(
            event.conversation_id,
            event.event_id,
            understood.understanding,
            context=understood.context if understood.HasField("context") else None,
            now=at or None,
        )
        decided = pb.DecidedTurn(
            decision=decision, understanding=understood.understanding, language=understood.language
        )
        return [Outgoing(Topic.DECIDED, derive_event(event, STAGE, decided=decided))]

    def subscription(self) -> Subscription:
        """The consumer group ``dialog`` on ``turn.understood``."""
        return Subscription(name=STAGE, topics=(Topic.UNDERSTOOD,), handler=self.handle)
