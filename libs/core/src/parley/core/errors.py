"""One error tree for all services.

Each error knows its gRPC status and HTTP status, so the gRPC interceptor and the gateway map errors the
same way everywhere. Errors also inherit the matching builtin so callers can catch them idiomatically.
"""

from __future__ import annotations

from http import HTTPStatus

import grpc


class ParleyError(Exception):
    """Root of every error Parley raises on purpose."""

    grpc_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    http_status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    #: Whether a retry of the same operation may succeed.
    retryable: bool = False


class InvalidInputError(ParleyError, ValueError):
    """The caller sent something malformed, out of range or of the wrong type."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = HTTPStatus.UNPROCESSABLE_ENTITY


class NotFoundError(ParleyError, LookupError):
    """The thing does not exist, or belongs to someone else (we never reveal which)."""

    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = HTTPStatus.NOT_FOUND


class ConflictError(ParleyError):
    """A compare-and-set lost: the stored version moved on. Re-read and retry."""

    grpc_code = grpc.StatusCode.ABORTED
    http_status = HTTPStatus.CONFLICT
    retryable = True


class UnauthenticatedError(ParleyError):
    """No or bad credentials."""

    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    http_status = HTTPStatus.UNAUTHORIZED


class PermissionDeniedError(ParleyError, PermissionError):
    """Credentials are fine but do not allow this."""

    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    http_status = HTTPStatus.FORBIDDEN


class UnavailableError(ParleyError, ConnectionError):
    """A dependency (database, broker, another service) cannot be reached right now."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    retryable = True


class DeadlineExceededError(ParleyError, TimeoutError):
    """The work did not finish in the time allowed."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    http_status = HTTPStatus.GATEWAY_TIMEOUT
    retryable = True


class ConfigurationError(ParleyError, ValueError):
    """Settings or an assistant project are invalid; the message says what to fix."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = HTTPStatus.INTERNAL_SERVER_ERROR


class PoisonEventError(ParleyError):
    """An event can never be processed (undecodable, invalid); it goes to the dead-letter topic at once."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = HTTPStatus.UNPROCESSABLE_ENTITY


_BY_GRPC_CODE: dict[grpc.StatusCode, type[ParleyError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInputError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ABORTED: ConflictError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.FAILED_PRECONDITION: ConfigurationError,
}


def from_grpc_error(error: grpc.aio.AioRpcError) -> ParleyError:
    """Turn a failed gRPC call back into the error the remote side raised, so callers catch one tree."""
    cls = _BY_GRPC_CODE.get(error.code(), ParleyError)
    return cls(error.details() or str(error.code()))
