"""Matching replies on the bus to the requests waiting for them.

Every gateway replica sees every reply (a broadcast subscription), so a reply reaches whichever replica
holds the client's connection; the others find no waiter for the turn and ignore it. A waiter lives only
while its request waits: it is removed when the reply arrives, when the wait times out and when the request
is cancelled, and the number of waiters is capped, so a flood of slow turns cannot grow memory unbounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from parley.core.errors import UnavailableError
from parley.core.logging import get_logger
from parley.generator.v1 import generator_pb2
from parley.turn.v1 import turn_event_pb2 as pb

log = get_logger(__name__)


@dataclass(frozen=True)
class _Waiter:
    conversation_id: str
    future: asyncio.Future[generator_pb2.Reply]


class ReplyRouter:
    """Futures of pending turns keyed by turn id."""

    def __init__(self, max_pending: int = 10_000) -> None:
        self._max_pending = max_pending
        self._pending: dict[str, _Waiter] = {}

    def __len__(self) -> int:
        """How many turns are waiting for their reply right now."""
        return len(self._pending)

    def __contains__(self, turn_id: object) -> bool:
        return turn_id in self._pending

    @contextlib.contextmanager
    def expect(self, turn_id: str, conversation_id: str) -> Iterator[asyncio.Future[generator_pb2.Reply]]:
        """Wait for the reply of ``turn_id`` inside the block; the waiter is gone when the block exits.

        Enter the block before publishing the user message, so even an instant reply finds its waiter.
        Raises :class:`~parley.core.errors.UnavailableError` when too many turns are already waiting.
        """
        if turn_id in self._pending:
            raise ValueError(f"turn {turn_id} is already awaited")
        if len(self._pending) >= self._max_pending:
            raise UnavailableError(
                f"this gateway is waiting on {len(self._pending)} turns already; try again shortly"
            )
        waiter = _Waiter(conversation_id, asyncio.get_running_loop().create_future())
        self._pending[turn_id] = waiter
        try:
            yield waiter.future
        finally:
            if self._pending.get(turn_id) is waiter:
                del self._pending[turn_id]
            if not waiter.future.done():
                waiter.future.cancel()

    def resolve(self, event: pb.TurnEvent) -> bool:
        """Hand a replied event to its waiter; ``False`` when nobody here waits for it (or it came twice)."""
        if event.WhichOneof("payload") != "replied":
            return False
        waiter = self._pending.get(event.turn_id)
        if waiter is None or waiter.future.done():
            return False
        if waiter.conversation_id != event.conversation_id:
            log.warning(
                "reply ignored: its conversation does not match the turn's",
                turn_id=event.turn_id,
                expected=waiter.conversation_id,
                got=event.conversation_id,
            )
            return False
        reply = generator_pb2.Reply()
        reply.CopyFrom(event.replied.reply)
        waiter.future.set_result(reply)
        return True
