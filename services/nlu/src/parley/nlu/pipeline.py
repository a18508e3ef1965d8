"""Assembling the understanding pipeline around an intent model (no torch on this path).

The serving path of the fine-tuned joint model imports only ONNX Runtime and tokenizers, so a service with
a trained model starts in about a second; torch and transformers load only when a model must be trained.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from parley.core.flows import CollectStep
from parley.core.logging import get_logger
from parley.core.project import Project
from parley.nlu.adapters.language import LanguageDetector
from parley.nlu.adapters.sentiment import VaderPolarity
from parley.nlu.adapters.spelling import SpellingCorrector, vocabulary_words
from parley.nlu.domain.extractors import LookupExtractor, RegexExtractor, SynonymMapper
from parley.nlu.domain.parser import IntentModel, Parser, ParserConfig
from parley.nlu.domain.resolution import EntityResolver
from parley.nlu.domain.sentiment import SentimentAnalyzer
from parley.nlu.domain.training_data import training_examples

if TYPE_CHECKING:
    from parley.nlu.model.runtime import JointPredictor

log = get_logger(__name__)


def load_or_train_joint(
    project: Project,
    model_dir: Path,
    *,
    device: Literal["cpu", "cuda"] = "cpu",
    num_threads: int = 0,
    progress: bool = True,
) -> JointPredictor:
    """The newest fine-tuned joint model for exactly this project's data (trained now if there is none).

    Serving needs neither torch nor transformers: a saved model loads in well under a second.
    """
    from parley.nlu.model.store import JointModelInfo, JointModelStore  # noqa: PLC0415

    store = JointModelStore(model_dir / "joint")
    data_hash = project.training_data_hash()
    started = time.perf_counter()
    info = store.newest(data_hash)
    if info is None:
        log.info("no fine-tuned nlu model matches the training data; training one", model_dir=str(model_dir))
        info = JointModelInfo.read(
            train_joint_model(project, model_dir, device=device, num_threads=num_threads, progress=progress)
        )
        started = time.perf_counter()
    predictor: JointPredictor = store.load(info, device=device, num_threads=num_threads)
    log.info("nlu model loaded", version=info.version, load_s=round(time.perf_counter() - started, 3))
    return predictor


def train_joint_model(
    project: Project,
    model_dir: Path,
    *,
    device: Literal["cpu", "cuda"] = "cpu",
    num_threads: int = 0,
    progress: bool = True,
) -> Path:
    """Fine-tune a joint model on ``project`` and save it under ``model_dir/joint``; return its folder."""
    from parley.nlu.model.config import JointConfig  # noqa: PLC0415 - torch and transformers, only to train
    from parley.nlu.model.store import JointModelStore  # noqa: PLC0415
    from parley.nlu.model.train import train_joint  # noqa: PLC0415

    started = time.perf_counter()
    trained = train_joint(
        training_examples(project, include_out_of_scope=True),
        JointConfig.from_dict(
            {
                "device": device,
                "num_threads": num_threads,
                **project.assistant.nlu.training.overrides(project.root),
            }
        ),
        progress=progress,
    )
    info = JointModelStore(model_dir / "joint").save(
        trained, data_hash=project.training_data_hash(), project=project.assistant.name
    )
    log.info("nlu model trained", version=info.version, train_s=round(time.perf_counter() - started, 1))
    return info.path


def build_parser(project: Project, model: IntentModel, *, warm: bool = True) -> Parser:
    """The full understanding pipeline for ``project`` around ``model``.

    With ``warm``, the dictionaries of the spelling corrector, the date parser and the language detector
    load in a background thread (about 2 s), so the service answers health checks at once and the first
    parse waits only for what is still loading.
    """
    required = required_entities(project)
    synonyms = SynonymMapper.for_project(project)
    vocabulary = vocabulary_words(
        [
            *(example.text for example in training_examples(project, include_out_of_scope=True)),
            *(v for spec in project.nlu.entities.values() for v in (spec.lookup or ())),
            *(w for mapper in synonyms.values() for w in mapper.variants()),
        ]
    )
    parser = Parser(
        model=model,
        config=ParserConfig(
            fallback_threshold=project.assistant.nlu.fallback_threshold,
            language=project.assistant.language,
            required_entities=required,
        ),
        regex=RegexExtractor.from_project(project),
        lookup=LookupExtractor.from_project(project),
        synonyms=synonyms,
        resolver=EntityResolver.from_project(project),
        speller=SpellingCorrector(vocabulary),
        language=LanguageDetector(default_language=project.assistant.language),
        sentiment=SentimentAnalyzer(VaderPolarity()),
    )
    if warm:
        threading.Thread(target=_warm, args=(parser,), name="nlu-warm-up", daemon=True).start()
    return parser


def required_entities(project: Project) -> dict[str, tuple[str, ...]]:
    """Intent -> the entity types (or slot names, for slots no entity fills) that the flows it starts
    collect, in step order: what ``frame.missing`` lists when a message does not give them."""
    flows = project.flows
    required: dict[str, list[str]] = {}
    for flow in flows.flows.values():
        if flow.trigger is None:
            continue
        needed = [
            flows.slots[step.collect].entity or step.collect
            for step in flow.steps
            if isinstance(step, CollectStep) and step.collect in flows.slots
        ]
        for intent in flow.trigger.intents:
            found = required.setdefault(intent, [])
            found += [name for name in dict.fromkeys(needed) if name not in found]
    return {intent: tuple(names) for intent, names in required.items()}


def _warm(parser: Parser) -> None:
    started = time.perf_counter()
    for part in (parser.speller, parser.resolver, parser.language):
        load = getattr(part, "load", None) or getattr(part, "warm", None)
        if load is not None:
            load()
    parser.parse("warm up the pipeline tomorrow at 5pm")
    log.info("nlu pipeline warm", warm_s=round(time.perf_counter() - started, 3))
