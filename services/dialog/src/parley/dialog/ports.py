"""What the dialog needs from the outside world: authoritative, versioned conversation state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from parley.context.v1 import context_pb2


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
