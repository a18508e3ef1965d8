"""The hashed n-gram embedder: deterministic, normalised, and lexically (not semantically) similar."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from parley.context.domain.embedding import DIMENSIONS, HashedEmbedder, cosine, feature_cosine
from parley.core.errors import InvalidInputError


@pytest.fixture(scope="module")
def embedder() -> HashedEmbedder:
    return HashedEmbedder()


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


@pytest.mark.parametrize("text", ["prefers window seats", "Order 12345 arrived late!", "ünïcödé straße", "x"])
def test_vectors_have_the_stored_size_and_unit_length(embedder: HashedEmbedder, text: str) -> None:
    vector = embedder.embed(text)
    assert len(vector) == DIMENSIONS == 256
    assert _norm(vector) == pytest.approx(1.0)


@pytest.mark.parametrize("text", ["", "   ", "?!", "the and of it is"])
def test_text_without_features_embeds_to_zero_and_is_similar_to_nothing(
    embedder: HashedEmbedder, text: str
) -> None:
    vector = embedder.embed(text)
    assert vector == [0.0] * DIMENSIONS
    assert cosine(vector, embedder.embed("window seat")) == 0.0


def test_same_text_same_vector_across_instances_and_processes(embedder: HashedEmbedder) -> None:
    """Replicas must agree (the vectors are stored); Python's salted hash() would not."""
    text = "The customer prefers window seats"
    assert HashedEmbedder().embed(text) == embedder.embed(text)
    script = (
        "import json, sys; from parley.context.domain.embedding import HashedEmbedder; "
        "print(json.dumps(HashedEmbedder().embed(sys.argv[1])))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script, text], capture_output=True, text=True, check=True, env=env
    )
    assert json.loads(out.stdout) == pytest.approx(embedder.embed(text), abs=1e-12)


def test_lowercased(embedder: HashedEmbedder) -> None:
    assert embedder.embed("WINDOW Seat") == embedder.embed("window seat")


def test_related_wording_scores_above_unrelated(embedder: HashedEmbedder) -> None:
    memory = embedder.embed("prefers window seats on long flights")
    related = cosine(memory, embedder.embed("which seat do I prefer on a flight?"))
    unrelated = cosine(memory, embedder.embed("my parcel 12345 was damaged"))
    assert related > 0.3
    assert related > unrelated + 0.2


def test_character_trigrams_connect_inflections(embedder: HashedEmbedder) -> None:
    """ "seats" and "seat" share no word but most of their 3-grams."""
    assert cosine(embedder.embed("seats"), embedder.embed("seat")) > 0.3
    assert cosine(embedder.embed("delivery"), embedder.embed("delivered")) > 0.4
    assert cosine(embedder.embed("seats"), embedder.embed("refund")) < 0.1


def test_lexical_not_semantic(embedder: HashedEmbedder) -> None:
    """The documented limit: synonyms without shared letters look unrelated."""
    assert cosine(embedder.embed("parcel"), embedder.embed("package")) < 0.3


def test_repetition_is_damped(embedder: HashedEmbedder) -> None:
    """With raw counts ten "refund"s would drown "shoes" (cosine about 0.1); 1 + log(tf) keeps it visible."""
    repeated = embedder.embed("refund " * 10 + "shoes")
    assert cosine(repeated, embedder.embed("shoes")) > 0.2


def test_embed_many_keeps_order(embedder: HashedEmbedder) -> None:
    texts = ["a window seat", "an aisle seat"]
    assert embedder.embed_many(texts) == [embedder.embed(t) for t in texts]


def test_other_sizes() -> None:
    vector = HashedEmbedder(dimensions=32).embed("window seat")
    assert len(vector) == 32
    assert _norm(vector) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dimensions": 1}, "dimensions"),
        ({"char_ngram": 0}, "char_ngram"),
        ({"char_weight": -0.5}, "char_weight"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        HashedEmbedder(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1.0, 0.0], [1.0, 0.0], 1.0),
        ([1.0, 0.0], [-2.0, 0.0], -1.0),
        ([1.0, 0.0], [0.0, 3.0], 0.0),
        ([3.0, 4.0], [4.0, 3.0], 24 / 25),
        ([0.0, 0.0], [1.0, 1.0], 0.0),
    ],
)
def test_cosine(a: list[float], b: list[float], expected: float) -> None:
    assert cosine(a, b) == pytest.approx(expected)


def test_cosine_of_different_lengths_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="length"):
        cosine([1.0, 0.0], [1.0, 0.0, 0.0])


def test_features_give_the_exact_similarity_the_vectors_approximate(embedder: HashedEmbedder) -> None:
    a, b = "prefers window seats on long flights", "which seat do I prefer on a flight?"
    exact = feature_cosine(embedder.features(a), embedder.features(b))
    assert exact == pytest.approx(cosine(embedder.embed(a), embedder.embed(b)), abs=0.15)
    assert feature_cosine(embedder.features(a), embedder.features(a)) == pytest.approx(1.0)
    assert set(embedder.features("Seats")) >= {"w:seats", "c:<se", "c:ts>"}


def test_unrelated_texts_have_no_shared_features(embedder: HashedEmbedder) -> None:
    """Hashing adds noise between unrelated texts; the unhashed features do not."""
    a, b = "tell me a joke about penguins", "order 12345 was shipped yesterday"
    assert feature_cosine(embedder.features(a), embedder.features(b)) == 0.0
    assert embedder.features("") == {}


def test_the_domain_loads_no_numeric_or_model_stack() -> None:
    """The context service runs no model: its domain must not pull numpy, torch or transformers in."""
    script = (
        "import sys; from datetime import UTC, datetime; "
        "from parley.context.domain import embedding, memory, references, summary; "
        "references.ReferenceResolver().resolve('When will it arrive tomorrow?', recent=[], entities=[], "
        "reference_time=datetime.now(UTC), timezone='Europe/Berlin'); "
        "embedding.HashedEmbedder().embed('window seat'); "
        "print(sorted(m for m in ('numpy', 'torch', 'transformers', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
