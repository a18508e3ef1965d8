"""Deciding a turn against the authoritative state: read, decide, compare-and-set, retry on conflict.

Turns of one conversation may race (turn N+1 sent before N's reply, two replicas, a redelivered event), so
the decision is always taken on the state as stored, and written only if nobody wrote in between. A lost
compare-and-set re-reads and re-decides; a turn already in ``applied`` is answered from there without a
write, which makes a replay after a crash return the first decision.
"""

from __future__ import annotations

import asyncio
import random

from parley.core.context_client import from_struct
from parley.core.errors import ConflictError, InvalidInputError
from parley.core.logging import get_logger
from parley.dialog.domain.policy import RulePolicy
from parley.dialog.domain.state import DialogState
from parley.dialog.ports import StateStore
from parley.dialog.v1 import dialog_pb2
from parley.nlu.v1 import nlu_pb2

log = get_logger(__name__)


class DialogManager:
    """Decides turns with a :class:`RulePolicy` on state kept in a :class:`StateStore`."""

    def __init__(
        self, policy: RulePolicy, store: StateStore, max_attempts: int = 5, backoff_s: float = 0.02
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._policy = policy
        self._store = store
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s

    async def decide(
        self, conversation_id: str, idempotency_key: str, understanding: nlu_pb2.ParseResult
    ) -> dialog_pb2.Decision:
        """The decision for one turn, written to the store exactly once per ``idempotency_key``.

        ``state_version`` is the version holding the decision: the one written, or on a replay the
        current one. Raises :class:`ConflictError` (retryable) when every attempt lost the race.
        """
        if not conversation_id or not idempotency_key:
            raise InvalidInputError("conversation_id and an idempotency key are required")
        for attempt in range(1, self._max_attempts + 1):
            stored = await self._store.get_state(conversation_id)
            state = DialogState.from_dict(from_struct(stored.data))
            already = state.applied_for(idempotency_key)
            if already is not None:
                log.info("turn already decided, replaying", conversation_id=conversation_id)
                return dialog_pb2.Decision(actions=already.actions, state_version=stored.version)
            outcome = self._policy.decide(state, understanding, idempotency_key)
            try:
                written = await self._store.update_state(
                    conversation_id, stored.version, outcome.state.to_dict()
                )
            except ConflictError:
                if attempt == self._max_attempts:
                    raise
                delay = self._backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                log.info(
                    "state moved on, deciding again",
                    conversation_id=conversation_id,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                )
                await asyncio.sleep(delay)
                continue
            log.info(
                "turn decided",
                conversation_id=conversation_id,
                reason=outcome.reason,
                actions=[a.name for a in outcome.actions],
                state_version=written.version,
            )
            return dialog_pb2.Decision(actions=outcome.actions, state_version=written.version)
        raise ConflictError(f"conversation {conversation_id}: state kept changing")  # pragma: no cover
