"""The local infrastructure is real: messages go through a Kafka broker, SQL through PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from parley.core.infra import InfraError, find_repo_root
from parley.core.infra.kafka import LocalKafka
from parley.core.testing.fixtures import unavailable


@pytest.mark.integration
async def test_kafka_roundtrip_keeps_key_and_value(kafka_bootstrap, kafka_topic_factory):
    topic = await kafka_topic_factory(partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b'{"turn": 1}', key=b"conversation-42")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        received = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()

    assert received.topic == topic
    assert received.key == b"conversation-42"
    assert received.value == b'{"turn": 1}'
    assert (received.partition, received.offset) == (sent.partition, sent.offset)


@pytest.mark.integration
async def test_topic_factory_gives_each_call_a_fresh_topic(kafka_bootstrap, kafka_topic_factory):
    first = await kafka_topic_factory(partitions=2)
    second = await kafka_topic_factory(partitions=2)
    assert first != second
    assert "test-topic-factory" in first  # named after the test, for reading broker logs

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics([first, second])}
    finally:
        await admin.close()
    assert set(described) == {first, second}
    assert all(len(t["partitions"]) == 2 for t in described.values())


@pytest.mark.integration
async def test_postgres_accepts_sql(postgres_dsn):
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        table = f"infra_check_{uuid.uuid4().hex[:8]}"
        await conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, body text NOT NULL)")
        try:
            await conn.execute(f"INSERT INTO {table} (body) VALUES ($1)", "hello")
            assert await conn.fetchval(f"SELECT body FROM {table}") == "hello"
        finally:
            await conn.execute(f"DROP TABLE {table}")
        assert await conn.fetchval("SELECT to_regclass($1)", table) is None
    finally:
        await conn.close()


@pytest.mark.integration
def test_local_kafka_start_is_idempotent(kafka_bootstrap, local_infra_dir: Path):
    # The session's broker lives in local_infra_dir when it was started locally; otherwise (env var or
    # testcontainers) this test starts one there itself, and stops it again.
    first = LocalKafka(local_infra_dir)
    started_here = first.pid is None
    try:
        try:
            address = first.start()
        except InfraError as exc:
            unavailable(f"cannot start a local Kafka broker: {exc}")
        pid = first.pid
        again = LocalKafka(local_infra_dir).start()
        assert again == address
        assert LocalKafka(local_infra_dir).pid == pid
        assert first.is_running()
        if not started_here:
            assert address == kafka_bootstrap
    finally:
        if started_here:
            first.stop()


def test_server_properties_configure_a_single_node_kraft_broker(tmp_path: Path):
    # Unit level: rendering the configuration starts nothing.
    properties = LocalKafka(tmp_path).render_properties(port=19092, controller_port=19093)
    settings = dict(line.split("=", 1) for line in properties.splitlines() if not line.startswith("#"))
    assert settings["process.roles"] == "broker,controller"
    assert settings["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert settings["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert settings["offsets.topic.replication.factor"] == "1"
    assert settings["group.initial.rebalance.delay.ms"] == "0"
    assert settings["log.cleaner.dedupe.buffer.size"] == "16777216"
    assert settings["log.dirs"] == str(tmp_path.resolve() / "kafka" / "data")
    assert not (tmp_path / "kafka").exists()


def test_repo_root_is_found_from_a_subfolder():
    here = Path(__file__).resolve()
    root = find_repo_root(here.parent)
    assert root is not None
    assert (root / "Makefile").is_file() and (root / "proto").is_dir()
    assert here.is_relative_to(root)
