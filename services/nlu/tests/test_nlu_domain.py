"""Domain logic without the real encoder: training data, entities, the head, the parser, limits."""

import numpy as np
import pytest

from parley.core.errors import InvalidInputError
from parley.nlu.domain.classifier import HeadConfig, IntentClassifier
from parley.nlu.domain.extractors import RegexExtractor
from parley.nlu.domain.head_model import HeadModel
from parley.nlu.domain.limits import MAX_BATCH, MAX_TEXT_CHARS, validate_batch_size, validate_text
from parley.nlu.domain.parser import FALLBACK_INTENT, Parser, ParserConfig
from parley.nlu.domain.training_data import TrainingData

from .conftest import FakeEncoder, assert_same_results

ORDER_ID = r"(?<![\d])#?(\d{5,10})(?![\d])"


def test_training_data_lists_every_example_with_sorted_intents(example_project):
    data = TrainingData.from_project(example_project)
    assert data.intents == tuple(sorted(example_project.nlu.intents))
    assert (
        len(data.texts)
        == len(data.labels)
        == sum(len(spec.examples) for spec in example_project.nlu.intents.values())
    )
    i = data.texts.index("When will it arrive?")
    assert data.intents[data.labels[i]] == "delivery_question"


def test_regex_value_is_group_one_and_span_is_the_whole_match():
    extractor = RegexExtractor({"order_id": ORDER_ID})
    [entity] = extractor.extract("it is order #88231, thanks")
    assert (entity.type, entity.value, entity.text) == ("order_id", "88231", "#88231")
    assert "it is order #88231, thanks"[entity.start : entity.end] == "#88231"
    assert (entity.extractor, entity.confidence) == ("regex", pytest.approx(1.0))


def test_regex_without_group_takes_the_whole_match_and_results_are_in_text_order():
    extractor = RegexExtractor({"zip": r"\b\d{4}[A-Z]{2}\b", "order_id": ORDER_ID})
    text = "ship 1234AB to 5678CD, order 123456"
    found = [(e.type, e.value, e.start, e.end) for e in extractor.extract(text)]
    assert found == [("zip", "1234AB", 5, 11), ("zip", "5678CD", 15, 21), ("order_id", "123456", 29, 35)]


def test_regex_ignores_numbers_of_the_wrong_length():
    extractor = RegexExtractor({"order_id": ORDER_ID})
    assert extractor.extract("call 1234 or 12345678901") == []


def test_extractor_from_project_uses_its_entities(example_project):
    assert RegexExtractor.from_project(example_project).entity_types == ("order_id",)


def _clusters(seed: int = 0, per_class: int = 12):
    """Three well separated directions in 8-d with some noise."""
    rng = np.random.default_rng(seed)
    centers = np.eye(8, dtype=np.float32)[:3]
    x = np.concatenate([c + 0.15 * rng.standard_normal((per_class, 8)) for c in centers]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = [k for k in range(3) for _ in range(per_class)]
    return x, y


def test_head_learns_separable_intents_deterministically():
    x, y = _clusters()
    a = IntentClassifier.fit(x, y, ["a", "b", "c"], HeadConfig(epochs=60))
    b = IntentClassifier.fit(x, y, ["a", "b", "c"], HeadConfig(epochs=60))
    assert a.accuracy(x, y) == 1.0
    for key, value in a.state_dict().items():
        assert np.array_equal(value.numpy(), b.state_dict()[key].numpy())
    probs = a.predict(x)
    assert probs.shape == (len(y), 3)
    assert np.all(probs.sum(axis=1) <= 1.0 + 1e-6)
    assert probs.max(axis=1).min() > 0.7


def test_head_gives_low_confidence_far_from_every_intent():
    x, y = _clusters()
    clf = IntentClassifier.fit(x, y, ["a", "b", "c"], HeadConfig(epochs=60))
    far = np.zeros((1, 8), dtype=np.float32)
    far[0, 7] = 1.0  # orthogonal to every cluster
    assert clf.predict(far).max() < 0.2
    assert clf.predict(x[:1]).max() > 0.7


def test_head_state_round_trip_predicts_the_same():
    x, y = _clusters()
    clf = IntentClassifier.fit(x, y, ["a", "b", "c"], HeadConfig(epochs=30))
    again = IntentClassifier.from_state(clf.intents, clf.state_dict(), clf.config)
    assert np.array_equal(clf.predict(x), again.predict(x))


def test_head_refuses_an_intent_without_examples():
    x, y = _clusters()
    with pytest.raises(ValueError, match="without examples"):
        IntentClassifier.fit(x, y, ["a", "b", "c", "d"])


def _fake_parser(threshold: float = 0.5):
    x, y = _clusters()
    clf = IntentClassifier.fit(x, y, ["a", "b", "c"], HeadConfig(epochs=60))
    far = [0, 0, 0, 0, 0, 0, 0, 1]
    encoder = FakeEncoder({"first": x[0], "second": x[15], "order 12345": x[30]}, default=far)
    parser = Parser(
        model=HeadModel(encoder, clf, "v-test"),
        config=ParserConfig(fallback_threshold=threshold),
        regex=RegexExtractor({"order_id": ORDER_ID}),
    )
    return parser, encoder


def test_parser_ranks_best_first_and_falls_back_below_the_threshold():
    parser, _ = _fake_parser()
    result = parser.parse("first")
    assert result.intent.name == "a"
    assert result.model_version == "v-test"
    confidences = [i.confidence for i in result.ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert {i.name for i in result.ranking} == {"a", "b", "c"}

    unknown = parser.parse("something else entirely")
    assert unknown.intent.name == FALLBACK_INTENT
    assert unknown.intent.confidence == pytest.approx(unknown.ranking[0].confidence)
    assert unknown.intent.confidence < 0.5


def test_parser_threshold_zero_never_falls_back():
    parser, _ = _fake_parser(threshold=0.0)
    assert parser.parse("something else entirely").intent.name != FALLBACK_INTENT


def test_parser_batch_encodes_once_and_matches_singles():
    parser, encoder = _fake_parser()
    texts = ["first", "order 12345", "second", "unknown"]
    batch = parser.parse_batch(texts)
    assert encoder.calls == [texts]  # one encoder call (no text here has several clauses)
    assert [r.text for r in batch] == texts
    assert_same_results(batch, [parser.parse(t) for t in texts])
    assert [(e.value, e.start, e.end) for e in batch[1].entities] == [("12345", 6, 11)]
    assert parser.parse_batch([]) == []


def test_parser_rejects_an_encoder_of_another_dimension():
    x, y = _clusters()
    clf = IntentClassifier.fit(x, y, ["a", "b", "c"], HeadConfig(epochs=5))
    with pytest.raises(ValueError, match="expects 8"):
        HeadModel(FakeEncoder({}, default=[1, 0, 0]), clf, "v")


def test_limits_reject_empty_blank_and_oversize_text():
    validate_text("x")
    validate_text("x" * MAX_TEXT_CHARS)
    for bad, match in [("", "must not be empty"), ("  \n", "must not be empty"), ("x" * 4097, "too long")]:
        with pytest.raises(InvalidInputError, match=match):
            validate_text(bad)
    validate_batch_size(1)
    validate_batch_size(MAX_BATCH)
    for size in (0, MAX_BATCH + 1):
        with pytest.raises(InvalidInputError, match="requests"):
            validate_batch_size(size)
