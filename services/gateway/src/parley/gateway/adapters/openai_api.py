"""An OpenAI-compatible face: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Tools built for OpenAI's Chat Completions API (its SDKs, UI kits, evaluation harnesses) can talk to a
Parley assistant unchanged. The assistant is not a raw language model, so the request is read this way:

- the **last ``user`` message** is the turn's text; the other messages are ignored, because the
  conversation's history lives in Parley (the context service), not in the request;
- the conversation is named by the **``X-Parley-Conversation``** header; without it a new conversation
  starts. The conversation and turn are returned in the ``X-Parley-Conversation`` / ``X-Parley-Turn``
  response headers and in the ``parley`` object of the completion (and of the first and last stream
  chunks); the completion id is ``chatcmpl-<turn id>``;
- ``model`` must be one of ``GET /v1/models`` (one model per assistant project, named after it);
- parameters that only tune sampling (``temperature``, ``max_tokens``, ``stop``, ``seed``, ``user``, ...)
  and parameters this API does not know are accepted and ignored: the assistant project decides how it
  answers. Parameters asking for something it cannot deliver (``n`` > 1, ``tools``/``functions``,
  ``logprobs``, a non-text ``response_format``, audio output, non-text content in the user message) are
  rejected with 400 and OpenAI's error body ``{"error": {"message", "type", "param", "code"}}``.

Every error of these endpoints has OpenAI's shape. A reply that does not come within the reply timeout
is a 504 with code ``reply_pending`` (the turn was accepted; its reply will be in the conversation's
history) and ``x-should-retry: false``, so the SDK does not post the message a second time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from parley.core.errors import ParleyError
from parley.core.logging import get_logger
from parley.gateway.adapters.http import ErrorBody, PrincipalDep, describe_validation_errors
from parley.gateway.adapters.streaming import SSE_HEADERS, client_error, first_then_rest, sse_event_schema
from parley.gateway.domain import Chunk, Pending, Replied, StreamEvent, Typing
from parley.gateway.domain.chat import ChatService

log = get_logger(__name__)

CONVERSATION_HEADER = "X-Parley-Conversation"
TURN_HEADER = "X-Parley-Turn"
MODEL_OWNER = "parley"

_ERROR_TYPES = {
    HTTPStatus.UNAUTHORIZED: "authentication_error",
    HTTPStatus.FORBIDDEN: "permission_error",
    HTTPStatus.TOO_MANY_REQUESTS: "rate_limit_error",
    HTTPStatus.GATEWAY_TIMEOUT: "timeout",
}


# ---------------------------------------------------------------------------------------------- errors


class OpenAIErrorDetail(BaseModel):
    """OpenAI's error object."""

    message: str
    type: str = Field(description="`invalid_request_error`, `authentication_error`, `server_error`, ...")
    param: str | None = Field(description="the request parameter at fault, when one is")
    code: str | None = Field(description="e.g. `model_not_found`, `unsupported_value`, `reply_pending`")


class OpenAIErrorBody(BaseModel):
    """Body of this API's error responses (OpenAI's shape)."""

    error: OpenAIErrorDetail


def _openai_errors(*statuses: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    errors: dict[int | str, dict[str, Any]] = {
        status: {"model": OpenAIErrorBody, "description": description} for status, description in statuses
    }
    errors.update(
        {
            HTTPStatus.UNAUTHORIZED: {
                "model": OpenAIErrorBody,
                "description": "no, unknown or revoked API key, or an invalid/expired user token",
            },
            HTTPStatus.FORBIDDEN: {
                "model": OpenAIErrorBody,
                "description": "the credentials do not match each other",
            },
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE: {
                "model": ErrorBody,
                "description": "request body too large (the gateway's own error shape)",
            },
            HTTPStatus.TOO_MANY_REQUESTS: {
                "model": OpenAIErrorBody,
                "description": "the API key's rate limit is spent; retry after `Retry-After` seconds",
            },
            HTTPStatus.SERVICE_UNAVAILABLE: {
                "model": OpenAIErrorBody,
                "description": "a dependency is unavailable",
            },
        }
    )
    return errors


_MODELS_RESPONSES = _openai_errors((HTTPStatus.BAD_REQUEST, "invalid identity headers"))
_COMPLETIONS_RESPONSES: dict[int | str, dict[str, Any]] = {
    HTTPStatus.OK: {
        "description": "the completion (JSON), or with `stream: true` its chunks as Server-Sent Events "
        "(`data: {chat.completion.chunk}` lines, then `data: [DONE]`)",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/event-stream": {
                "schema": sse_event_schema(
                    None, "a `chat.completion.chunk` as JSON, or `[DONE]`", json_data=False
                )
            },
        },
    },
    **_openai_errors(
        (HTTPStatus.BAD_REQUEST, "invalid or unsupported request"),
        (HTTPStatus.NOT_FOUND, "no such model or conversation (or not yours)"),
        (HTTPStatus.GATEWAY_TIMEOUT, "no reply in time (`reply_pending`); the reply will be in the history"),
    ),
}


class OpenAIError(Exception):
    """An error to answer in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": error_type(self.status),
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_type(status: int) -> str:
    """OpenAI's ``type`` for a status: client errors are ``invalid_request_error``, ours ``server_error``."""
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "server_error" if status >= 500 else "invalid_request_error"


def _from_exception(exc: Exception) -> OpenAIError:
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, RequestValidationError):
        status, _, message = describe_validation_errors(exc.errors())
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        code = "invalid_json" if status == HTTPStatus.BAD_REQUEST else None
        return OpenAIError(HTTPStatus.BAD_REQUEST, message, param=".".join(loc) or None, code=code)
    if isinstance(exc, StarletteHTTPException):
        return OpenAIError(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))
    status, code, message = client_error(exc)
    if status == HTTPStatus.UNPROCESSABLE_ENTITY:
        status = HTTPStatus.BAD_REQUEST  # OpenAI answers every invalid request with 400
    headers = {"Retry-After": "1"} if isinstance(exc, ParleyError) and exc.retryable else {}
    return OpenAIError(status, message, code=code, headers=headers)


async def _openai_response(request: Request, exc: Exception) -> Response:
    """``exc`` answered in OpenAI's shape, with the status and headers the gateway gives it elsewhere."""
    if isinstance(exc, (OpenAIError, RequestValidationError)):
        return _from_exception(exc).response()
    handler = next(
        (
            request.app.exception_handlers[cls]
            for cls in type(exc).__mro__
            if cls in request.app.exception_handlers
        ),
        None,
    )
    if handler is None:
        return _from_exception(exc).response()
    # The gateway's own handler decides the status, the client-safe message and headers such as
    # Retry-After or WWW-Authenticate; only the body's shape differs here.
    gateway = await handler(request, exc)
    try:
        detail = json.loads(bytes(gateway.body))["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        return _from_exception(exc).response()
    status = gateway.status_code
    if status == HTTPStatus.UNPROCESSABLE_ENTITY:
        status = HTTPStatus.BAD_REQUEST  # OpenAI answers every invalid request with 400
    skip = {"content-length", "content-type"}
    headers = {k: v for k, v in gateway.headers.items() if k.lower() not in skip}
    return OpenAIError(status, message, code=code, headers=headers).response()


class OpenAIRoute(APIRoute):
    """A route whose every error, including those of its dependencies and body parsing, is OpenAI-shaped."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def openai_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return await _openai_response(request, exc)

        return openai_handler


# ---------------------------------------------------------------------------------------------- models


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")  # parameters this API does not know are ignored


class ContentPart(_Open):
    """A part of a message's content; only ``text`` parts are understood."""

    type: str
    text: str | None = None


class ChatMessageIn(_Open):
    """One message of the request."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class ChatCompletionRequest(_Open):
    """The subset of OpenAI's request this API reads; see the module's notes for the rest."""

    model: str = Field(description="an id from `GET /v1/models`")
    messages: list[ChatMessageIn] = Field(min_length=1, description="the last `user` message is the turn")
    stream: bool | None = False
    n: int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None


def _check_supported(request: ChatCompletionRequest) -> None:
    def unsupported(param: str, message: str) -> OpenAIError:
        return OpenAIError(HTTPStatus.BAD_REQUEST, message, param=param, code="unsupported_value")

    if request.n is not None and request.n != 1:
        raise unsupported("n", "only n=1 is supported: an assistant gives one reply per turn")
    if request.tools or request.functions:
        param = "tools" if request.tools else "functions"
        raise unsupported(param, "tools are defined in the assistant project, not in the request")
    if request.logprobs or request.top_logprobs:
        raise unsupported("logprobs", "logprobs are not available")
    if request.response_format and request.response_format.get("type", "text") != "text":
        raise unsupported("response_format", "only the text response format is supported")
    if request.modalities and set(request.modalities) != {"text"}:
        raise unsupported("modalities", "only text output is supported")
    if request.audio:
        raise unsupported("audio", "only text output is supported")


def turn_text(messages: list[ChatMessageIn]) -> str:
    """The text of the last ``user`` message (its text parts, joined by newlines)."""
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if message.role != "user":
            continue
        param = f"messages.{position}.content"
        content = message.content
        if isinstance(content, list):
            if any(part.type != "text" for part in content):
                raise OpenAIError(
                    HTTPStatus.BAD_REQUEST,
                    "only text content is supported in the user message",
                    param=param,
                    code="unsupported_value",
                )
            content = "\n".join(part.text or "" for part in content)
        if not content or not content.strip():
            raise OpenAIError(HTTPStatus.BAD_REQUEST, "the last user message has no text", param=param)
        return content
    raise OpenAIError(HTTPStatus.BAD_REQUEST, "messages must contain a user message", param="messages")


# ------------------------------------------------------------------------------------------- the router


def project_model_id(project_dir: Path) -> str:
    """The assistant project's ``name`` from its ``assistant.yml``; the folder's name if it has none."""
    try:
        data = yaml.safe_load((project_dir / "assistant.yml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        log.warning("no assistant.yml to name the model; using the folder's name", error=str(exc))
        data = None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else project_dir.resolve().name


def _completion_base(turn_id: str, model: str, created: int, obj: str) -> dict[str, Any]:
    return {"id": f"chatcmpl-{turn_id}", "object": obj, "created": created, "model": model}


def _parley(conversation_id: str, turn_id: str, **more: Any) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "turn_id": turn_id, **more}


def _quick_replies(replied: Replied) -> list[dict[str, str]]:
    return [{"title": q.title, "payload": q.payload} for q in replied.reply.quick_replies]


def _pending_error(conversation_id: str, turn_id: str, timeout_s: float) -> OpenAIError:
    return OpenAIError(
        HTTPStatus.GATEWAY_TIMEOUT,
        f"the assistant did not reply within {timeout_s:g}s; the message was accepted and its reply will be "
        f"in the history of conversation {conversation_id} (turn {turn_id})",
        code="reply_pending",
        headers={
            "x-should-retry": "false",
            CONVERSATION_HEADER: conversation_id,
            TURN_HEADER: turn_id,
        },
    )


def _data(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


async def _chunks(
    typing: Typing, events: AsyncIterator[StreamEvent], model: str, timeout_s: float
) -> AsyncIterator[bytes]:
    """``chat.completion.chunk`` events of one turn, ending with ``[DONE]`` (or an error object)."""
    conversation_id, turn_id = typing.conversation_id, typing.turn_id
    base = _completion_base(turn_id, model, int(time.time()), "chat.completion.chunk")

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _data({**base, "choices": [choice], **extra})

    streamed: list[str] = []
    try:
        yield chunk({"role": "assistant", "content": ""}, parley=_parley(conversation_id, turn_id))
        async for event in events:
            if isinstance(event, Chunk):
                streamed.append(event.text)
                yield chunk({"content": event.text})
            elif isinstance(event, Replied):
                text, so_far = event.reply.text, "".join(streamed)
                if text.startswith(so_far):
                    if text[len(so_far) :]:
                        yield chunk({"content": text[len(so_far) :]})
                else:
                    log.info("the final reply differs from its streamed chunks", turn_id=turn_id)
                final = _parley(conversation_id, turn_id, text=text, quick_replies=_quick_replies(event))
                yield chunk({}, "stop", parley=final)
                yield b"data: [DONE]\n\n"
                return
            elif isinstance(event, Pending):
                yield _data(_pending_error(conversation_id, turn_id, timeout_s).body())
                return
    except Exception as exc:  # after the 200 has gone out, an error can only be an event
        yield _data(_from_exception(exc).body())
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def openai_router(chat: ChatService, project_dir: Path, *, reply_timeout_s: float) -> APIRouter:
    """The OpenAI-compatible endpoints for the assistant project in ``project_dir``."""
    router = APIRouter(tags=["openai"], route_class=OpenAIRoute)
    model_ids: list[str] = []

    async def models() -> list[str]:
        if not model_ids:  # read once, off the event loop
            model_ids.append(await asyncio.to_thread(project_model_id, project_dir))
        return model_ids

    @router.get("/v1/models", responses=_MODELS_RESPONSES)
    async def list_models(who: PrincipalDep) -> dict[str, Any]:
        """The assistant projects served here, as OpenAI models (one per project, named after it)."""
        data = [{"id": m, "object": "model", "created": 0, "owned_by": MODEL_OWNER} for m in await models()]
        return {"object": "list", "data": data}

    @router.post("/v1/chat/completions", response_model=None, responses=_COMPLETIONS_RESPONSES)
    async def chat_completions(
        body: ChatCompletionRequest,
        who: PrincipalDep,
        conversation: Annotated[
            str | None,
            Header(alias=CONVERSATION_HEADER, description="conversation to continue; absent starts one"),
        ] = None,
    ) -> Response:
        """OpenAI's Chat Completions, streaming or not; the last user message is the turn's text."""
        if body.model not in await models():
            raise OpenAIError(
                HTTPStatus.NOT_FOUND,
                f"The model `{body.model}` does not exist; see GET /v1/models",
                param="model",
                code="model_not_found",
            )
        _check_supported(body)
        text = turn_text(body.messages)
        conversation_id = conversation or None
        if body.stream:
            events = chat.stream(who.tenant_id, who.user_id, conversation_id, text)
            first, rest = await first_then_rest(events)
            assert isinstance(first, Typing)
            return StreamingResponse(
                _chunks(first, rest, body.model, reply_timeout_s),
                media_type="text/event-stream",
                headers={
                    **SSE_HEADERS,
                    CONVERSATION_HEADER: first.conversation_id,
                    TURN_HEADER: first.turn_id,
                },
            )
        result = await chat.send(who.tenant_id, who.user_id, conversation_id, text)
        if result.reply is None:
            raise _pending_error(result.conversation_id, result.turn_id, reply_timeout_s)
        completion = {
            **_completion_base(result.turn_id, body.model, int(time.time()), "chat.completion"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.reply.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": None,
            "parley": _parley(
                result.conversation_id,
                result.turn_id,
                quick_replies=[{"title": q.title, "payload": q.payload} for q in result.reply.quick_replies],
            ),
        }
        headers = {CONVERSATION_HEADER: result.conversation_id, TURN_HEADER: result.turn_id}
        return JSONResponse(completion, headers=headers)

    return router
