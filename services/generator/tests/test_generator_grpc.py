"""GeneratorService Generate and GenerateStream over a real gRPC server (port 0)."""

from __future__ import annotations

import grpc
import pytest

from parley.core.context_client import to_struct
from parley.core.grpc import GrpcServer
from parley.dialog.v1 import dialog_pb2
from parley.generator.app import build_generator
from parley.generator.settings import GeneratorSettings
from parley.generator.v1 import generator_pb2, generator_pb2_grpc


def request(*actions: dialog_pb2.Action, turn_id: str = "turn-1") -> generator_pb2.GenerateRequest:
    return generator_pb2.GenerateRequest(conversation_id="c1", turn_id=turn_id, actions=actions)


@pytest.fixture
async def stub(project):
    service = build_generator(GeneratorSettings(), project)
    server = GrpcServer([service.registration], port=0)
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield generator_pb2_grpc.GeneratorServiceStub(channel)
    await server.stop(0)


async def test_generate_renders_the_reply(stub):
    response = await stub.Generate(
        request(dialog_pb2.Action(name="utter_order_was_cancelled", params=to_struct({"order_id": "12345"})))
    )
    assert response.reply.text == "Order 12345 was cancelled, so it won't be delivered."
    assert list(response.reply.templates) == ["utter_order_was_cancelled"]


async def test_stream_concatenates_to_the_full_reply(stub):
    actions = [
        dialog_pb2.Action(name="utter_greet"),
        dialog_pb2.Action(name="utter_delivery_estimate", params=to_struct({"order_id": "12345"})),
    ]
    whole = (await stub.Generate(request(*actions))).reply
    chunks = [chunk async for chunk in stub.GenerateStream(request(*actions))]
    assert len(chunks) > 3
    assert [c.final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert "".join(c.text_delta for c in chunks) == whole.text
    assert chunks[-1].reply == whole
    assert all(not c.HasField("reply") for c in chunks[:-1])


async def test_no_actions_is_invalid_argument(stub):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Generate(request())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at least one action" in info.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub.GenerateStream(request()):
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
