"""Settings of the context service (env prefix ``PARLEY_CONTEXT_``; database under ``PARLEY_DATABASE_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from parley.core.settings import ServiceSettings


class ContextSettings(ServiceSettings):
    """Where the context service listens and how much history each turn carries."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_CONTEXT_", env_ignore_empty=True, extra="ignore")

    grpc_port: int = Field(default=50054, ge=0, le=65535)
    window: int = Field(
        default=10,
        ge=1,
        le=500,
        description="recent messages handed downstream with each turn (PARLEY_CONTEXT_WINDOW)",
    )
