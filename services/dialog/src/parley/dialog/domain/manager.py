"""Deciding a turn against the authoritative state: read, decide, compare-and-set, retry on conflict.

Turns of one conversation may race (turn N+1 sent before N's reply, two replicas, a redelivered event), so
the decision is always taken on the state as stored, and written only if nobody wrote in between. A lost
compare-and-set re-reads and re-decides on the fresh state -- a conflict is retried, never lost; a turn
already in ``applied`` is answered from there without a write, which makes a replay after a crash return
the first decision. Tool calls are memoised for the duration of one ``decide``: a re-decision after a
conflict that makes the same call (same tool, same arguments) reuses its result instead of repeating it.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from parley.context.v1 import context_pb2
from parley.core.context_client import from_struct, to_struct
from parley.core.errors import ConflictError, InvalidInputError
from parley.core.logging import get_logger
from parley.dialog.domain.engine import Engine
from parley.dialog.domain.state import Action, DialogState
from parley.dialog.domain.turn import ContextView, Turn, TurnResult
from parley.dialog.ports import StateStore, ToolOutcome, ToolRunner
from parley.dialog.v1 import dialog_pb2
from parley.nlu.v1 import nlu_pb2

log = get_logger(__name__)


def action_proto(action: Action) -> dialog_pb2.Action:
    return dialog_pb2.Action(
        name=action.name,
        kind=action.kind,
        params=to_struct(action.params),
        options=[dialog_pb2.Option(title=o.title, payload=o.payload) for o in action.options],
    )


def decision_proto(result: TurnResult, state_version: int) -> dialog_pb2.Decision:
    """The wire form of a decision."""
    return dialog_pb2.Decision(
        actions=[action_proto(a) for a in result.actions],
        state_version=state_version,
        reason=result.reason,
        active_flow=result.active_flow,
        step=result.step,
        slots=to_struct(result.slots),
        ended=result.ended,
        handoff=result.handoff,
    )


class _Memo:
    """A tool runner that calls each (tool, arguments) once and then repeats its result."""

    def __init__(self, runner: ToolRunner) -> None:
        self._runner = runner
        self._results: dict[str, ToolOutcome] = {}

    async def call(self, name: str, args: Mapping[str, Any]) -> ToolOutcome:
        key = json.dumps([name, args], sort_keys=True, default=str)
        if key not in self._results:
            self._results[key] = await self._runner.call(name, args)
        return self._results[key]


class DialogManager:
    """Decides turns with an :class:`Engine` on state kept in a :class:`StateStore`."""

    def __init__(
        self,
        engine: Engine,
        store: StateStore,
        max_attempts: int = 5,
        backoff_s: float = 0.02,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._engine = engine
        self._store = store
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._clock = clock

    async def decide(
        self,
        conversation_id: str,
        idempotency_key: str,
        understanding: nlu_pb2.ParseResult,
        context: context_pb2.ContextSnapshot | None = None,
        now: float | None = None,
    ) -> dialog_pb2.Decision:
        """The decision for one turn, written to the store exactly once per ``idempotency_key``.

        ``context`` is the snapshot the turn arrived with (informational: the state is re-read here);
        ``now`` the turn's clock (the stage passes the event's time, so a redelivery decides alike),
        the manager's clock when ``None``. ``state_version`` is the version holding the decision: the one
        written, or on a replay the current one. Raises :class:`ConflictError` (retryable) when every
        attempt lost the race.
        """
        if not conversation_id or not idempotency_key:
            raise InvalidInputError("conversation_id and an idempotency key are required")
        turn = Turn(
            event_id=idempotency_key,
            understanding=understanding,
            now=self._clock() if now is None else now,
            context=ContextView.from_snapshot(context),
        )
        tools = _Memo(self._engine.tools)
        for attempt in range(1, self._max_attempts + 1):
            stored = await self._store.get_state(conversation_id)
            state = DialogState.from_dict(from_struct(stored.data))
            result = await self._engine.decide(state, turn, tools=tools)
            if result.replayed:
                log.info("turn already decided, replaying", conversation_id=conversation_id)
                return decision_proto(result, stored.version)
            try:
                written = await self._store.update_state(
                    conversation_id, stored.version, result.state.to_dict()
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
                reason=result.reason,
                flow=result.active_flow,
                step=result.step,
                actions=[a.name for a in result.actions],
                state_version=written.version,
            )
            return decision_proto(result, written.version)
        raise ConflictError(f"conversation {conversation_id}: state kept changing")  # pragma: no cover
