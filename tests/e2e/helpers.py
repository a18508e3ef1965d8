"""Reading what the stack left in PostgreSQL and on the topics."""

import asyncio
import uuid
from collections import defaultdict

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from parley.core.events import Topic
from parley.turn.v1 import turn_event_pb2 as pb

TURN_TOPICS = (Topic.USER_MESSAGE, Topic.CONTEXTUALIZED, Topic.UNDERSTOOD, Topic.DECIDED, Topic.REPLIED)


async def history_rows(dsn: str, conversation_id: str) -> list[asyncpg.Record]:
    """The stored messages of a conversation, in order."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT role, text, turn_id, event_id FROM messages WHERE conversation_id = $1 ORDER BY seq",
            uuid.UUID(conversation_id),
        )
    finally:
        await conn.close()


async def topic_events(
    bootstrap: str, prefix: str, conversation_ids: set[str]
) -> dict[str, list[pb.TurnEvent]]:
    """Every event of the given conversations on each turn topic, read from the beginning."""
    found: dict[str, list[pb.TurnEvent]] = defaultdict(list)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(f"{prefix}{t}", p)
            for t in TURN_TOPICS
            for p in (consumer.partitions_for_topic(f"{prefix}{t}") or {0, 1, 2})
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        async with asyncio.timeout(60):
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    for record in records:
                        event = pb.TurnEvent.FromString(record.value)
                        if event.conversation_id in conversation_ids:
                            found[tp.topic.removeprefix(prefix)].append(event)
    finally:
        await consumer.stop()
    return found
