"""In-process transport for the embedded mode and fast tests.

Same contract as Kafka: per subscription, a fixed number of partitions chosen by a stable hash of the
conversation id, each drained by one worker in order, so conversations run in parallel and each stays in
order.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections import defaultdict

from parley.core.bus.base import DeadLetter, EventProcessor, Headers, Subscription
from parley.core.telemetry import inject_headers
from parley.turn.v1 import turn_event_pb2 as pb

_Item = tuple[str, str, bytes, Headers]


class InMemoryBus:
    """An :class:`~parley.core.bus.base.EventBus` inside one process."""

    def __init__(self, partitions: int = 4, max_attempts: int = 5, backoff_s: float = 0.05) -> None:
        self._partitions = partitions
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._subs: dict[str, list[tuple[EventProcessor, list[asyncio.Queue[_Item]]]]] = defaultdict(list)
        self._tasks: list[asyncio.Task[None]] = []
        self.dead_letters: list[DeadLetter] = []
        self.published: list[tuple[str, pb.TurnEvent]] = []

    def subscribe(self, subscription: Subscription) -> None:
        processor = EventProcessor(
            subscription,
            publish=self.publish,
            dead_letter=self._dead_letter,
            max_attempts=self._max_attempts,
            backoff_s=self._backoff_s,
        )
        queues: list[asyncio.Queue[_Item]] = [asyncio.Queue() for _ in range(self._partitions)]
        for topic in subscription.topics:
            self._subs[topic].append((processor, queues))

    async def publish(self, topic: str, event: pb.TurnEvent) -> None:
        value = event.SerializeToString()
        headers = inject_headers()
        self.published.append((topic, event))
        partition = zlib.crc32(event.conversation_id.encode()) % self._partitions
        seen: set[int] = set()
        for _, queues in self._subs.get(topic, []):
            if id(queues) in seen:
                continue
            seen.add(id(queues))
            queues[partition].put_nowait((topic, event.conversation_id, value, headers))

    async def start(self) -> None:
        started: set[int] = set()
        for entries in self._subs.values():
            for processor, queues in entries:
                if id(queues) in started:
                    continue
                started.add(id(queues))
                for q in queues:
                    self._tasks.append(asyncio.create_task(self._worker(processor, q)))

    async def drain(self) -> None:
        """Wait until every published event (and what it caused) has been processed."""
        while True:
            queues = {id(q): q for entries in self._subs.values() for _, qs in entries for q in qs}
            if all(q.empty() and q._unfinished_tasks == 0 for q in queues.values()):
                return
            for q in queues.values():
                await q.join()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _worker(self, processor: EventProcessor, queue: asyncio.Queue[_Item]) -> None:
        while True:
            topic, key, value, headers = await queue.get()
            try:
                await processor.process(topic, key, value, headers)
            finally:
                queue.task_done()

    async def _dead_letter(self, letter: DeadLetter) -> None:
        self.dead_letters.append(letter)
