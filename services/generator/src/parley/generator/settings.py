"""Settings of the generator service (``PARLEY_GENERATOR_*``, plus the shared ``PARLEY_PROJECT_DIR``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from parley.core.settings import ServiceSettings


class GeneratorSettings(ServiceSettings):
    """Where the generator listens and which project's responses it renders."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_GENERATOR_", env_ignore_empty=True, extra="ignore")

    grpc_port: int = Field(default=50053, ge=0, le=65535)
    project_dir: Path = Field(
        default=Path("examples/order-support"),
        validation_alias=AliasChoices("PARLEY_PROJECT_DIR", "project_dir"),
    )
