"""What a turn loads from PostgreSQL stays bounded: window, summary and count of a 5,000-message conversation.

The boundedness is checked on the executed plan (EXPLAIN ANALYZE): the rows read from ``messages`` and the
buffers touched do not depend on the length of the conversation. No timing assertions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from parley.context.adapters.postgres import LOAD_CONTEXT_SQL, PostgresStore
from parley.context.app import ContextService
from parley.context.domain.models import EntityUpdate, NewMessage, Role
from parley.core.errors import InvalidInputError, NotFoundError

pytestmark = pytest.mark.integration

LONG = 5_000
WINDOW = 10


@pytest.fixture
def store(context_service: ContextService) -> PostgresStore:
    return context_service.store


async def _conversation_with(store: PostgresStore, pool: asyncpg.Pool, count: int) -> str:
    """A conversation of ``count`` messages, inserted by one statement (the count trigger still runs)."""
    cid = str(uuid.uuid4())
    await store.create_conversation(cid, "acme", f"user-{cid[:8]}")
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO messages (conversation_id, turn_id, role, text, event_id) "
            "SELECT $1::uuid, 'turn-' || ((i + 1) / 2), CASE WHEN i % 2 = 1 THEN 'user' ELSE 'bot' END, "
            "       'message ' || i, $1 || '-' || i "
            "FROM generate_series(1, $2::int) AS i ORDER BY i",
            cid,
            count,
        )
    return cid


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _explain(pool: asyncpg.Pool, *args: Any) -> dict[str, Any]:
    async with pool.acquire() as conn:
        raw = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + LOAD_CONTEXT_SQL, *args)
    return json.loads(raw)[0]["Plan"]


def _message_rows_read(plan: dict[str, Any]) -> int:
    """Rows the plan took from ``messages`` (returned by its scans, plus any a filter threw away)."""
    read = 0
    for node in _nodes(plan):
        if node.get("Relation Name") == "messages":
            read += node["Actual Rows"] * node["Actual Loops"]
            read += node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
    return read


def _buffers(plan: dict[str, Any]) -> int:
    return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]


async def test_a_long_conversation_loads_the_window_the_summary_and_the_count(
    store: PostgresStore, pool: asyncpg.Pool
) -> None:
    cid = await _conversation_with(store, pool, LONG)
    # Fold everything but the last 50 messages into a summary, the way the assembler does.
    older = await store.messages_after(cid, 0, LONG - 50)
    assert [m.text for m in older[:2]] == ["message 1", "message 2"]
    assert len(older) == LONG - 50
    saved = await store.save_summary(cid, "the customer asked about orders", older[-1].seq, len(older))
    await store.update_entities(cid, "turn-9", "ev-entities", [EntityUpdate("order_id", "A-1")])
    await store.update_state(cid, 0, {"flow": "track_order"})

    load = await store.load_context(cid, WINDOW)
    assert [m.text for m in load.recent] == [f"message {i}" for i in range(LONG - WINDOW + 1, LONG + 1)]
    assert [m.role for m in load.recent[:2]] == [Role.USER, Role.BOT]
    assert load.total_messages == LONG
    assert load.summary == saved
    assert (load.summary.message_count, load.summary.covers_up_to_seq) == (LONG - 50, older[-1].seq)
    assert [(e.entity_type, e.value) for e in load.entities] == [("order_id", "A-1")]
    assert load.state.data == {"flow": "track_order"}
    assert load.profile.user_id == f"user-{cid[:8]}"
    assert load.profile.updated_at is None  # no profile written: an empty one

    # Bounded by an earlier event, the window and the count stop at that message (a re-run sees the same).
    at = await store.load_context(cid, WINDOW, up_to_event_id=f"{cid}-4000")
    assert [m.text for m in at.recent] == [f"message {i}" for i in range(3991, 4001)]
    assert at.total_messages == 4000
    assert (await store.load_context(cid, 0)).recent == []


async def test_loading_reads_the_same_amount_for_10_and_5000_messages(
    store: PostgresStore, pool: asyncpg.Pool
) -> None:
    short = await _conversation_with(store, pool, 10)
    long = await _conversation_with(store, pool, LONG)
    for cid in (short, long):
        await store.update_entities(cid, "t", f"ev-{cid}", [EntityUpdate("city", "Berlin")])
    async with pool.acquire() as conn:
        # What autovacuum does after a bulk load; the plan must not depend on fresh statistics otherwise.
        await conn.execute("ANALYZE messages")
        await conn.execute("ANALYZE conversations")

    plans = {}
    for cid, count in ((short, 10), (long, LONG)):
        # The live path: bounded by the event of the newest message.
        plan = await _explain(pool, uuid.UUID(cid), WINDOW, 20, f"{cid}-{count}")
        plans[count] = plan
        scans = [n for n in _nodes(plan) if n.get("Relation Name") == "messages"]
        assert scans, "the plan reads messages"
        assert all(n["Node Type"] != "Seq Scan" for n in scans), [n["Node Type"] for n in scans]
        # The window, plus the one lookup of the bounding message; never the history.
        assert _message_rows_read(plan) <= WINDOW + 1, json.dumps(plan, indent=1)[:4000]
        unbounded = await _explain(pool, uuid.UUID(cid), WINDOW, 20, None)
        assert _message_rows_read(unbounded) <= WINDOW

    # Buffers: the same index depth and a page or two of rows either way, not 500 times more.
    assert _buffers(plans[LONG]) <= _buffers(plans[10]) + 4, (_buffers(plans[10]), _buffers(plans[LONG]))


async def test_load_context_validates_and_reports_unknown_conversations(store: PostgresStore) -> None:
    with pytest.raises(NotFoundError):
        await store.load_context(str(uuid.uuid4()), WINDOW)
    with pytest.raises(InvalidInputError, match="UUID"):
        await store.load_context("nope", WINDOW)
    with pytest.raises(InvalidInputError, match="window"):
        await store.load_context(str(uuid.uuid4()), -1)
    with pytest.raises(InvalidInputError, match="entity_limit"):
        await store.load_context(str(uuid.uuid4()), 5, entity_limit=10_000)


async def test_entities_in_the_load_are_limited_most_recent_first(store: PostgresStore) -> None:
    cid = str(uuid.uuid4())
    await store.create_conversation(cid, "acme", "ent")
    for i in range(5):
        await store.update_entities(cid, f"t{i}", f"ev-{cid}-{i}", [EntityUpdate(f"type{i}", f"v{i}")])
    load = await store.load_context(cid, 3, entity_limit=2)
    assert [e.entity_type for e in load.entities] == ["type4", "type3"]
    assert load.recent == []
    assert load.total_messages == 0
    assert load.summary is None
    assert load.state.version == 0


async def test_message_count_follows_appends_and_ignores_duplicates(store: PostgresStore) -> None:
    cid = str(uuid.uuid4())
    await store.create_conversation(cid, "acme", "counter")
    messages = [NewMessage(cid, "t", Role.USER, f"m{i}", f"{cid}-{i}") for i in range(4)]
    assert await store.append_messages(messages) == 4
    assert await store.append_messages(messages[:2]) == 0
    assert await store.append_message(messages[3]) is False
    assert (await store.load_context(cid, 10)).total_messages == 4


async def test_summaries_only_move_forward(store: PostgresStore) -> None:
    cid = str(uuid.uuid4())
    await store.create_conversation(cid, "acme", "sum")
    assert await store.get_summary(cid) is None
    first = await store.save_summary(cid, "first part", 10, 8)
    assert (first.text, first.covers_up_to_seq, first.message_count) == ("first part", 10, 8)
    later = await store.save_summary(cid, "first and second part", 20, 16)
    stale = await store.save_summary(cid, "an older view", 15, 12)
    assert stale == later  # the stored one covers more: it stays and is returned
    assert await store.get_summary(cid) == later
    with pytest.raises(NotFoundError):
        await store.save_summary(str(uuid.uuid4()), "x", 1, 1)
    with pytest.raises(InvalidInputError, match="covers_up_to_seq"):
        await store.save_summary(cid, "x", -1, 1)


async def test_messages_after_pages_forward_by_seq(store: PostgresStore) -> None:
    cid = str(uuid.uuid4())
    await store.create_conversation(cid, "acme", "after")
    for i in range(6):
        await store.append_message(NewMessage(cid, "t", Role.USER, f"m{i}", f"{cid}-{i}"))
    first = await store.messages_after(cid, 0, 4)
    assert [m.text for m in first] == ["m0", "m1", "m2", "m3"]
    rest = await store.messages_after(cid, first[-1].seq, 100)
    assert [m.text for m in rest] == ["m4", "m5"]
    assert await store.messages_after(cid, 0, 0) == []
    with pytest.raises(InvalidInputError, match="limit"):
        await store.messages_after(cid, 0, -1)


async def test_purge_expired_deletes_only_old_history(store: PostgresStore, pool: asyncpg.Pool) -> None:
    cid = str(uuid.uuid4())
    await store.create_conversation(cid, "acme", "retention")
    now = datetime.now(UTC)
    for i in range(4):
        await store.append_message(NewMessage(cid, f"t{i}", Role.USER, f"m{i}", f"{cid}-m{i}"))
        await store.record_event(f"{cid}-e{i}", cid, f"t{i}", "user_message", b"x", now)
    await store.update_entities(cid, "t0", f"{cid}-x0", [EntityUpdate("city", "Paris")])
    await store.update_entities(cid, "t3", f"{cid}-x3", [EntityUpdate("city", "Rome")])
    await store.save_summary(cid, "summary", 1, 1)
    await store.update_state(cid, 0, {"kept": True})
    async with pool.acquire() as conn:  # age half of it by 40 days
        old = now - timedelta(days=40)
        await conn.execute(
            "UPDATE messages SET created_at = $2 WHERE event_id = ANY($1::text[])",
            [f"{cid}-m0", f"{cid}-m1"],
            old,
        )
        await conn.execute(
            "UPDATE turn_events SET occurred_at = $2 WHERE event_id = ANY($1::text[])",
            [f"{cid}-e0", f"{cid}-e1"],
            old,
        )
        await conn.execute("UPDATE entity_changes SET changed_at = $2 WHERE event_id = $1", f"{cid}-x0", old)
        await conn.execute("UPDATE entity_events SET applied_at = $2 WHERE event_id = $1", f"{cid}-x0", old)

    deleted = await store.purge_expired(now - timedelta(days=30))
    assert deleted == 2 + 2 + 1 + 1
    page = await store.list_messages(cid, 10)
    assert [m.text for m in page.messages] == ["m2", "m3"]
    export = await store.export_user("acme", "retention")
    assert sorted(e.event_id for e in export.events) == [f"{cid}-e2", f"{cid}-e3"]
    assert [(c.previous_value, c.value) for c in export.entity_history] == [("Paris", "Rome")]
    load = await store.load_context(cid, 10)
    # Current state, summary and the appended count stay (the count stays comparable with the summary's).
    assert [(e.entity_type, e.value) for e in load.entities] == [("city", "Rome")]
    assert load.summary is not None
    assert load.state.data == {"kept": True}
    assert load.total_messages == 4
    assert await store.purge_expired(now - timedelta(days=30)) == 0
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        await store.purge_expired(datetime(2020, 1, 1))  # naive on purpose
