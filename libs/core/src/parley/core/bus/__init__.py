"""The event bus: one processing contract, two transports (Kafka for production, in-process for embedded)."""

from parley.core.bus.base import DeadLetter, EventBus, Handler, Outgoing, Subscription
from parley.core.bus.memory import InMemoryBus

__all__ = ["DeadLetter", "EventBus", "Handler", "InMemoryBus", "Outgoing", "Subscription"]
