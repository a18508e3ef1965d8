"""Dynamic micro-batching: concurrent single requests share one model call.

A transformer forward pass over 16 texts costs little more than over one, so under load the NLU gathers
the requests that arrive within ``max_wait_s`` (or until ``max_batch`` are waiting) and parses them
together. A lone request waits at most ``max_wait_s``; the model runs in a worker thread, so the event
loop keeps accepting requests while a batch is computed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class MicroBatcher(Generic[ItemT, ResultT]):
    """Turns ``await submit(item)`` calls into ``run_batch([items...])`` calls."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[ItemT]], Sequence[ResultT]],
        max_batch: int = 32,
        max_wait_s: float = 0.002,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._queue: asyncio.Queue[tuple[ItemT, asyncio.Future[ResultT]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        #: Sizes of the batches run so far (bounded), for metrics and tests.
        self.batch_sizes: list[int] = []

    async def submit(self, item: ItemT) -> ResultT:
        """The result for ``item``, computed in a batch with whatever else is waiting."""
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._work(self._queue), name="nlu-micro-batcher")
        assert self._queue is not None
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def close(self) -> None:
        """Stop the worker; requests still queued fail with CancelledError."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def _work(self, queue: asyncio.Queue[tuple[ItemT, asyncio.Future[ResultT]]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self._max_wait_s
            # Gather company until the deadline. Never wait_for(queue.get()): a get cancelled by the
            # timeout just as an item arrives can lose that item, leaving its caller waiting forever.
            while len(batch) < self._max_batch:
                try:
                    batch.append(queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                await asyncio.sleep(min(remaining, 0.0005))
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            self.batch_sizes = [*self.batch_sizes[-999:], len(live)]
            try:
                results = await asyncio.to_thread(self._run_batch, [item for item, _ in live])
            except Exception as exc:
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(live, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
