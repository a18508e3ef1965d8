"""Context service on a real PostgreSQL: does a turn's cost stay flat as a conversation grows?

For a conversation with 10 and with 5,000 turns of history (two messages per turn) it measures, in the
process that runs the service (no network hop, so the figures are the store's and the domain's):

* append: storing one message (``append_message``, idempotent insert);
* get-context: what a turn loads (``GetContext``: window, summary, entities, profile, state, memories);
* stage turn: the whole ``user.message`` handling (store, log the event, load, resolve references);

then the stage's throughput in events/s with 10 conversations in flight.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.stats import percentile

HISTORY = (10, 5_000)
REPEAT = 200
THROUGHPUT_EVENTS = 1_000


def _rows(benchmark: str, samples: list[float]) -> list[dict[str, object]]:
    return [
        {
            "benchmark": benchmark,
            "metric": "p50 latency",
            "value": round(percentile(samples, 50) * 1e3, 2),
            "unit": "ms",
        },
        {
            "benchmark": benchmark,
            "metric": "p99 latency",
            "value": round(percentile(samples, 99) * 1e3, 2),
            "unit": "ms",
        },
    ]


async def _timed(n: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - started)
    return samples


async def _throughput(store: Any, subscription: Any, concurrency: int) -> dict[str, object]:
    """The stage's user-message handling rate with ``concurrency`` conversations in flight."""
    from parley.core.events import new_event  # noqa: PLC0415
    from parley.turn.v1 import turn_event_pb2 as pb  # noqa: PLC0415

    conversations = [str(uuid.uuid4()) for _ in range(concurrency)]
    for cid in conversations:
        await store.create_conversation(cid, "bench", "ada")
    queue: asyncio.Queue[pb.TurnEvent] = asyncio.Queue()
    for i in range(THROUGHPUT_EVENTS):
        queue.put_nowait(
            new_event(
                conversation_id=conversations[i % concurrency],
                tenant_id="bench",
                user_id="ada",
                user_message=pb.UserMessage(text=f"order {10000 + i}"),
            )
        )

    async def worker() -> None:
        while not queue.empty():
            await subscription.handler(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "benchmark": f"context stage, {concurrency} conversations",
        "metric": "throughput",
        "value": round(THROUGHPUT_EVENTS / elapsed, 1),
        "unit": "events/s",
    }


async def bench_context(turns: int, concurrency: int) -> list[dict[str, object]]:
    """Append / get-context / stage-turn latency at 10 and 5,000 turns of history; stage events/s."""
    del turns
    from parley.common.v1 import common_pb2  # noqa: PLC0415
    from parley.context.app import build_context  # noqa: PLC0415
    from parley.context.domain.models import NewMessage, Role  # noqa: PLC0415
    from parley.context.settings import ContextSettings  # noqa: PLC0415
    from parley.context.v1 import context_pb2 as ctx  # noqa: PLC0415
    from parley.core.db import create_pool  # noqa: PLC0415
    from parley.core.events import new_event  # noqa: PLC0415
    from parley.core.infra.postgres import LocalPostgres  # noqa: PLC0415
    from parley.core.settings import DatabaseSettings  # noqa: PLC0415
    from parley.turn.v1 import turn_event_pb2 as pb  # noqa: PLC0415

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="parley-bench-context-") as tmp:
        postgres = LocalPostgres(Path(tmp) / "postgres", stop_at_exit=True, durable=False)
        dsn = await asyncio.to_thread(postgres.start)
        pool = await create_pool(dsn, DatabaseSettings(pool_min=2, pool_max=max(4, concurrency)))
        try:
            service = await build_context(ContextSettings(), pool)
            store, [subscription] = service.store, service.subscriptions
            principal = common_pb2.Principal(tenant_id="bench", user_id="ada")

            for history in HISTORY:
                cid = str(uuid.uuid4())
                await store.create_conversation(cid, "bench", "ada")
                texts = ("My order number is 12345", "Thanks, I found order 12345. How can I help?")
                backlog = [
                    NewMessage(
                        cid, f"t{i // 2}", Role.USER if i % 2 == 0 else Role.BOT, texts[i % 2], f"h-{cid}-{i}"
                    )
                    for i in range(2 * history)
                ]
                for start in range(0, len(backlog), 500):
                    await store.append_messages(backlog[start : start + 500])
                # The first turn folds the backlog into the summary; measure the steady state after it.
                warm = new_event(
                    conversation_id=cid,
                    tenant_id="bench",
                    user_id="ada",
                    user_message=pb.UserMessage(text="When will it arrive?"),
                )
                await subscription.handler(warm)

                async def append(i: int, cid: str = cid) -> object:
                    return await store.append_message(
                        NewMessage(cid, f"a{i}", Role.USER, "hello there", f"a-{cid}-{i}")
                    )

                async def get_context(i: int, cid: str = cid) -> object:
                    request = ctx.GetContextRequest(
                        conversation_id=cid, principal=principal, query="when will it arrive"
                    )
                    return await service.servicer.GetContext(request, None)  # type: ignore[arg-type]

                async def stage_turn(i: int, cid: str = cid) -> object:
                    event = new_event(
                        conversation_id=cid,
                        tenant_id="bench",
                        user_id="ada",
                        user_message=pb.UserMessage(text="When will it arrive?"),
                    )
                    return await subscription.handler(event)

                label = f"context ({history:,} turns of history)"
                rows += _rows(f"{label} append", await _timed(REPEAT, append))
                rows += _rows(f"{label} get-context", await _timed(REPEAT, get_context))
                rows += _rows(f"{label} stage turn", await _timed(REPEAT, stage_turn))

            rows.append(await _throughput(store, subscription, concurrency))
        finally:
            await pool.close()
            await asyncio.to_thread(postgres.stop)
    return rows
