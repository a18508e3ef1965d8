"""Settings of the context service (env prefix ``PARLEY_CONTEXT_``; database under ``PARLEY_DATABASE_``)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from parley.core.settings import ServiceSettings


class ContextSettings(ServiceSettings):
    """Where the context service listens, and how much of a conversation each turn carries.

    What a turn loads is bounded by these numbers, never by the length of the conversation: the last
    ``window`` messages within ``token_budget``, a summary of everything older than ``max_context_length``
    messages, at most ``entity_limit`` tracked entities and ``memory_limit`` long-term memories.
    """

    model_config = SettingsConfigDict(env_prefix="PARLEY_CONTEXT_", env_ignore_empty=True, extra="ignore")

    grpc_port: int = Field(default=50054, ge=0, le=65535)
    window: int = Field(
        default=10,
        ge=1,
        le=500,
        description="recent messages handed downstream with each turn (PARLEY_CONTEXT_WINDOW)",
    )
    token_budget: int = Field(
        default=1_500,
        ge=16,
        le=100_000,
        description="approximate tokens the recent messages may take; the oldest drop out first",
    )
    max_context_length: int = Field(
        default=50,
        ge=1,
        le=100_000,
        description="messages kept verbatim; older ones are folded into the conversation's summary",
    )
    summary_batch: int = Field(
        default=20,
        ge=1,
        le=1_000,
        description="fold older messages into the summary once this many are waiting (not on every turn)",
    )
    summary_max_fold: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="at most this many messages folded into the summary by one turn (imports catch up)",
    )
    summary_token_budget: int = Field(default=300, ge=16, le=10_000, description="size limit of a summary")
    entity_limit: int = Field(default=20, ge=0, le=500, description="tracked entities handed on per turn")
    memory_limit: int = Field(
        default=3, ge=0, le=100, description="long-term memories handed on per turn (most similar first)"
    )
    memory_min_score: float = Field(
        default=0.35, ge=-1.0, le=1.0, description="cosine similarity a memory needs to be handed on"
    )
    retention_days: float | None = Field(
        default=None,
        gt=0,
        description="delete messages and logged events older than this many days (unset: keep everything)",
    )
    purge_interval_s: float = Field(default=3_600.0, gt=0, description="how often the retention purge runs")

    @model_validator(mode="after")
    def _window_fits(self) -> ContextSettings:
        if self.window > self.max_context_length:
            raise ValueError(
                f"window ({self.window}) must not exceed max_context_length ({self.max_context_length}): "
                "messages in the window are never summarised away"
            )
        return self
