"""The generator stage: ``turn.decided`` in, ``turn.replied`` out.

Rendering is a pure function of the turn id and the actions, and the output id is derived from the
cause, so a redelivered decision yields the very same reply event.
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.core.bus.base import Outgoing, Subscription
from parley.core.errors import PoisonEventError
from parley.core.events import Topic, derive_event, event_type
from parley.generator.domain.templates import TemplateRenderer
from parley.turn.v1 import turn_event_pb2 as pb

STAGE = "generator"


class GeneratorStage:
    """Handler of decided turns."""

    def __init__(self, renderer: TemplateRenderer) -> None:
        self._renderer = renderer

    async def handle(self, event: pb.TurnEvent) -> Sequence[Outgoing]:
        if event_type(event) != "decided":
            raise PoisonEventError(f"generator expects a decided turn, got {event_type(event) or 'nothing'}")
        reply = self._renderer.render(event.turn_id, event.decided.decision.actions)
        return [Outgoing(Topic.REPLIED, derive_event(event, STAGE, replied=pb.RepliedTurn(reply=reply)))]

    def subscription(self) -> Subscription:
        """The consumer group ``generator`` on ``turn.decided``."""
        return Subscription(name=STAGE, topics=(Topic.DECIDED,), handler=self.handle)
