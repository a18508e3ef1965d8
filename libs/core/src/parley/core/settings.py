"""Typed settings shared by every service.

Infrastructure settings have one prefix each (``PARLEY_KAFKA_*``, ``PARLEY_DATABASE_*``, ``PARLEY_OTEL_*``,
``PARLEY_LOG_*``) so one environment configures all services alike; each service adds its own class with
its own prefix (``PARLEY_NLU_*`` ...) that embeds these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_ignore_empty=True, extra="ignore")


class KafkaSettings(BaseSettings):
    """Where the broker is and how topics are named."""

    model_config = _config("PARLEY_KAFKA_")

    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "parley."
    partitions: int = Field(default=3, ge=1, description="partitions of each turn topic when we create it")
    client_id: str = "parley"
    max_attempts: int = Field(
        default=5, ge=1, description="handler attempts before an event is dead-lettered"
    )
    retry_backoff_s: float = Field(default=0.2, gt=0)


class DatabaseSettings(BaseSettings):
    """PostgreSQL connection; no URL means "start an embedded server" where a service allows it."""

    model_config = _config("PARLEY_DATABASE_")

    url: str | None = None
    pool_min: int = Field(default=1, ge=1)
    pool_max: int = Field(default=10, ge=1)
    embedded_dir: Path = Path(".local/embedded/postgres")


class TelemetrySettings(BaseSettings):
    """Tracing: ``otlp`` exports to ``OTEL_EXPORTER_OTLP_ENDPOINT``; ``none`` still propagates context."""

    model_config = _config("PARLEY_OTEL_")

    exporter: Literal["none", "otlp", "console"] = "none"


class LogSettings(BaseSettings):
    """Structured logs: JSON for machines, console for people."""

    model_config = _config("PARLEY_LOG_")

    level: str = "INFO"
    format: Literal["json", "console"] = "console"


class ServiceSettings(BaseSettings):
    """Base of each service's settings: embeds the shared infrastructure settings."""

    model_config = _config("PARLEY_")

    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=0, ge=0, le=65535)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    log: LogSettings = Field(default_factory=LogSettings)
    shutdown_grace_s: float = Field(default=5.0, ge=0)
