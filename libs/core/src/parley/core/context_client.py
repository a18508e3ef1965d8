"""Typed client of the context service, used by dialog (state) and gateway (conversations)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct

from parley.common.v1 import common_pb2
from parley.context.v1 import context_pb2 as ctx
from parley.context.v1 import context_pb2_grpc
from parley.core.grpc import insecure_channel
from parley.core.rpc import InProcess, OverGrpc, Remote


def to_struct(data: Mapping[str, Any]) -> Struct:
    """A JSON-like mapping as a protobuf Struct."""
    s = Struct()
    s.update(dict(data))
    return s


def from_struct(data: Struct) -> dict[str, Any]:
    """A protobuf Struct as plain Python (numbers come back as float or int where whole)."""
    return MessageToDict(data)


class ContextClient:
    """Conversations and versioned state, over gRPC or in-process."""

    def __init__(self, remote: Remote) -> None:
        self._remote = remote

    @classmethod
    def connect(cls, address: str) -> ContextClient:
        """A client of the context service at ``host:port``."""
        return cls(OverGrpc(context_pb2_grpc.ContextServiceStub(insecure_channel(address))))

    @classmethod
    def in_process(cls, servicer: object) -> ContextClient:
        """A client calling the context servicer in this process (embedded mode)."""
        return cls(InProcess(servicer))

    async def create_conversation(
        self, tenant_id: str, user_id: str, conversation_id: str = ""
    ) -> ctx.Conversation:
        request = ctx.CreateConversationRequest(
            principal=common_pb2.Principal(tenant_id=tenant_id, user_id=user_id),
            conversation_id=conversation_id,
        )
        response: ctx.CreateConversationResponse = await self._remote.call("CreateConversation", request)
        return response.conversation

    async def get_conversation(
        self, conversation_id: str, tenant_id: str, user_id: str, page_size: int = 50, page_token: str = ""
    ) -> ctx.GetConversationResponse:
        request = ctx.GetConversationRequest(
            conversation_id=conversation_id,
            principal=common_pb2.Principal(tenant_id=tenant_id, user_id=user_id),
            page_size=page_size,
            page_token=page_token,
        )
        return await self._remote.call("GetConversation", request)

    async def get_state(self, conversation_id: str) -> ctx.DialogState:
        response: ctx.GetStateResponse = await self._remote.call(
            "GetState", ctx.GetStateRequest(conversation_id=conversation_id)
        )
        return response.state

    async def update_state(
        self, conversation_id: str, expected_version: int, data: Mapping[str, Any]
    ) -> ctx.DialogState:
        """Compare-and-set; raises :class:`~parley.core.errors.ConflictError` when the version moved on."""
        request = ctx.UpdateStateRequest(
            conversation_id=conversation_id, expected_version=expected_version, data=to_struct(data)
        )
        response: ctx.UpdateStateResponse = await self._remote.call("UpdateState", request)
        return response.state

    async def get_profile(self, tenant_id: str, user_id: str) -> ctx.UserProfile:
        """The user's profile (an empty one when none is stored)."""
        request = ctx.GetProfileRequest(principal=common_pb2.Principal(tenant_id=tenant_id, user_id=user_id))
        response: ctx.GetProfileResponse = await self._remote.call("GetProfile", request)
        return response.profile

    async def preferences(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        """The user's preferences (``{"prefers_brief": true}``, ...); empty when none are stored."""
        return from_struct((await self.get_profile(tenant_id, user_id)).preferences)

    async def record_feedback(
        self,
        conversation_id: str,
        tenant_id: str,
        user_id: str,
        *,
        rating: int = 0,
        resolved: bool | None = None,
        comment: str = "",
        turn_id: str = "",
        feedback_id: str = "",
    ) -> ctx.Feedback:
        """Store a user's feedback on their conversation (or one turn of it); ``rating`` 0 means none.
        A ``feedback_id`` (UUID) makes a retry store nothing new and return the first one.

        Raises :class:`~parley.core.errors.NotFoundError` when the conversation is not the principal's.
        """
        feedback = ctx.Feedback(
            feedback_id=feedback_id,
            conversation_id=conversation_id,
            turn_id=turn_id,
            rating=rating,
            comment=comment,
        )
        if resolved is not None:
            feedback.resolved = resolved
        request = ctx.RecordFeedbackRequest(
            principal=common_pb2.Principal(tenant_id=tenant_id, user_id=user_id), feedback=feedback
        )
        response: ctx.RecordFeedbackResponse = await self._remote.call("RecordFeedback", request)
        return response.feedback
