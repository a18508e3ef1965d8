"""The nlu.yml training-data format: annotations, multi-intent examples, hierarchy, errors with file:line."""

import shutil
from pathlib import Path

import pytest

from parley.core.project import ProjectError, example_key, load_nlu_text, load_project
from parley.nlu.domain.training_data import (
    AnnotationError,
    EntitySpan,
    TrainingData,
    TrainingExample,
    format_annotations,
    intent_ancestors,
    parent_intent,
    parse_annotations,
    training_examples,
)

from .conftest import EXAMPLE_PROJECT

# --- the annotation grammar -----------------------------------------------------------------------------


def test_round_bracket_annotation_becomes_a_span_over_the_plain_text():
    text, spans = parse_annotations("My order number is [12345](order_id), thanks")
    assert text == "My order number is 12345, thanks"
    assert spans == (EntitySpan(19, 24, "order_id", "12345"),)
    assert text[19:24] == "12345"


def test_json_annotation_carries_value_and_role_and_offsets_follow_earlier_annotations():
    written = 'fly from [NYC]{"entity": "city", "value": "New York", "role": "origin"} to [Paris](city)'
    text, (origin, destination) = parse_annotations(written)
    assert text == "fly from NYC to Paris"
    assert origin == EntitySpan(9, 12, "city", "New York", "origin")
    assert destination == EntitySpan(16, 21, "city", "Paris")
    assert (text[origin.start : origin.end], text[destination.start : destination.end]) == ("NYC", "Paris")


def test_shorthand_value_and_json_without_value():
    assert parse_annotations("[overnight](shipping:express) please")[1] == (
        EntitySpan(0, 9, "shipping", "express"),
    )
    assert parse_annotations('to [Berlin]{"entity": "city"}')[1] == (EntitySpan(3, 9, "city", "Berlin"),)


def test_brackets_that_are_not_annotations_stay_text():
    text, spans = parse_annotations("urgent [really] order (ASAP) [12345](order_id) [")
    assert text == "urgent [really] order (ASAP) 12345 ["
    assert spans == (EntitySpan(29, 34, "order_id", "12345"),)


@pytest.mark.parametrize(
    ("written", "column", "message"),
    [
        ("order [12345](order_id", 14, "never closed"),
        ("order [12345]()", 14, "names no entity"),
        ("order [](order_id)", 7, "empty"),
        ("order [ 12345](order_id)", 7, "starts or ends with a space"),
        ('order [12345]{"entity": }', 25, "not valid JSON"),
        ('order [12345]{"value": "1"}', 14, "names no entity"),
        ('order [12345]{"entity": "order_id", "group": "1"}', 14, "unknown annotation key"),
        ('order [12345]{"entity": ""}', 14, "non-empty string"),
        ("order [12345](order id)", 14, "not an entity name"),
        ("order 12345](order_id)", 12, "without a matching"),
        ("[12345](order_id:)", 8, "empty value"),
        ("   ", 1, "empty"),
    ],
)
def test_malformed_annotations_say_where(written, column, message):
    with pytest.raises(AnnotationError, match=message) as info:
        parse_annotations(written)
    assert info.value.column == column
    assert str(info.value).startswith(f"column {column}:")


@pytest.mark.parametrize(
    "written",
    [
        "plain text",
        "My order number is [12345](order_id)",
        '[NYC]{"entity": "city", "value": "New York"} and [Paris](city)',
        '[Berlin]{"entity": "city", "role": "destination"}',
    ],
)
def test_format_is_the_inverse_of_parse(written):
    text, spans = parse_annotations(written)
    assert format_annotations(text, spans) == written
    assert parse_annotations(format_annotations(text, spans)) == (text, spans)


def test_format_rejects_overlapping_spans():
    with pytest.raises(ValueError, match="overlaps"):
        format_annotations("abcdef", [EntitySpan(0, 3, "x", "abc"), EntitySpan(2, 4, "y", "cd")])


def test_hierarchical_intent_helpers():
    assert parent_intent("order.status") == "order"
    assert parent_intent("faq.shipping.cost") == "faq.shipping"
    assert parent_intent("greet") is None
    assert intent_ancestors("faq.shipping.cost") == ("faq", "faq.shipping")
    assert intent_ancestors("greet") == ()


# --- the example project --------------------------------------------------------------------------------


def test_example_project_examples_carry_spans_multi_intents_and_out_of_scope(example_project):
    examples = training_examples(example_project, include_out_of_scope=True)
    by_text = {ex.text: ex for ex in examples}
    assert by_text["My order number is 12345"] == TrainingExample(
        "My order number is 12345", ("inform_order_id",), (EntitySpan(19, 24, "order_id", "12345"),)
    )
    hashed = by_text["order #88231"]
    assert [(hashed.text[s.start : s.end], s.value) for s in hashed.entities] == [("#88231", "88231")]
    assert by_text["please cancel order 45678 and change my delivery address"].intents == (
        "order.cancel",
        "address.update",
    )
    assert by_text["tell me a joke"].intents == ()
    assert {"order.cancel", "address.update"} <= set(example_project.nlu.intents)
    assert all(parent_intent(i) in (None, "order", "address") for i in example_project.nlu.intents)
    # The message the NLU tests probe with must stay out of the training data.
    probe = example_key("Cancel my order and also update my address")
    assert probe not in {example_key(ex.text) for ex in examples}
    # Without asking, out-of-scope examples are left out.
    assert all(ex.intents for ex in training_examples(example_project))


def test_every_order_number_in_the_example_project_is_annotated(example_project):
    """A tagger learns an unannotated id as 'no entity', so the example data annotates all of them."""
    for ex in training_examples(example_project):
        annotated = {(s.start, s.end) for s in ex.entities}
        for i, token in enumerate(ex.text.split()):
            digits = token.strip("#.,?!")
            if digits.isdigit() and len(digits) >= 5:
                assert any(ex.text[a:b].lstrip("#") == digits for a, b in annotated), (i, ex)


def test_training_data_strips_annotations_and_keeps_every_intent_of_multi_intent_examples(example_project):
    data = TrainingData.from_project(example_project)
    assert "My order number is 12345" in data.texts
    assert not any("](" in t or "]{" in t for t in data.texts)
    i = data.texts.index("where is my order and when will it get here?")
    assert data.intents[data.labels[i]] == "order_status"
    assert {data.intents[j] for j in data.label_sets[i]} == {"order_status", "delivery_question"}
    assert len(data.label_sets) == len(data.texts)
    assert "tell me a joke" in data.out_of_scope


def test_synonyms_give_canonical_values():
    nlu = load_nlu_text(
        """
intents:
  travel:
    examples:
      - 'fly to [the big apple](city)'
      - 'fly to [NYC]{"entity": "city", "value": "nyc"}'
      - 'fly to [Paris](city)'
  greet:
    examples: [hi]
entities:
  city:
    lookup: [Paris, New York]
    synonyms:
      New York: [NYC, The Big Apple]
"""
    )
    values = [s.value for ex in training_examples(nlu) for s in ex.entities]
    assert values == ["New York", "New York", "Paris"]
    assert nlu.entities["city"].lookup == ["Paris", "New York"]
    assert nlu.entities["city"].type == "text"


def test_the_old_format_still_loads(tmp_path):
    nlu = load_nlu_text(
        """
version: "1"
intents:
  a:
    examples: [hello, 12345]
  b:
    examples: [bye]
entities:
  order_id:
    regex: '(\\d{5})'
"""
    )
    assert nlu.intents["a"].examples == ["hello", "12345"]
    assert [ex.text for ex in training_examples(nlu)] == ["hello", "12345", "bye"]
    assert nlu.out_of_scope == []


def test_an_entity_declared_without_settings_is_learned_from_annotations_only():
    nlu = load_nlu_text(
        "intents:\n  a: {examples: ['[x](thing)']}\n  b: {examples: [y]}\nentities:\n  thing:\n"
    )
    assert nlu.entities["thing"].regex is None


# --- errors with file:line ------------------------------------------------------------------------------


#: Flows and responses matching BASE's intents, so a test's nlu.yml is all that varies.
BASE_FLOWS = """\
version: "2"
slots:
  order_id: {entity: order_id}
flows:
  cancel:
    trigger: {intents: [order.cancel]}
    steps:
      - collect: order_id
      - respond: utter_cancel_order
"""

BASE_RESPONSES = """\
version: "1"
responses:
  utter_cancel_order:
    - text: "Cancelling order {order_id}."
"""


def _project(tmp_path: Path, nlu: str) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(EXAMPLE_PROJECT / "assistant.yml", root / "assistant.yml")
    (root / "nlu.yml").write_text(nlu)
    (root / "flows.yml").write_text(BASE_FLOWS)
    (root / "responses.yml").write_text(BASE_RESPONSES)
    return root


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


BASE = """\
intents:
  greet:
    examples:
      - hello
  order_help:
    examples: [help me]
  inform_order_id:
    examples:
      - my order is [12345](order_id)
  order_status:
    examples: [where is my order]
  delivery_question:
    examples: [when will it arrive]
  goodbye:
    examples: [bye]
  order.cancel:
    examples:
      - cancel my order
      - text: cancel it and change my address
        intents: [order.cancel, address.update]
  address.update:
    examples: [change my address]
entities:
  order_id:
    type: id
    regex: '(\\d{5})'
out_of_scope:
  - tell me a joke
"""


def test_the_base_fixture_is_a_valid_project(tmp_path):
    project = load_project(_project(tmp_path, BASE))
    multi = project.nlu.intents["order.cancel"].examples[1]
    assert multi.intents == ["order.cancel", "address.update"]


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ("my order is [12345](order_id)", "my order is [12345](order_id", "my order is", "never closed"),
        (
            "my order is [12345](order_id)",
            "my order is [12345](ordr_id)",
            "my order is",
            "'ordr_id' is not declared",
        ),
        (
            "[order.cancel, address.update]",
            "[order.cancel, address.change]",
            "address.change",
            "'address.change' is not",
        ),
        (
            "[order.cancel, address.update]",
            "[address.update]",
            "intents: [address",
            "must include 'order.cancel'",
        ),
        (
            "      - cancel my order\n",
            "      - Change  my ADDRESS\n",
            "[change my address]",
            "duplicate example",
        ),
        ("  - tell me a joke", "  - help me", "  - help me", "duplicate example"),
        ("  address.update:", "  address..update:", "address..update", "not an intent name"),
        ("    type: id", "    type: uuid", "type: uuid", "Input should be"),
        ("text: cancel it", "txt: cancel it", "txt: cancel", "Field required"),
        ("    type: id", "    synonyms: {a: [x], b: [X]}", "synonyms:", "'X' is also a synonym of 'a'"),
        ("    regex: '(\\d{5})'", "    lookup: []\n    regex: '(\\d{5}'", "regex:", "regex does not compile"),
    ],
)
def test_problems_are_reported_with_file_and_line(tmp_path, old, new, needle, message):
    assert old in BASE
    text = BASE.replace(old, new)
    root = _project(tmp_path, text)
    with pytest.raises(ProjectError) as info:
        load_project(root)
    matching = [p for p in info.value.problems if message in p]
    assert matching, info.value.problems
    assert matching[0].startswith(f"{root / 'nlu.yml'}:{_line(text, needle)}:"), matching


def test_triggers_may_name_a_parent_level_but_not_an_unknown_intent(tmp_path):
    """``order`` exists as the parent of ``order.cancel``: a flow may trigger on the whole family."""
    root = _project(tmp_path, BASE)
    flows = (root / "flows.yml").read_text()
    (root / "flows.yml").write_text(flows.replace("intents: [order.cancel]", "intents: [order]"))
    assert load_project(root).flows.flows["cancel"].trigger.intents == ["order"]
    (root / "flows.yml").write_text(flows.replace("intents: [order.cancel]", "intents: [refund]"))
    with pytest.raises(ProjectError, match=r"intent 'refund' is not defined in nlu\.yml"):
        load_project(root)
