"""The Kafka transport against a real broker: ordering, offsets, dead letters, broadcast."""

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from parley.core.bus import Outgoing, Subscription
from parley.core.bus.kafka import KafkaBus
from parley.core.errors import UnavailableError
from parley.core.events import Topic, derive_event, new_event
from parley.core.settings import KafkaSettings
from parley.turn.v1 import turn_event_pb2 as pb

pytestmark = pytest.mark.integration


def _settings(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:8]}.", retry_backoff_s=0.05)


def _message(conversation_id: str, text: str) -> pb.TurnEvent:
    return new_event(
        conversation_id=conversation_id, tenant_id="t", user_id="u", user_message=pb.UserMessage(text=text)
    )


async def _until(predicate, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_a_two_stage_pipeline_keeps_each_conversation_in_order(kafka_bootstrap):
    settings = _settings(kafka_bootstrap)
    received: list[pb.TurnEvent] = []

    async def stage(event: pb.TurnEvent) -> list[Outgoing]:
        out = derive_event(event, "ctx", contextualized=pb.ContextualizedTurn(text=event.user_message.text))
        return [Outgoing(Topic.CONTEXTUALIZED, out)]

    async def sink(event: pb.TurnEvent) -> list[Outgoing]:
        received.append(event)
        return []

    bus = KafkaBus(settings)
    bus.subscribe(Subscription("ctx", (Topic.USER_MESSAGE,), stage))
    with pytest.raises(UnavailableError):
        await bus.ping()  # not started yet
    bus.subscribe(Subscription("sink", (Topic.CONTEXTUALIZED,), sink))
    await bus.start()
    await bus.ping()
    try:
        for i in range(5):
            for conv in ("a", "b", "c"):
                await bus.publish(Topic.USER_MESSAGE, _message(conv, str(i)))
        await _until(lambda: len(received) >= 15)
    finally:
        await bus.stop()
    assert len(received) == 15
    for conv in ("a", "b", "c"):
        assert [e.contextualized.text for e in received if e.conversation_id == conv] == list("01234")


async def test_offsets_are_committed_so_a_restarted_stage_does_not_redo_work(kafka_bootstrap):
    settings = _settings(kafka_bootstrap)
    handled: list[str] = []

    async def handler(event: pb.TurnEvent) -> list[Outgoing]:
        handled.append(event.user_message.text)
        return []

    first = KafkaBus(settings)
    first.subscribe(Subscription("worker", (Topic.USER_MESSAGE,), handler))
    await first.start()
    await first.publish(Topic.USER_MESSAGE, _message("c", "one"))
    await _until(lambda: handled == ["one"])
    await first.stop()

    second = KafkaBus(settings)
    second.subscribe(Subscription("worker", (Topic.USER_MESSAGE,), handler))
    await second.start()
    try:
        await second.publish(Topic.USER_MESSAGE, _message("c", "two"))
        await _until(lambda: "two" in handled)
    finally:
        await second.stop()
    assert handled == ["one", "two"]


async def test_poison_events_go_to_the_dead_letter_topic_and_the_partition_moves_on(kafka_bootstrap):
    settings = _settings(kafka_bootstrap)
    settings = settings.model_copy(update={"partitions": 1, "max_attempts": 2})
    handled: list[str] = []

    async def handler(event: pb.TurnEvent) -> list[Outgoing]:
        if event.user_message.text == "boom":
            raise RuntimeError("cannot handle boom")
        handled.append(event.user_message.text)
        return []

    bus = KafkaBus(settings)
    bus.subscribe(Subscription("worker", (Topic.USER_MESSAGE,), handler))
    await bus.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    dlq = AIOKafkaConsumer(
        bus.topic(Topic.DEAD_LETTER), bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await dlq.start()
    try:
        await producer.send_and_wait(bus.topic(Topic.USER_MESSAGE), b"\x08garbage", key=b"c")
        await bus.publish(Topic.USER_MESSAGE, _message("c", "boom"))
        await bus.publish(Topic.USER_MESSAGE, _message("c", "fine"))
        await _until(lambda: handled == ["fine"])
        letters = []
        async with asyncio.timeout(20):
            while len(letters) < 2:
                batch = await dlq.getmany(timeout_ms=500)
                letters += [r for records in batch.values() for r in records]
    finally:
        await dlq.stop()
        await producer.stop()
        await bus.stop()
    errors = [dict(r.headers)["x-error"].decode() for r in letters]
    assert any("cannot handle boom" in e for e in errors)
    assert any("undecodable" in e or "without event_id" in e for e in errors)
    assert all(dict(r.headers)["x-stage"] == b"worker" for r in letters)


async def test_broadcast_subscriptions_see_every_event_in_every_instance(kafka_bootstrap):
    settings = _settings(kafka_bootstrap)
    seen: dict[str, list[str]] = {"one": [], "two": []}

    def make(name: str):
        async def handler(event: pb.TurnEvent) -> list[Outgoing]:
            seen[name].append(event.conversation_id)
            return []

        return handler

    buses = []
    for name in seen:
        bus = KafkaBus(settings)
        bus.subscribe(Subscription("gateway", (Topic.REPLIED,), make(name), broadcast=True))
        await bus.start()
        buses.append(bus)
    try:
        for conv in ("a", "b", "c", "d"):
            await buses[0].publish(Topic.REPLIED, new_event(conversation_id=conv, tenant_id="t", user_id="u"))
        await _until(lambda: all(len(v) == 4 for v in seen.values()))
    finally:
        for bus in buses:
            await bus.stop()
    assert sorted(seen["one"]) == sorted(seen["two"]) == ["a", "b", "c", "d"]
