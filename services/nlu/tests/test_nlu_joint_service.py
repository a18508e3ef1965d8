"""The NLU service on the fine-tuned joint model (PARLEY_NLU_MODEL=joint): trained once, then loaded."""

import subprocess
import sys
import time

import pytest

from parley.nlu.app import build_nlu
from parley.nlu.settings import NluSettings

from .conftest import EXAMPLE_PROJECT


@pytest.fixture(scope="module")
def joint_service(tmp_path_factory):
    settings = NluSettings(
        project_dir=EXAMPLE_PROJECT, model_dir=tmp_path_factory.mktemp("joint-models"), model="joint"
    )
    return settings, build_nlu(settings)


def test_the_conversation_and_the_issue_cases_on_the_joint_model(joint_service):
    _, service = joint_service
    parser = service.parser
    expected = {
        "Hello, I need help with my order": "order_help",
        "My order number is 12345": "inform_order_id",
        "When will it arrive?": "delivery_question",
    }
    for text, intent in expected.items():
        assert parser.parse(text).intent.name == intent, text
    both = parser.parse("Cancel my order and also update my address")
    assert {i.name for i in both.intents} == {"order.cancel", "address.update"}
    assert parser.parse("askdjfkajsdf").out_of_scope
    order = parser.parse("My order number is 12345")
    assert [(e.type, e.value) for e in order.entities] == [("order_id", "12345")]


def test_a_saved_joint_model_loads_in_a_fresh_process_without_torch(joint_service):
    settings, service = joint_service
    script = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "from pathlib import Path\n"
        "from parley.core.project import load_project\n"
        "from parley.nlu.pipeline import load_or_train_joint\n"
        f"project = load_project(Path({str(EXAMPLE_PROJECT)!r}))\n"
        f"p = load_or_train_joint(project, Path({str(settings.model_dir)!r}))\n"
        "p.predict(['hello'])\n"
        "print(round(time.perf_counter() - t, 3), 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    seconds, torch_loaded, transformers_loaded = done.stdout.strip().splitlines()[-1].split()
    assert (torch_loaded, transformers_loaded) == ("False", "False"), done.stdout
    assert float(seconds) < time.perf_counter() - started  # measured inside the same run, for the report
    assert service.model_version
