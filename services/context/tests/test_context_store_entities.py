"""Entity state on PostgreSQL: current values, history of changes, attribute queries, idempotency."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from parley.context.adapters.postgres import PostgresStore
from parley.context.app import ContextService
from parley.context.domain.models import EntityUpdate
from parley.core.errors import InvalidInputError, NotFoundError

pytestmark = pytest.mark.integration


@pytest.fixture
def store(context_service: ContextService) -> PostgresStore:
    return context_service.store


async def _conversation(store: PostgresStore) -> str:
    cid = str(uuid.uuid4())
    await store.create_conversation(cid, "acme", "alice")
    return cid


async def test_history_records_first_set_and_changes_but_not_repeats(store: PostgresStore) -> None:
    cid = await _conversation(store)
    await store.update_entities(cid, "t1", "e1", [EntityUpdate("order_id", "A-1", {"kind": "order"})])
    await store.update_entities(cid, "t2", "e2", [EntityUpdate("order_id", "A-1", {"kind": "order"})])
    await store.update_entities(
        cid, "t3", "e3", [EntityUpdate("order_id", "B-2", {"kind": "order"}), EntityUpdate("city", "Paris")]
    )
    history = await store.entity_history(cid)
    assert [(c.entity_type, c.previous_value, c.value, c.turn_id) for c in history] == [
        ("order_id", None, "A-1", "t1"),
        ("order_id", "A-1", "B-2", "t3"),
        ("city", None, "Paris", "t3"),
    ]
    assert history[0].changed_at <= history[1].changed_at
    assert [c.value for c in await store.entity_history(cid, "city")] == ["Paris"]
    current = {e.entity_type: e for e in await store.current_entities(cid)}
    assert current["order_id"].value == "B-2"
    assert current["order_id"].mentions == 3  # three turns named it, one of them changed it
    assert current["order_id"].turn_id == "t3"
    assert current["city"].mentions == 1


async def test_redelivered_event_changes_nothing(store: PostgresStore, pool: asyncpg.Pool) -> None:
    cid = await _conversation(store)
    updates = [EntityUpdate("product", "kettle", {"colour": "red"})]
    first = await store.update_entities(cid, "t1", "dup-event", updates)
    again = await store.update_entities(cid, "t1", "dup-event", updates)
    assert again == first
    assert first[0].mentions == 1
    # Redelivered after a later event: still no second mention, no second change.
    await store.update_entities(cid, "t2", "later-event", [EntityUpdate("product", "toaster")])
    await store.update_entities(cid, "t1", "dup-event", updates)
    (product,) = await store.current_entities(cid, "product")
    assert (product.value, product.mentions) == ("toaster", 2)
    async with pool.acquire() as conn:
        changes = await conn.fetchval(
            "SELECT count(*) FROM entity_changes WHERE conversation_id = $1", uuid.UUID(cid)
        )
    assert changes == 2


async def test_concurrent_deliveries_of_one_event_apply_it_once(store: PostgresStore) -> None:
    cid = await _conversation(store)
    updates = [EntityUpdate("city", "Oslo")]
    await asyncio.gather(*(store.update_entities(cid, "t", "racing-event", updates) for _ in range(4)))
    (city,) = await store.current_entities(cid)
    assert city.mentions == 1
    assert len(await store.entity_history(cid)) == 1


async def test_one_turn_naming_a_type_twice_keeps_the_last(store: PostgresStore) -> None:
    cid = await _conversation(store)
    touched = await store.update_entities(
        cid,
        "t",
        "ev",
        [EntityUpdate("city", "Rome"), EntityUpdate("date", "2025-01-01"), EntityUpdate("city", "Nice")],
    )
    assert [(e.entity_type, e.value, e.mentions) for e in touched] == [
        ("city", "Nice", 1),
        ("date", "2025-01-01", 1),
    ]
    assert [c.value for c in await store.entity_history(cid, "city")] == ["Nice"]


async def test_query_by_type_and_attributes_most_recent_first(store: PostgresStore) -> None:
    cid = await _conversation(store)
    await store.update_entities(
        cid, "t1", "q1", [EntityUpdate("order_id", "A-1", {"kind": "order", "shop": "eu"})]
    )
    await store.update_entities(cid, "t2", "q2", [EntityUpdate("parcel_id", "P-9", {"kind": "parcel"})])
    await store.update_entities(
        cid, "t3", "q3", [EntityUpdate("invoice", "I-3", {"kind": "order", "shop": "us"})]
    )
    assert [e.entity_type for e in await store.current_entities(cid)] == ["invoice", "parcel_id", "order_id"]
    orders = await store.current_entities(cid, attributes={"kind": "order"})
    assert [e.value for e in orders] == ["I-3", "A-1"]
    assert [
        e.value for e in await store.current_entities(cid, attributes={"kind": "order", "shop": "eu"})
    ] == ["A-1"]
    assert await store.current_entities(cid, attributes={"kind": "refund"}) == []
    assert [e.value for e in await store.current_entities(cid, "parcel_id")] == ["P-9"]
    assert await store.current_entities(cid, "parcel_id", attributes={"kind": "order"}) == []
    assert len(await store.current_entities(cid, limit=1)) == 1
    assert orders[0].attributes == {"kind": "order", "shop": "us"}
    # Another conversation's entities never show.
    other = await _conversation(store)
    assert await store.current_entities(other) == []


async def test_bad_entity_input_is_rejected_with_the_field_named(store: PostgresStore) -> None:
    cid = await _conversation(store)
    with pytest.raises(InvalidInputError, match="entity_type"):
        await store.update_entities(cid, "t", "bad1", [EntityUpdate("", "x")])
    with pytest.raises(InvalidInputError, match="value of entity 'city' is required"):
        await store.update_entities(cid, "t", "bad2", [EntityUpdate("city", "  ")])
    with pytest.raises(InvalidInputError, match="value of entity 'city' is longer"):
        await store.update_entities(cid, "t", "bad3", [EntityUpdate("city", "x" * 5000)])
    with pytest.raises(InvalidInputError, match="attributes of entity 'city'"):
        await store.update_entities(cid, "t", "bad4", [EntityUpdate("city", "Rome", {"n": float("nan")})])
    with pytest.raises(InvalidInputError, match="event_id"):
        await store.update_entities(cid, "t", "", [EntityUpdate("city", "Rome")])
    with pytest.raises(InvalidInputError, match="attributes"):
        await store.current_entities(cid, attributes=["kind"])  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        await store.update_entities(str(uuid.uuid4()), "t", "orphan", [EntityUpdate("city", "Rome")])
    # Nothing of the rejected calls was stored.
    assert await store.current_entities(cid) == []
    assert await store.update_entities(cid, "t", "empty", []) == []
