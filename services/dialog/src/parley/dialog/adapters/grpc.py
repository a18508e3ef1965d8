"""``parley.dialog.v1.DialogService`` over gRPC (and in-process, through the same object)."""

from __future__ import annotations

import grpc

from parley.core.errors import InvalidInputError
from parley.dialog.domain.manager import DialogManager
from parley.dialog.v1 import dialog_pb2, dialog_pb2_grpc


def validate_decide(request: dialog_pb2.DecideRequest) -> None:
    """Reject a request the dialog cannot decide, naming every missing field."""
    problems = []
    if not request.conversation_id:
        problems.append("conversation_id is required")
    if not request.turn_id:
        problems.append("turn_id is required")
    if not request.HasField("understanding"):
        problems.append("understanding is required")
    if problems:
        raise InvalidInputError("; ".join(problems))


class DialogServicer(dialog_pb2_grpc.DialogServiceServicer):
    """Decides turns; the turn id is the idempotency key, so a retried call returns the same decision."""

    def __init__(self, manager: DialogManager) -> None:
        self._manager = manager

    async def Decide(
        self, request: dialog_pb2.DecideRequest, context: grpc.aio.ServicerContext
    ) -> dialog_pb2.DecideResponse:
        validate_decide(request)
        decision = await self._manager.decide(
            request.conversation_id,
            request.turn_id,
            request.understanding,
            context=request.context if request.HasField("context") else None,
        )
        return dialog_pb2.DecideResponse(decision=decision)
