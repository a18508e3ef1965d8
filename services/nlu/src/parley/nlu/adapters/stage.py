"""The NLU turn stage: ``turn.contextualized`` in, ``turn.understood`` out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from parley.context.v1 import context_pb2 as ctx
from parley.core.bus.base import Outgoing, Subscription
from parley.core.errors import InvalidInputError, PoisonEventError
from parley.core.events import Topic, derive_event, event_type
from parley.nlu.adapters.batching import MicroBatcher
from parley.nlu.domain.limits import validate_text
from parley.nlu.domain.parser import ParseInput, Parser
from parley.nlu.v1 import nlu_pb2
from parley.turn.v1 import turn_event_pb2 as pb

STAGE = "nlu"


def _known_zone(name: str) -> bool:
    """An empty or unknown timezone falls back to UTC rather than failing the turn."""
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def add_referenced_entities(result: nlu_pb2.ParseResult, references: Iterable[ctx.Reference]) -> None:
    """Entities the user referred to ("When will *it* arrive?" -> order_id 12345) join the result.

    Context resolved the reference against the conversation's entity state; an entity of the same type
    the text itself names wins, so "it" never overrides what the user just said.
    """
    present = {e.type for e in result.entities}
    for ref in references:
        if not ref.entity_type or not ref.entity_value or ref.entity_type in present:
            continue
        result.entities.append(
            nlu_pb2.Entity(
                type=ref.entity_type,
                text=ref.text,
                value=ref.entity_value,
                start=ref.start,
                end=ref.end,
                confidence=ref.confidence,
                extractor="context",
            )
        )
        present.add(ref.entity_type)


class NluStage:
    """Understands each contextualized turn. Idempotent: the output's id derives from the input's."""

    def __init__(
        self, parser: Parser, batcher: MicroBatcher[ParseInput, nlu_pb2.ParseResult] | None = None
    ) -> None:
        self._parser = parser
        # Turns of different conversations arrive on different partitions at once: batch them too.
        self._batcher = batcher or MicroBatcher(parser.parse_batch)

    def subscription(self) -> Subscription:
        """The consumer group "nlu" on ``turn.contextualized``."""
        return Subscription(STAGE, (Topic.CONTEXTUALIZED,), self.handle)

    async def handle(self, event: pb.TurnEvent) -> Sequence[Outgoing]:
        """Parse the turn's text and emit the understood turn with the context carried along."""
        if event_type(event) != "contextualized":
            raise PoisonEventError(
                f"the nlu stage takes contextualized events, got {event_type(event) or 'an empty payload'}"
            )
        turn = event.contextualized
        try:
            validate_text(turn.text, field="contextualized.text")
        except InvalidInputError as exc:
            raise PoisonEventError(str(exc)) from exc
        # Relative expressions ("tomorrow") are resolved against when the user spoke, in their timezone.
        if turn.HasField("reference_time"):
            reference = turn.reference_time.ToDatetime(tzinfo=UTC)
        else:
            reference = event.occurred_at.ToDatetime(tzinfo=UTC) if event.HasField("occurred_at") else None
        timezone = turn.timezone if _known_zone(turn.timezone) else ""
        understanding = await self._batcher.submit(ParseInput(turn.text, reference, timezone, turn.language))
        add_referenced_entities(understanding, turn.references)
        understood = pb.UnderstoodTurn(
            text=turn.text, context=turn.context, understanding=understanding, language=turn.language
        )
        return [Outgoing(Topic.UNDERSTOOD, derive_event(event, STAGE, understood=understood))]
