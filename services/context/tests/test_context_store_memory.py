"""Long-term memories (pgvector where the server has it, real[] always), profiles and feedback."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from parley.context.adapters.postgres import SEARCH_PGVECTOR_SQL, VECTOR_DIMENSIONS, PostgresStore
from parley.context.app import ContextService, migrate
from parley.context.domain.models import Feedback, UserProfile
from parley.core.errors import InvalidInputError, NotFoundError

pytestmark = pytest.mark.integration


@pytest.fixture
def store(context_service: ContextService) -> PostgresStore:
    return context_service.store


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _vector(*weights: float, dims: int = VECTOR_DIMENSIONS) -> list[float]:
    """A unit vector with ``weights`` on the first axes."""
    norm = math.sqrt(sum(w * w for w in weights))
    return [w / norm for w in weights] + [0.0] * (dims - len(weights))


async def test_the_server_has_pgvector_and_the_store_uses_it(
    store: PostgresStore, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        available = await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
        installed = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'memories_embedding_hnsw'"
        )
    if not available:  # another server (PARLEY_TEST_DATABASE_URL) without it: the fallback must be chosen
        assert installed is None
        assert await store.memory_search_backend() == "real[]"
        return
    assert installed is not None
    assert "hnsw" in index
    assert await store.memory_search_backend() == "pgvector"
    assert await PostgresStore(pool, pgvector=False).memory_search_backend() == "real[]"


async def test_remember_stores_a_fact_once(store: PostgresStore, pool: asyncpg.Pool) -> None:
    tenant = _tenant()
    first = await store.remember(
        tenant, "alice", "prefers email", "preference", _vector(1), {"source": "chat"}
    )
    again = await store.remember(
        tenant, "alice", "prefers email", "preference", _vector(0, 1), {"source": "x"}
    )
    assert again == first
    assert first.metadata == {"source": "chat"}
    # Same text, another kind or another user: another memory.
    other_kind = await store.remember(tenant, "alice", "prefers email", "fact", _vector(1))
    other_user = await store.remember(tenant, "bob", "prefers email", "preference", _vector(1))
    assert len({first.memory_id, other_kind.memory_id, other_user.memory_id}) == 3
    async with pool.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM memories WHERE tenant_id = $1", tenant)
    assert count == 3


@pytest.mark.parametrize("pgvector", [True, False], ids=["pgvector", "real-array"])
async def test_search_ranks_the_closest_first_and_only_that_users(
    context_service: ContextService, pool: asyncpg.Pool, pgvector: bool
) -> None:
    store = PostgresStore(pool, pgvector=pgvector)
    tenant = _tenant()
    await store.remember(tenant, "alice", "lives in Lyon", "fact", _vector(0, 1))
    await store.remember(tenant, "alice", "owns a red kettle", "fact", _vector(1))
    await store.remember(tenant, "alice", "ordered a kettle before", "fact", _vector(0.8, 0.6))
    # A text without features embeds to zeros: stored, but similar to nothing.
    await store.remember(tenant, "alice", "?!", "fact", [0.0] * VECTOR_DIMENSIONS)
    # Other users hold the exact query vector: they must never show up.
    await store.remember(tenant, "bob", "bob's kettle", "fact", _vector(1))
    await store.remember(f"{tenant}-other", "alice", "other tenant's alice", "fact", _vector(1))

    hits = await store.search_memories(tenant, "alice", _vector(1), limit=10)
    assert [h.text for h in hits] == ["owns a red kettle", "ordered a kettle before", "lives in Lyon"]
    assert [round(h.score, 4) for h in hits] == [1.0, 0.8, 0.0]
    assert {(h.tenant_id, h.user_id) for h in hits} == {(tenant, "alice")}
    assert [h.text for h in await store.search_memories(tenant, "alice", _vector(1), limit=1)] == [
        "owns a red kettle"
    ]
    assert len(await store.search_memories(tenant, "alice", _vector(1), limit=10, min_score=0.5)) == 2
    assert await store.search_memories(tenant, "carol", _vector(1), limit=10) == []
    assert await store.search_memories(tenant, "alice", [0.0] * VECTOR_DIMENSIONS, limit=10) == []
    assert len((await store.export_user(tenant, "alice")).memories) == 4


async def test_memories_of_another_size_are_searched_without_pgvector(store: PostgresStore) -> None:
    tenant = _tenant()
    await store.remember(tenant, "alice", "small vector", "fact", [1.0, 0.0, 0.0])
    await store.remember(tenant, "alice", "full vector", "fact", _vector(1))
    small = await store.search_memories(tenant, "alice", [0.6, 0.8, 0.0], limit=5)
    assert [(h.text, round(h.score, 4)) for h in small] == [("small vector", 0.6)]
    full = await store.search_memories(tenant, "alice", _vector(1), limit=5)
    assert [h.text for h in full] == ["full vector"]


async def test_memory_input_is_validated(store: PostgresStore) -> None:
    tenant = _tenant()
    with pytest.raises(InvalidInputError, match="text is required"):
        await store.remember(tenant, "alice", "  ", "fact", _vector(1))
    with pytest.raises(InvalidInputError, match="text is longer"):
        await store.remember(tenant, "alice", "x" * 2001, "fact", _vector(1))
    with pytest.raises(InvalidInputError, match="kind"):
        await store.remember(tenant, "alice", "fact", "", _vector(1))
    with pytest.raises(InvalidInputError, match="NaN"):
        await store.remember(tenant, "alice", "fact", "fact", [1.0, float("nan")])
    with pytest.raises(InvalidInputError, match="dimensions"):
        await store.search_memories(tenant, "alice", [], limit=3)
    with pytest.raises(InvalidInputError, match="min_score"):
        await store.search_memories(tenant, "alice", _vector(1), limit=3, min_score=2)
    with pytest.raises(InvalidInputError, match="metadata"):
        await store.remember(tenant, "alice", "fact", "fact", _vector(1), {"x": object()})
    # A conversation that is not theirs cannot be named as the source.
    cid = str(uuid.uuid4())
    await store.create_conversation(cid, tenant, "bob")
    with pytest.raises(NotFoundError):
        await store.remember(tenant, "alice", "from bob's chat", "fact", _vector(1), conversation_id=cid)
    mine = str(uuid.uuid4())
    await store.create_conversation(mine, tenant, "alice")
    linked = await store.remember(tenant, "alice", "from my chat", "fact", _vector(1), conversation_id=mine)
    assert linked.conversation_id == mine


async def test_profile_round_trip_and_bad_values(store: PostgresStore) -> None:
    tenant = _tenant()
    empty = await store.get_profile(tenant, "alice")
    assert empty == UserProfile(tenant, "alice")
    saved = await store.upsert_profile(
        UserProfile(tenant, "alice", "Alice", "Europe/Berlin", "de-DE", {"channel": "email", "n": [1, 2]})
    )
    assert saved.updated_at is not None
    assert await store.get_profile(tenant, "alice") == saved
    assert (saved.display_name, saved.timezone, saved.locale) == ("Alice", "Europe/Berlin", "de-DE")
    assert saved.preferences == {"channel": "email", "n": [1, 2]}
    replaced = await store.upsert_profile(UserProfile(tenant, "alice", timezone="America/New_York"))
    assert (replaced.display_name, replaced.timezone, replaced.preferences) == ("", "America/New_York", {})
    assert replaced.updated_at >= saved.updated_at
    assert (await store.get_profile(tenant, "bob")).updated_at is None  # nobody else's profile changed

    for timezone in ("Mars/Olympus_Mons", "../etc/passwd", "Europe", "localtime", "europe/berlin"):
        with pytest.raises(InvalidInputError, match="timezone must be an IANA name"):
            await store.upsert_profile(UserProfile(tenant, "alice", timezone=timezone))
    with pytest.raises(InvalidInputError, match="locale"):
        await store.upsert_profile(UserProfile(tenant, "alice", locale="not a locale"))
    with pytest.raises(InvalidInputError, match="display_name"):
        await store.upsert_profile(UserProfile(tenant, "alice", display_name="x" * 300))
    with pytest.raises(InvalidInputError, match="principal"):
        await store.get_profile("", "")
    assert (await store.get_profile(tenant, "alice")).timezone == "America/New_York"


def _feedback(cid: str, **fields: object) -> Feedback:
    values: dict[str, object] = {
        "feedback_id": "",
        "conversation_id": cid,
        "turn_id": "",
        "rating": None,
        "resolved": None,
        "comment": "",
        "created_at": datetime.now(UTC),
    }
    values.update(fields)
    return Feedback(**values)  # type: ignore[arg-type]


async def test_feedback_is_stored_only_on_the_principals_conversation(store: PostgresStore) -> None:
    tenant = _tenant()
    cid = str(uuid.uuid4())
    await store.create_conversation(cid, tenant, "alice")
    stored = await store.record_feedback(
        tenant, "alice", _feedback(cid, turn_id="t1", rating=4, comment="ok")
    )
    assert (stored.rating, stored.resolved, stored.comment, stored.turn_id) == (4, None, "ok", "t1")
    assert stored.feedback_id
    resolved = await store.record_feedback(tenant, "alice", _feedback(cid, resolved=False))
    assert (resolved.rating, resolved.resolved) == (None, False)
    # A retry with the same id stores it once.
    fid = str(uuid.uuid4())
    once = await store.record_feedback(tenant, "alice", _feedback(cid, feedback_id=fid, rating=5))
    assert await store.record_feedback(tenant, "alice", _feedback(cid, feedback_id=fid, rating=5)) == once

    for tenant_id, user_id in ((tenant, "mallory"), (f"{tenant}-other", "alice")):
        with pytest.raises(NotFoundError):
            await store.record_feedback(tenant_id, user_id, _feedback(cid, rating=1))
        with pytest.raises(NotFoundError):  # nor by reusing an id of theirs
            await store.record_feedback(tenant_id, user_id, _feedback(cid, feedback_id=fid, rating=1))
    with pytest.raises(NotFoundError):
        await store.record_feedback(tenant, "alice", _feedback(str(uuid.uuid4()), rating=3))
    assert len((await store.export_user(tenant, "alice")).feedback) == 3


async def test_feedback_values_are_checked(store: PostgresStore) -> None:
    tenant = _tenant()
    cid = str(uuid.uuid4())
    await store.create_conversation(cid, tenant, "alice")
    for rating in (0, 6, -1):
        with pytest.raises(InvalidInputError, match="rating"):
            await store.record_feedback(tenant, "alice", _feedback(cid, rating=rating))
    with pytest.raises(InvalidInputError, match="comment is longer than 2000"):
        await store.record_feedback(tenant, "alice", _feedback(cid, comment="x" * 2001))
    with pytest.raises(InvalidInputError, match="needs a rating"):
        await store.record_feedback(tenant, "alice", _feedback(cid, comment="   "))
    with pytest.raises(InvalidInputError, match=r"feedback\.conversation_id"):
        await store.record_feedback(tenant, "alice", _feedback("nope", rating=3))
    assert (await store.export_user(tenant, "alice")).feedback == []


async def test_a_search_through_the_hnsw_index_still_finds_enough_of_that_users(
    context_service: ContextService, database_dsn: str, pool: asyncpg.Pool
) -> None:
    """The HNSW index is global: filtered to one user, a plain index scan would return too few rows."""
    if await PostgresStore(pool).memory_search_backend() != "pgvector":
        pytest.skip("this PostgreSQL has no pgvector")
    tenant = _tenant()
    rng = random.Random(7)

    def unit() -> list[float]:
        return _vector(*(rng.gauss(0, 1) for _ in range(VECTOR_DIMENSIONS)))

    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO tenants (id) VALUES ($1)", tenant)
        await conn.executemany(
            "INSERT INTO users (tenant_id, user_id) VALUES ($1, $2)", [(tenant, f"u{i}") for i in range(100)]
        )
        await conn.executemany(
            "INSERT INTO memories (tenant_id, user_id, text, kind, embedding) "
            "VALUES ($1, $2, $3, 'fact', $4)",
            [(tenant, f"u{i % 100}", f"memory {i}", unit()) for i in range(1_500)],
        )
    query = unit()
    # A pool whose planner must walk the HNSW index (no sequential scan, no sort).
    forced = await asyncpg.create_pool(
        database_dsn,
        min_size=1,
        max_size=1,
        server_settings={"enable_seqscan": "off", "enable_sort": "off", "enable_bitmapscan": "off"},
    )
    try:
        async with forced.acquire() as conn:
            plan = await conn.fetchval(
                "EXPLAIN (FORMAT JSON) " + SEARCH_PGVECTOR_SQL, tenant, "u7", query, 5, -1.0
            )
        assert "memories_embedding_hnsw" in plan
        hits = await PostgresStore(forced).search_memories(tenant, "u7", query, limit=5)
    finally:
        await forced.close()
    exact = {
        m.text: m.score
        for m in await PostgresStore(pool, pgvector=False).search_memories(tenant, "u7", query, 15)
    }
    assert len(exact) == 15
    assert len(hits) == 5  # enough rows of u7, not the one or two the first candidates held
    assert all(h.user_id == "u7" for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        assert hit.score == pytest.approx(exact[hit.text], abs=1e-5)


async def test_without_pgvector_the_schema_and_search_fall_back_to_real_arrays(postgres_dsn: str) -> None:
    """Migrated by a role that may not create the extension (as in most managed setups): real[] only."""
    suffix = uuid.uuid4().hex[:10]
    role, password, database = f"context_plain_{suffix}", f"pw{suffix}", f"context_plain_{suffix}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER PASSWORD '{password}'")
        await admin.execute(f'CREATE DATABASE "{database}" OWNER {role}')
        parts = urlsplit(postgres_dsn)
        host = f"{parts.hostname}:{parts.port}" if parts.hostname else ""
        dsn = urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}", path=f"/{database}"))
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            assert await migrate(pool) == [1, 2]
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'vector'") == 0
            store = PostgresStore(pool)
            assert await store.memory_search_backend() == "real[]"
            await store.remember("acme", "alice", "likes tea", "fact", _vector(1))
            await store.remember("acme", "alice", "likes coffee", "fact", _vector(0.6, 0.8))
            await store.remember("acme", "bob", "likes tea too", "fact", _vector(1))
            hits = await store.search_memories("acme", "alice", _vector(1), limit=5)
            assert [(h.text, round(h.score, 4)) for h in hits] == [("likes tea", 1.0), ("likes coffee", 0.6)]
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()
