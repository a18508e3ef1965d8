"""Settings of the generator service (``PARLEY_GENERATOR_*``, plus the shared ``PARLEY_PROJECT_DIR``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from parley.core.settings import ServiceSettings
from parley.generator.adapters.llm_factory import LlmSettings


class GeneratorSettings(ServiceSettings):
    """Where the generator listens, which project's responses it renders, and the optional LLM path
    (nested settings by ``__``: ``PARLEY_GENERATOR_LLM__ENABLED=true``)."""

    model_config = SettingsConfigDict(
        env_prefix="PARLEY_GENERATOR_", env_ignore_empty=True, extra="ignore", env_nested_delimiter="__"
    )

    grpc_port: int = Field(default=50053, ge=0, le=65535)
    project_dir: Path = Field(
        default=Path("examples/order-support"),
        validation_alias=AliasChoices("PARLEY_PROJECT_DIR", "project_dir"),
    )
    llm: LlmSettings = Field(default_factory=LlmSettings)
    context_address: str = Field(
        default="127.0.0.1:50054",
        validation_alias=AliasChoices("PARLEY_CONTEXT_ADDRESS", "context_address"),
        description="host:port of the context service (user preferences such as prefers_brief)",
    )
    preferences_ttl_s: float = Field(
        default=30.0, ge=0, description="how long a user's preferences are cached before they are read again"
    )
