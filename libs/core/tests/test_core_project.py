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


def _with_training(root: Path, block: str) -> None:
    text = (root / "assistant.yml").read_text()
    (root / "assistant.yml").write_text(text.rstrip() + "\n  training:\n" + block)


def test_training_settings_are_read_and_change_the_model_identity(tmp_path):
    root = _copy(tmp_path)
    plain = load_project(root).training_data_hash()
    assert plain == load_project(EXAMPLE).training_data_hash()  # no settings: identity as before
    _with_training(root, "    epochs: 3\n    oos_min_recall: 0.8\n    encoder_path: encoders/big\n")
    project = load_project(root)
    training = project.assistant.nlu.training
    assert (training.epochs, training.oos_min_recall) == (3, 0.8)
    overrides = training.overrides(project.root)
    assert overrides["encoder_path"] == str((root / "encoders" / "big").resolve())
    assert set(overrides) == {"epochs", "oos_min_recall", "encoder_path"}
    assert project.training_data_hash() != plain  # a model trained otherwise is not reused


def test_a_bad_training_setting_is_reported_with_file_and_line(tmp_path):
    root = _copy(tmp_path)
    _with_training(root, "    epochs: 0\n    learning_rate: 0.1\n")
    text = (root / "assistant.yml").read_text().splitlines()
    with pytest.raises(ProjectError) as info:
        load_project(root)
    problems = "\n".join(info.value.problems)
    epochs_line = next(i for i, ln in enumerate(text, 1) if "epochs" in ln)
    assert f"assistant.yml:{epochs_line}:" in problems and "epochs" in problems
    assert "learning_rate" in problems  # unknown keys are refused, not ignored


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
