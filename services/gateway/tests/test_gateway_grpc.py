"""The gRPC face over a real server on port 0, with the fake assistant answering on the in-process bus."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from parley.core.grpc import GrpcServer
from parley.gateway.v1 import gateway_pb2, gateway_pb2_grpc

from .conftest import Harness, make_settings


@pytest.fixture
async def stub(harness: Harness) -> AsyncIterator[gateway_pb2_grpc.GatewayServiceStub]:
    server = GrpcServer([harness.gateway.registration], port=0)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield gateway_pb2_grpc.GatewayServiceStub(channel)
    finally:
        await server.stop(0)


async def test_send_message_gets_the_reply(
    stub: gateway_pb2_grpc.GatewayServiceStub, harness: Harness
) -> None:
    response = await stub.SendMessage(
        gateway_pb2.SendMessageRequest(text=" hi ", user_id="ann", language="en"),
        metadata=(("x-parley-tenant", "acme"),),
    )

    assert response.reply.text == "echo: hi"
    assert [q.payload for q in response.reply.quick_replies] == ["hi"]
    owner = harness.conversations.conversations[response.conversation_id].principal
    assert (owner.tenant_id, owner.user_id) == ("acme", "ann")
    [event] = harness.assistant.seen
    assert event.turn_id == response.turn_id


async def test_send_message_defaults_to_the_default_tenant_and_anonymous_user(
    stub: gateway_pb2_grpc.GatewayServiceStub, harness: Harness
) -> None:
    response = await stub.SendMessage(gateway_pb2.SendMessageRequest(text="hi"))
    owner = harness.conversations.conversations[response.conversation_id].principal
    assert (owner.tenant_id, owner.user_id) == ("default", "anonymous")


async def test_send_message_rejects_bad_requests_with_clear_statuses(
    stub: gateway_pb2_grpc.GatewayServiceStub,
) -> None:
    cases = [
        (
            gateway_pb2.SendMessageRequest(text="  "),
            (),
            grpc.StatusCode.INVALID_ARGUMENT,
            "text must not be empty",
        ),
        (gateway_pb2.SendMessageRequest(text="x" * 51), (), grpc.StatusCode.INVALID_ARGUMENT, "at most 50"),
        (
            gateway_pb2.SendMessageRequest(text="hi", user_id="no spaces please"),
            (),
            grpc.StatusCode.INVALID_ARGUMENT,
            "user id must be",
        ),
        (
            gateway_pb2.SendMessageRequest(text="hi"),
            (("x-parley-tenant", "bad tenant"),),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tenant id must be",
        ),
        (
            gateway_pb2.SendMessageRequest(text="hi", conversation_id=str(uuid.uuid4())),
            (),
            grpc.StatusCode.NOT_FOUND,
            "not found",
        ),
    ]
    for request, metadata, code, fragment in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.SendMessage(request, metadata=metadata)
        assert caught.value.code() == code
        assert fragment in (caught.value.details() or "")


@pytest.mark.parametrize("settings", [make_settings(reply_timeout_s=0.1)])
async def test_send_message_without_a_reply_in_time_leaves_reply_unset(
    stub: gateway_pb2_grpc.GatewayServiceStub, harness: Harness
) -> None:
    harness.assistant.silent = True
    response = await stub.SendMessage(gateway_pb2.SendMessageRequest(text="hi"))
    assert not response.HasField("reply")
    assert response.conversation_id and response.turn_id


async def test_converse_answers_each_request_in_order_on_one_conversation(
    stub: gateway_pb2_grpc.GatewayServiceStub, harness: Harness
) -> None:
    async def requests() -> AsyncIterator[gateway_pb2.ConverseRequest]:
        for text in ("one", "two", "three"):
            yield gateway_pb2.ConverseRequest(text=text, user_id="ann")

    call = stub.Converse(requests(), metadata=(("x-parley-tenant", "acme"),))
    responses = [response async for response in call]

    assert [r.reply.text for r in responses] == ["echo: one", "echo: two", "echo: three"]
    assert len({r.conversation_id for r in responses}) == 1
    assert len({r.turn_id for r in responses}) == 3
    assert len(harness.conversations.conversations) == 1
    owner = harness.conversations.conversations[responses[0].conversation_id].principal
    assert (owner.tenant_id, owner.user_id) == ("acme", "ann")


async def test_converse_interleaves_requests_and_responses(stub: gateway_pb2_grpc.GatewayServiceStub) -> None:
    call = stub.Converse()
    await call.write(gateway_pb2.ConverseRequest(text="first"))
    first = await call.read()
    await call.write(gateway_pb2.ConverseRequest(text="second", conversation_id=first.conversation_id))
    second = await call.read()
    await call.done_writing()

    assert (first.reply.text, second.reply.text) == ("echo: first", "echo: second")
    assert first.conversation_id == second.conversation_id
    assert await call.read() == grpc.aio.EOF


async def test_converse_aborts_on_a_bad_request(stub: gateway_pb2_grpc.GatewayServiceStub) -> None:
    call = stub.Converse()
    await call.write(gateway_pb2.ConverseRequest(text="fine"))
    assert (await call.read()).reply.text == "echo: fine"
    await call.write(gateway_pb2.ConverseRequest(text=""))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "text must not be empty" in (caught.value.details() or "")
