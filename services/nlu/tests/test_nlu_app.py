"""The composition root: settings, build_nlu (train on first start, load after) and train_command."""

import json
from pathlib import Path

import pytest

from parley.core.events import Topic
from parley.nlu.adapters.model_store import METADATA_FILE, WEIGHTS_FILE
from parley.nlu.app import build_nlu, train_command
from parley.nlu.settings import NluSettings

from .conftest import EXAMPLE_PROJECT


def test_settings_defaults_and_environment(monkeypatch):
    for name in ("PARLEY_NLU_MODEL_DIR", "PARLEY_NLU_DEVICE", "PARLEY_NLU_NUM_THREADS", "PARLEY_PROJECT_DIR"):
        monkeypatch.delenv(name, raising=False)
    defaults = NluSettings()
    assert (defaults.grpc_port, defaults.device, defaults.num_threads) == (50051, "cpu", 0)
    assert defaults.model_dir == Path(".local/models")
    assert defaults.project_dir == Path("examples/order-support")

    monkeypatch.setenv("PARLEY_NLU_MODEL_DIR", "/tmp/elsewhere")
    monkeypatch.setenv("PARLEY_NLU_DEVICE", "cuda")
    monkeypatch.setenv("PARLEY_NLU_NUM_THREADS", "2")
    monkeypatch.setenv("PARLEY_PROJECT_DIR", "/projects/shop")
    monkeypatch.setenv("PARLEY_NLU_GRPC_PORT", "6000")
    custom = NluSettings()
    assert custom.model_dir == Path("/tmp/elsewhere")
    assert (custom.device, custom.num_threads, custom.grpc_port) == ("cuda", 2, 6000)
    assert custom.project_dir == Path("/projects/shop")

    monkeypatch.setenv("PARLEY_NLU_DEVICE", "tpu")
    with pytest.raises(ValueError, match="device"):
        NluSettings()


def test_build_nlu_trains_on_first_start_and_loads_after(tmp_path, example_project):
    settings = NluSettings(project_dir=EXAMPLE_PROJECT, model_dir=tmp_path / "models", model="head")
    first = build_nlu(settings)
    assert first.registration.name == "parley.nlu.v1.NluService"
    assert first.registration.servicer is first.servicer
    [subscription] = first.subscriptions
    assert (subscription.name, subscription.topics) == ("nlu", (Topic.CONTEXTUALIZED,))
    assert first.model_version.endswith(example_project.training_data_hash()[:8])
    assert first.parser.parse("hi").intent.name == "greet"

    second = build_nlu(settings, project=example_project)
    assert second.model_version == first.model_version
    assert len(list((tmp_path / "models").iterdir())) == 1


def test_train_command_returns_the_model_folder(tmp_path):
    folder = train_command(EXAMPLE_PROJECT, tmp_path / "out", NluSettings(model="head"))
    assert folder.parent == tmp_path / "out"
    assert (folder / WEIGHTS_FILE).is_file()
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert meta["version"] == folder.name
    assert "order_help" in meta["intents"]
