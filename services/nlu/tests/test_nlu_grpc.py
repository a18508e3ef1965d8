"""The NLU gRPC API over a real server on a free port, and the same servicer in-process."""

import grpc
import pytest

from parley.core.errors import InvalidInputError
from parley.core.grpc import GrpcServer, ServiceRegistration
from parley.core.rpc import InProcess
from parley.nlu.adapters.grpc import NluServicer
from parley.nlu.app import SERVICE_NAME
from parley.nlu.v1 import nlu_pb2, nlu_pb2_grpc


@pytest.fixture
async def stub(parser):
    servicer = NluServicer(parser)
    server = GrpcServer(
        [ServiceRegistration(nlu_pb2_grpc.add_NluServiceServicer_to_server, servicer, SERVICE_NAME)], port=0
    )
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield nlu_pb2_grpc.NluServiceStub(channel)
    finally:
        await server.stop(0)


async def test_parse_over_grpc(stub):
    response = await stub.Parse(nlu_pb2.ParseRequest(text="My order number is 12345", language="en"))
    result = response.result
    assert result.text == "My order number is 12345"
    assert result.intent.name == "inform_order_id"
    assert [(e.type, e.value, e.start, e.end) for e in result.entities] == [("order_id", "12345", 19, 24)]
    assert result.model_version


async def test_parse_batch_over_grpc_keeps_request_order(stub):
    texts = ["bye", "hi", "When will it arrive?"]
    response = await stub.ParseBatch(
        nlu_pb2.ParseBatchRequest(requests=[nlu_pb2.ParseRequest(text=t) for t in texts])
    )
    assert [r.text for r in response.results] == texts
    assert [r.intent.name for r in response.results] == ["goodbye", "greet", "delivery_question"]


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "text: must not be empty"), ("   ", "text: must not be empty"), ("x" * 4097, "text: too long")],
)
async def test_bad_text_is_invalid_argument(stub, text, message):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Parse(nlu_pb2.ParseRequest(text=text))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()


async def test_longest_accepted_text_parses(stub):
    response = await stub.Parse(nlu_pb2.ParseRequest(text="where is my order " * 227))  # 4,086 chars
    assert response.result.intent.name


@pytest.mark.parametrize(
    ("size", "message"), [(0, "requests: must not be empty"), (257, "requests: too many texts")]
)
async def test_bad_batch_size_is_invalid_argument(stub, size, message):
    request = nlu_pb2.ParseBatchRequest(requests=[nlu_pb2.ParseRequest(text="hi")] * size)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ParseBatch(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()


async def test_bad_text_inside_a_batch_names_its_index(stub):
    request = nlu_pb2.ParseBatchRequest(requests=[nlu_pb2.ParseRequest(text="hi"), nlu_pb2.ParseRequest()])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ParseBatch(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "requests[1].text" in info.value.details()


async def test_in_process_calls_raise_our_errors(parser):
    local = InProcess(NluServicer(parser))
    assert (await local.call("Parse", nlu_pb2.ParseRequest(text="hi"))).result.intent.name == "greet"
    with pytest.raises(InvalidInputError, match="must not be empty"):
        await local.call("Parse", nlu_pb2.ParseRequest(text=""))
