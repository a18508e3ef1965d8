"""Composition root of the generator service: the only place its objects are built and wired."""

from __future__ import annotations

from dataclasses import dataclass

from parley.core.bus.base import Subscription
from parley.core.grpc import ServiceRegistration
from parley.core.lifecycle import serve_service
from parley.core.logging import configure_logging, get_logger
from parley.core.project import Project, load_project
from parley.core.telemetry import setup_tracing
from parley.generator.adapters.grpc import GeneratorServicer
from parley.generator.adapters.stage import GeneratorStage
from parley.generator.domain.templates import TemplateRenderer
from parley.generator.settings import GeneratorSettings
from parley.generator.v1 import generator_pb2_grpc

log = get_logger(__name__)

SERVICE_NAME = "parley.generator.v1.GeneratorService"


@dataclass(frozen=True)
class GeneratorService:
    """The wired generator: its gRPC face, its stage, and the renderer behind them."""

    renderer: TemplateRenderer
    servicer: GeneratorServicer
    registration: ServiceRegistration
    subscriptions: list[Subscription]


def build_generator(settings: GeneratorSettings, project: Project | None = None) -> GeneratorService:
    """Wire the generator; loads the project from ``settings.project_dir`` unless one is given. Raises
    :class:`~parley.generator.domain.templates.TemplateError` for an unsafe template."""
    project = project if project is not None else load_project(settings.project_dir)
    renderer = TemplateRenderer(project.responses)
    servicer = GeneratorServicer(renderer)
    return GeneratorService(
        renderer=renderer,
        servicer=servicer,
        registration=ServiceRegistration(
            generator_pb2_grpc.add_GeneratorServiceServicer_to_server, servicer, SERVICE_NAME
        ),
        subscriptions=[GeneratorStage(renderer).subscription()],
    )


async def serve(settings: GeneratorSettings | None = None) -> None:
    """Run the generator as its own process: Kafka stage + gRPC server, until SIGTERM/SIGINT."""
    settings = settings or GeneratorSettings()
    configure_logging(settings.log, service="generator")
    setup_tracing("generator", settings.telemetry)
    service = build_generator(settings)
    await serve_service(
        "generator", settings, service.registration, service.subscriptions, project=str(settings.project_dir)
    )
