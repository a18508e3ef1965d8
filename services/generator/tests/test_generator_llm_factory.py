"""Building the LLM path from settings: provider kinds, names, secrets, and a chain that answers for real."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from parley.generator.adapters.llm_anthropic import AnthropicProvider
from parley.generator.adapters.llm_factory import LlmSettings, ProviderConfig, build_llm, build_provider
from parley.generator.adapters.llm_local import LlamaCppProvider, TransformersProvider
from parley.generator.adapters.llm_openai import OpenAICompatibleProvider
from parley.generator.domain.prompt import PromptInput


def test_each_kind_builds_its_provider_without_loading_anything():
    assert isinstance(build_provider(ProviderConfig(kind="llama_cpp")), LlamaCppProvider)
    assert isinstance(
        build_provider(ProviderConfig(kind="transformers", model="/models/x")), TransformersProvider
    )
    assert isinstance(
        build_provider(ProviderConfig(kind="anthropic", model="claude-x", api_key="k")), AnthropicProvider
    )
    openai = build_provider(
        ProviderConfig(kind="openai", base_url="http://127.0.0.1:1/v1", model="m", name="vllm")
    )
    assert isinstance(openai, OpenAICompatibleProvider) and openai.name == "vllm"


def test_invalid_provider_configs_are_rejected():
    with pytest.raises(ValidationError, match="base_url and model"):
        ProviderConfig(kind="openai", model="m")
    with pytest.raises(ValidationError, match="needs model"):
        ProviderConfig(kind="anthropic")


def test_keys_are_secret_and_may_come_from_the_environment(monkeypatch):
    config = ProviderConfig(kind="openai", base_url="http://x/v1", model="m", api_key="sk-hidden")
    assert "sk-hidden" not in repr(config) and config.key() == "sk-hidden"
    monkeypatch.setenv("MY_LLM_KEY", "sk-from-env")
    assert (
        ProviderConfig(kind="openai", base_url="http://x/v1", model="m", api_key_env="MY_LLM_KEY").key()
        == "sk-from-env"
    )


def test_provider_names_must_be_unique():
    settings = LlmSettings(providers=[ProviderConfig(kind="llama_cpp"), ProviderConfig(kind="llama_cpp")])
    with pytest.raises(ValueError, match="unique"):
        build_llm(settings)


async def test_a_built_stack_answers_through_the_real_server(llama_server):
    settings = LlmSettings(
        enabled=True,
        providers=[
            ProviderConfig(kind="openai", name="llama", base_url=llama_server.base_url, model="smollm2"),
            ProviderConfig(kind="llama_cpp", name="local", n_ctx=512, n_threads=1),
        ],
        max_tokens=8,
        default_temperature=0.0,
        instructions="You answer questions about parcels.",
    )
    stack = build_llm(settings)
    try:
        assert stack.chain.providers == ("llama", "local")
        reply = await stack.responder.reply(PromptInput(message="Hello!"))
        assert reply.source == "llm" and reply.chain is not None and reply.chain.provider == "llama"
        assert "parcels" in stack.prompts.instructions(PromptInput(message="x"))
        assert (await stack.responder.reply(PromptInput(message="hello"))).source == "cache"
    finally:
        await stack.aclose()
