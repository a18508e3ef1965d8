"""``POST /v1/conversations/{id}/feedback``: validation, ownership and what reaches the context service.

Unit tests run against the fake conversations store; the integration test at the end stores feedback
through the real context service in PostgreSQL and reads the row back.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from parley.common.v1 import common_pb2
from parley.context.app import build_context
from parley.context.settings import ContextSettings
from parley.context.v1 import context_pb2 as ctx
from parley.core.bus import InMemoryBus
from parley.core.context_client import ContextClient
from parley.core.db import create_pool
from parley.gateway.app import build_gateway

from .conftest import Harness, make_settings

ANN = {"X-Parley-Tenant": "acme", "X-Parley-User": "ann"}


def assert_error(response: httpx.Response, status: int, code: str, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert fragment in body["error"]["message"]


async def conversation_with_a_reply(client: httpx.AsyncClient) -> tuple[str, str]:
    response = await client.post("/v1/messages", json={"text": "where is my order"}, headers=ANN)
    assert response.status_code == 200, response.text
    return response.json()["conversation_id"], response.json()["turn_id"]


async def test_feedback_on_a_reply_is_stored(client: httpx.AsyncClient, harness: Harness) -> None:
    conversation_id, turn_id = await conversation_with_a_reply(client)

    response = await client.post(
        f"/v1/conversations/{conversation_id}/feedback",
        json={"satisfaction": 5, "resolved": True, "comment": "  quick and right  ", "turn_id": turn_id},
        headers=ANN,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["conversation_id"] == conversation_id
    assert (body["turn_id"], body["satisfaction"], body["resolved"], body["comment"]) == (
        turn_id,
        5,
        True,
        "quick and right",
    )
    uuid.UUID(body["feedback_id"])
    [stored] = harness.conversations.feedback
    assert (stored.conversation_id, stored.turn_id, stored.rating, stored.comment) == (
        conversation_id,
        turn_id,
        5,
        "quick and right",
    )
    assert stored.HasField("resolved") and stored.resolved is True


async def test_feedback_on_the_whole_conversation_leaves_unsaid_fields_unset(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    conversation_id, _ = await conversation_with_a_reply(client)

    response = await client.post(
        f"/v1/conversations/{conversation_id}/feedback", json={"resolved": False}, headers=ANN
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["turn_id"], body["satisfaction"], body["resolved"], body["comment"]) == (
        None,
        None,
        False,
        "",
    )
    [stored] = harness.conversations.feedback
    assert (stored.turn_id, stored.rating) == ("", 0)
    assert stored.HasField("resolved") and stored.resolved is False


async def test_another_principals_conversation_is_not_found(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    conversation_id, _ = await conversation_with_a_reply(client)
    for headers in ({"X-Parley-Tenant": "acme", "X-Parley-User": "bob"}, {"X-Parley-Tenant": "other"}):
        response = await client.post(
            f"/v1/conversations/{conversation_id}/feedback", json={"satisfaction": 1}, headers=headers
        )
        assert_error(response, 404, "not_found")
    unknown = await client.post(
        f"/v1/conversations/{uuid.uuid4()}/feedback", json={"satisfaction": 1}, headers=ANN
    )
    assert_error(unknown, 404, "not_found")
    malformed = await client.post("/v1/conversations/not-a-uuid/feedback", json={"satisfaction": 1})
    assert_error(malformed, 404, "not_found", "UUID")
    assert harness.conversations.feedback == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "at least one of satisfaction, resolved"),
        ({"comment": "   "}, "at least one of satisfaction, resolved"),
        ({"satisfaction": None, "resolved": None}, "at least one of"),
        ({"satisfaction": 0}, "satisfaction"),
        ({"satisfaction": 6}, "satisfaction"),
        ({"satisfaction": "5"}, "satisfaction"),
        ({"satisfaction": 4.5}, "satisfaction"),
        ({"resolved": "yes"}, "resolved"),
        ({"resolved": 1}, "resolved"),
        ({"comment": "x" * 2001}, "comment"),
        ({"comment": "nul\x00byte"}, "NUL"),
        ({"satisfaction": 3, "turn_id": ""}, "turn_id"),
        ({"satisfaction": 3, "turn_id": "a b"}, "turn_id"),
        ({"satisfaction": 3, "turn_id": "t" * 65}, "turn_id"),
        ({"satisfaction": 3, "stars": 5}, "stars"),
        ([1, 2], "JSON object"),
    ],
)
async def test_bad_feedback_is_422_in_the_one_error_shape(
    client: httpx.AsyncClient, harness: Harness, body: object, fragment: str
) -> None:
    conversation_id, _ = await conversation_with_a_reply(client)
    response = await client.post(f"/v1/conversations/{conversation_id}/feedback", json=body, headers=ANN)
    assert_error(response, 422, "invalid_input", fragment)
    assert harness.conversations.feedback == []


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    conversation_id, _ = await conversation_with_a_reply(client)
    response = await client.post(
        f"/v1/conversations/{conversation_id}/feedback",
        content=b'{"satisfaction": ',
        headers={**ANN, "Content-Type": "application/json"},
    )
    assert_error(response, 400, "invalid_json")


async def test_the_endpoint_is_documented(client: httpx.AsyncClient) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"][
        "/v1/conversations/{conversation_id}/feedback"
    ]
    assert set(operation) == {"post"}
    assert {"201", "404", "422"} <= set(operation["post"]["responses"])


# ------------------------------------------------------------------------ the real context service


@pytest.fixture(scope="module")
async def context_pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(postgres_dsn)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.mark.integration
async def test_feedback_lands_in_the_context_services_table(context_pool: asyncpg.Pool) -> None:
    context = await build_context(ContextSettings(), context_pool)
    conversations = ContextClient.in_process(context.servicer)
    bus = InMemoryBus()
    gateway = build_gateway(make_settings(), bus, conversations)
    await bus.start()
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    owner = {"X-Parley-Tenant": tenant, "X-Parley-User": "ann"}
    transport = httpx.ASGITransport(app=gateway.http_app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            created = await client.post("/v1/conversations", headers=owner)
            assert created.status_code == 201, created.text
            conversation_id = created.json()["conversation_id"]
            url = f"/v1/conversations/{conversation_id}/feedback"

            response = await client.post(
                url,
                json={"satisfaction": 4, "resolved": True, "comment": "thanks", "turn_id": "turn-1"},
                headers=owner,
            )
            conversation_only = await client.post(url, json={"comment": "overall fine"}, headers=owner)
            strangers = [
                await client.post(url, json={"satisfaction": 1}, headers=headers)
                for headers in (
                    {"X-Parley-Tenant": tenant, "X-Parley-User": "mallory"},
                    {"X-Parley-Tenant": "someone-else", "X-Parley-User": "ann"},
                )
            ]
            # The context service's own bound on comments agrees with the gateway's.
            too_long = await client.post(url, json={"comment": "x" * 2001}, headers=owner)
            # A retried request (same Idempotency-Key) stores nothing new and answers with the first.
            keyed = {**owner, "Idempotency-Key": "thumb-turn-2"}
            first = await client.post(url, json={"satisfaction": 5, "turn_id": "turn-2"}, headers=keyed)
            retry = await client.post(url, json={"satisfaction": 5, "turn_id": "turn-2"}, headers=keyed)
    finally:
        await bus.stop()

    assert response.status_code == 201, response.text
    assert conversation_only.status_code == 201, conversation_only.text
    for stranger in strangers:
        assert_error(stranger, 404, "not_found")
    assert_error(too_long, 422, "invalid_input", "comment")
    rows = await context_pool.fetch(
        "SELECT id, turn_id, rating, resolved, comment FROM feedback WHERE conversation_id = $1",
        uuid.UUID(conversation_id),
    )
    by_id = {str(r["id"]): (r["turn_id"], r["rating"], r["resolved"], r["comment"]) for r in rows}
    assert first.status_code == retry.status_code == 201, (first.text, retry.text)
    assert retry.json() == first.json()
    assert by_id == {
        response.json()["feedback_id"]: ("turn-1", 4, True, "thanks"),
        conversation_only.json()["feedback_id"]: ("", None, None, "overall fine"),
        first.json()["feedback_id"]: ("turn-2", 5, None, ""),
    }
    # The user's data export includes it, as the context service promises.
    request = ctx.ExportUserDataRequest(principal=common_pb2.Principal(tenant_id=tenant, user_id="ann"))
    export = await context.servicer.ExportUserData(request, None)
    assert sorted(f.comment for f in export.feedback) == ["", "overall fine", "thanks"]
