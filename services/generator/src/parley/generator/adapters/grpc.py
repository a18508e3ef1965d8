"""``parley.generator.v1.GeneratorService`` over gRPC (and in-process, through the same object)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from parley.core.errors import InvalidInputError
from parley.generator.domain.templates import TemplateRenderer, split_words
from parley.generator.v1 import generator_pb2, generator_pb2_grpc

#: More actions than any sane decision holds; guards the renderer against abuse.
MAX_ACTIONS = 64


def validate_generate(request: generator_pb2.GenerateRequest) -> None:
    """Reject a request that cannot be rendered."""
    if not request.actions:
        raise InvalidInputError("actions: at least one action is required")
    if len(request.actions) > MAX_ACTIONS:
        raise InvalidInputError(f"actions: at most {MAX_ACTIONS} actions, got {len(request.actions)}")


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    """Renders replies; the turn id fixes the variants, so a retried call returns the same text."""

    def __init__(self, renderer: TemplateRenderer) -> None:
        self._renderer = renderer

    async def Generate(
        self, request: generator_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> generator_pb2.GenerateResponse:
        validate_generate(request)
        return generator_pb2.GenerateResponse(reply=self._renderer.render(request.turn_id, request.actions))

    async def GenerateStream(
        self, request: generator_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[generator_pb2.GenerateChunk]:
        """The reply word by word, then a final chunk carrying the whole reply."""
        validate_generate(request)
        reply = self._renderer.render(request.turn_id, request.actions)
        for piece in split_words(reply.text):
            yield generator_pb2.GenerateChunk(text_delta=piece)
        yield generator_pb2.GenerateChunk(final=True, reply=reply)
