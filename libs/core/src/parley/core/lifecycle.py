"""Running a service until SIGTERM/SIGINT, then stopping it gracefully."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from parley.core.logging import get_logger

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
