"""Micro-batching gathers concurrent requests into one model call and keeps results in place."""

import asyncio
import threading

import pytest

from parley.nlu.adapters.batching import MicroBatcher


async def test_concurrent_requests_share_batches_and_get_their_own_results():
    calls: list[list[str]] = []
    gate = threading.Event()

    def run(items):
        gate.wait(timeout=5)  # hold the first batch so the rest queue up behind it
        calls.append(list(items))
        return [item.upper() for item in items]

    batcher = MicroBatcher(run, max_batch=8, max_wait_s=0.01)
    tasks = [asyncio.create_task(batcher.submit(f"t{i}")) for i in range(20)]
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.gather(*tasks)
    await batcher.close()
    assert results == [f"T{i}" for i in range(20)]
    assert sum(len(c) for c in calls) == 20
    assert max(len(c) for c in calls) == 8  # bounded by max_batch
    assert len(calls) < 20  # and really batched


async def test_a_lone_request_is_answered_without_waiting_for_company():
    batcher = MicroBatcher(lambda items: [len(i) for i in items], max_batch=64, max_wait_s=0.001)
    assert await batcher.submit("abc") == 3
    assert batcher.batch_sizes == [1]
    await batcher.close()


async def test_a_failing_batch_fails_its_callers_and_the_next_batch_still_runs():
    def run(items):
        if "boom" in items:
            raise ValueError("model failed")
        return items

    batcher = MicroBatcher(run, max_batch=4, max_wait_s=0.001)
    with pytest.raises(ValueError, match="model failed"):
        await batcher.submit("boom")
    assert await batcher.submit("fine") == "fine"
    await batcher.close()


async def test_the_servicer_batches_concurrent_parse_calls():
    import time  # noqa: PLC0415

    from parley.core.rpc import InProcess  # noqa: PLC0415
    from parley.nlu.adapters.grpc import NluServicer  # noqa: PLC0415
    from parley.nlu.v1 import nlu_pb2  # noqa: PLC0415

    class SlowParser:
        def __init__(self):
            self.calls = []

        def parse_batch(self, texts):
            self.calls.append(len(texts))
            time.sleep(0.02)  # a forward pass
            return [nlu_pb2.ParseResult(text=t.text) for t in texts]

    parser = SlowParser()
    batcher = MicroBatcher(parser.parse_batch, max_batch=16, max_wait_s=0.005)
    servicer = InProcess(NluServicer(parser, batcher))
    try:
        replies = await asyncio.wait_for(
            asyncio.gather(
                *(servicer.call("Parse", nlu_pb2.ParseRequest(text=f"message {i}")) for i in range(24))
            ),
            timeout=30,
        )
    finally:
        await batcher.close()
    assert [r.result.text for r in replies] == [f"message {i}" for i in range(24)]
    assert sum(parser.calls) == 24
    assert len(parser.calls) < 24, parser.calls  # requests shared model calls
    assert max(parser.calls) > 1
