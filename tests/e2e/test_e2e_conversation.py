"""The whole system as separate processes: one real conversation, ordering, crash recovery, bad input."""

import asyncio
import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from parley.core.events import Topic

from .helpers import TURN_TOPICS, history_rows, topic_events

pytestmark = pytest.mark.e2e

ORDER_CONVERSATION = ["Hello, I need help with my order", "My order number is 12345", "When will it arrive?"]


async def _new_conversation(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/conversations", json={})
    assert response.status_code == 201, response.text
    return response.json()["conversation_id"]


async def _say(client: httpx.AsyncClient, conversation_id: str, text: str) -> dict:
    response = await client.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def client(e2e_stack):
    async with httpx.AsyncClient(base_url=e2e_stack.config.gateway_url, timeout=120) as c:
        yield c


async def test_the_order_conversation_uses_the_order_id_from_context(e2e_stack, client, postgres_dsn):
    conversation_id = await _new_conversation(client)
    replies = [await _say(client, conversation_id, text) for text in ORDER_CONVERSATION]
    texts = [r["reply"]["text"] for r in replies]
    assert "order number" in texts[0].lower()
    assert "12345" in texts[1]
    assert "12345" in texts[2] and "arrive" in texts[2]

    rows = await history_rows(postgres_dsn, conversation_id)
    assert [(r["role"], r["text"]) for r in rows] == [
        pair
        for user, bot in zip(ORDER_CONVERSATION, texts, strict=True)
        for pair in (("user", user), ("bot", bot))
    ]
    turn_ids = [r["turn_id"] for r in replies]
    assert [r["turn_id"] for r in rows[::2]] == turn_ids

    events = await topic_events(
        e2e_stack.config.kafka_bootstrap, e2e_stack.config.topic_prefix, {conversation_id}
    )
    for topic in TURN_TOPICS:
        assert sorted(e.turn_id for e in events[topic]) == sorted(turn_ids), topic
    understood = {e.turn_id: e.understood.understanding for e in events[Topic.UNDERSTOOD]}
    assert understood[turn_ids[1]].intent.name == "inform_order_id"
    assert [(x.type, x.value) for x in understood[turn_ids[1]].entities] == [("order_id", "12345")]
    decided = {e.turn_id: e.decided.decision for e in events[Topic.DECIDED]}
    assert decided[turn_ids[2]].actions[0].params["order_id"] == "12345"
    # Each stage's event names the event it came from: the causal chain of one turn is intact.
    by_id = {e.event_id: e for topic in TURN_TOPICS for e in events[topic]}
    for reply in events[Topic.REPLIED]:
        chain = [reply]
        while chain[-1].causation_id:
            chain.append(by_id[chain[-1].causation_id])
        assert [c.WhichOneof("payload") for c in chain] == [
            "replied",
            "decided",
            "understood",
            "contextualized",
            "user_message",
        ]


async def test_two_messages_sent_back_to_back_are_decided_in_order(e2e_stack, client, postgres_dsn):
    conversation_id = await _new_conversation(client)
    first = asyncio.create_task(_say(client, conversation_id, "My order number is 55555"))
    await asyncio.sleep(0.01)  # the second leaves before the first's reply has come back
    second = asyncio.create_task(_say(client, conversation_id, "When will it arrive?"))
    one, two = await first, await second
    assert "55555" in one["reply"]["text"]
    # Decided on the state the first turn left: the order id is known without being repeated.
    assert "55555" in two["reply"]["text"]
    rows = await history_rows(postgres_dsn, conversation_id)
    assert [r["role"] for r in rows].count("bot") == 2
    assert [r["text"] for r in rows if r["role"] == "user"] == [
        "My order number is 55555",
        "When will it arrive?",
    ]


@pytest.mark.parametrize("victim", ["dialog", "nlu"])
async def test_a_stage_killed_mid_stream_loses_no_turn_and_duplicates_no_reply(
    e2e_stack, client, postgres_dsn, victim
):
    conversations = [await _new_conversation(client) for _ in range(4)]
    texts = ["My order number is 24680", "When will it arrive?", "where is my order?"]
    answered = 0

    async def converse(conversation_id: str) -> list[dict]:
        nonlocal answered
        replies = []
        for text in texts:
            replies.append(await _say(client, conversation_id, text))
            answered += 1
        return replies

    tasks = [asyncio.create_task(converse(c)) for c in conversations]
    async with asyncio.timeout(60):
        while answered == 0:  # the stream is flowing ...
            await asyncio.sleep(0.01)
    e2e_stack.kill(victim, signal.SIGKILL)  # ... and the stage dies in the middle of it
    assert answered < len(conversations) * len(texts), "the kill must land while turns are in flight"
    await asyncio.sleep(1.0)
    await asyncio.to_thread(e2e_stack.start_service, victim)
    results = await asyncio.gather(*tasks)

    for conversation_id, replies in zip(conversations, results, strict=True):
        assert all("24680" in reply["reply"]["text"] for reply in replies), replies
        rows = await history_rows(postgres_dsn, conversation_id)
        per_turn = Counter((r["turn_id"], r["role"]) for r in rows)
        assert set(per_turn.values()) == {1}, per_turn  # one user and one bot message per turn
        assert len(rows) == 2 * len(texts)
    events = await topic_events(
        e2e_stack.config.kafka_bootstrap, e2e_stack.config.topic_prefix, set(conversations)
    )
    replied_ids_per_turn: dict[str, set[str]] = {}
    for event in events[Topic.REPLIED]:
        replied_ids_per_turn.setdefault(event.turn_id, set()).add(event.event_id)
    assert len(replied_ids_per_turn) == len(conversations) * len(texts)
    # A replay may re-send an event, but always with the same id, which every consumer drops.
    assert all(len(ids) == 1 for ids in replied_ids_per_turn.values())


def _grpcurl(*args: str) -> str:
    binary = Path(sys.executable).with_name("grpcurl")
    done = subprocess.run(
        [str(binary), "-plaintext", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("service", "full_name"),
    [
        ("nlu", "parley.nlu.v1.NluService"),
        ("dialog", "parley.dialog.v1.DialogService"),
        ("generator", "parley.generator.v1.GeneratorService"),
        ("context", "parley.context.v1.ContextService"),
        ("gateway", "parley.gateway.v1.GatewayService"),
    ],
)
def test_grpcurl_lists_each_service_by_reflection_and_health_is_serving(e2e_stack, service, full_name):
    address = f"127.0.0.1:{e2e_stack.config.grpc_ports[service]}"
    listed = _grpcurl(address, "list").split()
    assert full_name in listed
    assert "grpc.health.v1.Health" in listed
    health = json.loads(
        _grpcurl("-d", json.dumps({"service": full_name}), address, "grpc.health.v1.Health/Check")
    )
    assert health["status"] == "SERVING"
    described = _grpcurl(address, "describe", full_name)
    assert "rpc " in described


async def test_bad_input_gets_a_clear_4xx_and_loses_nothing(e2e_stack, client, postgres_dsn):
    conversation_id = await _new_conversation(client)
    await _say(client, conversation_id, "hello")
    before = await history_rows(postgres_dsn, conversation_id)
    url = f"/v1/conversations/{conversation_id}/messages"
    cases = [
        ({"json": {"text": ""}}, 422),
        ({"json": {"text": "   "}}, 422),
        ({"json": {"text": "x" * 5000}}, 422),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ({"json": {"text": 42}}, 422),
        ({"json": {"text": ["a"]}}, 422),
        ({"json": {}}, 422),
    ]
    for kwargs, status in cases:
        response = await client.post(url, **kwargs)
        assert response.status_code in {status, 400, 422}, (kwargs, response.text)
        assert response.status_code < 500
        body = response.json()
        assert body["error"]["message"], body
    unknown = await client.post(
        "/v1/conversations/00000000-0000-4000-8000-000000000000/messages", json={"text": "hi"}
    )
    assert unknown.status_code == 404
    assert "conversation" in unknown.json()["error"]["message"].lower()
    malformed = await client.post("/v1/conversations/not-a-uuid/messages", json={"text": "hi"})
    assert 400 <= malformed.status_code < 500
    after = await history_rows(postgres_dsn, conversation_id)
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
    # The conversation still works.
    assert (await _say(client, conversation_id, "bye"))["reply"]["text"]
