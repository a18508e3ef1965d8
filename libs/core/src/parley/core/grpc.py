"""gRPC servers and channels the same way in every service.

A server gets: the error interceptor (one mapping of our error tree to status codes), OTel tracing,
health (SERVING per service once started, NOT_SERVING while stopping), reflection, and a graceful stop.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from parley.core.errors import ParleyError, from_grpc_error
from parley.core.logging import get_logger
from parley.core.telemetry import grpc_client_interceptors, grpc_server_interceptors

log = get_logger(__name__)


@dataclass(frozen=True)
class ServiceRegistration:
    """A servicer, the generated function that adds it, and its full service name (for health/reflection)."""

    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: object
    name: str


def _abort_code(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, ParleyError):
        return exc.grpc_code, str(exc) or type(exc).__name__
    log.exception("unhandled error in gRPC handler", exc_info=exc)
    return grpc.StatusCode.INTERNAL, "internal error; the server log has the details"


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns any exception escaping a handler into a gRPC status with a readable message."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(handler.stream_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(handler.stream_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return handler

    @staticmethod
    def _wrap_unary(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await fn(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                code, message = _abort_code(exc)
                await context.abort(code, message)

        return wrapped

    @staticmethod
    def _wrap_stream(fn: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for item in fn(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                code, message = _abort_code(exc)
                await context.abort(code, message)

        return wrapped


class GrpcServer:
    """A grpc.aio server with our interceptors, health and reflection."""

    def __init__(
        self, services: Iterable[ServiceRegistration], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._services = list(services)
        self._address = f"{host}:{port}"
        self._server = grpc.aio.server(interceptors=[ErrorInterceptor(), *grpc_server_interceptors()])
        self._health = health.aio.HealthServicer()
        self.port = 0

    async def start(self) -> int:
        """Bind, start, mark every service SERVING and return the bound port."""
        for svc in self._services:
            svc.add_to_server(svc.servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [svc.name for svc in self._services]
        reflection.enable_server_reflection(
            [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        self.port = self._server.add_insecure_port(self._address)
        await self._server.start()
        for name in [*names, ""]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "gRPC server listening", address=self._address.rsplit(":", 1)[0], port=self.port, services=names
        )
        return self.port

    async def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, let in-flight calls finish for ``grace`` seconds, then stop."""
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)

    async def wait(self) -> None:
        """Block until the server stops."""
        await self._server.wait_for_termination()


def insecure_channel(address: str) -> grpc.aio.Channel:
    """A client channel to ``address`` with tracing."""
    return grpc.aio.insecure_channel(address, interceptors=grpc_client_interceptors())


@contextlib.asynccontextmanager
async def remote_errors() -> AsyncIterator[None]:
    """Re-raise a failed call as the error the remote side raised (``ConflictError`` for ABORTED ...)."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise from_grpc_error(exc) from exc
