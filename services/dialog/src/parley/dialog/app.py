"""Composition root of the dialog service: the only place its objects are built and wired."""

from __future__ import annotations

from dataclasses import dataclass

from parley.core.bus.base import Subscription
from parley.core.context_client import ContextClient
from parley.core.grpc import ServiceRegistration
from parley.core.lifecycle import serve_service
from parley.core.logging import configure_logging, get_logger
from parley.core.project import Project, load_project
from parley.core.telemetry import setup_tracing
from parley.core.tools import ToolRegistry
from parley.dialog.adapters.grpc import DialogServicer
from parley.dialog.adapters.stage import DialogStage
from parley.dialog.domain.engine import Engine
from parley.dialog.domain.manager import DialogManager
from parley.dialog.ports import StateStore, ToolRunner
from parley.dialog.settings import DialogSettings
from parley.dialog.v1 import dialog_pb2_grpc

log = get_logger(__name__)

SERVICE_NAME = "parley.dialog.v1.DialogService"


@dataclass(frozen=True)
class DialogService:
    """The wired dialog: its gRPC face, its stage, and the objects behind them."""

    engine: Engine
    manager: DialogManager
    servicer: DialogServicer
    registration: ServiceRegistration
    subscriptions: list[Subscription]


def build_dialog(
    settings: DialogSettings,
    context: StateStore,
    project: Project | None = None,
    tools: ToolRunner | None = None,
) -> DialogService:
    """Wire the dialog over ``context`` (a ContextClient, in-process or remote); loads the project from
    ``settings.project_dir`` unless one is given, and runs its ``tools.yml`` unless ``tools`` is given."""
    project = project if project is not None else load_project(settings.project_dir)
    engine = Engine.from_project(project, tools if tools is not None else ToolRegistry.for_project(project))
    manager = DialogManager(
        engine, context, max_attempts=settings.state_attempts, backoff_s=settings.state_backoff_s
    )
    servicer = DialogServicer(manager)
    return DialogService(
        engine=engine,
        manager=manager,
        servicer=servicer,
        registration=ServiceRegistration(
            dialog_pb2_grpc.add_DialogServiceServicer_to_server, servicer, SERVICE_NAME
        ),
        subscriptions=[DialogStage(manager).subscription()],
    )


async def serve(settings: DialogSettings | None = None) -> None:
    """Run the dialog as its own process: Kafka stage + gRPC server, until SIGTERM/SIGINT."""
    settings = settings or DialogSettings()
    configure_logging(settings.log, service="dialog")
    setup_tracing("dialog", settings.telemetry)
    service = build_dialog(settings, ContextClient.connect(settings.context_address))
    await serve_service(
        "dialog",
        settings,
        service.registration,
        service.subscriptions,
        project=str(settings.project_dir),
        context=settings.context_address,
    )
