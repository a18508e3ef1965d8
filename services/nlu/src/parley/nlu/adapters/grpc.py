"""The gRPC face of the NLU: ``parley.nlu.v1.NluService``."""

from __future__ import annotations

import asyncio
from datetime import UTC
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc

from parley.core.errors import InvalidInputError
from parley.nlu.adapters.batching import MicroBatcher
from parley.nlu.domain.limits import validate_batch_size, validate_text
from parley.nlu.domain.parser import ParseInput, Parser
from parley.nlu.v1 import nlu_pb2, nlu_pb2_grpc


class NluServicer(nlu_pb2_grpc.NluServiceServicer):
    """Validates requests; single parses go through the micro-batcher, batches straight to the model.

    Model work runs in worker threads, keeping the event loop free.
    """

    def __init__(
        self, parser: Parser, batcher: MicroBatcher[ParseInput, nlu_pb2.ParseResult] | None = None
    ) -> None:
        self._parser = parser
        self._batcher = batcher or MicroBatcher(parser.parse_batch)

    async def Parse(
        self, request: nlu_pb2.ParseRequest, context: grpc.aio.ServicerContext
    ) -> nlu_pb2.ParseResponse:
        """Parse one utterance."""
        validate_text(request.text)
        result = await self._batcher.submit(_parse_input(request))
        return nlu_pb2.ParseResponse(result=result)

    async def ParseBatch(
        self, request: nlu_pb2.ParseBatchRequest, context: grpc.aio.ServicerContext
    ) -> nlu_pb2.ParseBatchResponse:
        """Parse up to 256 utterances with one encoder call."""
        validate_batch_size(len(request.requests))
        for i, item in enumerate(request.requests):
            validate_text(item.text, field=f"requests[{i}].text")
        inputs = [_parse_input(item, f"requests[{i}]") for i, item in enumerate(request.requests)]
        results = await asyncio.to_thread(self._parser.parse_batch, inputs)
        return nlu_pb2.ParseBatchResponse(results=results)


def _parse_input(request: nlu_pb2.ParseRequest, field: str = "") -> ParseInput:
    """The parser's input, with the reference time and timezone checked."""
    prefix = f"{field}." if field else ""
    timezone = request.timezone
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInputError(
                f"{prefix}timezone: unknown IANA timezone {timezone!r} (e.g. 'Europe/Berlin')"
            ) from exc
    reference = request.reference_time.ToDatetime(tzinfo=UTC) if request.HasField("reference_time") else None
    return ParseInput(request.text, reference, timezone, request.language)
