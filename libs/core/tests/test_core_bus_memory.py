"""The processing contract, exercised through the in-process transport."""

import asyncio

import pytest

from parley.core.bus import InMemoryBus, Outgoing, Subscription
from parley.core.errors import PoisonEventError
from parley.core.events import Topic, derive_event, new_event
from parley.turn.v1 import turn_event_pb2 as pb


def _message(conversation_id: str, text: str) -> pb.TurnEvent:
    return new_event(
        conversation_id=conversation_id,
        tenant_id="t",
        user_id="u",
        user_message=pb.UserMessage(text=text),
    )


async def test_events_of_one_conversation_are_handled_in_order_while_others_interleave():
    bus = InMemoryBus(partitions=2)
    seen: list[tuple[str, str]] = []

    async def handler(event: pb.TurnEvent) -> list[Outgoing]:
        # Yield to the loop so a wrongly parallel transport would reorder.
        await asyncio.sleep(0.001 * (3 - int(event.user_message.text)))
        seen.append((event.conversation_id, event.user_message.text))
        return []

    bus.subscribe(Subscription("s", (Topic.USER_MESSAGE,), handler))
    await bus.start()
    for i in range(3):
        for conv in ("a", "b", "c"):
            await bus.publish(Topic.USER_MESSAGE, _message(conv, str(i)))
    await bus.drain()
    await bus.stop()
    for conv in ("a", "b", "c"):
        assert [t for c, t in seen if c == conv] == ["0", "1", "2"]


async def test_outputs_flow_to_the_next_stage_and_duplicates_are_dropped():
    bus = InMemoryBus()
    replies: list[pb.TurnEvent] = []

    async def stage(event: pb.TurnEvent) -> list[Outgoing]:
        return [
            Outgoing(Topic.CONTEXTUALIZED, derive_event(event, "ctx", contextualized=pb.ContextualizedTurn()))
        ]

    async def sink(event: pb.TurnEvent) -> list[Outgoing]:
        replies.append(event)
        return []

    bus.subscribe(Subscription("ctx", (Topic.USER_MESSAGE,), stage))
    bus.subscribe(Subscription("sink", (Topic.CONTEXTUALIZED,), sink))
    await bus.start()
    event = _message("conv", "hi")
    await bus.publish(Topic.USER_MESSAGE, event)
    await bus.publish(Topic.USER_MESSAGE, event)  # at-least-once delivery: the same event again
    await bus.drain()
    await bus.stop()
    assert len(replies) == 1
    assert replies[0].causation_id == event.event_id
    assert replies[0].turn_id == event.turn_id


async def test_a_failing_handler_is_retried_then_succeeds():
    bus = InMemoryBus(max_attempts=3, backoff_s=0.001)
    attempts = 0
    done: list[str] = []

    async def flaky(event: pb.TurnEvent) -> list[Outgoing]:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("database blinked")
        done.append(event.event_id)
        return []

    bus.subscribe(Subscription("flaky", (Topic.USER_MESSAGE,), flaky))
    await bus.start()
    await bus.publish(Topic.USER_MESSAGE, _message("c", "x"))
    await bus.drain()
    await bus.stop()
    assert attempts == 3
    assert len(done) == 1
    assert bus.dead_letters == []


@pytest.mark.parametrize(
    ("error", "expected_attempts"), [(PoisonEventError("bad payload"), 1), (RuntimeError("always"), 3)]
)
async def test_poison_and_exhausted_events_are_dead_lettered_without_blocking_the_partition(
    error, expected_attempts
):
    bus = InMemoryBus(partitions=1, max_attempts=3, backoff_s=0.001)
    attempts = 0
    handled: list[str] = []

    async def handler(event: pb.TurnEvent) -> list[Outgoing]:
        nonlocal attempts
        if event.user_message.text == "poison":
            attempts += 1
            raise error
        handled.append(event.user_message.text)
        return []

    bus.subscribe(Subscription("s", (Topic.USER_MESSAGE,), handler))
    await bus.start()
    await bus.publish(Topic.USER_MESSAGE, _message("c", "poison"))
    await bus.publish(Topic.USER_MESSAGE, _message("c", "after"))
    await bus.drain()
    await bus.stop()
    assert attempts == expected_attempts
    assert handled == ["after"]
    assert len(bus.dead_letters) == 1
    assert bus.dead_letters[0].stage == "s"
    assert str(error) in bus.dead_letters[0].error


async def test_undecodable_bytes_are_dead_lettered():
    from parley.core.bus.base import EventProcessor  # noqa: PLC0415

    letters = []

    async def dead_letter(letter):
        letters.append(letter)

    async def never(event):
        raise AssertionError("must not be called")

    processor = EventProcessor(Subscription("s", ("t",), never), publish=None, dead_letter=dead_letter)
    await processor.process("t", "k", b"\xff\xff not protobuf", [])
    assert len(letters) == 1
    assert "undecodable" in letters[0].error or "without event_id" in letters[0].error
