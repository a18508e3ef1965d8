"""The Rasa-compatible REST channel over a real in-process bus and the fake assistant."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Harness, make_settings

URL = "/webhooks/rest/webhook"


def assert_error(response: httpx.Response, status: int, code: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert fragment in response.json()["error"]["message"]


async def test_a_message_gets_the_bot_messages_with_buttons(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    response = await client.post(URL, json={"sender": "user-42", "message": "hello", "metadata": {"x": 1}})

    assert response.status_code == 200, response.text
    assert response.json() == [
        {
            "recipient_id": "user-42",
            "text": "echo: hello",
            "buttons": [{"title": "Again", "payload": "hello"}],
        }
    ]
    [event] = harness.assistant.seen
    assert (event.tenant_id, event.user_id) == ("default", "user-42")
    assert response.headers["x-parley-conversation"] == event.conversation_id


async def test_each_sender_has_one_conversation_per_tenant(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    acme = {"X-Parley-Tenant": "acme"}
    first = await client.post(URL, json={"sender": "ann", "message": "one"}, headers=acme)
    second = await client.post(URL, json={"sender": "ann", "message": "two"}, headers=acme)
    other_sender = await client.post(URL, json={"sender": "bob", "message": "one"}, headers=acme)
    other_tenant = await client.post(URL, json={"sender": "ann", "message": "one"})

    conversation = first.headers["x-parley-conversation"]
    assert second.headers["x-parley-conversation"] == conversation
    assert other_sender.headers["x-parley-conversation"] != conversation
    assert other_tenant.headers["x-parley-conversation"] not in {
        conversation,
        other_sender.headers["x-parley-conversation"],
    }
    owner = harness.conversations.conversations[conversation].principal
    assert (owner.tenant_id, owner.user_id) == ("acme", "ann")
    assert [m.text for m in harness.conversations.messages[conversation]] == [
        "one",
        "echo: one",
        "two",
        "echo: two",
    ]

    # The channel's conversation is an ordinary one: its user can read it through the REST API.
    history = await client.get(
        f"/v1/conversations/{conversation}/messages", headers={**acme, "X-Parley-User": "ann"}
    )
    assert len(history.json()["messages"]) == 4


async def test_without_a_sender_the_caller_is_the_user(client: httpx.AsyncClient, harness: Harness) -> None:
    response = await client.post(URL, json={"message": "hi"}, headers={"X-Parley-User": "carl"})
    assert response.json()[0]["recipient_id"] == "carl"
    assert harness.assistant.seen[0].user_id == "carl"


async def test_the_language_comes_from_metadata(client: httpx.AsyncClient, harness: Harness) -> None:
    await client.post(URL, json={"sender": "ann", "message": "hola", "metadata": {"language": "es"}})
    assert harness.assistant.seen[0].user_message.language == "es"


@pytest.mark.parametrize("settings", [make_settings(reply_timeout_s=0.2)])
async def test_no_reply_in_time_is_202_with_no_messages(client: httpx.AsyncClient, harness: Harness) -> None:
    harness.assistant.silent = True
    response = await client.post(URL, json={"sender": "ann", "message": "anyone?"})
    assert response.status_code == 202
    assert response.json() == []
    assert response.headers["location"].endswith("/messages")


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"sender": "ann"}, "invalid_input", "message: Field required"),
        ({"sender": "ann", "message": 3}, "invalid_input", "message: Input should be a valid string"),
        ({"sender": "ann", "message": ""}, "invalid_input", "text must not be empty"),
        ({"sender": "a b", "message": "hi"}, "invalid_input", "user id must be"),
        ({"sender": 7, "message": "hi"}, "invalid_input", "sender:"),
        ({"sender": "ann", "message": "hi", "metadata": "x"}, "invalid_input", "metadata:"),
        (
            {"sender": "ann", "message": "hi", "metadata": {"language": "no such tag!"}},
            "invalid_input",
            "BCP-47",
        ),
        ([], "invalid_input", "JSON object"),
    ],
)
async def test_bad_requests_get_the_gateway_error_shape(
    client: httpx.AsyncClient, harness: Harness, body: object, code: str, fragment: str
) -> None:
    assert_error(await client.post(URL, json=body), 422, code, fragment)
    assert harness.assistant.seen == []


async def test_invalid_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=b'{"sender": ', headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_json", "not valid JSON")


async def test_where_user_tokens_are_required_only_the_token_user_may_be_the_sender(
    client: httpx.AsyncClient, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    authenticator = harness.gateway.http_app.state.authenticator
    monkeypatch.setattr(authenticator, "requires_user_token", lambda tenant_id: tenant_id == "strict")
    strict = {"X-Parley-Tenant": "strict", "X-Parley-User": "ann"}

    other = await client.post(URL, json={"sender": "bob", "message": "hi"}, headers=strict)
    assert_error(other, 403, "permission_denied", "sender must be the user of the user token")
    assert harness.assistant.seen == []

    own = await client.post(URL, json={"sender": "ann", "message": "hi"}, headers=strict)
    assert own.status_code == 200
    relaxed = await client.post(
        URL, json={"sender": "bob", "message": "hi"}, headers={"X-Parley-User": "ann"}
    )
    assert relaxed.json()[0]["recipient_id"] == "bob"
