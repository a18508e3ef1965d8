"""The gateway's place on the bus: it listens for replies and reply chunks, on every replica.

The subscription is a broadcast one, so each replica sees every reply (and every chunk of a reply being
generated) and the one holding the waiting request completes it; the others find no waiter and drop it.
It never publishes anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.core.bus import Outgoing, Subscription
from parley.core.events import Topic
from parley.gateway.domain import ReplyRouter
from parley.turn.v1 import turn_event_pb2 as pb

STAGE = "gateway"


def reply_subscription(router: ReplyRouter) -> Subscription:
    """A broadcast subscription on ``turn.replied`` and ``turn.reply-chunks`` feeding ``router``."""

    async def on_reply(event: pb.TurnEvent) -> Sequence[Outgoing]:
        router.resolve(event)
        return []

    return Subscription(STAGE, (Topic.REPLIED, Topic.REPLY_CHUNK), on_reply, broadcast=True)
