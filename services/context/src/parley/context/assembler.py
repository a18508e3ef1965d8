"""Putting together the bounded context of one turn, and keeping the conversation's summary up to date.

Used by the stage (each user message) and by the GetContext RPC, so both hand out the same view. The
store loads a fixed amount (window, summary, entities, profile, state, a message count); the domain trims
the window to the token budget; long-term memories are picked by similarity to the message. Messages that
fall more than ``max_context_length`` behind are folded into the rolling summary in batches, so the
summary work is done every ``summary_batch`` messages rather than on every turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from parley.context.domain.memory import fit_window
from parley.context.domain.models import ContextLoad, MemoryItem, Message, Principal
from parley.context.domain.summary import Summariser, needs_summary
from parley.context.ports import ConversationStore, Embedder
from parley.context.settings import ContextSettings
from parley.core.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class AssembledContext:
    """What a turn is handed: the store's load, the window as trimmed, the summary text, memories."""

    load: ContextLoad
    #: The recent messages within the token budget, oldest first.
    recent: list[Message]
    summary: str
    memories: list[MemoryItem]


class ContextAssembler:
    """Builds a turn's context from the store; the only writer of conversation summaries."""

    def __init__(
        self,
        store: ConversationStore,
        embedder: Embedder,
        summariser: Summariser,
        settings: ContextSettings,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._summariser = summariser
        self._settings = settings

    async def assemble(
        self,
        conversation_id: str,
        owner: Principal,
        query: str,
        *,
        up_to_event_id: str | None = None,
        maintain: bool = False,
    ) -> AssembledContext:
        """The context of ``conversation_id`` now; ``maintain`` also folds old messages into the summary."""
        s = self._settings
        load = await self._store.load_context(
            conversation_id, s.window, entity_limit=s.entity_limit, up_to_event_id=up_to_event_id
        )
        if maintain:
            load = await self._maintain_summary(load)
        recent = fit_window(load.recent, s.window, s.token_budget)
        memories: list[MemoryItem] = []
        if query.strip() and s.memory_limit:
            memories = await self._store.search_memories(
                owner.tenant_id,
                owner.user_id,
                self._embedder.embed(query),
                s.memory_limit,
                min_score=s.memory_min_score,
            )
        return AssembledContext(
            load=load, recent=recent, summary=load.summary.text if load.summary else "", memories=memories
        )

    async def _maintain_summary(self, load: ContextLoad) -> ContextLoad:
        s = self._settings
        covered = load.summary.message_count if load.summary else 0
        if not needs_summary(load.total_messages, covered, s.max_context_length, s.summary_batch):
            return load
        # Everything but the newest max_context_length messages may be folded; at most summary_max_fold now.
        count = min(load.total_messages - s.max_context_length - covered, s.summary_max_fold)
        after = load.summary.covers_up_to_seq if load.summary else 0
        older = await self._store.messages_after(load.conversation_id, after, count)
        if not older:
            return load
        text = self._summariser.update(load.summary.text if load.summary else None, older, load.entities)
        summary = await self._store.save_summary(
            load.conversation_id, text, older[-1].seq, covered + len(older)
        )
        log.info(
            "summary updated",
            conversation_id=load.conversation_id,
            folded=len(older),
            covered=summary.message_count,
        )
        return ContextLoad(
            conversation_id=load.conversation_id,
            recent=load.recent,
            summary=summary,
            entities=load.entities,
            profile=load.profile,
            state=load.state,
            total_messages=load.total_messages,
        )
