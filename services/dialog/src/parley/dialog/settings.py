"""Settings of the dialog service (``PARLEY_DIALOG_*``, plus the shared ``PARLEY_PROJECT_DIR`` and
``PARLEY_CONTEXT_ADDRESS`` every service reads alike)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from parley.core.settings import ServiceSettings


class DialogSettings(ServiceSettings):
    """Where the dialog listens, which project it runs, and how hard it retries a lost compare-and-set."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_DIALOG_", env_ignore_empty=True, extra="ignore")

    grpc_port: int = Field(default=50052, ge=0, le=65535)
    project_dir: Path = Field(
        default=Path("examples/order-support"),
        validation_alias=AliasChoices("PARLEY_PROJECT_DIR", "project_dir"),
    )
    context_address: str = Field(
        default="127.0.0.1:50054",
        validation_alias=AliasChoices("PARLEY_CONTEXT_ADDRESS", "context_address"),
    )
    state_attempts: int = Field(
        default=5, ge=1, description="read-decide-write attempts before a turn's conflict is reported"
    )
    state_backoff_s: float = Field(
        default=0.02, ge=0, description="first pause after a lost compare-and-set (doubles each time)"
    )
