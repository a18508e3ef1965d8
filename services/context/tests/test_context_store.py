"""The PostgreSQL store against a real server: idempotency, compare-and-set, paging, ownership, GDPR."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from parley.context.adapters.postgres import PostgresStore
from parley.context.app import ContextService, migrate
from parley.context.domain.models import (
    EntityUpdate,
    Feedback,
    NewMessage,
    Role,
    UserDeletion,
    UserExport,
    UserProfile,
)
from parley.core.errors import ConflictError, InvalidInputError, NotFoundError

pytestmark = pytest.mark.integration

TABLES = (
    "conversations",
    "messages",
    "dialog_state",
    "turn_events",
    "tenants",
    "users",
    "entity_state",
    "entity_changes",
    "entity_events",
    "memories",
    "feedback",
    "conversation_summaries",
)


@pytest.fixture
def store(context_service: ContextService) -> PostgresStore:
    return context_service.store


def _cid() -> str:
    return str(uuid.uuid4())


def _msg(cid: str, text: str, role: Role = Role.USER, event_id: str | None = None) -> NewMessage:
    return NewMessage(cid, "turn-1", role, text, event_id or str(uuid.uuid4()))


async def test_migrations_apply_once_and_twice_is_a_no_op(
    context_service: ContextService, pool: asyncpg.Pool
) -> None:
    # context_service already migrated this database; running again applies nothing and fails nothing.
    assert await migrate(pool) == []
    assert await migrate(pool) == []
    async with pool.acquire() as conn:
        present = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_name = ANY($1::text[])",
            list(TABLES),
        )
        applied = await conn.fetch("SELECT version FROM schema_migrations WHERE component = 'context'")
    assert sorted(r["table_name"] for r in present) == sorted(TABLES)
    assert sorted(r["version"] for r in applied) == [1, 2]


async def test_create_conversation_is_idempotent_for_the_owner_and_conflicts_for_another(
    store: PostgresStore,
) -> None:
    cid = _cid()
    first = await store.create_conversation(cid, "acme", "alice")
    again = await store.create_conversation(cid, "acme", "alice")
    assert first == again
    assert first.owner.user_id == "alice"
    with pytest.raises(ConflictError):
        await store.create_conversation(cid, "acme", "mallory")


async def test_another_owners_conversation_reads_as_not_found(store: PostgresStore) -> None:
    cid = _cid()
    await store.create_conversation(cid, "acme", "alice")
    assert (await store.get_conversation(cid, "acme", "alice")).conversation_id == cid
    for tenant, user in (("acme", "bob"), ("other", "alice")):
        with pytest.raises(NotFoundError) as caught:
            await store.get_conversation(cid, tenant, user)
        missing = _cid()
        with pytest.raises(NotFoundError) as unknown:
            await store.get_conversation(missing, tenant, user)
        # Same message shape for "not yours" and "does not exist": nothing reveals which.
        assert str(caught.value).replace(cid, "X") == str(unknown.value).replace(missing, "X")


async def test_bad_ids_are_invalid_input_not_crashes(store: PostgresStore) -> None:
    with pytest.raises(InvalidInputError, match="UUID"):
        await store.get_conversation("nope", "acme", "alice")
    with pytest.raises(InvalidInputError, match="UUID"):
        await store.get_state("1234")
    with pytest.raises(InvalidInputError, match="UUID"):
        await store.append_message(_msg("x", "hi"))
    with pytest.raises(InvalidInputError, match="principal"):
        await store.create_conversation(_cid(), "", "")
    with pytest.raises(InvalidInputError, match="NUL"):
        await store.append_message(_msg(_cid(), "a\x00b"))
    with pytest.raises(InvalidInputError, match="page_token"):
        await store.list_messages(_cid(), 10, "garbage")


async def test_duplicate_event_is_appended_once(store: PostgresStore, pool: asyncpg.Pool) -> None:
    cid = _cid()
    await store.create_conversation(cid, "acme", "alice")
    message = _msg(cid, "hello", event_id="evt-dup-1")
    assert await store.append_message(message) is True
    assert await store.append_message(message) is False
    assert await store.append_messages([message, _msg(cid, "second")]) == 1
    # The consumed event itself and the entities it carried are stored once too.
    occurred = datetime.now(UTC)
    assert await store.record_event("evt-dup-1", cid, "turn-1", "user_message", b"\x01", occurred) is True
    assert await store.record_event("evt-dup-1", cid, "turn-1", "user_message", b"\x01", occurred) is False
    updates = [EntityUpdate("order_id", "A-1")]
    for _ in range(2):
        await store.update_entities(cid, "turn-1", "evt-dup-understood", updates)
    async with pool.acquire() as conn:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM messages WHERE event_id = 'evt-dup-1') AS messages, "
            "       (SELECT count(*) FROM turn_events WHERE event_id = 'evt-dup-1') AS events, "
            "       (SELECT count(*) FROM entity_changes WHERE event_id = 'evt-dup-understood') AS changes, "
            "       (SELECT mentions FROM entity_state WHERE conversation_id = $1) AS mentions, "
            "       (SELECT message_count FROM conversations WHERE id = $1) AS message_count",
            uuid.UUID(cid),
        )
    assert dict(counts) == {"messages": 1, "events": 1, "changes": 1, "mentions": 1, "message_count": 2}


async def test_appending_to_an_unknown_conversation_is_not_found(store: PostgresStore) -> None:
    with pytest.raises(NotFoundError):
        await store.append_message(_msg(_cid(), "hello"))


async def test_paging_returns_every_message_once_in_order(store: PostgresStore) -> None:
    cid = _cid()
    await store.create_conversation(cid, "acme", "alice")
    texts = [f"message {i}" for i in range(23)]
    for i, text in enumerate(texts):
        await store.append_message(_msg(cid, text, Role.USER if i % 2 == 0 else Role.BOT))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await store.list_messages(cid, 5, token)
        pages += 1
        seen.extend(m.text for m in page.messages)
        token = page.next_page_token
        if not token:
            break
    assert seen == texts
    assert pages == 5
    with pytest.raises(InvalidInputError, match="page_size"):
        await store.list_messages(cid, 501)
    # An exact multiple of the page size ends without an empty extra page.
    exact = await store.list_messages(cid, 23)
    assert len(exact.messages) == 23
    assert exact.next_page_token == ""


async def test_recent_messages_are_the_last_n_oldest_first_and_bounded_by_event(store: PostgresStore) -> None:
    cid = _cid()
    await store.create_conversation(cid, "acme", "alice")
    for i in range(6):
        await store.append_message(_msg(cid, f"m{i}", event_id=f"{cid}-{i}"))
    recent = await store.recent_messages(cid, 3)
    assert [m.text for m in recent] == ["m3", "m4", "m5"]
    bounded = await store.recent_messages(cid, 3, up_to_event_id=f"{cid}-2")
    assert [m.text for m in bounded] == ["m0", "m1", "m2"]
    assert await store.recent_messages(cid, 0) == []


async def test_state_starts_at_version_zero_and_compare_and_set_advances_it(store: PostgresStore) -> None:
    cid = _cid()
    await store.create_conversation(cid, "acme", "alice")
    empty = await store.get_state(cid)
    assert (empty.version, empty.data) == (0, {})
    first = await store.update_state(cid, 0, {"slots": {"order_id": "A-1"}, "count": 1})
    assert first.version == 1
    second = await store.update_state(cid, 1, {"slots": {}, "flag": True, "ratio": 0.5})
    assert second.version == 2
    stored = await store.get_state(cid)
    assert stored.version == 2
    assert stored.data == {"slots": {}, "flag": True, "ratio": 0.5}
    with pytest.raises(ConflictError, match="state version moved on: expected 1, stored 2"):
        await store.update_state(cid, 1, {"late": True})
    with pytest.raises(ConflictError, match="expected 0, stored 2"):
        await store.update_state(cid, 0, {"late": True})
    with pytest.raises(InvalidInputError):
        await store.update_state(cid, 2, {"nan": float("nan")})
    for version in (0, 4):
        with pytest.raises(NotFoundError):
            await store.update_state(_cid(), version, {})


@pytest.mark.parametrize("start_version", [0, 3])
async def test_concurrent_updates_at_one_version_exactly_one_wins(
    store: PostgresStore, start_version: int
) -> None:
    cid = _cid()
    await store.create_conversation(cid, "acme", "alice")
    for v in range(start_version):
        await store.update_state(cid, v, {"step": v})
    results = await asyncio.gather(
        store.update_state(cid, start_version, {"writer": "a"}),
        store.update_state(cid, start_version, {"writer": "b"}),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], ConflictError)
    assert f"expected {start_version}, stored {start_version + 1}" in str(losers[0])
    assert (await store.get_state(cid)).data == winners[0].data
    # The loser re-reads and retries on the version it now sees.
    current = await store.get_state(cid)
    retried = await store.update_state(cid, current.version, {**current.data, "retried": True})
    assert retried.version == start_version + 2
    assert retried.data["retried"] is True


async def test_search_finds_only_that_users_messages(store: PostgresStore) -> None:
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    mine, theirs = _cid(), _cid()
    await store.create_conversation(mine, tenant, "alice")
    await store.create_conversation(theirs, tenant, "bob")
    await store.append_message(_msg(mine, "Where is my parcel? Order 100_% late"))
    await store.append_message(_msg(mine, "thanks a lot"))
    await store.append_message(_msg(theirs, "my parcel arrived broken"))
    hits = await store.search_messages(tenant, "alice", "parcel", 10)
    assert [h.text for h in hits] == ["Where is my parcel? Order 100_% late"]
    # Word parts match too, and LIKE wildcards in the query are taken literally.
    assert len(await store.search_messages(tenant, "alice", "parc", 10)) == 1
    assert len(await store.search_messages(tenant, "alice", "100_%", 10)) == 1
    assert await store.search_messages(tenant, "alice", "0%l", 10) == []
    assert await store.search_messages(tenant, "carol", "parcel", 10) == []
    with pytest.raises(InvalidInputError, match="query"):
        await store.search_messages(tenant, "alice", "   ", 10)


# Tables whose rows belong to a user through a conversation, and through the user directly.
CONVERSATION_TABLES = (
    "messages",
    "dialog_state",
    "turn_events",
    "entity_state",
    "entity_changes",
    "entity_events",
    "feedback",
    "conversation_summaries",
)
OWNER_TABLES = ("users", "memories")


async def _populate(store: PostgresStore, tenant: str, user: str, conversations: int) -> list[str]:
    """A user with rows in every table: profile, conversations with all their parts, memories."""
    now = datetime.now(UTC)
    await store.upsert_profile(UserProfile(tenant, user, display_name=user, timezone="Europe/Paris"))
    ids = []
    for n in range(conversations):
        cid = _cid()
        ids.append(cid)
        await store.create_conversation(cid, tenant, user)
        await store.append_messages([_msg(cid, f"{user} says hi"), _msg(cid, "bot says hi", Role.BOT)])
        await store.update_state(cid, 0, {"who": user})
        await store.record_event(f"ev-{cid}", cid, "turn-1", "user_message", b"\x01\x02", now)
        await store.update_entities(
            cid, "turn-1", f"ent1-{cid}", [EntityUpdate("order_id", "A-1"), EntityUpdate("city", "Paris")]
        )
        await store.update_entities(cid, "turn-2", f"ent2-{cid}", [EntityUpdate("order_id", "B-2")])
        await store.record_feedback(tenant, user, Feedback("", cid, "turn-1", 5, True, "great", now))
        await store.save_summary(cid, f"{user} greeted the bot", 1, 1)
        await store.remember(tenant, user, f"{user} fact {n}", "fact", [1.0, float(n)], conversation_id=cid)
    await store.remember(tenant, user, f"{user} likes tea", "preference", [0.0, 1.0])
    return ids


async def _rows_per_table(
    pool: asyncpg.Pool, tenant: str, user: str, conversations: list[str]
) -> dict[str, int]:
    """Rows of that user in each table (by the conversation ids known beforehand, so deleted ones count)."""
    ids = [uuid.UUID(c) for c in conversations]
    async with pool.acquire() as conn:
        counts = {
            "conversations": await conn.fetchval(
                "SELECT count(*) FROM conversations "
                "WHERE id = ANY($1::uuid[]) OR (tenant_id = $2 AND user_id = $3)",
                ids,
                tenant,
                user,
            )
        }
        for table in CONVERSATION_TABLES:
            counts[table] = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE conversation_id = ANY($1::uuid[])", ids
            )
        for table in OWNER_TABLES:
            counts[table] = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE tenant_id = $1 AND user_id = $2", tenant, user
            )
    return counts


async def test_export_returns_everything_of_a_user_and_delete_removes_only_it(
    store: PostgresStore, pool: asyncpg.Pool
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    other_tenant = f"{tenant}-other"
    alice = await _populate(store, tenant, "alice", 2)
    bob = await _populate(store, tenant, "bob", 1)
    # Same user id in another tenant is another person.
    elsewhere = await _populate(store, other_tenant, "alice", 1)

    before = await _rows_per_table(pool, tenant, "alice", alice)
    assert all(before.values()), before  # the user has rows in every table
    assert before == {
        "conversations": 2,
        "messages": 4,
        "dialog_state": 2,
        "turn_events": 2,
        "entity_state": 4,
        "entity_changes": 6,
        "entity_events": 4,
        "feedback": 2,
        "conversation_summaries": 2,
        "users": 1,
        "memories": 3,
    }
    bob_before = await _rows_per_table(pool, tenant, "bob", bob)
    elsewhere_before = await _rows_per_table(pool, other_tenant, "alice", elsewhere)

    export = await store.export_user(tenant, "alice")
    assert sorted(c.conversation_id for c in export.conversations) == sorted(alice)
    assert len(export.messages) == before["messages"]
    assert {m.conversation_id for m in export.messages} == set(alice)
    # Grouped by conversation, oldest first within each.
    by_conversation = [m.conversation_id for m in export.messages]
    assert by_conversation == sorted(by_conversation, key=by_conversation.index)
    assert [s.data for s in export.states] == [{"who": "alice"}, {"who": "alice"}]
    assert sorted(e.event_id for e in export.events) == sorted(f"ev-{c}" for c in alice)
    assert export.events[0].payload == b"\x01\x02"
    assert export.profile is not None
    assert (export.profile.display_name, export.profile.timezone) == ("alice", "Europe/Paris")
    assert sorted(m.text for m in export.memories) == ["alice fact 0", "alice fact 1", "alice likes tea"]
    assert {(m.tenant_id, m.user_id) for m in export.memories} == {(tenant, "alice")}
    assert len(export.entities) == before["entity_state"]
    assert len(export.entity_history) == before["entity_changes"]
    assert [(c.previous_value, c.value) for c in export.entity_history if c.entity_type == "order_id"] == [
        (None, "A-1"),
        ("A-1", "B-2"),
    ] * 2
    assert len(export.feedback) == before["feedback"]
    assert {f.conversation_id for f in export.feedback} == set(alice)
    assert sorted(s.conversation_id for s in export.summaries) == sorted(alice)
    # Every exported row is alice's (entity_events, the ledger of applied event ids, is bookkeeping only).
    for rows in (export.messages, export.states, export.events, export.entities, export.entity_history):
        assert {r.conversation_id for r in rows} <= set(alice)

    deleted = await store.delete_user(tenant, "alice")
    assert deleted == UserDeletion(
        conversations=2, messages=4, states=2, events=2, memories=3, entities=4 + 6, feedback=2, profiles=1
    )
    after = await _rows_per_table(pool, tenant, "alice", alice)
    assert after == dict.fromkeys(before, 0)
    assert await _rows_per_table(pool, tenant, "bob", bob) == bob_before
    assert await _rows_per_table(pool, other_tenant, "alice", elsewhere) == elsewhere_before
    async with pool.acquire() as conn:  # bob's tenant is still there
        assert await conn.fetchval("SELECT count(*) FROM tenants WHERE id = $1", tenant) == 1
    empty = await store.export_user(tenant, "alice")
    assert empty == UserExport([], [], [], [])
    assert (await store.get_profile(tenant, "alice")).updated_at is None
    assert (await store.get_conversation(elsewhere[0], other_tenant, "alice")).conversation_id == elsewhere[0]
    again = await store.delete_user(tenant, "alice")
    assert again == UserDeletion(0, 0, 0, 0)
    # The user may come back: a new conversation starts from nothing.
    fresh = _cid()
    await store.create_conversation(fresh, tenant, "alice")
    assert (await store.load_context(fresh, 10)).total_messages == 0
