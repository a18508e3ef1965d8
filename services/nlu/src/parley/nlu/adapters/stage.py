"""The NLU turn stage: ``turn.contextualized`` in, ``turn.understood`` out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from parley.core.bus.base import Outgoing, Subscription
from parley.core.errors import InvalidInputError, PoisonEventError
from parley.core.events import Topic, derive_event, event_type
from parley.nlu.adapters.batching import MicroBatcher
from parley.nlu.domain.limits import validate_text
from parley.nlu.domain.parser import ParseInput, Parser
from parley.nlu.v1 import nlu_pb2
from parley.turn.v1 import turn_event_pb2 as pb

STAGE = "nlu"


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
        # Relative expressions ("tomorrow") are resolved against when the user spoke.
        reference = event.occurred_at.ToDatetime(tzinfo=UTC) if event.HasField("occurred_at") else None
        understanding = await self._batcher.submit(ParseInput(turn.text, reference, "", turn.language))
        understood = pb.UnderstoodTurn(
            text=turn.text, context=turn.context, understanding=understanding, language=turn.language
        )
        return [Outgoing(Topic.UNDERSTOOD, derive_event(event, STAGE, understood=understood))]
