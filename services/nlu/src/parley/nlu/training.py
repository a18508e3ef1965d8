"""Training a project's NLU model, and finding a trained one at start (training it when there is none)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from parley.core.logging import get_logger
from parley.core.project import Project
from parley.nlu import pipeline
from parley.nlu.adapters.encoder import TransformerEncoder
from parley.nlu.adapters.model_store import ModelInfo, ModelStore
from parley.nlu.domain.classifier import HeadConfig, IntentClassifier
from parley.nlu.domain.head_model import HeadModel
from parley.nlu.domain.parser import Parser
from parley.nlu.domain.training_data import TrainingData
from parley.nlu.ports import Encoder

log = get_logger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to use, with its metadata; ``trained`` says whether it was trained just now."""

    info: ModelInfo
    classifier: IntentClassifier
    trained: bool
    seconds: float


def _train(
    project: Project, store: ModelStore, encoder: Encoder, head: HeadConfig | None, progress: bool
) -> LoadedModel:
    started = time.perf_counter()
    data = TrainingData.from_project(project)
    embeddings = encoder.encode(data.texts)
    classifier = IntentClassifier.fit(embeddings, data.labels, data.intents, head, progress=progress)
    accuracy = classifier.accuracy(embeddings, data.labels)
    seconds = time.perf_counter() - started
    info = store.save(
        classifier,
        project=project.assistant.name,
        encoder=encoder.name,
        data_hash=project.training_data_hash(),
        training_accuracy=accuracy,
        training_examples=len(data.texts),
        train_seconds=round(seconds, 3),
    )
    log.info(
        "nlu model trained",
        version=info.version,
        path=str(info.path),
        examples=len(data.texts),
        intents=len(data.intents),
        training_accuracy=round(accuracy, 4),
        train_s=round(seconds, 3),
    )
    return LoadedModel(info=info, classifier=classifier, trained=True, seconds=seconds)


def train(
    project: Project,
    output_dir: Path,
    encoder: Encoder | None = None,
    *,
    head: HeadConfig | None = None,
    progress: bool = True,
) -> ModelInfo:
    """Train the intent head on ``project``'s examples and save it in a new folder under ``output_dir``.

    Without an ``encoder`` the default one (the bundled MiniLM on CPU) is loaded for this call.
    """
    return _train(project, ModelStore(output_dir), encoder or TransformerEncoder(), head, progress).info


def load_or_train(
    project: Project,
    model_dir: Path,
    encoder: Encoder,
    *,
    head: HeadConfig | None = None,
    progress: bool = True,
) -> LoadedModel:
    """The newest model in ``model_dir`` trained on exactly this project's NLU data, else a new one.

    So a fresh machine (or edited training data) needs no separate training step: the first start trains.
    """
    store = ModelStore(model_dir)
    started = time.perf_counter()
    info = store.newest(project.training_data_hash(), encoder.name)
    if info is None or info.dimension != encoder.dimension:
        log.info("no trained nlu model matches the training data; training one", model_dir=str(model_dir))
        return _train(project, store, encoder, head, progress)
    classifier = store.load(info)
    seconds = time.perf_counter() - started
    log.info("nlu model loaded", version=info.version, path=str(info.path), load_s=round(seconds, 3))
    return LoadedModel(info=info, classifier=classifier, trained=False, seconds=seconds)


def build_parser(project: Project, model: LoadedModel, encoder: Encoder, *, warm: bool = True) -> Parser:
    """The full pipeline around a trained intent head and the encoder it was trained on."""
    return pipeline.build_parser(project, HeadModel(encoder, model.classifier, model.info.version), warm=warm)
