"""Replies as they are generated: Server-Sent Events over HTTP, and a WebSocket for whole chats.

Both faces send the same event objects, each a JSON object whose ``type`` names it:

- ``typing`` ``{conversation_id, turn_id}``: the message was accepted, the assistant is working on it;
- ``chunk`` ``{index, text}``: the next piece of the reply, in order (none for template replies);
- ``reply`` ``{conversation_id, turn_id, reply: {text, quick_replies, links}}``: the whole reply; it is
  authoritative, so a client replaces the text it built from chunks with ``reply.text``;
- ``pending`` ``{conversation_id, turn_id, status: "pending"}``: nothing came within the reply timeout;
  the reply will be in the conversation's history;
- ``error`` ``{error: {code, message}}``: the gateway's one error shape.

A turn is ``typing``, any number of ``chunk`` s, then ``reply`` or ``pending``. Errors found before the
message is accepted (bad input, unknown conversation) are ordinary HTTP error responses on the SSE
endpoints; on the WebSocket they are ``error`` events and the socket stays open.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parley.core.errors import ParleyError
from parley.core.logging import get_logger
from parley.gateway.adapters.http import (
    _SERVER_SIDE_MESSAGES,
    ERROR_RESPONSES,
    PostMessage,
    PrincipalDep,
    StartMessage,
    describe_validation_errors,
    error_code,
)
from parley.gateway.domain import ChatService, Chunk, Pending, Principal, Replied, StreamEvent, Typing
from parley.gateway.domain.auth import Authenticator, Credentials
from parley.gateway.domain.ratelimit import RateLimitedError
from parley.generator.v1 import generator_pb2

log = get_logger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# Query parameters a browser may use instead of headers on the WebSocket (its API cannot set headers).
_HEADER_PREFIXES = ("x-parley-", "authorization", "x-api-key")


def client_error(exc: Exception) -> tuple[int, str, str]:
    """Status, code and the message a client may see for ``exc`` (no internals for server-side ones)."""
    if isinstance(exc, ParleyError):
        status, code, message = int(exc.http_status), error_code(exc), str(exc) or type(exc).__name__
        if status >= 500:
            log.warning("streamed request failed", status=status, error=f"{type(exc).__name__}: {exc}")
            message = _SERVER_SIDE_MESSAGES.get(code, _SERVER_SIDE_MESSAGES["internal"])
        return status, code, message
    log.error("unhandled error while streaming", exc_info=exc)
    return HTTPStatus.INTERNAL_SERVER_ERROR, "internal", _SERVER_SIDE_MESSAGES["internal"]


def reply_json(reply: generator_pb2.Reply) -> dict[str, Any]:
    """The reply as the REST API shows it."""
    return {
        "text": reply.text,
        "quick_replies": [{"title": q.title, "payload": q.payload} for q in reply.quick_replies],
        "links": [{"title": link.title, "url": link.url} for link in reply.links],
    }


def event_json(event: StreamEvent) -> dict[str, Any]:
    """The client-facing object of one stream event (its ``type`` is the SSE event name)."""
    match event:
        case Typing(conversation_id, turn_id):
            return {"type": "typing", "conversation_id": conversation_id, "turn_id": turn_id}
        case Chunk(index, text):
            return {"type": "chunk", "index": index, "text": text}
        case Replied(conversation_id, turn_id, reply):
            return {
                "type": "reply",
                "conversation_id": conversation_id,
                "turn_id": turn_id,
                "reply": reply_json(reply),
            }
        case Pending(conversation_id, turn_id):
            return {
                "type": "pending",
                "conversation_id": conversation_id,
                "turn_id": turn_id,
                "status": "pending",
            }
    raise TypeError(f"not a stream event: {event!r}")


def error_json(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"code": code, "message": message}}


def sse(data: Mapping[str, Any]) -> bytes:
    """One Server-Sent Event named after the object's ``type``."""
    return f"event: {data['type']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def first_then_rest(
    events: AsyncIterator[StreamEvent],
) -> tuple[StreamEvent, AsyncIterator[StreamEvent]]:
    """Run ``events`` up to its first item, so errors before it still become ordinary error responses."""
    try:
        first = await anext(events)
    except BaseException:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    return first, events


#: A comment line every so often while nothing else is sent, so proxies and load balancers that close idle
#: connections keep a slow turn's stream open (clients ignore comments).
KEEPALIVE = b": keep-alive\n\n"


async def _with_keepalive(events: AsyncIterator[StreamEvent], every_s: float) -> AsyncIterator[bytes]:
    """``events`` as SSE frames, with a keep-alive comment after each ``every_s`` of silence. The pending
    read is never cancelled by the wait, so no event is lost to a keep-alive."""
    iterator = aiter(events)
    while True:
        pending = asyncio.ensure_future(anext(iterator))
        try:
            while not (await asyncio.wait({pending}, timeout=every_s))[0]:
                yield KEEPALIVE
        finally:
            if not pending.done():
                pending.cancel()
        try:
            event = pending.result()
        except StopAsyncIteration:
            return
        yield sse(event_json(event))


async def _sse_body(
    first: StreamEvent, events: AsyncIterator[StreamEvent], keepalive_s: float
) -> AsyncIterator[bytes]:
    try:
        yield sse(event_json(first))
        async for frame in _with_keepalive(events, keepalive_s):
            yield frame
    except Exception as exc:  # after the 200 has gone out, an error can only be an event
        _, code, message = client_error(exc)
        yield sse(error_json(code, message))
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def sse_response(events: AsyncIterator[StreamEvent], keepalive_s: float = 15.0) -> StreamingResponse:
    """A ``text/event-stream`` of ``events``; what fails before the first event raises here instead."""
    first, rest = await first_then_rest(events)
    return StreamingResponse(
        _sse_body(first, rest, keepalive_s), media_type="text/event-stream", headers=SSE_HEADERS
    )


class SocketMessage(BaseModel):
    """A frame a WebSocket client sends: one user message."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="what the user said")
    conversation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="conversation to post into; absent continues the socket's conversation (or starts one)",
    )
    language: str | None = Field(default=None, max_length=35, description="BCP-47 language hint")


class _Gone(Exception):
    """The WebSocket client went away while we were sending."""


def _parse_frame(raw: str | bytes | None, max_bytes: int) -> SocketMessage | tuple[str, str]:
    """The frame as a message, or ``(code, message)`` saying what is wrong with it."""
    if raw is None:
        return "invalid_input", 'frames must be JSON objects such as {"text": "hello"}'
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode())
    if size > max_bytes:
        return "payload_too_large", f"a frame must be at most {max_bytes} bytes"
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return "invalid_json", f"frame is not valid JSON: {exc}"
    if not isinstance(data, dict):
        return "invalid_input", 'a frame must be a JSON object such as {"text": "hello"}'
    try:
        return SocketMessage.model_validate(data)
    except ValidationError as exc:
        _, code, message = describe_validation_errors(exc.errors())
        return code, message


async def _frame_principal(websocket: WebSocket) -> Principal:
    """The socket's principal again, for one more frame: each frame is a request, so it spends one token
    of the key's rate limit (the key itself is cached: no database round trip)."""
    authenticator = getattr(websocket.app.state, "authenticator", None)
    if not isinstance(authenticator, Authenticator):
        raise RuntimeError("this app has no authenticator; build it with create_http_app")
    headers = websocket.headers
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    credentials = Credentials.collect(
        bearer=value if scheme.lower() == "bearer" else None,
        api_key=headers.get("x-api-key"),
        user_token=headers.get("x-parley-user-token"),
        tenant_id=headers.get("x-parley-tenant"),
        user_id=headers.get("x-parley-user"),
    )
    return await authenticator.authenticate(credentials)


def _query_identity(websocket: WebSocket) -> None:
    """Let a browser pass identity headers as query parameters of the same name (headers win)."""
    present = {name.lower() for name in websocket.headers}
    added: list[tuple[bytes, bytes]] = []
    for name, value in websocket.query_params.multi_items():
        lowered = name.lower()
        if lowered.startswith(_HEADER_PREFIXES) and lowered not in present:
            added.append((lowered.encode("latin-1", "replace"), value.encode("latin-1", "replace")))
            present.add(lowered)
    if added:
        websocket.scope["headers"] = [*websocket.scope.get("headers", ()), *added]
        websocket.__dict__.pop("_headers", None)  # Starlette caches the parsed headers


def sse_event_schema(names: list[str] | None, data: str, *, json_data: bool = True) -> dict[str, Any]:
    """OpenAPI (3.1) schema of ONE Server-Sent Event of a ``text/event-stream`` response.

    Before OpenAPI 3.2's ``itemSchema``, a stream's ``schema`` describes each event: its ``event`` name
    and its ``data`` line, a JSON text.
    """
    event: dict[str, Any] = {"type": "string"}
    if names is not None:
        event["enum"] = names
    return {
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": event,
            "data": {
                "type": "string",
                **({"contentMediaType": "application/json"} if json_data else {}),
                "description": data,
            },
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
    }


_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    HTTPStatus.OK: {
        "content": {
            "text/event-stream": {
                "schema": sse_event_schema(
                    ["typing", "chunk", "reply", "pending", "error"],
                    "the event as a JSON object whose `type` is the event name",
                )
            }
        },
        "description": "events `typing`, `chunk`..., then `reply` or `pending` (or `error`)",
    },
    **ERROR_RESPONSES,
}


async def _charge_frame(websocket: WebSocket) -> tuple[Principal | None, dict[str, Any] | None, bool]:
    """(the principal, or the error event to send and whether to close the socket) for one more frame."""
    try:
        return await _frame_principal(websocket), None, False
    except RateLimitedError as exc:
        return None, {**error_json("rate_limited", str(exc)), "retry_after_s": exc.retry_after_s}, False
    except ParleyError as exc:  # e.g. the key was revoked meanwhile
        _, code, text = client_error(exc)
        return None, error_json(code, text), True


async def _serve_socket(
    websocket: WebSocket, who: Principal, chat: ChatService, max_frame_bytes: int
) -> None:
    """One chat socket: frames in, each turn's events out, until the client or the key ends it."""
    await websocket.accept()
    current: str | None = None
    handshake_paid = True

    async def send(data: Mapping[str, Any]) -> None:
        try:
            await websocket.send_text(json.dumps(data, ensure_ascii=False))
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise _Gone from exc

    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            frame = _parse_frame(raw if raw is not None else message.get("bytes"), max_frame_bytes)
            if isinstance(frame, tuple):
                await send(error_json(*frame))
                continue
            if handshake_paid:
                handshake_paid = False  # the handshake spent the first frame's token
            else:
                fresh, problem, close = await _charge_frame(websocket)
                if problem is not None:
                    await send(problem)
                    if close:
                        return
                    continue
                assert fresh is not None
                who = fresh
            conversation_id = frame.conversation_id or current
            events = chat.stream(
                who.tenant_id, who.user_id, conversation_id, frame.text, frame.language or ""
            )
            try:
                async for event in events:
                    if isinstance(event, Typing):
                        current = event.conversation_id
                    await send(event_json(event))
            except _Gone:
                raise
            except Exception as exc:  # the turn failed; the socket stays open for the next one
                _, code, text = client_error(exc)
                await send(error_json(code, text))
            finally:
                await events.aclose()
    except (_Gone, WebSocketDisconnect):
        return


def streaming_router(chat: ChatService, *, max_frame_bytes: int, keepalive_s: float = 15.0) -> APIRouter:
    """The SSE endpoints and the WebSocket. ``max_frame_bytes`` bounds a WebSocket frame like a body."""
    router = APIRouter(tags=["streaming"])

    @router.post(
        "/v1/conversations/{conversation_id}/messages/stream",
        response_class=StreamingResponse,
        responses=_STREAM_RESPONSES,
    )
    async def stream_message(conversation_id: str, body: PostMessage, who: PrincipalDep) -> StreamingResponse:
        """Send a message and receive the reply as Server-Sent Events while it is generated."""
        return await sse_response(
            chat.stream(who.tenant_id, who.user_id, conversation_id, body.text, body.language or ""),
            keepalive_s,
        )

    @router.post("/v1/messages/stream", response_class=StreamingResponse, responses=_STREAM_RESPONSES)
    async def stream_message_anywhere(body: StartMessage, who: PrincipalDep) -> StreamingResponse:
        """Like `POST /v1/messages`, answered as Server-Sent Events; no `conversation_id` starts one."""
        return await sse_response(
            chat.stream(who.tenant_id, who.user_id, body.conversation_id, body.text, body.language or ""),
            keepalive_s,
        )

    @router.websocket("/v1/ws", dependencies=[Depends(_query_identity)])
    async def chat_socket(websocket: WebSocket, who: PrincipalDep) -> None:
        """A whole chat on one socket: each ``{"text", "conversation_id"?}`` frame gets its turn's events."""
        await _serve_socket(websocket, who, chat, max_frame_bytes)

    return router
