"""Payload messages ("/intent" and '/intent{"entity": "value"}') bypass the model."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from parley.nlu.domain.extractors import SynonymMapper
from parley.nlu.domain.parser import PAYLOAD_EXTRACTOR, ParseInput, Parser, ParserConfig
from parley.nlu.domain.resolution import EntityResolver

WEDNESDAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@dataclass
class _Prediction:
    intent_probs: dict[str, float]
    tags: list = field(default_factory=list)


class RecordingModel:
    """An IntentModel (our own port) that always says ``greet`` and records what it was asked."""

    intents = ("greet", "book_flight", "affirm", "order.cancel")
    version = "fake-1"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict(self, texts: Sequence[str]) -> list[_Prediction]:
        self.calls.append(list(texts))
        return [_Prediction({"greet": 0.9, "book_flight": 0.05, "affirm": 0.05}) for _ in texts]


@pytest.fixture
def model() -> RecordingModel:
    return RecordingModel()


@pytest.fixture
def parser(model) -> Parser:
    synonyms = {"city": SynonymMapper({"New York": ["NYC"]})}
    return Parser(model=model, config=ParserConfig(), synonyms=synonyms, resolver=EntityResolver(synonyms))


def test_a_bare_payload_is_the_intent_with_full_confidence(parser, model):
    result = parser.parse("/affirm")
    assert (result.intent.name, result.intent.confidence) == ("affirm", 1.0)
    assert [i.name for i in result.intents] == ["affirm"]
    assert [i.name for i in result.ranking] == ["affirm"]
    assert not result.out_of_scope and not result.requires_clarification
    assert list(result.entities) == []
    assert result.model_version == "fake-1"
    assert model.calls == []  # the model was never asked


def test_payload_entities_are_given_values_resolved_like_any_other(parser):
    text = '/book_flight{"destination": "NYC", "date": "next Friday", "passengers": 2}'
    result = parser.parse(ParseInput(text, WEDNESDAY, "Europe/Berlin"))
    assert result.intent.name == "book_flight"
    got = {e.type: e for e in result.entities}
    assert got["destination"].value == "NYC"  # no synonyms declared for this type
    assert got["date"].value in {"2026-11-27", "2026-12-04"}
    assert got["date"].resolved["kind"] == "date"
    assert got["passengers"].value == "2"
    for entity in result.entities:
        assert entity.extractor == PAYLOAD_EXTRACTOR and entity.confidence == 1.0
        assert text[entity.start : entity.end] == entity.text


def test_payload_values_go_through_synonyms_and_lists_give_one_entity_each(parser):
    result = parser.parse('/book_flight{"city": ["NYC", "Paris"]}')
    assert [(e.type, e.value) for e in result.entities] == [("city", "New York"), ("city", "Paris")]


def test_hierarchical_intents_keep_their_parent(parser):
    result = parser.parse("/order.cancel")
    assert (result.intent.name, result.intent.parent) == ("order.cancel", "order")


@pytest.mark.parametrize(
    "text",
    [
        "/unknown_intent",  # not an intent of the model
        "/affirm{not json}",
        '/affirm["a list"]',
        '/affirm{"x": {"nested": 1}}',
        "please /affirm",
        "/etc/passwd",
    ],
)
def test_anything_else_is_parsed_as_text(parser, model, text):
    result = parser.parse(text)
    assert result.intent.name == "greet"
    assert model.calls == [[text]]


def test_a_batch_mixes_payloads_and_text_in_order(parser, model):
    results = parser.parse_batch(["hello", "/affirm", "hi there", '/greet{"city": "Rome"}'])
    assert [r.text for r in results] == ["hello", "/affirm", "hi there", '/greet{"city": "Rome"}']
    assert [r.intent.name for r in results] == ["greet", "affirm", "greet", "greet"]
    assert results[3].intent.confidence == 1.0
    assert model.calls == [["hello", "hi there"]]
