"""The gRPC face of the NLU: ``parley.nlu.v1.NluService``."""

from __future__ import annotations

import asyncio

import grpc

from parley.nlu.adapters.batching import MicroBatcher
from parley.nlu.domain.limits import validate_batch_size, validate_text
from parley.nlu.domain.parser import Parser
from parley.nlu.v1 import nlu_pb2, nlu_pb2_grpc


class NluServicer(nlu_pb2_grpc.NluServiceServicer):
    """Validates requests; single parses go through the micro-batcher, batches straight to the model.

    Model work runs in worker threads, keeping the event loop free.
    """

    def __init__(self, parser: Parser, batcher: MicroBatcher[str, nlu_pb2.ParseResult] | None = None) -> None:
        self._parser = parser
        self._batcher = batcher or MicroBatcher(parser.parse_batch)

    async def Parse(
        self, request: nlu_pb2.ParseRequest, context: grpc.aio.ServicerContext
    ) -> nlu_pb2.ParseResponse:
        """Parse one utterance."""
        validate_text(request.text)
        result = await self._batcher.submit(request.text)
        return nlu_pb2.ParseResponse(result=result)

    async def ParseBatch(
        self, request: nlu_pb2.ParseBatchRequest, context: grpc.aio.ServicerContext
    ) -> nlu_pb2.ParseBatchResponse:
        """Parse up to 256 utterances with one encoder call."""
        validate_batch_size(len(request.requests))
        texts = [r.text for r in request.requests]
        for i, text in enumerate(texts):
            validate_text(text, field=f"requests[{i}].text")
        results = await asyncio.to_thread(self._parser.parse_batch, texts)
        return nlu_pb2.ParseBatchResponse(results=results)
