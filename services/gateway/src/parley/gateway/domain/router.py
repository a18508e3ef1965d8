"""Matching replies on the bus to the requests waiting for them.

Every gateway replica sees every reply (a broadcast subscription), so a reply reaches whichever replica
holds the client's connection; the others find no waiter for the turn and ignore it. A waiter lives only
while its request waits: it is removed when the reply arrives, when the wait times out and when the request
is cancelled, and the number of waiters is capped, so a flood of slow turns cannot grow memory unbounded.

A streaming waiter (:meth:`ReplyRouter.stream`) also receives the reply's chunks while the generator
produces them. Chunks are best effort and may come out of order or twice: the stream hands them out in
index order, holds early ones until the gap before them is filled, drops duplicates, and holds at most
``max_buffered_chunks`` chunks; one that does not fit is dropped, and the final reply, which is
authoritative, fills in whatever was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from parley.core.errors import UnavailableError
from parley.core.logging import get_logger
from parley.generator.v1 import generator_pb2
from parley.turn.v1 import turn_event_pb2 as pb

log = get_logger(__name__)

#: Chunks one streaming turn may hold (in order but not yet read, plus early ones waiting for a gap).
DEFAULT_MAX_BUFFERED_CHUNKS = 1024


@dataclass(frozen=True)
class Chunk:
    """A piece of a reply being generated: ``text`` continues the chunks with lower indexes."""

    index: int
    text: str


class ReplyStream:
    """The chunks of one turn's reply in index order, then the reply itself.

    Read it with :meth:`next`; it is fed by :meth:`ReplyRouter.resolve`, never by its reader.
    """

    def __init__(self, future: asyncio.Future[generator_pb2.Reply], max_buffered: int) -> None:
        self.reply = future
        self._max_buffered = max_buffered
        self._next_index = 0
        self._ready: deque[Chunk] = deque()
        self._early: dict[int, str] = {}
        self._wake = asyncio.Event()
        future.add_done_callback(lambda _: self._wake.set())

    @property
    def buffered(self) -> int:
        """Chunks held right now (ready to read or waiting for an earlier one)."""
        return len(self._ready) + len(self._early)

    def add(self, index: int, text: str) -> bool:
        """Take a chunk; ``False`` when it is a duplicate, comes after the reply or does not fit."""
        if self.reply.done() or index < self._next_index or index in self._early:
            return False
        if self.buffered >= self._max_buffered:
            log.warning("reply chunk dropped: the stream's buffer is full", index=index)
            return False
        if index != self._next_index:
            self._early[index] = text
            return True
        self._ready.append(Chunk(index, text))
        self._next_index += 1
        while self._next_index in self._early:
            self._ready.append(Chunk(self._next_index, self._early.pop(self._next_index)))
            self._next_index += 1
        self._wake.set()
        return True

    async def next(self) -> Chunk | generator_pb2.Reply:
        """The next chunk in order, or the reply once it has come (chunks in order before it go first)."""
        while True:
            if self._ready:
                return self._ready.popleft()
            if self.reply.done():
                return self.reply.result()
            self._wake.clear()
            await self._wake.wait()


@dataclass(frozen=True)
class _Waiter:
    conversation_id: str
    future: asyncio.Future[generator_pb2.Reply]
    stream: ReplyStream | None = None


class ReplyRouter:
    """Futures (and, for streaming turns, chunk buffers) of pending turns keyed by turn id."""

    def __init__(
        self, max_pending: int = 10_000, max_buffered_chunks: int = DEFAULT_MAX_BUFFERED_CHUNKS
    ) -> None:
        self._max_pending = max_pending
        self._max_buffered_chunks = max_buffered_chunks
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
        with self._waiting(turn_id, conversation_id, streaming=False) as waiter:
            yield waiter.future

    @contextlib.contextmanager
    def stream(self, turn_id: str, conversation_id: str) -> Iterator[ReplyStream]:
        """Like :meth:`expect`, but the block also receives the reply's chunks, in order, as they come."""
        with self._waiting(turn_id, conversation_id, streaming=True) as waiter:
            assert waiter.stream is not None
            yield waiter.stream

    @contextlib.contextmanager
    def _waiting(self, turn_id: str, conversation_id: str, *, streaming: bool) -> Iterator[_Waiter]:
        if turn_id in self._pending:
            raise ValueError(f"turn {turn_id} is already awaited")
        if len(self._pending) >= self._max_pending:
            raise UnavailableError(
                f"this gateway is waiting on {len(self._pending)} turns already; try again shortly"
            )
        future: asyncio.Future[generator_pb2.Reply] = asyncio.get_running_loop().create_future()
        stream = ReplyStream(future, self._max_buffered_chunks) if streaming else None
        waiter = _Waiter(conversation_id, future, stream)
        self._pending[turn_id] = waiter
        try:
            yield waiter
        finally:
            if self._pending.get(turn_id) is waiter:
                del self._pending[turn_id]
            if not future.done():
                future.cancel()

    def resolve(self, event: pb.TurnEvent) -> bool:
        """Hand a replied event or a reply chunk to its waiter.

        ``False`` when nobody here waits for it, it came twice, or it is a chunk of a turn nobody streams.
        """
        kind = event.WhichOneof("payload")
        if kind not in {"replied", "reply_chunk"}:
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
        if kind == "reply_chunk":
            if waiter.stream is None:
                return False
            return waiter.stream.add(event.reply_chunk.index, event.reply_chunk.text)
        reply = generator_pb2.Reply()
        reply.CopyFrom(event.replied.reply)
        waiter.future.set_result(reply)
        return True
