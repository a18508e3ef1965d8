"""Settings of the gateway (``PARLEY_GATEWAY_*``), on top of the shared infrastructure settings."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from parley.core.settings import ServiceSettings


def _instance_id() -> str:
    return f"gateway-{uuid.uuid4().hex[:12]}"


def _string_list(value: object) -> object:
    """A list from the environment: JSON (``["a","b"]``) or comma-separated (``a,b``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


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
    sse_keepalive_s: float = Field(
        default=15.0, gt=0, description="seconds between keep-alive comments on a quiet event stream"
    )
    max_pending_turns: int = Field(
        default=10_000, ge=1, description="turns this replica may wait on at once before refusing new ones"
    )

    # -- authentication (docs/gateway.md, "Authentication") ------------------------------------------
    auth: Literal["none", "api_key"] = Field(
        default="none",
        description="`none`: identity from X-Parley-Tenant/X-Parley-User, unchecked (local runs); "
        "`api_key`: a tenant API key is required on every API request",
    )
    api_key_cache_ttl_s: float = Field(
        default=30.0,
        ge=0,
        description="how long a replica trusts a verified key without asking PostgreSQL again; a revoked "
        "key keeps working on a replica for at most this long (0 = ask every time)",
    )
    jwt_algorithm: Literal["HS256", "RS256"] = Field(
        default="HS256", description="signature algorithm of end-user tokens"
    )
    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256: the shared secret (at least 32 bytes); enables user tokens"
    )
    jwt_public_key: str | None = Field(default=None, description="RS256: the PEM public key (text)")
    jwt_public_key_file: Path | None = Field(
        default=None, description="RS256: a file with the PEM public key"
    )
    jwt_audience: str | None = Field(default=None, description="required `aud` of user tokens, if set")
    jwt_issuer: str | None = Field(default=None, description="required `iss` of user tokens, if set")
    jwt_leeway_s: float = Field(default=10.0, ge=0, description="clock skew allowed on `exp`/`nbf`/`iat`")
    jwt_tenant_claim: str = Field(
        default="tenant", min_length=1, description="claim that, when present, must equal the key's tenant"
    )
    jwt_required: bool = Field(
        default=False, description="every tenant's requests must carry a user token (the user is its `sub`)"
    )
    jwt_required_tenants: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="tenants whose requests must carry a user token (comma-separated)"
    )
    rate_limit_per_s: float = Field(
        default=20.0, ge=0, description="sustained requests per second per API key per replica (0 = off)"
    )
    rate_limit_burst: int = Field(default=40, ge=1, description="requests a key may make at once")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="browser origins allowed to call the API (comma-separated, `*` for any); none by default",
    )
    cors_allow_credentials: bool = Field(
        default=False, description="let browsers send cookies/HTTP auth cross-origin (not with `*`)"
    )
    cors_max_age_s: int = Field(default=600, ge=0, description="how long browsers may cache a preflight")

    _split_lists = field_validator("jwt_required_tenants", "cors_origins", mode="before")(_string_list)
