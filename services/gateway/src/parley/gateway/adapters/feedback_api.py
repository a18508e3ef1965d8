"""Feedback on a conversation: ``POST /v1/conversations/{conversation_id}/feedback``.

End users rate a reply or a whole conversation (satisfaction 1 to 5, whether their problem was resolved,
a short comment). The gateway validates the request and stores it through the context service's
``RecordFeedback``, which checks in the same statement that the conversation is the principal's: another
tenant's or user's conversation is ``404``, exactly like one that does not exist.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any, Self

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from parley.gateway.adapters.http import ERROR_RESPONSES, ErrorBody, PrincipalDep
from parley.gateway.domain import check_conversation_id
from parley.gateway.ports import Conversations

#: Feedback ids derived from idempotency keys live in their own UUID namespace.
_IDEMPOTENCY_NAMESPACE = uuid.UUID("5b0c8a52-2f4e-4f43-9d1c-7c3f5e2b9a61")

#: The context service stores at most this many characters of comment.
MAX_COMMENT_CHARS = 2000


class FeedbackIn(BaseModel):
    """What the user thinks of a reply (``turn_id``) or of the whole conversation."""

    model_config = ConfigDict(extra="forbid")

    satisfaction: int | None = Field(
        default=None, ge=1, le=5, strict=True, description="1 (very unhappy) to 5 (very happy)"
    )
    resolved: bool | None = Field(
        default=None, strict=True, description="whether the user's problem was solved"
    )
    comment: str | None = Field(
        default=None,
        max_length=MAX_COMMENT_CHARS,
        description=f"free text, at most {MAX_COMMENT_CHARS} characters; surrounding whitespace is dropped",
    )
    turn_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._@-]+$",
        description="the turn (reply) the feedback is about, from the reply's `turn_id`; absent means "
        "the whole conversation",
    )

    @field_validator("comment")
    @classmethod
    def _storable_comment(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value.strip()

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if self.satisfaction is None and self.resolved is None and not self.comment:
            raise ValueError("feedback needs at least one of satisfaction, resolved or a non-empty comment")
        return self


class FeedbackRecorded(BaseModel):
    """The stored feedback."""

    feedback_id: str = Field(description="id the system of record gave the feedback")
    conversation_id: str
    turn_id: str | None = Field(description="the turn it is about; null for the whole conversation")
    satisfaction: int | None
    resolved: bool | None
    comment: str
    created_at: datetime


_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    HTTPStatus.UNPROCESSABLE_ENTITY: {"model": ErrorBody, "description": "invalid feedback"},
}


def feedback_router(conversations: Conversations) -> APIRouter:
    """The feedback endpoint, storing through ``conversations`` (the context service)."""
    router = APIRouter(tags=["feedback"])

    @router.post(
        "/v1/conversations/{conversation_id}/feedback",
        status_code=HTTPStatus.CREATED,
        response_model=FeedbackRecorded,
        responses=_RESPONSES,
    )
    async def record_feedback(
        conversation_id: str,
        body: FeedbackIn,
        who: PrincipalDep,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                min_length=1,
                max_length=128,
                description="any unique string per feedback: a retried request with the same key stores "
                "nothing new and answers with the first one",
            ),
        ] = None,
    ) -> FeedbackRecorded:
        """Rate a reply (with `turn_id`) or the whole conversation; each call stores one feedback (one per
        `Idempotency-Key`)."""
        cid = check_conversation_id(conversation_id)
        feedback_id = ""
        if idempotency_key is not None:
            scope = f"{who.tenant_id}\x1f{who.user_id}\x1f{cid}\x1f{idempotency_key}"
            feedback_id = str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, scope))
        stored = await conversations.record_feedback(
            cid,
            who.tenant_id,
            who.user_id,
            rating=body.satisfaction or 0,
            resolved=body.resolved,
            comment=body.comment or "",
            turn_id=body.turn_id or "",
            feedback_id=feedback_id,
        )
        return FeedbackRecorded(
            feedback_id=stored.feedback_id,
            conversation_id=stored.conversation_id,
            turn_id=stored.turn_id or None,
            satisfaction=stored.rating or None,
            resolved=stored.resolved if stored.HasField("resolved") else None,
            comment=stored.comment,
            created_at=stored.created_at.ToDatetime(tzinfo=UTC)
            if stored.HasField("created_at")
            else datetime.now(UTC),
        )

    return router
