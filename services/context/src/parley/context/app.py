"""Composition root of the context service: the only place its objects are built and wired."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from parley.context.adapters.grpc import SERVICE_NAME, ContextServicer
from parley.context.adapters.postgres import PostgresStore
from parley.context.adapters.stage import ContextStage
from parley.context.assembler import ContextAssembler
from parley.context.domain.embedding import HashedEmbedder
from parley.context.domain.references import ReferenceResolver
from parley.context.domain.summary import ExtractiveSummariser
from parley.context.settings import ContextSettings
from parley.context.v1 import context_pb2_grpc
from parley.core.bus.base import Subscription
from parley.core.bus.kafka import KafkaBus
from parley.core.db import apply_migrations, create_pool, load_migrations
from parley.core.errors import ConfigurationError
from parley.core.grpc import GrpcServer, ServiceRegistration
from parley.core.lifecycle import run_until_signal
from parley.core.logging import configure_logging, get_logger
from parley.core.telemetry import setup_tracing
from parley.core.temporal import TemporalFinder

log = get_logger(__name__)

COMPONENT = "context"


@dataclass
class ContextService:
    """The built service: its store, gRPC servicer (and registration) and its stage's subscription."""

    store: PostgresStore
    servicer: ContextServicer
    registration: ServiceRegistration
    subscriptions: list[Subscription]
    stage: ContextStage
    assembler: ContextAssembler
    settings: ContextSettings

    async def purge_expired(self) -> int:
        """Apply the retention setting once; returns the rows deleted (0 when retention is off)."""
        if self.settings.retention_days is None:
            return 0
        cutoff = datetime.now(UTC) - timedelta(days=self.settings.retention_days)
        deleted = await self.store.purge_expired(cutoff)
        if deleted:
            log.info("retention purge", deleted=deleted, older_than=cutoff.isoformat())
        return deleted

    async def run_retention(self) -> None:
        """Purge expired history every ``purge_interval_s`` until cancelled (no-op when retention is off)."""
        if self.settings.retention_days is None:
            return
        while True:
            try:
                await self.purge_expired()
            except Exception:  # a failed purge is retried next interval; it must not stop the service
                log.exception("retention purge failed")
            await asyncio.sleep(self.settings.purge_interval_s)


async def migrate(pool: asyncpg.Pool) -> list[int]:
    """Apply the context schema migrations not applied yet; returns the versions applied now."""
    return await apply_migrations(pool, COMPONENT, load_migrations("parley.context.migrations", "."))


async def build_context(settings: ContextSettings, pool: asyncpg.Pool) -> ContextService:
    """Migrate the database behind ``pool`` and wire the service on it (the pool stays the caller's)."""
    await migrate(pool)
    store = PostgresStore(pool)
    embedder = HashedEmbedder()
    assembler = ContextAssembler(
        store, embedder, ExtractiveSummariser(settings.summary_token_budget), settings
    )
    servicer = ContextServicer(store, embedder, assembler)
    # Load dateparser's data now, not on the first message that needs its fallback.
    temporal = TemporalFinder()
    await asyncio.to_thread(temporal.warm)
    stage = ContextStage(store, assembler, ReferenceResolver(embedder=embedder, temporal=temporal))
    return ContextService(
        store=store,
        servicer=servicer,
        registration=ServiceRegistration(
            context_pb2_grpc.add_ContextServiceServicer_to_server, servicer, SERVICE_NAME
        ),
        subscriptions=[stage.subscription()],
        stage=stage,
        assembler=assembler,
        settings=settings,
    )


async def serve(settings: ContextSettings | None = None) -> None:
    """Run the context service as its own process: gRPC server plus the Kafka stage, until SIGTERM."""
    settings = settings or ContextSettings()
    configure_logging(settings.log, service=COMPONENT)
    setup_tracing(COMPONENT, settings.telemetry)
    if settings.database.url is None:
        raise ConfigurationError(
            "the context service needs PostgreSQL: set PARLEY_DATABASE_URL "
            "(e.g. postgresql://user:password@host:5432/parley)"
        )
    pool = await create_pool(settings.database.url, settings.database)
    try:
        service = await build_context(settings, pool)
    except BaseException:
        await pool.close()
        raise
    bus = KafkaBus(settings.kafka)
    for subscription in service.subscriptions:
        bus.subscribe(subscription)
    server = GrpcServer([service.registration], host=settings.grpc_host, port=settings.grpc_port)

    retention: list[asyncio.Task[None]] = []

    async def start() -> None:
        await server.start()
        await bus.start()
        retention.append(asyncio.create_task(service.run_retention(), name="context-retention"))

    async def stop() -> None:
        # Stop taking events, drain gRPC calls, then release the database they used.
        try:
            for task in retention:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await bus.stop()
            await server.stop(settings.shutdown_grace_s)
        finally:
            await pool.close()

    await run_until_signal(start, stop)
