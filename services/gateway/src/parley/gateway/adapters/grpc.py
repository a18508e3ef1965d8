"""The gRPC face of the gateway for apps: one message at a time, or a whole chat on one stream.

A reply that does not come within the reply timeout leaves ``reply`` unset; the response still names the
conversation and turn, so the app can read the reply from the history later.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from parley.gateway.domain import ChatService, Principal, SendResult, principal_of
from parley.gateway.v1 import gateway_pb2, gateway_pb2_grpc

TENANT_METADATA_KEY = "x-parley-tenant"


def _tenant(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key.lower() == TENANT_METADATA_KEY:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return None


def _principal(context: grpc.aio.ServicerContext, user_id: str) -> Principal:
    """Tenant from the call metadata, user from the request; an empty user is anonymous."""
    return principal_of(_tenant(context), user_id or None)


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    """``parley.gateway.v1.GatewayService`` over the chat service."""

    def __init__(self, chat: ChatService) -> None:
        self._chat = chat

    async def SendMessage(
        self, request: gateway_pb2.SendMessageRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.SendMessageResponse:
        who = _principal(context, request.user_id)
        result = await self._chat.send(
            who.tenant_id, who.user_id, request.conversation_id or None, request.text, request.language
        )
        response = gateway_pb2.SendMessageResponse(
            conversation_id=result.conversation_id, turn_id=result.turn_id
        )
        if result.reply is not None:
            response.reply.CopyFrom(result.reply)
        return response

    async def Converse(
        self,
        request_iterator: AsyncIterator[gateway_pb2.ConverseRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[gateway_pb2.ConverseResponse]:
        """Each request gets one response, in order; an empty conversation id continues the stream's one."""
        tenant = _tenant(context)
        current: str | None = None
        async for request in request_iterator:
            who = principal_of(tenant, request.user_id or None)
            result: SendResult = await self._chat.send(
                who.tenant_id, who.user_id, request.conversation_id or current, request.text
            )
            current = result.conversation_id
            response = gateway_pb2.ConverseResponse(
                conversation_id=result.conversation_id, turn_id=result.turn_id
            )
            if result.reply is not None:
                response.reply.CopyFrom(result.reply)
            yield response
