"""Assistant projects load when valid and fail with file:line messages when not."""

import shutil
from pathlib import Path

import pytest

from parley.core.project import ProjectError, load_project

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "order-support"


def test_the_example_project_loads():
    project = load_project(EXAMPLE)
    assert "order_help" in project.nlu.intents
    assert project.flows.version == "2"
    assert project.flows.slots["order_id"].entity == "order_id"
    assert project.training_data_hash() == load_project(EXAMPLE).training_data_hash()


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "proj"
    shutil.copytree(EXAMPLE, target)
    return target


def test_a_wrong_type_is_reported_with_file_and_line(tmp_path):
    root = _copy(tmp_path)
    text = (root / "assistant.yml").read_text().replace("fallback_threshold: 0.5", "fallback_threshold: high")
    (root / "assistant.yml").write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "fallback_threshold" in ln)
    with pytest.raises(ProjectError) as info:
        load_project(root)
    assert any(p.startswith(f"{root / 'assistant.yml'}:{line}:") for p in info.value.problems), info.value


def test_broken_yaml_is_reported(tmp_path):
    # Dangling references between files are covered, message by message, in test_core_flows.py.
    root = _copy(tmp_path)
    (root / "responses.yml").write_text("responses:\n  utter_greet: [\n")
    with pytest.raises(ProjectError) as info:
        load_project(root)
    assert "not valid YAML" in str(info.value)


def test_a_regex_that_does_not_compile_is_rejected(tmp_path):
    root = _copy(tmp_path)
    nlu = (root / "nlu.yml").read_text().replace(r"(\d{5,10})", r"(\d{5,10}")
    (root / "nlu.yml").write_text(nlu)
    with pytest.raises(ProjectError, match="regex does not compile"):
        load_project(root)
