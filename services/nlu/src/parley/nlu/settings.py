"""Settings of the NLU service (``PARLEY_NLU_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from parley.core.settings import ServiceSettings


class NluSettings(ServiceSettings):
    """Where the project and the trained models are, and how the encoder runs."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_NLU_", env_ignore_empty=True, extra="ignore")

    grpc_port: int = Field(default=50051, ge=0, le=65535)
    project_dir: Path = Field(
        default=Path("examples/order-support"),
        validation_alias=AliasChoices("PARLEY_PROJECT_DIR", "project_dir"),
        description="the assistant project whose nlu.yml is trained on",
    )
    context_address: str = Field(
        default="127.0.0.1:50054",
        validation_alias=AliasChoices("PARLEY_CONTEXT_ADDRESS", "context_address"),
    )
    model_dir: Path = Field(
        default=Path(".local/models"),
        description="trained models live here, one versioned folder each; missing ones are trained at start",
    )
    model: Literal["joint", "head"] = Field(
        default="joint",
        description=(
            "joint: the encoder fine-tuned with intent and entity-tagging heads, served by ONNX Runtime "
            "(loads in < 1 s, parses in ~1 ms; training takes about a minute on 2 CPU cores); "
            "head: an intent head over frozen sentence embeddings (trains in a second, no entity tagger)"
        ),
    )
    device: Literal["cpu", "cuda"] = Field(
        default="cpu", description="where the encoder runs; cuda runs it in half precision"
    )
    num_threads: int = Field(
        default=0, ge=0, description="torch intra-op threads for the encoder; 0 keeps torch's default"
    )
    batch_size: int = Field(default=32, ge=1, le=1024, description="texts per encoder forward pass")
    batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="how long a single request may wait for others to share its model call (micro-batching)",
    )
