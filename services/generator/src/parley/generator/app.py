"""Composition root of the generator service: the only place its objects are built and wired."""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.core.bus.base import Subscription
from parley.core.context_client import ContextClient
from parley.core.grpc import ServiceRegistration
from parley.core.lifecycle import serve_service
from parley.core.logging import configure_logging, get_logger
from parley.core.project import Project, load_project
from parley.core.telemetry import setup_metrics, setup_tracing
from parley.core.tools import ToolRegistry
from parley.generator.adapters.grpc import GeneratorServicer
from parley.generator.adapters.llm_factory import LlmStack, build_llm
from parley.generator.adapters.stage import CachedPreferences, GeneratorStage, ProfileSource, Publish
from parley.generator.domain.replies import ReplyService
from parley.generator.domain.templates import TemplateRenderer
from parley.generator.settings import GeneratorSettings
from parley.generator.v1 import generator_pb2_grpc

log = get_logger(__name__)

SERVICE_NAME = "parley.generator.v1.GeneratorService"


@dataclass(frozen=True)
class GeneratorService:
    """The wired generator: its gRPC face, its stage, and the reply service behind them; ``llm`` is the
    language-model path when ``settings.llm.enabled`` (release it with :meth:`aclose`)."""

    renderer: TemplateRenderer
    servicer: GeneratorServicer
    registration: ServiceRegistration
    subscriptions: list[Subscription]
    replies: ReplyService
    llm: LlmStack | None = field(default=None)

    async def aclose(self) -> None:
        """Release the LLM providers' clients and model threads (nothing to do without them)."""
        if self.llm is not None:
            await self.llm.aclose()


def build_generator(
    settings: GeneratorSettings,
    project: Project | None = None,
    *,
    publish: Publish | None = None,
    profiles: ProfileSource | None = None,
) -> GeneratorService:
    """Wire the generator; loads the project from ``settings.project_dir`` unless one is given. Raises
    :class:`~parley.generator.domain.templates.TemplateError` for an unsafe template.

    ``publish`` (the bus's) lets the stage send reply chunks while a model writes; ``profiles`` (a context
    client) gives it users' preferences. Without them replies go out whole, with default preferences.

    With ``settings.llm.enabled`` the LLM stack is built too (nothing is connected or loaded yet), with the
    project's tools unless ``settings.llm.use_tools`` is off; the caller releases it
    (:meth:`GeneratorService.aclose`).
    """
    project = project if project is not None else load_project(settings.project_dir)
    renderer = TemplateRenderer(project.responses, default_language=project.assistant.language)
    llm: LlmStack | None = None
    if settings.llm.enabled:
        tools = ToolRegistry.for_project(project) if settings.llm.use_tools else None
        llm = build_llm(settings.llm, tools=tools)
        log.info(
            "LLM replies enabled",
            providers=[p.label for p in settings.llm.providers],
            hybrid=settings.llm.hybrid,
            tools=tools.names if tools is not None else [],
        )
    replies = ReplyService(
        renderer,
        llm.responder if llm is not None else None,
        hybrid=settings.llm.hybrid,
        personality=settings.llm.personality,
    )
    servicer = GeneratorServicer(replies)
    return GeneratorService(
        renderer=renderer,
        servicer=servicer,
        registration=ServiceRegistration(
            generator_pb2_grpc.add_GeneratorServiceServicer_to_server, servicer, SERVICE_NAME
        ),
        subscriptions=[
            GeneratorStage(
                replies,
                publish=publish,
                preferences=(
                    CachedPreferences(profiles, ttl_s=settings.preferences_ttl_s) if profiles else None
                ),
            ).subscription()
        ],
        replies=replies,
        llm=llm,
    )


async def serve(settings: GeneratorSettings | None = None) -> None:
    """Run the generator as its own process: Kafka stage + gRPC server, until SIGTERM/SIGINT."""
    settings = settings or GeneratorSettings()
    configure_logging(settings.log, service="generator")
    setup_tracing("generator", settings.telemetry)
    setup_metrics("generator", settings.telemetry)
    from parley.core.bus.kafka import KafkaBus  # noqa: PLC0415 - the distributed wiring only

    bus = KafkaBus(settings.kafka)
    service = build_generator(
        settings, publish=bus.publish, profiles=ContextClient.connect(settings.context_address)
    )
    try:
        await serve_service(
            "generator",
            settings,
            service.registration,
            service.subscriptions,
            bus=bus,
            project=str(settings.project_dir),
            llm=settings.llm.enabled,
        )
    finally:
        # After serve_service's stop: the gRPC server has drained and the bus stopped consuming.
        await service.aclose()
