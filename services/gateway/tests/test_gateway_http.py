"""The REST API over a real in-process bus, a fake assistant and a fake conversations store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from parley.common.v1 import common_pb2
from parley.core.errors import UnavailableError
from parley.gateway.adapters.http import create_http_app
from parley.gateway.app import build_gateway
from parley.gateway.settings import GatewaySettings

from .conftest import FakeConversations, Harness, make_settings


def assert_error(response: httpx.Response, status: int, code: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert fragment in body["error"]["message"]


async def test_a_message_gets_its_reply(client: httpx.AsyncClient, harness: Harness) -> None:
    response = await client.post("/v1/messages", json={"text": "hello there", "language": "en"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["reply"] == {
        "text": "echo: hello there",
        "quick_replies": [{"title": "Again", "payload": "hello there"}],
        "links": [{"title": "Help", "url": "https://example.org/help"}],
    }
    [event] = harness.assistant.seen
    assert (event.conversation_id, event.turn_id) == (body["conversation_id"], body["turn_id"])
    assert (event.tenant_id, event.user_id, event.origin) == ("default", "anonymous", "gateway-test")
    assert event.user_message.language == "en"


async def test_messages_continue_a_created_conversation(client: httpx.AsyncClient, harness: Harness) -> None:
    headers = {"X-Parley-Tenant": "acme", "X-Parley-User": "ann@example.com"}
    created = await client.post("/v1/conversations", headers=headers)
    assert created.status_code == 201
    conversation_id = created.json()["conversation_id"]

    first = await client.post(
        f"/v1/conversations/{conversation_id}/messages", json={"text": "one"}, headers=headers
    )
    second = await client.post(
        "/v1/messages", json={"conversation_id": conversation_id, "text": "two"}, headers=headers
    )

    assert first.status_code == second.status_code == 200
    assert first.json()["conversation_id"] == second.json()["conversation_id"] == conversation_id
    assert first.json()["turn_id"] != second.json()["turn_id"]
    owner = harness.conversations.conversations[conversation_id].principal
    assert (owner.tenant_id, owner.user_id) == ("acme", "ann@example.com")


async def test_two_concurrent_messages_of_one_conversation_each_get_their_own_reply(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    harness.assistant.delay_s = 0.05  # both requests are waiting while the first reply is produced
    conversation_id = (await client.post("/v1/conversations")).json()["conversation_id"]
    url = f"/v1/conversations/{conversation_id}/messages"

    first, second = await asyncio.gather(
        client.post(url, json={"text": "first"}), client.post(url, json={"text": "second"})
    )

    assert first.status_code == second.status_code == 200
    assert first.json()["reply"]["text"] == "echo: first"
    assert second.json()["reply"]["text"] == "echo: second"
    assert first.json()["turn_id"] != second.json()["turn_id"]
    assert len(harness.gateway.router) == 0


@pytest.mark.parametrize("settings", [make_settings(reply_timeout_s=0.2)])
async def test_a_missing_reply_is_202_pending_and_later_in_the_history(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    harness.assistant.silent = True

    response = await client.post("/v1/messages", json={"text": "anyone?"})

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "pending"
    assert response.headers["location"] == f"/v1/conversations/{body['conversation_id']}/messages"
    assert len(harness.gateway.router) == 0

    harness.conversations.add_message(body["conversation_id"], body["turn_id"], common_pb2.ROLE_BOT, "late")
    history = await client.get(response.headers["location"])
    assert history.status_code == 200
    messages = history.json()["messages"]
    assert [(m["role"], m["text"], m["turn_id"]) for m in messages] == [
        ("user", "anyone?", body["turn_id"]),
        ("bot", "late", body["turn_id"]),
    ]
    assert history.json()["next_page_token"] is None


async def test_history_is_paged(client: httpx.AsyncClient) -> None:
    conversation_id = (await client.post("/v1/messages", json={"text": "hi"})).json()["conversation_id"]
    url = f"/v1/conversations/{conversation_id}/messages"

    first = (await client.get(url, params={"page_size": 1})).json()
    second = (await client.get(url, params={"page_size": 1, "page_token": first["next_page_token"]})).json()

    assert [m["role"] for m in first["messages"]] == ["user"]
    assert [m["text"] for m in second["messages"]] == ["echo: hi"]
    assert second["next_page_token"] is None
    assert (
        second["messages"][0]["created_at"].endswith("Z") or "+00:00" in second["messages"][0]["created_at"]
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"text": ""}, "text must not be empty"),
        ({"text": "   "}, "text must not be empty"),
        ({"text": "x" * 51}, "at most 50 characters"),
        ({"text": 5}, "text: Input should be a valid string"),
        ({"text": ["a"]}, "text: Input should be a valid string"),
        ({}, "text: Field required"),
        ({"text": "hi", "extra": 1}, "extra: Extra inputs are not permitted"),
        ({"text": "hi", "language": 7}, "language: Input should be a valid string"),
        ({"text": "hi", "conversation_id": ""}, "conversation_id: String should have at least 1 character"),
        ([1, 2], "request body must be a JSON object"),
    ],
)
async def test_bad_input_is_422_with_a_message(
    client: httpx.AsyncClient, body: object, fragment: str
) -> None:
    response = await client.post("/v1/messages", json=body)
    assert_error(response, 422, "invalid_input", fragment)


async def test_invalid_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/messages", content=b'{"text": "hi"', headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_json", "request body is not valid JSON")


async def test_a_body_that_is_not_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/messages", content=b"hello", headers={"Content-Type": "text/plain"})
    assert_error(response, 422, "invalid_input", "Content-Type: application/json")


async def test_a_missing_body_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/messages")
    assert_error(response, 422, "invalid_input", "request body is required")


async def test_unknown_foreign_and_malformed_conversations_are_404(client: httpx.AsyncClient) -> None:
    mine = (await client.post("/v1/conversations", headers={"X-Parley-User": "ann"})).json()[
        "conversation_id"
    ]

    for conversation_id in (str(uuid.uuid4()), mine, "not-a-uuid", "x" * 300):
        posted = await client.post(
            f"/v1/conversations/{conversation_id}/messages",
            json={"text": "hi"},
            headers={"X-Parley-User": "bob"},
        )
        assert_error(posted, 404, "not_found", "not found")
        read = await client.get(
            f"/v1/conversations/{conversation_id}/messages", headers={"X-Parley-User": "bob"}
        )
        assert_error(read, 404, "not_found", "not found")

    via_body = await client.post("/v1/messages", json={"conversation_id": str(uuid.uuid4()), "text": "hi"})
    assert_error(via_body, 404, "not_found", "not found")


async def test_oversize_bodies_are_413(client: httpx.AsyncClient) -> None:
    big = b'{"text": "' + b"x" * 4000 + b'"}'
    declared = await client.post("/v1/messages", content=big, headers={"Content-Type": "application/json"})
    assert_error(declared, 413, "payload_too_large", "at most 2048 bytes")

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 500):
            yield big[start : start + 500]

    chunked = await client.post(
        "/v1/messages", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in chunked.request.headers
    assert_error(chunked, 413, "payload_too_large", "at most 2048 bytes")


async def test_bad_identity_headers_are_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/messages", json={"text": "hi"}, headers={"X-Parley-User": "ann smith"})
    assert_error(response, 422, "invalid_input", "user id must be 1 to 64 characters")
    response = await client.post("/v1/conversations", headers={"X-Parley-Tenant": "t" * 65})
    assert_error(response, 422, "invalid_input", "tenant id must be")


async def test_bad_paging_parameters_are_422(client: httpx.AsyncClient) -> None:
    conversation_id = (await client.post("/v1/conversations")).json()["conversation_id"]
    url = f"/v1/conversations/{conversation_id}/messages"
    assert_error(await client.get(url, params={"page_size": 0}), 422, "invalid_input", "page_size:")
    assert_error(await client.get(url, params={"page_size": "many"}), 422, "invalid_input", "page_size:")
    assert_error(await client.get(url, params={"page_token": "zz"}), 422, "invalid_input", "page_token")


async def test_unknown_routes_and_methods_use_the_error_shape(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v2/nothing"), 404, "not_found", "Not Found")
    assert_error(await client.delete("/v1/messages"), 405, "method_not_allowed", "Method Not Allowed")


async def test_an_unexpected_failure_is_a_500_in_the_error_shape(harness: Harness) -> None:
    class Broken(FakeConversations):
        async def create_conversation(self, tenant_id: str, user_id: str, conversation_id: str = ""):  # type: ignore[override]
            raise RuntimeError("secret internals")

    gateway = build_gateway(harness.settings, harness.bus, Broken())
    transport = httpx.ASGITransport(app=gateway.http_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        response = await client.post("/v1/conversations")
    assert_error(response, 500, "internal", "internal error")
    assert "secret" not in response.text


async def test_an_unavailable_dependency_is_503_without_internal_details(harness: Harness) -> None:
    class Down(FakeConversations):
        async def create_conversation(self, tenant_id: str, user_id: str, conversation_id: str = ""):  # type: ignore[override]
            raise UnavailableError("failed to connect to 10.0.0.7:50054")

    gateway = build_gateway(harness.settings, harness.bus, Down())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.http_app), base_url="http://gateway.test"
    ) as client:
        response = await client.post("/v1/messages", json={"text": "hi"})
    assert_error(response, 503, "unavailable", "try again shortly")
    assert "10.0.0.7" not in response.text
    assert response.headers["retry-after"] == "1"


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"bus": "ok", "context": "ok"}}


async def test_not_ready_when_the_context_service_is_unreachable(settings: GatewaySettings) -> None:
    class Down(FakeConversations):
        async def get_conversation(self, *args: object, **kwargs: object):  # type: ignore[override]
            raise UnavailableError("context at 127.0.0.1:50054 unreachable")

    class BusDown:
        def subscribe(self, subscription: object) -> None: ...
        async def publish(self, topic: str, event: object) -> None: ...
        async def ping(self) -> None:
            raise UnavailableError("no broker")

    gateway = build_gateway(settings, BusDown(), Down())  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=gateway.http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        ready = await client.get("/readyz")
        assert (await client.get("/healthz")).status_code == 200
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert ready.json()["status"] == "unavailable"
    assert "unreachable" in checks["context"]
    assert "no broker" in checks["bus"]


async def test_readiness_defaults_to_the_context_check(settings: GatewaySettings, harness: Harness) -> None:
    app = create_http_app(harness.gateway.chat, harness.conversations, settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g.test") as client:
        assert (await client.get("/readyz")).json()["checks"] == {"context": "ok"}


async def test_the_web_chat_page_is_served_at_the_root(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<form id="chat-form"' in page
    assert 'id="text"' in page
    assert "sessionStorage" in page
    assert "/v1/messages" in page
    assert "quick_replies" in page
    assert "/feedback" in page and 'data-testid="message-input"' in page
    assert '"noopener noreferrer"' in page and "innerHTML =" not in page
    # No CDN: nothing is fetched from elsewhere (the SVG namespace is a name, not a download).
    own = page.replace('"http://www.w3.org/2000/svg"', "")
    assert "<script src=" not in page and "http://" not in own and "https://" not in own


async def test_the_openapi_document_describes_the_api(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    post = spec["paths"]["/v1/conversations/{conversation_id}/messages"]["post"]
    assert {"200", "202", "404", "422"} <= set(post["responses"])
    assert "StartMessage" in spec["components"]["schemas"]
    assert (await client.get("/docs")).status_code == 200
