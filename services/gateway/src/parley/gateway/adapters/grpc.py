"""The gRPC face of the gateway for apps: one message at a time, or a whole chat on one stream.

A reply that does not come within the reply timeout leaves ``reply`` unset; the response still names the
conversation and turn, so the app can read the reply from the history later.

Credentials come from the call metadata exactly as the HTTP face reads its headers: ``authorization``
(``Bearer pk_...`` or ``Bearer <user JWT>``), ``x-api-key``, ``x-parley-user-token`` and, with auth ``none``,
``x-parley-tenant``; the user id stated by the caller is the request's ``user_id``. Missing or bad
credentials end the call with UNAUTHENTICATED, a spent rate limit with RESOURCE_EXHAUSTED (and a
``retry-after`` trailer in seconds).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from parley.gateway.domain import ChatService, Chunk, Pending, Principal, Replied, SendResult, Typing
from parley.gateway.domain.auth import Authenticator, Credentials
from parley.gateway.domain.ratelimit import RateLimitedError
from parley.gateway.v1 import gateway_pb2, gateway_pb2_grpc

TENANT_METADATA_KEY = "x-parley-tenant"
API_KEY_METADATA_KEY = "x-api-key"
USER_TOKEN_METADATA_KEY = "x-parley-user-token"
AUTHORIZATION_METADATA_KEY = "authorization"


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    """The call metadata by lower-case key (the first value of each; binary ``-bin`` keys are skipped)."""
    found: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        name = key.lower()
        if name.endswith("-bin") or name in found:
            continue
        found[name] = value if isinstance(value, str) else value.decode(errors="replace")
    return found


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def credentials_of(context: grpc.aio.ServicerContext, user_id: str) -> Credentials:
    """What the call presents; an empty ``user_id`` means "not stated"."""
    metadata = _metadata(context)
    return Credentials.collect(
        bearer=_bearer(metadata.get(AUTHORIZATION_METADATA_KEY)),
        api_key=metadata.get(API_KEY_METADATA_KEY),
        user_token=metadata.get(USER_TOKEN_METADATA_KEY),
        tenant_id=metadata.get(TENANT_METADATA_KEY),
        user_id=user_id or None,
    )


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    """``parley.gateway.v1.GatewayService`` over the chat service."""

    def __init__(self, chat: ChatService, auth: Authenticator | None = None) -> None:
        self._chat = chat
        self._auth = auth or Authenticator("none")

    async def _principal(self, context: grpc.aio.ServicerContext, user_id: str) -> Principal:
        try:
            return await self._auth.authenticate(credentials_of(context, user_id))
        except RateLimitedError as exc:
            context.set_trailing_metadata((("retry-after", str(exc.retry_after_s)),))
            raise

    async def SendMessage(
        self, request: gateway_pb2.SendMessageRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.SendMessageResponse:
        who = await self._principal(context, request.user_id)
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
        """Each request gets one response, in order; an empty conversation id continues the stream's one.

        A request with ``stream`` set gets a typing response, the reply's chunks as they are generated and
        a final response with the reply (or ``pending``); otherwise one final response.
        Every message is authenticated (cheap: the key is cached) and spends one request of the rate limit.
        """
        current: str | None = None
        async for request in request_iterator:
            who = await self._principal(context, request.user_id)
            if request.stream:
                async for response in self._streamed(who, request.conversation_id or current, request.text):
                    current = response.conversation_id
                    yield response
                continue
            result: SendResult = await self._chat.send(
                who.tenant_id, who.user_id, request.conversation_id or current, request.text
            )
            current = result.conversation_id
            response = gateway_pb2.ConverseResponse(
                conversation_id=result.conversation_id,
                turn_id=result.turn_id,
                final=True,
                pending=result.reply is None,
            )
            if result.reply is not None:
                response.reply.CopyFrom(result.reply)
            yield response

    async def _streamed(
        self, who: Principal, conversation_id: str | None, text: str
    ) -> AsyncIterator[gateway_pb2.ConverseResponse]:
        ids: dict[str, str] = {}
        async for event in self._chat.stream(who.tenant_id, who.user_id, conversation_id, text):
            if isinstance(event, Chunk):
                yield gateway_pb2.ConverseResponse(
                    **ids, chunk=gateway_pb2.ReplyPiece(index=event.index, text=event.text)
                )
                continue
            ids = {"conversation_id": event.conversation_id, "turn_id": event.turn_id}
            if isinstance(event, Typing):
                yield gateway_pb2.ConverseResponse(**ids, typing=True)
            elif isinstance(event, Replied):
                yield gateway_pb2.ConverseResponse(**ids, final=True, reply=event.reply)
            elif isinstance(event, Pending):
                yield gateway_pb2.ConverseResponse(**ids, final=True, pending=True)
