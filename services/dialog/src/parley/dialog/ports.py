"""What the dialog needs from the outside world: authoritative, versioned conversation state, and tools."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from parley.context.v1 import context_pb2
from parley.core.tools import ToolResult

__all__ = ["NoTools", "StateStore", "ToolOutcome", "ToolResult", "ToolRunner"]


class StateStore(Protocol):
    """Versioned dialog state with compare-and-set; :class:`parley.core.context_client.ContextClient`
    is the production implementation."""

    async def get_state(self, conversation_id: str) -> context_pb2.DialogState:
        """The current state (version 0 and empty data when none is stored yet)."""
        ...

    async def update_state(
        self, conversation_id: str, expected_version: int, data: Mapping[str, Any]
    ) -> context_pb2.DialogState:
        """Write ``data`` if the stored version still equals ``expected_version``; raises
        :class:`parley.core.errors.ConflictError` when it moved on."""
        ...


class ToolOutcome(Protocol):
    """The result of a tool call: ``data`` when ``ok``, else ``error`` (errors are values, not raises)."""

    @property
    def ok(self) -> bool: ...

    @property
    def data(self) -> Any: ...

    @property
    def error(self) -> str | None: ...


class ToolRunner(Protocol):
    """Runs the project's tools (``tools.yml``); :class:`parley.core.tools.ToolRegistry` in production.

    Must not raise for a failing tool (bad arguments, timeout, an exception inside it): it reports the
    failure as a result with ``ok=False``.
    """

    async def call(self, name: str, args: Mapping[str, Any]) -> ToolOutcome:
        """Run tool ``name`` with ``args``."""
        ...


class NoTools:
    """The runner of a project without tools: every call fails with a clear error."""

    async def call(self, name: str, args: Mapping[str, Any]) -> ToolOutcome:
        return ToolResult(ok=False, error=f"no tool named {name!r} (the project declares no tools)")
