"""Importing Rasa 3.x NLU data into a Parley project."""

import re
import shutil
from pathlib import Path

import pytest
import yaml

from parley.core.project import ProjectError, load_project
from parley.nlu.data.rasa import RasaImportError, dump_project_nlu, import_rasa_nlu, write_project_nlu
from parley.nlu.domain.classifier import HeadConfig
from parley.nlu.domain.training_data import EntitySpan, TrainingData, training_examples
from parley.nlu.training import train

from .conftest import EXAMPLE_PROJECT

FIXTURE = Path(__file__).parent / "fixtures" / "rasa" / "nlu.yml"


def _line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.fixture(scope="module")
def imported() -> tuple[dict, list[str]]:
    warnings: list[str] = []
    return import_rasa_nlu(FIXTURE, warnings=warnings), warnings


#: Flows over intents the imported data defines, as a migrating user would write them.
FLOWS = """\
version: "2"
slots:
  order_id: {entity: order_id}
flows:
  cancel:
    trigger: {intents: [order.cancel]}
    steps:
      - collect: order_id
      - respond: utter_cancel_order
  address:
    trigger: {intents: [address.update]}
    steps:
      - respond: utter_address_update
"""

RESPONSES = """\
version: "1"
responses:
  utter_cancel_order:
    - text: "Cancelling order {order_id}."
  utter_address_update:
    - text: "You can change the address under My orders."
"""


@pytest.fixture
def project(imported, tmp_path):
    """A project of the imported nlu.yml with flows over its intents."""
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(EXAMPLE_PROJECT / "assistant.yml", root / "assistant.yml")
    (root / "flows.yml").write_text(FLOWS)
    (root / "responses.yml").write_text(RESPONSES)
    write_project_nlu(imported[0], root / "nlu.yml")
    return load_project(root)


def test_the_import_is_a_valid_project_that_flows_can_trigger_on(project):
    triggers = {i for flow in project.flows.flows.values() if flow.trigger for i in flow.trigger.intents}
    assert triggers and set(project.nlu.intents) >= triggers
    assert (project.root / "nlu.yml").read_text().startswith("# Training data")


def test_intent_names_map_to_hierarchical_ones_and_out_of_scope_moves_to_its_list(project):
    intents = set(project.nlu.intents)
    assert {"order.cancel", "address.update", "faq.return_policy", "faq.shipping_cost"} <= intents
    assert not any("/" in name or "+" in name for name in intents)
    assert "out_of_scope" not in intents
    assert "tell me a joke" in project.nlu.out_of_scope


def test_rasa_multi_intent_becomes_a_multi_intent_example(project):
    by_text = {ex.text: ex for ex in training_examples(project)}
    combined = by_text["scrap the purchase, and fix my shipping address too"]
    assert combined.intents == ("order.cancel", "address.update")
    with_id = by_text["cancel order 13579 and change the address on the other one"]
    assert with_id.entities == (EntitySpan(13, 18, "order_id", "13579"),)


def test_annotations_become_spans_at_the_right_offsets(project):
    by_text = {ex.text: ex for ex in training_examples(project)}

    def spans(text: str) -> list[tuple[str, str, str, str | None]]:
        return [(text[s.start : s.end], s.type, s.value, s.role) for s in by_text[text].entities]

    assert by_text["my order number is 12345"].entities == (EntitySpan(19, 24, "order_id", "12345"),)
    assert spans("the number on the receipt is 88231") == [("88231", "order_id", "88231", None)]
    assert spans("order #77123") == [("#77123", "order_id", "77123", None)]
    assert spans("when will it get to NYC?") == [("NYC", "city", "New York", None)]
    assert spans("how long does overnight delivery take") == [
        ("overnight", "shipping_method", "express", None)
    ]
    assert spans("will it arrive in Berlin by Friday?") == [("Berlin", "city", "Berlin", "destination")]
    assert spans("can it be delivered to Paris next week?") == [("Paris", "city", "Paris", None)]
    # An annotation without a value is mapped through the synonyms it was imported with.
    assert spans("do you charge for delivery to the big apple?") == [
        ("the big apple", "city", "New York", None)
    ]


def test_synonyms_regexes_and_lookups_are_carried_over(project):
    entities = project.nlu.entities
    assert set(entities) == {"order_id", "city", "shipping_method"}
    assert entities["order_id"].regex == r"\b#?\d{5,10}\b"
    assert entities["city"].lookup == ["Berlin", "Paris", "New York", "London"]
    assert entities["shipping_method"].lookup == ["standard", "express"]
    assert sorted(entities["city"].synonyms["New York"]) == ["NYC", "new york city", "the big apple"]
    assert sorted(entities["shipping_method"].synonyms["express"]) == [
        "next day",
        "overnight",
        "overnight shipping",
    ]
    assert entities["city"].canonical("The Big Apple") == "New York"


def test_what_cannot_be_mapped_is_a_warning_with_its_line(imported):
    _, warnings = imported

    def warned(needle: str, message: str) -> None:
        expected = f"{FIXTURE}:{_line(FIXTURE, needle)}:"
        assert any(w.startswith(expected) and message in w for w in warnings), (expected, message, warnings)

    warned("- regex: zipcode", "regex 'zipcode' dropped")
    warned("- synonym: gift card", "synonym 'gift card' dropped")
    warned('"group": "1"', "entity group '1' of [Paris] dropped")
    warned("- intent: order_status", "metadata is not carried over")
    assert len(warnings) == 5, warnings


def test_every_intent_example_is_imported_once(project):
    rasa = yaml.safe_load(FIXTURE.read_text())["nlu"]
    blocks = [item["examples"] for item in rasa if "intent" in item]
    count = sum(
        len(b) if isinstance(b, list) else sum(ln.strip().startswith("-") for ln in b.splitlines())
        for b in blocks
    )
    examples = training_examples(project, include_out_of_scope=True)
    assert len(examples) == count
    assert len({ex.text for ex in examples}) == count


def test_the_imported_project_trains(project, encoder, tmp_path):
    info = train(project, tmp_path / "models", encoder, head=HeadConfig(epochs=40), progress=False)
    data = TrainingData.from_project(project)
    assert info.training_examples == len(data.texts) == len(training_examples(project))
    assert info.intents == data.intents
    assert info.training_accuracy >= 0.9


def _rasa(tmp_path: Path, body: str, name: str = "nlu.yml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


GOOD = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
    - hello
- intent: inform
  examples: |
    - it is [12345](order_id)
"""


@pytest.mark.parametrize(
    ("body", "needle", "message"),
    [
        (GOOD + "    hello without a dash\n", "without a dash", "must start with '- '"),
        (GOOD + "    - it was [54321](order_id\n", "[54321]", "malformed entity annotation, column 15"),
        (GOOD + '    - to [Paris]{"entity": city}\n', "[Paris]", "not valid JSON"),
        (GOOD + "- regex: order_id\n  examples: |\n    - ([0-9]{5}\n", "([0-9]", "does not compile"),
        (GOOD + "- examples: |\n    - hi\n", "- examples:", "needs exactly one of intent"),
        (
            GOOD + "- intent: a\n  synonym: b\n  examples: |\n    - x\n",
            "- intent: a",
            "both intent and synonym",
        ),
        (GOOD + "- intent: bye\n", "- intent: bye", "has no 'examples'"),
        (GOOD + "- intent: bye\n  examples: 3\n", "examples: 3", "must be a '|' block"),
        (GOOD.replace("- intent: inform", "- intent: inform: x"), "inform: x", "not valid YAML"),
        ("version: '3.1'\nnlu: {intent: x}\n", "nlu:", "must be a list"),
        ("version: '3.1'\nrules: []\n", "version", "no 'nlu:' list"),
    ],
)
def test_malformed_rasa_data_is_an_error_with_the_line(tmp_path, body, needle, message):
    path = _rasa(tmp_path, body)
    with pytest.raises(RasaImportError) as info:
        import_rasa_nlu(path)
    expected = f"{path}:{_line(path, needle)}:"
    assert any(p.startswith(expected) and message in p for p in info.value.problems), (
        expected,
        info.value.problems,
    )


def test_regexes_of_one_entity_are_joined_and_keep_the_whole_match(tmp_path):
    body = GOOD + (
        "- regex: order_id\n  examples: |\n    - ORD-(\\d{4})\n"
        "- regex: order_id\n  examples: |\n    - \\b\\d{5}\\b\n"
    )
    data = import_rasa_nlu(_rasa(tmp_path, body))
    regex = data["entities"]["order_id"]["regex"]
    assert regex == r"((?:ORD-(\d{4}))|(?:\b\d{5}\b))"
    assert re.search(regex, "it is ORD-1234").group(1) == "ORD-1234"


def test_a_folder_of_rasa_files_is_merged_and_other_content_is_ignored_with_a_warning(tmp_path):
    _rasa(tmp_path, GOOD, "a.yml")
    _rasa(tmp_path, "nlu:\n- intent: bye\n  examples: |\n    - bye\n    - hi\n", "b.yml")
    _rasa(tmp_path, "rules:\n- rule: x\n  steps: []\n", "rules.yml")
    _rasa(
        tmp_path, "version: '3.1'\nresponses: {}\nnlu:\n- lookup: city\n  examples: |\n    - Rome\n", "z.yml"
    )
    warnings: list[str] = []
    data = import_rasa_nlu(tmp_path, warnings=warnings)
    assert data["intents"]["bye"] == {"examples": ["bye"]}
    assert data["entities"]["city"] == {"lookup": ["Rome"]}
    assert any("'hi' is also an example of greet" in w for w in warnings), warnings
    assert any(w.startswith(f"{tmp_path / 'z.yml'}:2: 'responses' ignored") for w in warnings), warnings


def test_write_refuses_data_that_is_not_a_valid_project_file(tmp_path):
    out = tmp_path / "nlu.yml"
    data = import_rasa_nlu(_rasa(tmp_path, "nlu:\n- intent: greet\n  examples: |\n    - hi\n", "rasa.yml"))
    with pytest.raises(ProjectError, match="at least 2 items"):
        write_project_nlu(data, out)
    assert not out.exists()
    assert "greet:" in dump_project_nlu(data)


def test_a_multi_intent_example_defines_an_intent_that_has_no_examples_of_its_own(tmp_path):
    body = GOOD + (
        "- intent: greet+order/cancel\n  examples: |\n    - hi, cancel my order\n"
        "- intent: x+y\n  examples: |\n    - both x and y\n"
    )
    warnings: list[str] = []
    data = import_rasa_nlu(_rasa(tmp_path, body), warnings=warnings)
    assert data["intents"]["order.cancel"] == {
        "examples": [{"text": "hi, cancel my order", "intents": ["order.cancel", "greet"]}]
    }
    assert "x" not in data["intents"] and "y" not in data["intents"]
    assert any("'both x and y' dropped" in w for w in warnings), warnings
    write_project_nlu(data, tmp_path / "out" / "nlu.yml")


def test_conflicting_synonyms_keep_the_first_meaning_with_a_warning(tmp_path):
    body = GOOD + (
        '    - ship to [NYC]{"entity": "city", "value": "New York"}\n'
        '    - fly to [nyc]{"entity": "city", "value": "Nyack"}\n'
    )
    warnings: list[str] = []
    data = import_rasa_nlu(_rasa(tmp_path, body), warnings=warnings)
    assert data["entities"]["city"]["synonyms"] == {"New York": ["NYC"]}
    assert any("[nyc] means 'New York' elsewhere" in w for w in warnings), warnings
