"""DialogService.Decide over a real gRPC server (port 0) with a fake state store and fake tools."""

from __future__ import annotations

import grpc
import pytest
from dialog_testkit import parse
from google.protobuf.json_format import MessageToDict

from parley.context.v1 import context_pb2
from parley.core.errors import InvalidInputError
from parley.core.grpc import GrpcServer
from parley.core.rpc import InProcess
from parley.dialog.app import build_dialog
from parley.dialog.settings import DialogSettings
from parley.dialog.v1 import dialog_pb2, dialog_pb2_grpc
from parley.nlu.v1 import nlu_pb2


def request(
    turn_id: str, understanding: nlu_pb2.ParseResult, conversation_id: str = "c1", **kw
) -> dialog_pb2.DecideRequest:
    return dialog_pb2.DecideRequest(
        conversation_id=conversation_id, turn_id=turn_id, understanding=understanding, **kw
    )


@pytest.fixture
async def dialog(project, store, tools):
    service = build_dialog(DialogSettings(), store, project, tools=tools)
    server = GrpcServer([service.registration], port=0)
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield dialog_pb2_grpc.DialogServiceStub(channel), service
    await server.stop(0)


async def test_decide_runs_the_order_conversation(dialog, store):
    stub, _ = dialog
    r1 = await stub.Decide(request("t1", parse("order_status", text="Hello, I need help with my order")))
    assert [(a.name, a.kind) for a in r1.decision.actions] == [("utter_ask_order_id", "ask")]
    assert (r1.decision.reason, r1.decision.active_flow, r1.decision.step) == (
        "flow",
        "order_status",
        "collect:order_id",
    )
    r2 = await stub.Decide(request("t2", parse("inform", text="My order number is 12345", order_id="12345")))
    d2 = r2.decision
    assert [(a.name, a.kind) for a in d2.actions] == [
        ("get_order", "execute_task"),
        ("utter_order_status", "provide_info"),
    ]
    assert MessageToDict(d2.actions[1].params)["status"] == "shipped"
    assert MessageToDict(d2.slots)["order_id"] == "12345"
    assert (d2.active_flow, d2.ended, d2.handoff, d2.state_version) == ("", False, False, 2)
    # A retried call with the same turn id is answered from the state, without a write.
    again = await stub.Decide(request("t2", parse("inform", order_id="12345")))
    assert again.decision == d2
    assert len(store.writes) == 2


async def test_options_travel_as_quick_replies(dialog):
    stub, _ = dialog
    r = await stub.Decide(
        request(
            "t1",
            parse("order_status", clarify=True, ranking=[("order_status", 0.45), ("order.cancel", 0.44)]),
        )
    )
    (action,) = r.decision.actions
    assert (action.kind, r.decision.reason) == ("clarify", "clarify")
    assert [(o.title, o.payload) for o in action.options] == [
        ("checking order", "/order_status"),
        ("cancelling order", "/order.cancel"),
    ]


async def test_the_context_snapshot_helps_a_back_reference(dialog):
    stub, _ = dialog
    snapshot = context_pb2.ContextSnapshot(
        entities=[context_pb2.EntityValue(entity_type="order_id", value="12345")]
    )
    r = await stub.Decide(
        request("t1", parse("", text="I want that thing we discussed", out_of_scope=True), context=snapshot)
    )
    assert [o.title for o in r.decision.actions[0].options] == [
        "checking order 12345",
        "cancelling order 12345",
        "updating the delivery address (12345)",
    ]


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
