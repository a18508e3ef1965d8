"""The shared gRPC bootstrap: error mapping, health, reflection, and the in-process twin."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from parley.core.errors import ConflictError, InvalidInputError, NotFoundError
from parley.core.grpc import GrpcServer, ServiceRegistration
from parley.core.rpc import InProcess, OverGrpc
from parley.nlu.v1 import nlu_pb2, nlu_pb2_grpc


class _Servicer(nlu_pb2_grpc.NluServiceServicer):
    async def Parse(self, request, context):
        if request.text == "invalid":
            raise InvalidInputError("text: must not be 'invalid'")
        if request.text == "conflict":
            raise ConflictError("state version moved on")
        if request.text == "crash":
            raise RuntimeError("secret internal detail")
        return nlu_pb2.ParseResponse(result=nlu_pb2.ParseResult(text=request.text))


@pytest.fixture
async def server():
    srv = GrpcServer(
        [
            ServiceRegistration(
                nlu_pb2_grpc.add_NluServiceServicer_to_server, _Servicer(), "parley.nlu.v1.NluService"
            )
        ]
    )
    port = await srv.start()
    yield port
    await srv.stop(0)


async def test_errors_map_to_status_codes_with_readable_messages(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server}") as channel:
        stub = nlu_pb2_grpc.NluServiceStub(channel)
        assert (await stub.Parse(nlu_pb2.ParseRequest(text="ok"))).result.text == "ok"
        for text, code in [
            ("invalid", grpc.StatusCode.INVALID_ARGUMENT),
            ("conflict", grpc.StatusCode.ABORTED),
            ("crash", grpc.StatusCode.INTERNAL),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Parse(nlu_pb2.ParseRequest(text=text))
            assert info.value.code() == code
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Parse(nlu_pb2.ParseRequest(text="crash"))
        assert "secret" not in info.value.details()


async def test_remote_and_in_process_calls_raise_the_same_errors(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server}") as channel:
        remote = OverGrpc(nlu_pb2_grpc.NluServiceStub(channel))
        local = InProcess(_Servicer())
        for caller in (remote, local):
            with pytest.raises(InvalidInputError, match="must not be 'invalid'"):
                await caller.call("Parse", nlu_pb2.ParseRequest(text="invalid"))
            with pytest.raises(ConflictError):
                await caller.call("Parse", nlu_pb2.ParseRequest(text="conflict"))
            assert (await caller.call("Parse", nlu_pb2.ParseRequest(text="x"))).result.text == "x"
        assert not issubclass(NotFoundError, ConflictError)


async def test_health_reports_serving_and_reflection_lists_the_service(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "parley.nlu.v1.NluService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = set()
        async for response in responses:
            names |= {s.name for s in response.list_services_response.service}
        assert {"parley.nlu.v1.NluService", "grpc.health.v1.Health"} <= names
