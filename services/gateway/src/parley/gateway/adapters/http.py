"""The REST face of the gateway (FastAPI, documented at ``/docs``) and the web chat page at ``/``.

Every error leaves in one shape, ``{"error": {"code": ..., "message": ...}}``, whatever raised it: our
error tree, request validation, a body too large, an unknown route. A client never has to parse two kinds
of error bodies, and never sees a stack trace.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.common.v1 import common_pb2
from parley.core.errors import (
    ConfigurationError,
    DeadlineExceededError,
    ParleyError,
    UnauthenticatedError,
    UnavailableError,
)
from parley.core.logging import get_logger
from parley.gateway.domain import ChatService, Principal, SendResult, check_conversation_id
from parley.gateway.domain.auth import Authenticator, Credentials
from parley.gateway.domain.ratelimit import RateLimitedError
from parley.gateway.ports import Conversations
from parley.gateway.settings import GatewaySettings
from parley.generator.v1 import generator_pb2

log = get_logger(__name__)

#: A readiness check: returns when the dependency answers, raises when it does not.
ReadinessCheck = Callable[[], Awaitable[None]]

_READINESS_TIMEOUT_S = 2.0
# An id no conversation has: asking the context service for it proves it answers without touching data.
_PROBE_CONVERSATION_ID = "00000000-0000-0000-0000-000000000000"


# ---------------------------------------------------------------------------------------------- models


class ErrorDetail(BaseModel):
    """What went wrong, for programs (``code``) and for people (``message``)."""

    code: str = Field(description="stable snake_case error code, e.g. `invalid_input`, `not_found`")
    message: str = Field(description="what went wrong and, where it helps, what to do about it")


class ErrorBody(BaseModel):
    """Body of every error response."""

    error: ErrorDetail


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PostMessage(_Request):
    """A user message to an existing conversation."""

    text: str = Field(description="what the user said; surrounding whitespace is dropped")
    language: str | None = Field(
        default=None, max_length=35, description="BCP-47 language hint such as `en`; empty or absent = auto"
    )


class StartMessage(PostMessage):
    """A user message, to a given conversation or to a new one."""

    conversation_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="conversation to post into; absent starts one"
    )


class ConversationCreated(BaseModel):
    """A new, empty conversation."""

    conversation_id: str


class QuickReply(BaseModel):
    """A button the client may show; pressing it sends ``payload`` as the next message."""

    title: str
    payload: str


class Link(BaseModel):
    """A link to show under the reply (a card or an anchor)."""

    title: str
    url: str


class ReplyBody(BaseModel):
    """The assistant's reply."""

    text: str
    quick_replies: list[QuickReply] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)


class MessageReplied(BaseModel):
    """The message was processed and the reply came in time."""

    conversation_id: str
    turn_id: str
    reply: ReplyBody


class MessagePending(BaseModel):
    """The message was accepted but the reply did not come in time; read it from the history later."""

    conversation_id: str
    turn_id: str
    status: Literal["pending"] = "pending"


class HistoryMessage(BaseModel):
    """One stored utterance."""

    role: Literal["user", "bot"]
    text: str
    turn_id: str
    created_at: datetime


class History(BaseModel):
    """A page of a conversation's messages, oldest first."""

    messages: list[HistoryMessage]
    next_page_token: str | None = Field(description="pass as `page_token` for the next page; null at the end")


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether the gateway can serve: each dependency's check, `ok` or why not."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, str]


# -------------------------------------------------------------------------------------------- identity


_API_KEY_SCHEME = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    description="the tenant's API key (`pk_...`), when `PARLEY_GATEWAY_AUTH=api_key`",
    auto_error=False,
)
_BEARER_SCHEME = HTTPBearer(
    scheme_name="Bearer",
    description="`Bearer pk_...` (the API key) or `Bearer <JWT>` (the end user's token, with the key in "
    "`X-API-Key`)",
    auto_error=False,
)
_USER_TOKEN_SCHEME = APIKeyHeader(
    name="X-Parley-User-Token",
    scheme_name="UserToken",
    description="the end user's JWT (its `sub` is the user id), when user tokens are configured",
    auto_error=False,
)


async def principal(
    connection: HTTPConnection,
    api_key: Annotated[str | None, Depends(_API_KEY_SCHEME)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER_SCHEME)],
    user_token: Annotated[str | None, Depends(_USER_TOKEN_SCHEME)],
    tenant: Annotated[
        str | None,
        Header(
            alias="X-Parley-Tenant",
            description="tenant id (auth `none` only; with API keys the key names the tenant); "
            "default `default`",
        ),
    ] = None,
    user: Annotated[
        str | None,
        Header(
            alias="X-Parley-User",
            description="end user id; default `anonymous` (with a user token, its `sub` is the user)",
        ),
    ] = None,
) -> Principal:
    """Who the request acts for: the one place identity is read, for every route (REST, streaming, ...).

    Authenticates with the app's :class:`Authenticator` (``PARLEY_GATEWAY_AUTH``) and spends one request
    of the key's rate limit.
    """
    authenticator = getattr(connection.app.state, "authenticator", None)
    if not isinstance(authenticator, Authenticator):
        # Only an app not built by create_http_app gets here; refusing beats serving unauthenticated.
        raise ConfigurationError("this app has no authenticator; build it with create_http_app")
    credentials = Credentials.collect(
        bearer=bearer.credentials if bearer is not None else None,
        api_key=api_key,
        user_token=user_token,
        tenant_id=tenant,
        user_id=user,
    )
    return await authenticator.authenticate(credentials)


PrincipalDep = Annotated[Principal, Depends(principal)]


# -------------------------------------------------------------------------------------- error mapping


#: The challenge of a 401: the API key (or a user token) goes in the Authorization header as a bearer token.
WWW_AUTHENTICATE = 'Bearer realm="parley"'

_SERVER_SIDE_MESSAGES = {
    "unavailable": "the assistant is unavailable right now; try again shortly",
    "deadline_exceeded": "the assistant took too long to answer; try again",
    "internal": "internal error; the server log has the details",
}


def _error_response(status: int, code: str, message: str) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status)


def error_code(error: ParleyError) -> str:
    """``InvalidInputError`` -> ``invalid_input``; the bare root maps to ``internal``."""
    name = type(error).__name__.removesuffix("Error")
    if type(error) is ParleyError or not name:
        return "internal"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _status_code_name(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


def _where(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] or [parts[0]]
    return ".".join(parts)


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> tuple[int, str, str]:
    """Status, code and a one-line message for FastAPI's validation errors ("text: Input should be ...")."""
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "decode error")
            loc = error.get("loc", ())
            where = f" at position {loc[1]}" if len(loc) > 1 else ""
            return HTTPStatus.BAD_REQUEST, "invalid_json", f"request body is not valid JSON: {reason}{where}"
    messages = []
    for error in errors:
        msg = str(error.get("msg", "invalid value"))
        where = _where(error.get("loc", ()))
        if error.get("type") == "missing" and where == "body":
            messages.append("request body is required (JSON)")
        elif error.get("type") in {"model_type", "model_attributes_type", "dict_type"} and where == "body":
            messages.append("request body must be a JSON object sent with Content-Type: application/json")
        else:
            messages.append(f"{where}: {msg}" if where else msg)
    return HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_input", "; ".join(messages) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ParleyError)
    async def parley_error(_: Request, exc: ParleyError) -> JSONResponse:
        status = int(exc.http_status)
        code = error_code(exc)
        message = str(exc) or type(exc).__name__
        if status >= 500:
            # Server-side failures name internal hosts and services: log them, tell the client what to do.
            log.warning("request failed", status=status, error=f"{type(exc).__name__}: {exc}")
            message = _SERVER_SIDE_MESSAGES.get(code, _SERVER_SIDE_MESSAGES["internal"])
        response = _error_response(status, code, message)
        if isinstance(exc, RateLimitedError):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        elif exc.retryable:
            response.headers["Retry-After"] = "1"
        if isinstance(exc, UnauthenticatedError):
            response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = describe_validation_errors(exc.errors())
        return _error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _error_response(exc.status_code, _status_code_name(exc.status_code), str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error in HTTP handler", exc_info=exc)
        return _error_response(
            HTTPStatus.INTERNAL_SERVER_ERROR, "internal", "internal error; the server log has the details"
        )


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413, before any handler parses them.

    The body is read (up to the limit) and replayed to the app, so a chunked body without a
    Content-Length is limited as well as an honest one.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before it finished sending
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _error_response(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "payload_too_large",
            f"request body must be at most {self.max_bytes} bytes",
        )
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


# ------------------------------------------------------------------------------------------ readiness


def context_check(conversations: Conversations) -> ReadinessCheck:
    """Ready when the context service answers: "not found" for a probe id is an answer."""

    async def check() -> None:
        try:
            await conversations.get_conversation(
                _PROBE_CONVERSATION_ID, "parley-probe", "readyz", page_size=1
            )
        except (UnavailableError, DeadlineExceededError):
            raise
        except ParleyError:
            return

    return check


async def _run_check(check: ReadinessCheck) -> str:
    try:
        await asyncio.wait_for(check(), _READINESS_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {_READINESS_TIMEOUT_S:g}s"
    except Exception as exc:  # a probe reports any failure instead of raising it
        return f"{type(exc).__name__}: {exc}"
    return "ok"


# --------------------------------------------------------------------------------------------- the app


def _reply_body(reply: generator_pb2.Reply) -> ReplyBody:
    return ReplyBody(
        text=reply.text,
        quick_replies=[QuickReply(title=q.title, payload=q.payload) for q in reply.quick_replies],
        links=[Link(title=link.title, url=link.url) for link in reply.links],
    )


def _send_response(result: SendResult) -> MessageReplied | JSONResponse:
    if result.reply is not None:
        return MessageReplied(
            conversation_id=result.conversation_id, turn_id=result.turn_id, reply=_reply_body(result.reply)
        )
    pending = MessagePending(conversation_id=result.conversation_id, turn_id=result.turn_id)
    return JSONResponse(
        pending.model_dump(),
        status_code=HTTPStatus.ACCEPTED,
        headers={"Location": f"/v1/conversations/{result.conversation_id}/messages"},
    )


_ROLES = {common_pb2.ROLE_USER: "user", common_pb2.ROLE_BOT: "bot"}
#: The error responses every authenticated JSON endpoint documents (other modules extend or override it).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    HTTPStatus.BAD_REQUEST: {"model": ErrorBody, "description": "invalid JSON"},
    HTTPStatus.UNAUTHORIZED: {
        "model": ErrorBody,
        "description": "no, unknown or revoked API key, or an invalid/expired user token",
    },
    HTTPStatus.FORBIDDEN: {"model": ErrorBody, "description": "the credentials do not match each other"},
    HTTPStatus.NOT_FOUND: {"model": ErrorBody, "description": "no such conversation (or not yours)"},
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: {"model": ErrorBody, "description": "request body too large"},
    HTTPStatus.UNPROCESSABLE_ENTITY: {"model": ErrorBody, "description": "invalid input"},
    HTTPStatus.TOO_MANY_REQUESTS: {
        "model": ErrorBody,
        "description": "the API key's rate limit is spent; retry after `Retry-After` seconds",
    },
    HTTPStatus.SERVICE_UNAVAILABLE: {"model": ErrorBody, "description": "a dependency is unavailable"},
}
_PENDING = {
    HTTPStatus.ACCEPTED: {
        "model": MessagePending,
        "description": "accepted; the reply did not come in time, read it from the history",
    }
}


#: Request headers a cross-origin page may send.
CORS_ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-API-Key",
    "X-Parley-User-Token",
    "X-Parley-Tenant",
    "X-Parley-User",
    "Last-Event-ID",
)


def _load_chat_page() -> str:
    return resources.files("parley.gateway.web").joinpath("chat.html").read_text(encoding="utf-8")


def create_http_app(
    chat: ChatService,
    conversations: Conversations,
    settings: GatewaySettings,
    *,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """The gateway's HTTP API. ``readiness`` names the checks of ``/readyz`` (default: the context).

    ``authenticator`` decides who each request acts for; absent, identity comes from the headers, which
    is only allowed with ``settings.auth == "none"``.
    """
    if authenticator is None:
        if settings.auth != "none":
            raise ConfigurationError(f"auth {settings.auth!r} needs an authenticator (see build_gateway)")
        authenticator = Authenticator("none")
    checks = dict(readiness) if readiness is not None else {"context": context_check(conversations)}
    chat_page = _load_chat_page()
    app = FastAPI(
        title="Parley gateway",
        summary="Talk to a Parley assistant.",
        description=(
            "Send user messages and read conversations. With `PARLEY_GATEWAY_AUTH=api_key` every API "
            "request carries the tenant's API key (`Authorization: Bearer pk_...` or `X-API-Key`) and, "
            "optionally, the end user's JWT (`X-Parley-User-Token`); with `none` (local runs) identity "
            "comes from the `X-Parley-Tenant` and `X-Parley-User` headers. Every error has the body "
            '`{"error": {"code": ..., "message": ...}}`.'
        ),
        version="1.0.0",
    )
    app.state.authenticator = authenticator
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        # Added last, so it runs first: preflights are answered, and errors (401, 413, 429) carry the
        # CORS headers a browser needs to show them to the page.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=list(CORS_ALLOWED_HEADERS),
            expose_headers=[
                "Retry-After",
                "Location",
                "WWW-Authenticate",
                "X-Parley-Conversation",
                "X-Parley-Turn",
            ],
            max_age=settings.cors_max_age_s,
        )
    _install_error_handlers(app)
    # Every request opens the trace that the turn's events carry through Kafka to each stage.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def web_chat() -> HTMLResponse:
        return HTMLResponse(chat_page, headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Health:
        """Alive: the process answers HTTP."""
        return Health()

    @app.get(
        "/readyz",
        tags=["operations"],
        response_model=Readiness,
        responses={HTTPStatus.SERVICE_UNAVAILABLE: {"model": Readiness, "description": "not ready"}},
    )
    async def readyz() -> Readiness | JSONResponse:
        """Ready: every dependency (the event bus, the context service) answers."""
        names = list(checks)
        outcomes = await asyncio.gather(*(_run_check(checks[name]) for name in names))
        result = dict(zip(names, outcomes, strict=True))
        if all(outcome == "ok" for outcome in outcomes):
            return Readiness(status="ready", checks=result)
        body = Readiness(status="unavailable", checks=result)
        return JSONResponse(body.model_dump(), status_code=HTTPStatus.SERVICE_UNAVAILABLE)

    @app.post(
        "/v1/conversations",
        status_code=HTTPStatus.CREATED,
        tags=["conversations"],
        responses=ERROR_RESPONSES,
    )
    async def create_conversation(who: PrincipalDep) -> ConversationCreated:
        """Start an empty conversation."""
        conversation_id = await chat.start_conversation(who.tenant_id, who.user_id)
        return ConversationCreated(conversation_id=conversation_id)

    @app.post(
        "/v1/conversations/{conversation_id}/messages",
        tags=["messages"],
        response_model=MessageReplied,
        responses={**_PENDING, **ERROR_RESPONSES},
    )
    async def post_message(
        conversation_id: str, body: PostMessage, who: PrincipalDep
    ) -> MessageReplied | JSONResponse:
        """Send a message to a conversation and wait (up to the reply timeout) for the reply."""
        result = await chat.send(who.tenant_id, who.user_id, conversation_id, body.text, body.language or "")
        return _send_response(result)

    @app.post(
        "/v1/messages",
        tags=["messages"],
        response_model=MessageReplied,
        responses={**_PENDING, **ERROR_RESPONSES},
    )
    async def post_message_anywhere(body: StartMessage, who: PrincipalDep) -> MessageReplied | JSONResponse:
        """Send a message; without `conversation_id` it starts a new conversation."""
        result = await chat.send(
            who.tenant_id, who.user_id, body.conversation_id, body.text, body.language or ""
        )
        return _send_response(result)

    @app.get("/v1/conversations/{conversation_id}/messages", tags=["messages"], responses=ERROR_RESPONSES)
    async def list_messages(
        conversation_id: str,
        who: PrincipalDep,
        page_size: Annotated[int, Query(ge=1, le=500, description="messages per page")] = 50,
        page_token: Annotated[
            str, Query(max_length=1024, description="`next_page_token` of the previous page")
        ] = "",
    ) -> History:
        """A page of the conversation's messages, oldest first."""
        response = await conversations.get_conversation(
            check_conversation_id(conversation_id), who.tenant_id, who.user_id, page_size, page_token
        )
        messages = [
            HistoryMessage(
                role=_ROLES[m.role],
                text=m.text,
                turn_id=m.turn_id,
                created_at=m.created_at.ToDatetime(tzinfo=UTC),
            )
            for m in response.messages
            if m.role in _ROLES
        ]
        return History(messages=messages, next_page_token=response.next_page_token or None)

    # Imported here: these modules build on this one (PrincipalDep, the models, the error helpers).
    from parley.gateway.adapters.feedback_api import feedback_router  # noqa: PLC0415
    from parley.gateway.adapters.openai_api import openai_router  # noqa: PLC0415
    from parley.gateway.adapters.rasa_api import rasa_router  # noqa: PLC0415
    from parley.gateway.adapters.streaming import streaming_router  # noqa: PLC0415

    app.include_router(
        streaming_router(chat, max_frame_bytes=settings.max_body_bytes, keepalive_s=settings.sse_keepalive_s)
    )
    app.include_router(openai_router(chat, settings.project_dir, reply_timeout_s=settings.reply_timeout_s))
    app.include_router(rasa_router(chat))
    app.include_router(feedback_router(conversations))
    return app
