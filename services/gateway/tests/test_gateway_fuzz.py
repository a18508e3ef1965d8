"""Schema-based fuzzing of the gateway's OpenAPI with schemathesis.

A real gateway (uvicorn, the real HTTP app, a real in-process bus) runs in a thread of its own with the
fake assistant and conversations of ``conftest.py`` behind it. For every operation in ``/openapi.json``
schemathesis generates valid and invalid requests; each response must not be a server error and must
match what the schema promises (status code, content type, headers, body). The number of examples is
small and fixed (``derandomize``) so the run is quick and repeatable; raise ``PARLEY_FUZZ_EXAMPLES`` for a
longer hunt.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from parley.core.bus import InMemoryBus
from parley.gateway.app import GatewayServer

from .conftest import FakeAssistant, FakeConversations, make_settings

EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "15"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class LiveGateway:
    """The gateway served over HTTP from its own thread and event loop (schemathesis calls are blocking)."""

    def __init__(self) -> None:
        self.port = 0
        self.conversations = FakeConversations()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fuzzed-gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveGateway:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the gateway did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        bus = InMemoryBus()
        bus.subscribe(FakeAssistant(self.conversations).subscription())
        # Bodies up to 64 KiB (the default): generated bodies are not refused for their size alone.
        server = GatewayServer(
            make_settings(max_body_bytes=65536, max_text_chars=4096, reply_timeout_s=2.0),
            bus,
            self.conversations,
        )
        await server.start()
        self.port = server.http_port
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.stop()


@pytest.fixture(scope="module")
def live_gateway() -> Iterator[LiveGateway]:
    with LiveGateway() as gateway:
        yield gateway


def conversation_of(gateway: LiveGateway) -> str:
    """A conversation of the default principal, so generated requests also reach past the 404."""
    response = requests.post(f"{gateway.url}/v1/conversations", timeout=10)
    response.raise_for_status()
    return response.json()["conversation_id"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_operation_answers_a_server_error_or_breaks_its_schema(
    live_gateway: LiveGateway, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{live_gateway.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert "POST /v1/conversations/{conversation_id}/feedback" in labels
    assert len(operations) >= 10
    existing = conversation_of(live_gateway)
    session = requests.Session()
    failures: list[str] = []

    for operation in operations:
        # Valid requests name a conversation that exists, so they get past the 404 to the handler's own
        # checks; invalid ones get whatever was generated.
        names_conversation = "{conversation_id}" in operation.path
        path_parameters = {"conversation_id": existing} if names_conversation and mode.is_positive else None
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(session=session, checks=CHECKS, timeout=15)

        try:
            fuzz()
        except Unsatisfiable:
            assert not mode.is_positive, f"{operation.label}: no valid request could be generated"
            continue  # nothing to negate: the operation takes no parameters and no body
        # Every operation is fuzzed and all failures are reported together (schemathesis raises a
        # BaseExceptionGroup for several distinct ones).
        except (Exception, BaseExceptionGroup) as exc:
            found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
            failures.extend(f"=== {operation.label} ({mode.value}):\n{failure}" for failure in found)

    assert not failures, "\n\n".join(failures)
