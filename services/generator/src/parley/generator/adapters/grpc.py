"""``parley.generator.v1.GeneratorService`` over gRPC (and in-process, through the same object)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from parley.core.errors import InvalidInputError
from parley.generator.domain.replies import Recipient, ReplyService
from parley.generator.v1 import generator_pb2, generator_pb2_grpc

#: More actions than any sane decision holds; guards the renderer against abuse.
MAX_ACTIONS = 64


def validate_generate(request: generator_pb2.GenerateRequest) -> None:
    """Reject a request that cannot be rendered."""
    if not request.actions:
        raise InvalidInputError("actions: at least one action is required")
    if len(request.actions) > MAX_ACTIONS:
        raise InvalidInputError(f"actions: at most {MAX_ACTIONS} actions, got {len(request.actions)}")


def _recipient(request: generator_pb2.GenerateRequest) -> Recipient:
    """Sticky and rotating variants need the user and conversation; preferences are the stage's (the
    request carries none)."""
    return Recipient(conversation_id=request.conversation_id, user_id=request.user_id)


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    """Renders replies; the turn id fixes the template variants, so a retried call returns the same text
    (an LLM-written reply, where one is configured, may differ)."""

    def __init__(self, replies: ReplyService) -> None:
        self._replies = replies

    async def Generate(
        self, request: generator_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> generator_pb2.GenerateResponse:
        validate_generate(request)
        generated = await self._replies.reply(
            request.turn_id, request.actions, language=request.language, recipient=_recipient(request)
        )
        return generator_pb2.GenerateResponse(reply=generated.reply)

    async def GenerateStream(
        self, request: generator_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[generator_pb2.GenerateChunk]:
        """The reply in pieces (word by word; a model's answer as it is written), then a final chunk carrying
        the whole reply."""
        validate_generate(request)
        async for piece in self._replies.stream(
            request.turn_id, request.actions, language=request.language, recipient=_recipient(request)
        ):
            if piece.final is not None:
                yield generator_pb2.GenerateChunk(final=True, reply=piece.final.reply)
            elif piece.text_delta:
                yield generator_pb2.GenerateChunk(text_delta=piece.text_delta)
