"""The OpenAI-compatible API, called with the official ``openai`` SDK against a real uvicorn server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from parley.core.errors import PermissionDeniedError, UnauthenticatedError
from parley.core.events import Topic
from parley.gateway.adapters.openai_api import project_model_id
from parley.gateway.domain.ratelimit import RateLimitedError

from .conftest import Harness, make_settings
from .gateway_streaming_support import ChunkingAssistant, Live, live_gateway

MODEL = "order-support"  # the name in examples/order-support/assistant.yml
USER = [{"role": "user", "content": "hi"}]


def sdk(live: Live, **kwargs: Any) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{live.base_url}/v1", api_key="not-used-here", **kwargs)


@pytest.fixture
async def template_live() -> AsyncIterator[Live]:
    async with live_gateway(make_settings(), chunking=False) as live:
        yield live


def user_messages(live: Live) -> list[str]:
    return [e.user_message.text for topic, e in live.bus.published if topic == Topic.USER_MESSAGE]


async def test_models_lists_the_assistant_project(template_live: Live) -> None:
    models = await sdk(template_live).models.list()
    assert [(m.id, m.object, m.owned_by) for m in models.data] == [(MODEL, "model", "parley")]


async def test_a_completion_answers_the_last_user_message_in_a_new_conversation(template_live: Live) -> None:
    client = sdk(template_live)
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "ignored: the project defines the assistant"},
            {"role": "user", "content": "an older message"},
            {"role": "assistant", "content": "an older reply"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "where is"}, {"type": "text", "text": "my order"}],
            },
        ],
        temperature=0.2,  # sampling parameters are accepted and ignored
        max_tokens=10,
        user="someone",
        extra_body={"some_future_parameter": True},
    )
    completion = raw.parse()

    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: where is\nmy order"
    assert choice.finish_reason == "stop"
    conversation_id = raw.headers["x-parley-conversation"]
    parley = completion.model_extra["parley"]
    assert parley["conversation_id"] == conversation_id
    assert completion.id == f"chatcmpl-{parley['turn_id']}" == f"chatcmpl-{raw.headers['x-parley-turn']}"
    assert parley["quick_replies"] == [{"title": "Again", "payload": "where is\nmy order"}]
    assert user_messages(template_live) == ["where is\nmy order"]


async def test_the_conversation_header_continues_a_conversation(template_live: Live) -> None:
    client = sdk(template_live, default_headers={"X-Parley-User": "ann"})
    first = await client.chat.completions.with_raw_response.create(model=MODEL, messages=USER)
    conversation_id = first.headers["x-parley-conversation"]

    second = await client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "again"}],
        extra_headers={"X-Parley-Conversation": conversation_id},
    )

    assert second.headers["x-parley-conversation"] == conversation_id
    assert second.parse().choices[0].message.content == "echo: again"
    assert len(template_live.conversations.messages[conversation_id]) == 4

    with pytest.raises(openai.NotFoundError) as other_user:
        await sdk(template_live, default_headers={"X-Parley-User": "bob"}).chat.completions.create(
            model=MODEL, messages=USER, extra_headers={"X-Parley-Conversation": conversation_id}
        )
    assert other_user.value.body["code"] == "not_found"


async def test_streaming_delivers_each_chunk_as_the_generator_produces_it() -> None:
    async with live_gateway(make_settings(), gated=True) as live:
        assistant = live.assistant
        assert isinstance(assistant, ChunkingAssistant)
        stream = await sdk(live).chat.completions.create(model=MODEL, messages=USER, stream=True)
        chunks = aiter(stream)

        opening = await asyncio.wait_for(anext(chunks), 5)
        assert opening.object == "chat.completion.chunk"
        assert opening.choices[0].delta.role == "assistant"
        turn_id = opening.model_extra["parley"]["turn_id"]
        assert opening.id == f"chatcmpl-{turn_id}"

        for index, text in enumerate(assistant.chunks):
            assistant.permits.put_nowait(None)
            chunk = await asyncio.wait_for(anext(chunks), 5)
            assert chunk.choices[0].delta.content == text
            assert chunk.id == opening.id
            assert assistant.published == list(range(index + 1))  # the next one is not published yet

        assistant.permits.put_nowait(None)
        final = await asyncio.wait_for(anext(chunks), 5)
        assert final.choices[0].finish_reason == "stop"
        assert final.model_extra["parley"]["text"] == "Hello, world!"
        assert final.model_extra["parley"]["quick_replies"] == [{"title": "More", "payload": "more"}]
        with pytest.raises(StopAsyncIteration):
            await anext(chunks)  # [DONE] ends the SDK's stream


async def test_streaming_a_template_reply_sends_it_in_one_delta(template_live: Live) -> None:
    stream = await sdk(template_live).chat.completions.create(model=MODEL, messages=USER, stream=True)
    chunks = [chunk async for chunk in stream]
    contents = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert contents == ["echo: hi"]
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"


async def test_streaming_completes_a_reply_whose_last_chunks_were_lost() -> None:
    async with live_gateway(make_settings(), order=[0, 2], final_text="Hello, world!") as live:
        stream = await sdk(live).chat.completions.create(model=MODEL, messages=USER, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "Hello, world!"  # chunk 1 never came, so 2 was held; the reply's rest fills it in


async def test_the_raw_stream_is_data_lines_ending_with_done(template_live: Live) -> None:
    async with (
        httpx.AsyncClient(base_url=template_live.base_url) as http,
        http.stream(
            "POST", "/v1/chat/completions", json={"model": MODEL, "messages": USER, "stream": True}
        ) as response,
    ):
        body = (await response.aread()).decode()
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in body.split("\n\n") if f]
    assert all(f.startswith("data: ") and "\n" not in f for f in frames)
    assert frames[-1] == "data: [DONE]"


@pytest.mark.parametrize(
    ("kwargs", "param", "code"),
    [
        ({"n": 2}, "n", "unsupported_value"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "unsupported_value"),
        ({"logprobs": True}, "logprobs", "unsupported_value"),
        ({"response_format": {"type": "json_object"}}, "response_format", "unsupported_value"),
        ({"messages": [{"role": "system", "content": "no user"}]}, "messages", None),
        ({"messages": [{"role": "user", "content": "  "}]}, "messages.0.content", None),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages.0.content",
            "unsupported_value",
        ),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role", None),
        ({"messages": []}, "messages", None),
        ({"messages": [{"role": "user", "content": "x" * 51}]}, None, "invalid_input"),
    ],
)
async def test_unsupported_and_invalid_requests_are_400_in_openai_shape(
    template_live: Live, kwargs: dict[str, Any], param: str | None, code: str | None
) -> None:
    request: dict[str, Any] = {"model": MODEL, "messages": USER, **kwargs}
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as error:
            await sdk(template_live, max_retries=0).chat.completions.create(**request, stream=stream)
        body = error.value.body
        assert isinstance(body, dict)
        assert set(body) == {"message", "type", "param", "code"}
        assert body["type"] == "invalid_request_error"
        assert (body["param"], body["code"]) == (param, code), body
    assert user_messages(template_live) == []


async def test_unknown_models_and_conversations_are_404(template_live: Live) -> None:
    client = sdk(template_live)
    with pytest.raises(openai.NotFoundError) as model:
        await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert model.value.body["code"] == "model_not_found"
    assert model.value.body["param"] == "model"
    for conversation in (str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(openai.NotFoundError) as missing:
            await client.chat.completions.create(
                model=MODEL, messages=USER, stream=True, extra_headers={"X-Parley-Conversation": conversation}
            )
        assert missing.value.body["type"] == "invalid_request_error"


async def test_malformed_bodies_and_identity_get_openai_error_bodies(template_live: Live) -> None:
    async with httpx.AsyncClient(base_url=template_live.base_url) as http:
        broken = await http.post(
            "/v1/chat/completions", content=b'{"model": ', headers={"Content-Type": "application/json"}
        )
        wrong_type = await http.post("/v1/chat/completions", json={"model": MODEL, "messages": "hi"})
        not_object = await http.post("/v1/chat/completions", json=[1])
        bad_user = await http.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": USER}, headers={"X-Parley-User": "a b"}
        )
        bad_models_user = await http.get("/v1/models", headers={"X-Parley-User": "a b"})
    for response, code in ((broken, "invalid_json"), (wrong_type, None), (not_object, None)):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert response.json()["error"]["code"] == code
    assert broken.json()["error"]["message"].startswith("request body is not valid JSON")
    assert wrong_type.json()["error"]["param"] == "messages"
    for response in (bad_user, bad_models_user):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_input"
        assert "user id must be" in response.json()["error"]["message"]


async def test_a_reply_that_does_not_come_is_a_504_the_sdk_does_not_retry() -> None:
    async with live_gateway(make_settings(reply_timeout_s=0.2), chunking=False, silent=True) as live:
        client = sdk(live)  # default max_retries=2: a retry would post the message again
        with pytest.raises(openai.APIStatusError) as error:
            await client.chat.completions.create(model=MODEL, messages=USER)
        assert error.value.status_code == 504
        assert error.value.body["code"] == "reply_pending"
        assert error.value.response.headers["x-parley-conversation"] in error.value.body["message"]

        stream = await client.chat.completions.create(model=MODEL, messages=USER, stream=True)
        with pytest.raises(openai.APIError) as streamed:
            async for _ in stream:
                pass
        assert streamed.value.body["code"] == "reply_pending"
        assert user_messages(live) == ["hi", "hi"]  # once each: nothing was retried


def test_the_model_is_named_after_the_project_or_its_folder(tmp_path: Any) -> None:
    project = tmp_path / "my-bot"
    project.mkdir()
    assert project_model_id(project) == "my-bot"
    (project / "assistant.yml").write_text("name: shop-helper\nlanguage: en\n")
    assert project_model_id(project) == "shop-helper"


@pytest.mark.parametrize(
    ("error", "status", "kind", "header"),
    [
        (UnauthenticatedError("no API key"), 401, "authentication_error", ("www-authenticate", "Bearer")),
        (PermissionDeniedError("X-Parley-Tenant names another tenant"), 403, "permission_error", None),
        (RateLimitedError("slow down", retry_after_s=7), 429, "rate_limit_error", ("retry-after", "7")),
    ],
)
async def test_authentication_failures_keep_their_status_and_headers_in_openai_shape(
    harness: Harness,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
    kind: str,
    header: tuple[str, str] | None,
) -> None:
    async def refuse(credentials: object) -> None:
        raise error

    monkeypatch.setattr(harness.gateway.http_app.state.authenticator, "authenticate", refuse)
    for response in (
        await client.post("/v1/chat/completions", json={"model": MODEL, "messages": USER}),
        await client.get("/v1/models"),
    ):
        assert response.status_code == status
        assert response.json()["error"]["type"] == kind
        assert response.json()["error"]["message"] == str(error)
        if header is not None:
            assert header[1] in response.headers[header[0]]
