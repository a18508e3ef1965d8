"""Fixtures of the dialog tests: the example project and a fake of our own StateStore port."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from parley.context.v1 import context_pb2
from parley.core.context_client import from_struct, to_struct
from parley.core.errors import ConflictError
from parley.core.project import Project, load_project

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "order-support"


class FakeStateStore:
    """Keeps one versioned document per conversation; ``before_update`` can simulate a concurrent writer."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[int, dict[str, Any]]] = {}
        self.writes: list[tuple[str, int, dict[str, Any]]] = []
        self.reads = 0
        self.conflicts = 0
        self.before_update: Callable[[FakeStateStore, str], None] | None = None

    def put(self, conversation_id: str, data: Mapping[str, Any]) -> int:
        """Write directly (another writer), bumping the version."""
        version = self.docs.get(conversation_id, (0, {}))[0] + 1
        self.docs[conversation_id] = (version, copy.deepcopy(dict(data)))
        return version

    async def get_state(self, conversation_id: str) -> context_pb2.DialogState:
        self.reads += 1
        version, data = self.docs.get(conversation_id, (0, {}))
        return context_pb2.DialogState(conversation_id=conversation_id, version=version, data=to_struct(data))

    async def update_state(
        self, conversation_id: str, expected_version: int, data: Mapping[str, Any]
    ) -> context_pb2.DialogState:
        hook, self.before_update = self.before_update, None
        if hook is not None:
            hook(self, conversation_id)
        current = self.docs.get(conversation_id, (0, {}))[0]
        if current != expected_version:
            self.conflicts += 1
            raise ConflictError(f"expected version {expected_version}, stored {current}")
        # Round-trip through a Struct, as the real service stores JSON.
        stored = context_pb2.DialogState(data=to_struct(data)).data
        version = self.put(conversation_id, from_struct(stored))
        self.writes.append((conversation_id, version, copy.deepcopy(dict(data))))
        return context_pb2.DialogState(conversation_id=conversation_id, version=version, data=stored)


@pytest.fixture(scope="session")
def project() -> Project:
    return load_project(EXAMPLE)


@pytest.fixture
def store() -> FakeStateStore:
    return FakeStateStore()
