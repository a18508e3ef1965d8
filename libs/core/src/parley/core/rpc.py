"""Calling another service the same way whether it runs in this process or behind gRPC.

The embedded mode hands a servicer object straight to :class:`Remote`; the distributed mode hands a gRPC
stub. Either way a call takes and returns protobuf messages and raises our error tree, so domain code and
its tests never know which wiring they run in.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.message import Message

from parley.core.errors import DeadlineExceededError, from_grpc_error

ResponseT = TypeVar("ResponseT", bound=Message)


class _LocalContext:
    """The little of ``grpc.aio.ServicerContext`` a servicer may use when called in-process."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def time_remaining(self) -> float | None:
        return None

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise from_grpc_error_like(code, details)

    def set_code(self, code: grpc.StatusCode) -> None:
        """Ignored in-process."""

    def set_details(self, details: str) -> None:
        """Ignored in-process."""


def from_grpc_error_like(code: grpc.StatusCode, details: str) -> Exception:
    """The error a servicer's ``context.abort`` means, for in-process calls."""

    class _Err(grpc.aio.AioRpcError):
        def __init__(self) -> None:
            super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)

    return from_grpc_error(_Err())


class Remote(Protocol):
    """Calls method ``name`` of a service with a request message."""

    async def call(self, name: str, request: Message, deadline_s: float | None = None) -> Any: ...


class InProcess:
    """Calls a servicer object directly (embedded mode)."""

    def __init__(self, servicer: object) -> None:
        self._servicer = servicer

    async def call(self, name: str, request: Message, deadline_s: float | None = None) -> Any:
        return await getattr(self._servicer, name)(request, _LocalContext())


class OverGrpc:
    """Calls a generated gRPC stub and maps failures back to our error tree."""

    def __init__(self, stub: object, default_timeout: float = 10.0) -> None:
        self._stub = stub
        self._timeout = default_timeout

    async def call(self, name: str, request: Message, deadline_s: float | None = None) -> Any:
        try:
            return await getattr(self._stub, name)(request, timeout=deadline_s or self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise DeadlineExceededError(f"{name} timed out") from exc
            raise from_grpc_error(exc) from exc
