"""End-to-end fixtures: every service as its own process over the real Kafka and PostgreSQL."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.cli.stack import Stack, StackConfig

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "examples" / "order-support"


@pytest.fixture(scope="session")
def e2e_stack(
    kafka_bootstrap: str, postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One distributed stack for the whole e2e session (starting it costs about a minute on 2 cores)."""
    run_dir = tmp_path_factory.mktemp("stack")
    config = StackConfig.with_free_ports(
        kafka_bootstrap=kafka_bootstrap,
        database_url=postgres_dsn,
        project_dir=PROJECT,
        run_dir=run_dir,
        topic_prefix=f"e2e{uuid.uuid4().hex[:8]}.",
        model_dir=run_dir / "models",
        extra_env={"PARLEY_GATEWAY_REPLY_TIMEOUT_S": "90", "PARLEY_LOG_LEVEL": "INFO"},
    )
    stack = Stack(config)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
