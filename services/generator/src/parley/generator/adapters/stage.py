"""The generator stage: ``turn.decided`` in, ``turn.replied`` out (and reply chunks while a model writes).

Template rendering is a pure function of the turn, the actions and the recipient, and the output id is
derived from the cause, so a redelivered decision yields the same reply event (same id; an LLM-written text
may differ). When a model writes the reply and a publisher is attached, its pieces go out on
``turn.reply-chunks`` as they come (best effort, each with its index) so the gateway can show text before the
whole reply exists; ``turn.replied`` stays the one authoritative reply.

Per-user preferences (``prefers_brief``) come from the user's profile through the :class:`ProfileSource`
port, cached for a short while: a preference changed in the profile applies within ``ttl_s``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from parley.core.bus.base import Outgoing, Subscription
from parley.core.errors import PoisonEventError
from parley.core.events import Topic, derive_event, event_type
from parley.core.logging import get_logger
from parley.generator.domain.replies import Recipient, ReplyService
from parley.turn.v1 import turn_event_pb2 as pb

log = get_logger(__name__)

STAGE = "generator"

#: Publishes one event on a logical topic (the bus's ``publish``).
Publish = Callable[[str, pb.TurnEvent], Awaitable[None]]


class ProfileSource(Protocol):
    """Where a user's preferences are read (the context service's profiles)."""

    async def preferences(self, tenant_id: str, user_id: str) -> Mapping[str, Any]: ...


class CachedPreferences:
    """A user's preferences, read through ``source`` at most once per ``ttl_s`` (bounded LRU).

    A failing lookup costs the preferences only: the reply goes out with the defaults.
    """

    def __init__(
        self,
        source: ProfileSource,
        ttl_s: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, Mapping[str, Any]]] = OrderedDict()

    async def get(self, tenant_id: str, user_id: str) -> Mapping[str, Any]:
        if not user_id:
            return {}
        key = (tenant_id, user_id)
        now = self._clock()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            self._entries.move_to_end(key)
            return cached[1]
        try:
            found = dict(await self._source.preferences(tenant_id, user_id))
        except Exception:
            log.warning("user preferences unavailable, using defaults", tenant_id=tenant_id, user_id=user_id)
            return cached[1] if cached is not None else {}
        self._entries[key] = (now, found)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return found


class GeneratorStage:
    """Handler of decided turns."""

    def __init__(
        self,
        replies: ReplyService,
        *,
        publish: Publish | None = None,
        preferences: CachedPreferences | None = None,
    ) -> None:
        self._replies = replies
        self._publish = publish
        self._preferences = preferences

    async def _recipient(self, event: pb.TurnEvent) -> Recipient:
        prefs = await self._preferences.get(event.tenant_id, event.user_id) if self._preferences else {}
        return Recipient(
            conversation_id=event.conversation_id,
            user_id=event.user_id,
            prefers_brief=bool(prefs.get("prefers_brief", False)),
        )

    async def handle(self, event: pb.TurnEvent) -> Sequence[Outgoing]:
        if event_type(event) != "decided":
            raise PoisonEventError(f"generator expects a decided turn, got {event_type(event) or 'nothing'}")
        decided = event.decided
        actions = decided.decision.actions
        language = decided.language or None
        recipient = await self._recipient(event)
        if self._publish is not None and self._replies.streams(actions):
            generated = None
            index = 0
            async for piece in self._replies.stream(
                event.turn_id, actions, language=language, recipient=recipient
            ):
                if piece.final is not None:
                    generated = piece.final
                elif piece.text_delta:
                    await self._chunk(event, index, piece.text_delta)
                    index += 1
            assert generated is not None
        else:
            generated = await self._replies.reply(
                event.turn_id, actions, language=language, recipient=recipient
            )
        replied = pb.RepliedTurn(reply=generated.reply)
        return [Outgoing(Topic.REPLIED, derive_event(event, STAGE, replied=replied))]

    async def _chunk(self, cause: pb.TurnEvent, index: int, text: str) -> None:
        assert self._publish is not None
        chunk = derive_event(
            cause, f"{STAGE}/chunk/{index}", reply_chunk=pb.ReplyChunk(index=index, text=text)
        )
        try:
            await self._publish(Topic.REPLY_CHUNK, chunk)
        except Exception:  # chunks are a courtesy; the replied event carries the reply
            log.warning("reply chunk not published", turn_id=cause.turn_id, index=index)

    def subscription(self) -> Subscription:
        """The consumer group ``generator`` on ``turn.decided``."""
        return Subscription(name=STAGE, topics=(Topic.DECIDED,), handler=self.handle)
