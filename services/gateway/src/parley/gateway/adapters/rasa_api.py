"""A Rasa-compatible REST channel: ``POST /webhooks/rest/webhook``.

Clients and connectors written for Rasa's ``rest`` channel work unchanged. A request
``{"sender": ..., "message": ..., "metadata": {...}}`` answers with the bot's messages,
``[{"recipient_id": ..., "text": ..., "buttons": [{"title", "payload"}]}]``.

``sender`` is the end user's id within the caller's tenant (the tenant comes from the request's identity,
like every other endpoint; absent ``sender`` means the caller's own user). Rasa has no conversation ids:
each sender has one conversation on this channel, found or created on every message. Its id is derived
from the tenant and the sender, so every gateway replica finds the same one, and it can be read through
``GET /v1/conversations/{id}/messages`` as that user (the ``X-Parley-Conversation`` response header names
it). ``metadata.language`` (a BCP-47 tag), when given, is the language hint; other metadata is ignored.

A reply that does not come within the reply timeout is answered ``202`` with an empty list (Rasa clients
read it as "nothing to say yet"); the reply will be in the conversation's history. Errors use the gateway's
one error shape.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from parley.core.errors import PermissionDeniedError
from parley.gateway.adapters.http import ERROR_RESPONSES, ErrorBody, PrincipalDep
from parley.gateway.domain import ChatService, Principal, principal_of

CHANNEL = "rasa-rest"
CONVERSATION_HEADER = "X-Parley-Conversation"


class RasaMessage(BaseModel):
    """What Rasa's REST channel receives; fields it does not know are ignored, as Rasa does."""

    model_config = ConfigDict(extra="ignore")

    sender: str | None = Field(default=None, description="end user id within the caller's tenant")
    message: str = Field(description="what the user said")
    metadata: dict[str, Any] | None = Field(default=None, description="`language` is read; the rest ignored")


class RasaButton(BaseModel):
    title: str
    payload: str


class RasaBotMessage(BaseModel):
    """One bot message, as Rasa's REST channel returns it."""

    recipient_id: str
    text: str
    buttons: list[RasaButton] | None = None


_ERRORS: dict[int | str, dict[str, Any]] = {
    HTTPStatus.ACCEPTED: {
        "model": list[RasaBotMessage],
        "description": "accepted, no reply in time (empty list); the reply will be in the history",
    },
    **ERROR_RESPONSES,
    HTTPStatus.FORBIDDEN: {
        "model": ErrorBody,
        "description": "the credentials do not match each other, or `sender` is not the token's user",
    },
}


def _sender(request: Request, who: Principal, sender: str | None) -> Principal:
    """The user a message acts for: ``sender`` within the caller's tenant (the caller when absent).

    An API key may act for any user of its tenant, so ``sender`` is taken on trust, like ``X-Parley-User``,
    except where the tenant requires user tokens: then only the token's own user may be the sender.
    """
    if sender is None or sender == who.user_id:
        return who
    authenticator = getattr(request.app.state, "authenticator", None)
    requires_user_token = getattr(authenticator, "requires_user_token", None)
    if who.user_verified or (requires_user_token is not None and requires_user_token(who.tenant_id)):
        # a verified user token names the user: it may not speak for someone else
        raise PermissionDeniedError("sender must be the user of the user token")
    return principal_of(who.tenant_id, sender)


def rasa_router(chat: ChatService) -> APIRouter:
    """The Rasa REST channel over ``chat``."""
    router = APIRouter(tags=["rasa"])

    @router.post("/webhooks/rest/webhook", response_model=list[RasaBotMessage], responses=_ERRORS)
    async def rest_webhook(body: RasaMessage, who: PrincipalDep, request: Request) -> JSONResponse:
        """Send a user's message and receive the bot's messages (Rasa's `rest` channel)."""
        sender = _sender(request, who, body.sender)
        language = (body.metadata or {}).get("language")
        conversation_id = await chat.channel_conversation(sender.tenant_id, sender.user_id, CHANNEL)
        result = await chat.send(
            sender.tenant_id,
            sender.user_id,
            conversation_id,
            body.message,
            language if isinstance(language, str) else "",
        )
        headers = {CONVERSATION_HEADER: result.conversation_id}
        if result.reply is None:
            headers["Location"] = f"/v1/conversations/{result.conversation_id}/messages"
            return JSONResponse([], status_code=HTTPStatus.ACCEPTED, headers=headers)
        reply = result.reply
        messages: list[dict[str, Any]] = []
        if reply.text or reply.quick_replies:
            message: dict[str, Any] = {"recipient_id": sender.user_id, "text": reply.text}
            if reply.quick_replies:
                message["buttons"] = [{"title": q.title, "payload": q.payload} for q in reply.quick_replies]
            messages.append(message)
        return JSONResponse(messages, headers=headers)

    return router
