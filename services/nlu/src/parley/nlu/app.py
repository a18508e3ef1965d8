"""Composition root of the NLU service: the only place its objects are built and wired."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from parley.core.bus.base import Subscription
from parley.core.grpc import ServiceRegistration
from parley.core.lifecycle import serve_service
from parley.core.logging import configure_logging, get_logger
from parley.core.project import Project, load_project
from parley.core.telemetry import setup_tracing
from parley.nlu.adapters.batching import MicroBatcher
from parley.nlu.adapters.grpc import NluServicer
from parley.nlu.adapters.stage import NluStage
from parley.nlu.domain.parser import Parser
from parley.nlu.pipeline import build_parser, load_or_train_joint, train_joint_model
from parley.nlu.settings import NluSettings
from parley.nlu.v1 import nlu_pb2_grpc

if TYPE_CHECKING:
    from parley.nlu.adapters.encoder import TransformerEncoder

log = get_logger(__name__)

SERVICE_NAME = "parley.nlu.v1.NluService"


@dataclass
class NluService:
    """The wired NLU: its servicer (gRPC or in-process), its stage, and the model it runs."""

    servicer: NluServicer
    registration: ServiceRegistration
    subscriptions: list[Subscription]
    parser: Parser
    model_version: str


def _encoder(settings: NluSettings) -> TransformerEncoder:
    from parley.nlu.adapters.encoder import TransformerEncoder  # noqa: PLC0415 - imports torch

    return TransformerEncoder(
        device=settings.device, num_threads=settings.num_threads, batch_size=settings.batch_size
    )


def build_nlu(settings: NluSettings, project: Project | None = None) -> NluService:
    """Load the encoder and the project's model (training it if none matches), and wire the service.

    Blocking (seconds on a first start): call it from a thread when an event loop is running.
    """
    project = project or load_project(settings.project_dir)
    if settings.model == "joint":
        predictor = load_or_train_joint(
            project, settings.model_dir, device=settings.device, num_threads=settings.num_threads
        )
        parser = build_parser(project, predictor)
    else:
        from parley.nlu import training  # noqa: PLC0415 - torch and transformers, for the head only

        encoder = _encoder(settings)
        parser = training.build_parser(
            project, training.load_or_train(project, settings.model_dir, encoder), encoder
        )
    batcher = MicroBatcher(parser.parse_batch, settings.batch_size, settings.batch_wait_ms / 1000)
    servicer = NluServicer(parser, batcher)
    return NluService(
        servicer=servicer,
        registration=ServiceRegistration(
            nlu_pb2_grpc.add_NluServiceServicer_to_server, servicer, SERVICE_NAME
        ),
        subscriptions=[NluStage(parser, batcher).subscription()],
        parser=parser,
        model_version=parser.model_version,
    )


def train_command(project_dir: Path, output_dir: Path, settings: NluSettings | None = None) -> Path:
    """``parley train``: train the project's NLU model into a new folder under ``output_dir``; return it."""
    settings = settings or NluSettings()
    project = load_project(project_dir)
    if settings.model == "joint":
        return train_joint_model(
            project, output_dir, device=settings.device, num_threads=settings.num_threads
        )
    from parley.nlu import training  # noqa: PLC0415 - torch and transformers, for the head only

    return training.train(project, output_dir, _encoder(settings)).path


async def serve(settings: NluSettings | None = None) -> None:
    """Run the NLU as its own process: gRPC server plus the Kafka stage, until SIGTERM/SIGINT."""
    settings = settings or NluSettings()
    configure_logging(settings.log, service="nlu")
    setup_tracing("nlu", settings.telemetry)
    service = await asyncio.to_thread(build_nlu, settings)
    await serve_service(
        "nlu",
        settings,
        service.registration,
        service.subscriptions,
        model_version=service.model_version,
        intents=len(service.parser.intents),
    )
