"""Settings of the gateway (``PARLEY_GATEWAY_*``), on top of the shared infrastructure settings."""

from __future__ import annotations

import uuid
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from parley.core.settings import ServiceSettings


def _instance_id() -> str:
    return f"gateway-{uuid.uuid4().hex[:12]}"


class GatewaySettings(ServiceSettings):
    """How the gateway listens, how long it waits for replies and what it accepts from clients."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_GATEWAY_", env_ignore_empty=True, extra="ignore")

    grpc_port: int = Field(default=50055, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    project_dir: Path = Field(
        default=Path("examples/order-support"),
        validation_alias=AliasChoices("PARLEY_PROJECT_DIR", "project_dir"),
    )
    context_address: str = Field(
        default="127.0.0.1:50054",
        validation_alias=AliasChoices("PARLEY_CONTEXT_ADDRESS", "context_address"),
        description="host:port of the context service",
    )
    instance_id: str = Field(
        default_factory=_instance_id,
        min_length=1,
        description="this replica's name, stamped as `origin` on the events it publishes (e.g. the pod name)",
    )
    max_text_chars: int = Field(
        default=4096, ge=1, description="longest user message accepted, in characters"
    )
    reply_timeout_s: float = Field(
        default=15.0, gt=0, description="how long a request waits for its reply before answering 'pending'"
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="largest HTTP request body accepted")
    max_pending_turns: int = Field(
        default=10_000, ge=1, description="turns this replica may wait on at once before refusing new ones"
    )
