"""Shared NLU fixtures: the example project, one real encoder and one trained model per test session."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from parley.core.project import Project, load_project
from parley.nlu.adapters.encoder import TransformerEncoder
from parley.nlu.domain.parser import Parser
from parley.nlu.training import LoadedModel, build_parser, load_or_train

EXAMPLE_PROJECT = Path(__file__).resolve().parents[3] / "examples" / "order-support"


class FakeEncoder:
    """An Encoder (our own port) whose embeddings are given per text; unknown texts map to ``default``."""

    name = "fake-encoder"

    def __init__(self, vectors: dict[str, Sequence[float]], default: Sequence[float]) -> None:
        self._vectors = {k: np.asarray(v, dtype=np.float32) for k, v in vectors.items()}
        self._default = np.asarray(default, dtype=np.float32)
        self.calls: list[list[str]] = []

    @property
    def dimension(self) -> int:
        return int(self._default.shape[0])

    def encode(self, texts):
        self.calls.append(list(texts))
        rows = [self._vectors.get(t, self._default) for t in texts]
        out = np.stack(rows) if rows else np.zeros((0, self.dimension), dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-9)


@pytest.fixture(scope="session")
def example_project() -> Project:
    return load_project(EXAMPLE_PROJECT)


@pytest.fixture(scope="session")
def encoder() -> TransformerEncoder:
    return TransformerEncoder(device="cpu")


@pytest.fixture(scope="session")
def session_model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nlu-models")


@pytest.fixture(scope="session")
def trained(example_project, session_model_dir, encoder) -> LoadedModel:
    return load_or_train(example_project, session_model_dir, encoder, progress=False)


@pytest.fixture(scope="session")
def parser(example_project, trained, encoder) -> Parser:
    return build_parser(example_project, trained, encoder)


def assert_same_results(actual, expected, tolerance: float = 1e-4) -> None:
    """Parse results equal up to float noise (batched matrix products round differently)."""
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert (a.text, a.intent.name, a.model_version) == (e.text, e.intent.name, e.model_version)
        assert a.intent.confidence == pytest.approx(e.intent.confidence, abs=tolerance)
        expected_ranking = {i.name: pytest.approx(i.confidence, abs=tolerance) for i in e.ranking}
        assert {i.name: i.confidence for i in a.ranking} == expected_ranking
        assert list(a.entities) == list(e.entities)
