"""Fixtures of the dialog tests; the helpers they use live in dialog_testkit.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dialog_testkit import Conversation, FakeStateStore, FakeTools, flows_file, make_project

from parley.core.project import Project
from parley.dialog.domain import Engine


@pytest.fixture
def tools() -> FakeTools:
    return FakeTools()


@pytest.fixture
def engine(tools) -> Engine:
    return Engine(flows_file(), tools, min_confidence=0.5)


@pytest.fixture
def conv(engine) -> Conversation:
    return Conversation(engine)


@pytest.fixture
def project() -> Project:
    return make_project()


@pytest.fixture
def store() -> FakeStateStore:
    return FakeStateStore()
