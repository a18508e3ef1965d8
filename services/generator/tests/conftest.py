"""Fixtures of the generator tests: the example assistant project, language-model servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.core.project import Project, load_project
from parley.generator.testing import (  # noqa: F401 - fixtures: a real llama.cpp server, scripted HTTP servers
    llama_server,
    llama_server_victim,
    scripted_server,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "order-support"


@pytest.fixture(scope="session")
def project() -> Project:
    return load_project(EXAMPLE)
