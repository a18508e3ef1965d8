"""Fixtures of the generator tests: the example assistant project."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.core.project import Project, load_project

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "order-support"


@pytest.fixture(scope="session")
def project() -> Project:
    return load_project(EXAMPLE)
