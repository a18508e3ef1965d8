"""What a stage is and how an event is processed, whatever carries it.

Guarantees every transport gives a stage:
- events of one conversation (the key) reach a stage one at a time, in the order they were published;
- an event id already processed by this stage instance is dropped (duplicates from at-least-once delivery);
- a handler failure is retried with exponential backoff and jitter (``asyncio.sleep``, never blocking);
- an event that cannot be processed (undecodable, invalid, or still failing after the last attempt) is
  dead-lettered with the error, so a partition never stalls behind it;
- outputs are published before the input counts as done (Kafka: before its offset is committed).
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.message import DecodeError
from opentelemetry import trace

from parley.core.errors import InvalidInputError, PoisonEventError
from parley.core.events import event_type
from parley.core.logging import get_logger
from parley.core.telemetry import extract_context
from parley.turn.v1 import turn_event_pb2 as pb

log = get_logger(__name__)
tracer = trace.get_tracer("parley.bus")

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Outgoing:
    """An event a handler wants published on a (logical) topic."""

    topic: str
    event: pb.TurnEvent


Handler = Callable[[pb.TurnEvent], Awaitable[Sequence[Outgoing]]]


@dataclass(frozen=True)
class Subscription:
    """A stage: a named consumer group reading ``topics`` with ``handler``.

    ``broadcast`` subscriptions see every event in every instance from the moment they start (the gateway
    listens for replies this way, so a reply reaches whichever replica holds the client's connection).
    """

    name: str
    topics: tuple[str, ...]
    handler: Handler
    broadcast: bool = False


@dataclass(frozen=True)
class DeadLetter:
    """An event given up on, with why."""

    stage: str
    topic: str
    key: str
    value: bytes
    error: str
    position: str = ""


class EventBus(Protocol):
    """Port every service uses to publish and consume turn events."""

    def subscribe(self, subscription: Subscription) -> None:
        """Register a stage; call before ``start``."""

    async def publish(self, topic: str, event: pb.TurnEvent) -> None:
        """Publish ``event`` keyed by its conversation id."""

    async def start(self) -> None:
        """Connect and start consuming."""

    async def stop(self) -> None:
        """Stop consuming and flush what was published."""


class RecentIds:
    """A bounded set of recently processed event ids (LRU), the first line of idempotency."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


PublishFn = Callable[[str, pb.TurnEvent], Awaitable[None]]
DeadLetterFn = Callable[[DeadLetter], Awaitable[None]]


@dataclass
class EventProcessor:
    """Runs one subscription's handler over raw events with the guarantees in the module docstring."""

    subscription: Subscription
    publish: PublishFn
    dead_letter: DeadLetterFn
    max_attempts: int = 5
    backoff_s: float = 0.2
    recent: RecentIds = field(default_factory=RecentIds)

    async def process(self, topic: str, key: str, value: bytes, headers: Headers, position: str = "") -> None:
        """Process one raw event. Raises only when publishing the outputs failed (the caller retries)."""
        stage = self.subscription.name
        try:
            event = pb.TurnEvent.FromString(value)
        except DecodeError as exc:
            await self._give_up(topic, key, value, f"undecodable event: {exc}", position)
            return
        if not event.event_id or not event.conversation_id:
            await self._give_up(topic, key, value, "event without event_id or conversation_id", position)
            return
        if event.event_id in self.recent:
            log.info("duplicate event dropped", stage=stage, event_id=event.event_id)
            return
        attributes = {
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.message.id": event.event_id,
            "parley.conversation_id": event.conversation_id,
            "parley.turn_id": event.turn_id,
            "parley.event_type": event_type(event),
        }
        with tracer.start_as_current_span(
            f"{stage} process {topic}",
            context=extract_context(headers),
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
        ) as span:
            outputs = await self._run_handler(event, topic, key, value, position, span)
            if outputs is None:
                return
            for out in outputs:
                await self.publish(out.topic, out.event)
        self.recent.add(event.event_id)

    async def _run_handler(
        self, event: pb.TurnEvent, topic: str, key: str, value: bytes, position: str, span: trace.Span
    ) -> Sequence[Outgoing] | None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await self.subscription.handler(event)
            except (PoisonEventError, InvalidInputError) as exc:
                span.record_exception(exc)
                await self._give_up(topic, key, value, f"{type(exc).__name__}: {exc}", position)
                return None
            except Exception as exc:
                span.record_exception(exc)
                if attempt == self.max_attempts:
                    log.exception("handler failed, dead-lettering", stage=self.subscription.name)
                    await self._give_up(
                        topic, key, value, f"{type(exc).__name__}: {exc} (after {attempt} attempts)", position
                    )
                    return None
                delay = self.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                log.warning(
                    "handler failed, retrying",
                    stage=self.subscription.name,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                    error=f"{type(exc).__name__}: {exc}",
                )
                await asyncio.sleep(delay)
        return None

    async def _give_up(self, topic: str, key: str, value: bytes, error: str, position: str) -> None:
        log.error("event dead-lettered", stage=self.subscription.name, topic=topic, error=error)
        await self.dead_letter(DeadLetter(self.subscription.name, topic, key, value, error, position))
