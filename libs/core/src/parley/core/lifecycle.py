"""Running a service until SIGTERM/SIGINT, then stopping it gracefully."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from parley.core.logging import get_logger

if TYPE_CHECKING:
    from parley.core.bus.base import EventBus, Subscription
    from parley.core.grpc import ServiceRegistration
    from parley.core.settings import ServiceSettings

log = get_logger(__name__)


async def run_until_signal(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
    """Run ``start``, wait for SIGTERM or SIGINT, then run ``stop`` (which drains in-flight work)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await start()
        await stopping.wait()
        log.info("shutting down")
    finally:
        await stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def serve_service(
    name: str,
    settings: ServiceSettings,
    registration: ServiceRegistration,
    subscriptions: Sequence[Subscription],
    bus: EventBus | None = None,
    **ready_info: object,
) -> None:
    """Run one service as its own process: its Kafka stage(s) and gRPC server, until SIGTERM/SIGINT.

    ``bus``: the Kafka bus, when the service's handlers need it to publish on their own (else one is made).

    Stops in the safe order: the gRPC server drains in-flight calls first, then the bus stops consuming.
    """
    from parley.core.bus.kafka import KafkaBus  # noqa: PLC0415 - the distributed wiring only
    from parley.core.grpc import GrpcServer  # noqa: PLC0415

    bus = bus if bus is not None else KafkaBus(settings.kafka)
    for subscription in subscriptions:
        bus.subscribe(subscription)
    server = GrpcServer([registration], host=settings.grpc_host, port=settings.grpc_port)

    async def start() -> None:
        await bus.start()
        await server.start()
        log.info(f"{name} ready", **ready_info)

    async def stop() -> None:
        await server.stop(settings.shutdown_grace_s)
        await bus.stop()

    await run_until_signal(start, stop)
