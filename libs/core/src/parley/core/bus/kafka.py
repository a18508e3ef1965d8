"""Kafka transport (aiokafka): keyed by conversation id, offsets committed after side effects.

Each stage subscription is a consumer group with auto-commit off. A batch is processed partition by
partition in parallel, records of a partition in order; a record's offset is committed only after its
handler ran and its outputs were acknowledged by the broker (``acks=all``, idempotent producer). If the
process dies in between, the record is delivered again and the stage's idempotency (deterministic event
ids, de-duplication downstream) makes the replay harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError

from parley.core.bus.base import DeadLetter, EventProcessor, Subscription
from parley.core.errors import UnavailableError
from parley.core.events import Topic, event_type
from parley.core.logging import get_logger
from parley.core.settings import KafkaSettings
from parley.core.telemetry import inject_headers
from parley.turn.v1 import turn_event_pb2 as pb

log = get_logger(__name__)


class KafkaBus:
    """An :class:`~parley.core.bus.base.EventBus` over Apache Kafka."""

    def __init__(self, settings: KafkaSettings, instance_id: str | None = None) -> None:
        self._settings = settings
        self._instance_id = instance_id or uuid.uuid4().hex[:12]
        self._subscriptions: list[Subscription] = []
        self._producer: AIOKafkaProducer | None = None
        self._consumers: list[AIOKafkaConsumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def topic(self, name: str) -> str:
        """The physical topic name for a logical one."""
        return f"{self._settings.topic_prefix}{name}"

    def subscribe(self, subscription: Subscription) -> None:
        self._subscriptions.append(subscription)

    async def start(self) -> None:
        await self.ensure_topics()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.bootstrap,
            client_id=f"{self._settings.client_id}-{self._instance_id}",
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
        )
        await self._start_or_raise(self._producer)
        for sub in self._subscriptions:
            consumer = await self._make_consumer(sub)
            self._consumers.append(consumer)
            processor = EventProcessor(
                sub,
                publish=self.publish,
                dead_letter=self._dead_letter,
                max_attempts=self._settings.max_attempts,
                backoff_s=self._settings.retry_backoff_s,
            )
            self._tasks.append(
                asyncio.create_task(self._consume(consumer, processor), name=f"consume-{sub.name}")
            )

    async def ensure_topics(self) -> None:
        """Create the turn topics if they do not exist (idempotent)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self._settings.bootstrap)
        await self._start_or_raise(admin)
        try:
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(self.topic(name), num_partitions=self._settings.partitions, replication_factor=1)
                for name in Topic.ALL
                if self.topic(name) not in existing
            ]
            if wanted:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(wanted)
        finally:
            await admin.close()

    async def publish(self, topic: str, event: pb.TurnEvent) -> None:
        if self._producer is None:
            raise UnavailableError("the Kafka bus is not started")
        headers = [
            ("event_type", event_type(event).encode()),
            ("event_id", event.event_id.encode()),
            *inject_headers(),
        ]
        await self._producer.send_and_wait(
            self.topic(topic), event.SerializeToString(), key=event.conversation_id.encode(), headers=headers
        )

    async def ping(self, timeout_s: float = 2.0) -> None:
        """Fetch cluster metadata: raises :class:`UnavailableError` when the broker does not answer."""
        if self._producer is None:
            raise UnavailableError("the Kafka bus is not started")
        try:
            async with asyncio.timeout(timeout_s):
                await self._producer.client.fetch_all_metadata()
        except (TimeoutError, KafkaError) as exc:
            raise UnavailableError(f"Kafka at {self._settings.bootstrap} does not answer ({exc!r})") from exc

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for consumer in self._consumers:
            await consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        self._tasks.clear()
        self._consumers.clear()

    async def _make_consumer(self, sub: Subscription) -> AIOKafkaConsumer:
        topics = [self.topic(t) for t in sub.topics]
        common = {
            "bootstrap_servers": self._settings.bootstrap,
            "client_id": f"{self._settings.client_id}-{sub.name}-{self._instance_id}",
            "enable_auto_commit": False,
            "isolation_level": "read_committed",
            "max_poll_records": 100,
        }
        if sub.broadcast:
            # No group: this instance reads every partition from "now", so it sees every reply at once.
            consumer = AIOKafkaConsumer(group_id=None, auto_offset_reset="latest", **common)
            await self._start_or_raise(consumer)
            partitions = []
            for t in topics:
                for p in consumer.partitions_for_topic(t) or await self._partitions(consumer, t):
                    partitions.append(TopicPartition(t, p))
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for tp in partitions:
                await consumer.position(tp)
            return consumer
        consumer = AIOKafkaConsumer(*topics, group_id=sub.name, auto_offset_reset="earliest", **common)
        await self._start_or_raise(consumer)
        return consumer

    @staticmethod
    async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
        for _ in range(50):
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
            if parts:
                return parts
            await asyncio.sleep(0.1)
        raise UnavailableError(f"topic {topic} has no partitions; is the broker healthy?")

    async def _consume(self, consumer: AIOKafkaConsumer, processor: EventProcessor) -> None:
        commit = consumer._group_id is not None
        backoff = self._settings.retry_backoff_s
        while not self._stopping.is_set():
            try:
                batch = await consumer.getmany(timeout_ms=500)
            except KafkaError as exc:
                log.warning("poll failed, retrying", error=str(exc))
                await asyncio.sleep(backoff * random.uniform(1, 2))
                continue
            if not batch:
                continue
            await asyncio.gather(
                *(
                    self._process_partition(consumer, processor, tp, records, commit)
                    for tp, records in batch.items()
                )
            )

    async def _process_partition(
        self,
        consumer: AIOKafkaConsumer,
        processor: EventProcessor,
        tp: TopicPartition,
        records: list[ConsumerRecord],
        commit: bool,
    ) -> None:
        logical = tp.topic.removeprefix(self._settings.topic_prefix)
        for record in records:
            headers = list(record.headers or ())
            key = (record.key or b"").decode(errors="replace")
            try:
                await processor.process(
                    logical, key, record.value or b"", headers, f"{tp.topic}/{tp.partition}@{record.offset}"
                )
            except Exception as exc:
                log.warning(
                    "publishing outputs failed; will re-deliver", error=str(exc), offset=record.offset
                )
                consumer.seek(tp, record.offset)
                await asyncio.sleep(self._settings.retry_backoff_s * random.uniform(1, 3))
                return
            if commit:
                try:
                    await consumer.commit({tp: record.offset + 1})
                except CommitFailedError as exc:
                    # Rebalanced away: the new owner re-processes from the last commit, idempotently.
                    log.warning("commit failed after rebalance", error=str(exc))
                    return

    async def _dead_letter(self, letter: DeadLetter) -> None:
        if self._producer is None:
            return
        headers = [
            ("x-error", letter.error.encode()[:4000]),
            ("x-stage", letter.stage.encode()),
            ("x-source-topic", letter.topic.encode()),
            ("x-source-position", letter.position.encode()),
        ]
        await self._producer.send_and_wait(
            self.topic(Topic.DEAD_LETTER), letter.value, key=letter.key.encode(), headers=headers
        )

    async def _start_or_raise(
        self, client: AIOKafkaProducer | AIOKafkaConsumer | AIOKafkaAdminClient
    ) -> None:
        try:
            await client.start()
        except KafkaError as exc:
            raise UnavailableError(
                f"cannot reach Kafka at {self._settings.bootstrap} ({exc}); "
                "start one with `make infra-up` or set PARLEY_KAFKA_BOOTSTRAP"
            ) from exc
