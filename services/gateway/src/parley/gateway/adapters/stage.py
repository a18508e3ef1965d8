"""The gateway's place on the bus: it listens for replies, on every replica.

The subscription is a broadcast one, so each replica sees every reply and the one holding the waiting
request completes it; the others find no waiter and drop it. It never publishes anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.core.bus import Outgoing, Subscription
from parley.core.events import Topic
from parley.gateway.domain import ReplyRouter
from parley.turn.v1 import turn_event_pb2 as pb

STAGE = "gateway"


def reply_subscription(router: ReplyRouter) -> Subscription:
    """A broadcast subscription on ``turn.replied`` that hands each reply to ``router``."""

    async def on_replied(event: pb.TurnEvent) -> Sequence[Outgoing]:
        router.resolve(event)
        return []

    return Subscription(STAGE, (Topic.REPLIED,), on_replied, broadcast=True)
