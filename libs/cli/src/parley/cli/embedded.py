"""The embedded default: all five services in one process, wired with an in-process bus.

Same domain objects and servicers as the distributed mode; only the wiring differs: the bus is
:class:`~parley.core.bus.InMemoryBus` (same keyed ordering), services call each other's servicers
in-process, and PostgreSQL is the embedded server unless ``PARLEY_DATABASE_URL`` names one.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from parley.context.app import ContextService, build_context
from parley.context.settings import ContextSettings
from parley.core.bus import InMemoryBus
from parley.core.context_client import ContextClient
from parley.core.db import create_pool, embedded_database_url
from parley.core.grpc import GrpcServer
from parley.core.logging import get_logger
from parley.core.project import load_project
from parley.core.settings import ServiceSettings
from parley.dialog.app import build_dialog
from parley.dialog.settings import DialogSettings
from parley.gateway.app import GatewayServer
from parley.gateway.settings import GatewaySettings
from parley.generator.app import GeneratorService, build_generator
from parley.generator.settings import GeneratorSettings
from parley.nlu.app import build_nlu
from parley.nlu.settings import NluSettings

log = get_logger(__name__)


class EmbeddedSettings(ServiceSettings):
    """Settings of the one-process mode (``PARLEY_EMBEDDED_*``); the services keep their own."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_EMBEDDED_", env_ignore_empty=True, extra="ignore")

    grpc_port: int = Field(default=50050, ge=0, le=65535, description="one gRPC port for all inner services")
    data_dir: Path = Field(default=Path(".local/embedded"), description="embedded PostgreSQL and models")


@dataclass
class EmbeddedStack:
    """Everything of one assistant in this process."""

    project_dir: Path
    settings: EmbeddedSettings = field(default_factory=EmbeddedSettings)
    gateway_settings: GatewaySettings = field(default_factory=GatewaySettings)
    generator_settings: GeneratorSettings = field(default_factory=GeneratorSettings)
    database_url: str | None = None
    bus: InMemoryBus = field(default_factory=InMemoryBus)
    pool: asyncpg.Pool | None = None
    context: ContextService | None = None
    gateway: GatewayServer | None = None
    grpc: GrpcServer | None = None
    _retention: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _generator: GeneratorService | None = field(default=None, init=False, repr=False)

    async def start(self) -> None:
        """Start PostgreSQL (embedded unless a URL is set), build every service, serve HTTP and gRPC."""
        project = load_project(self.project_dir)
        url = self.database_url or self.settings.database.url
        if url is None:
            log.info("starting the embedded PostgreSQL", data_dir=str(self.settings.data_dir / "postgres"))
            url = await asyncio.to_thread(embedded_database_url, self.settings.data_dir / "postgres")
        self.pool = await create_pool(url, self.settings.database)
        self.context = await build_context(ContextSettings(), self.pool)
        self._retention = asyncio.create_task(self.context.run_retention(), name="context-retention")
        context_client = ContextClient.in_process(self.context.servicer)
        nlu_settings = NluSettings()
        if "model_dir" not in nlu_settings.model_fields_set:
            nlu_settings = nlu_settings.model_copy(update={"model_dir": self.settings.data_dir / "models"})
        log.info("loading the NLU model (trained on first start)", project=str(self.project_dir))
        nlu = await asyncio.to_thread(build_nlu, nlu_settings, project)
        dialog = build_dialog(DialogSettings(), context_client, project)
        generator = self._generator = build_generator(
            self.generator_settings, project, publish=self.bus.publish, profiles=context_client
        )
        for service in (self.context, nlu, dialog, generator):
            for subscription in service.subscriptions:
                self.bus.subscribe(subscription)
        self.grpc = GrpcServer(
            [s.registration for s in (self.context, nlu, dialog, generator)],
            self.settings.grpc_host,
            self.settings.grpc_port,
        )
        await self.grpc.start()
        self.gateway = GatewayServer(self.gateway_settings, self.bus, context_client)
        await self.gateway.start()

    @property
    def url(self) -> str:
        """Base URL of the gateway's HTTP API."""
        assert self.gateway is not None
        return f"http://{self.gateway_settings.http_host}:{self.gateway.http_port}"

    async def stop(self) -> None:
        """Stop taking requests, drain, close the database pool."""
        if self.gateway is not None:
            await self.gateway.stop()
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        if self.grpc is not None:
            await self.grpc.stop(1.0)
        await self.bus.stop()
        if self._generator is not None:
            await self._generator.aclose()  # its language-model clients, when one is configured
        if self.pool is not None:
            await self.pool.close()
