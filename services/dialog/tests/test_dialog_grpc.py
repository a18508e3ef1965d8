"""DialogService.Decide over a real gRPC server (port 0) with a fake state store."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.json_format import MessageToDict

from parley.core.errors import InvalidInputError
from parley.core.grpc import GrpcServer
from parley.core.rpc import InProcess
from parley.dialog.app import build_dialog
from parley.dialog.settings import DialogSettings
from parley.dialog.v1 import dialog_pb2, dialog_pb2_grpc
from parley.nlu.v1 import nlu_pb2


def request(
    turn_id: str, intent: str, conversation_id: str = "c1", **entities: str
) -> dialog_pb2.DecideRequest:
    return dialog_pb2.DecideRequest(
        conversation_id=conversation_id,
        turn_id=turn_id,
        understanding=nlu_pb2.ParseResult(
            intent=nlu_pb2.Intent(name=intent, confidence=0.9),
            entities=[nlu_pb2.Entity(type=k, value=v) for k, v in entities.items()],
        ),
    )


@pytest.fixture
async def dialog(project, store):
    service = build_dialog(DialogSettings(), store, project)
    server = GrpcServer([service.registration], port=0)
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield dialog_pb2_grpc.DialogServiceStub(channel), service
    await server.stop(0)


async def test_decide_runs_the_conversation(dialog, store):
    stub, _ = dialog
    r1 = await stub.Decide(request("t1", "order_help"))
    assert [a.name for a in r1.decision.actions] == ["utter_ask_order_id"]
    r2 = await stub.Decide(request("t2", "inform_order_id", order_id="12345"))
    assert [a.name for a in r2.decision.actions] == ["utter_order_status"]
    r3 = await stub.Decide(request("t3", "delivery_question"))
    assert [a.name for a in r3.decision.actions] == ["utter_delivery_estimate"]
    assert MessageToDict(r3.decision.actions[0].params) == {"order_id": "12345"}
    assert r3.decision.state_version == 3
    # A retried call with the same turn id is answered from the state, without a write.
    again = await stub.Decide(request("t3", "delivery_question"))
    assert again.decision == r3.decision
    assert len(store.writes) == 3


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (dialog_pb2.DecideRequest(turn_id="t", understanding=nlu_pb2.ParseResult()), "conversation_id"),
        (dialog_pb2.DecideRequest(conversation_id="c", understanding=nlu_pb2.ParseResult()), "turn_id"),
        (dialog_pb2.DecideRequest(conversation_id="c", turn_id="t"), "understanding"),
    ],
)
async def test_bad_requests_are_invalid_argument(dialog, store, req, message):
    stub, _ = dialog
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Decide(req)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{message} is required" in info.value.details()
    assert store.writes == []


async def test_in_process_calls_raise_the_same_error(dialog):
    _, service = dialog
    with pytest.raises(InvalidInputError, match="understanding is required"):
        await InProcess(service.servicer).call(
            "Decide", dialog_pb2.DecideRequest(conversation_id="c", turn_id="t")
        )
