"""Replies as they are generated: the router's chunk buffer, ChatService.stream, SSE and the WebSocket."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from parley.core.errors import NotFoundError
from parley.core.events import Topic, derive_event, new_event
from parley.gateway.domain import ChatService, Chunk, Pending, Replied, ReplyRouter, Typing
from parley.generator.v1 import generator_pb2
from parley.turn.v1 import turn_event_pb2 as pb

from .conftest import FakeConversations, Harness, make_settings
from .gateway_streaming_support import ChunkingAssistant, live_gateway, next_json_event, sse_events

# ------------------------------------------------------------------------------------------ helpers


def _cause(conversation_id: str = "conv-1", turn_id: str = "turn-1") -> pb.TurnEvent:
    return new_event(
        conversation_id=conversation_id,
        tenant_id="t",
        user_id="u",
        turn_id=turn_id,
        user_message=pb.UserMessage(text="hi"),
    )


def _chunk(index: int, text: str, conversation_id: str = "conv-1", turn_id: str = "turn-1") -> pb.TurnEvent:
    cause = _cause(conversation_id, turn_id)
    return derive_event(cause, f"generator/chunk/{index}", reply_chunk=pb.ReplyChunk(index=index, text=text))


def _replied(text: str, conversation_id: str = "conv-1", turn_id: str = "turn-1") -> pb.TurnEvent:
    cause = _cause(conversation_id, turn_id)
    return derive_event(cause, "generator", replied=pb.RepliedTurn(reply=generator_pb2.Reply(text=text)))


async def _drain(stream: Any, count: int) -> list[Any]:
    return [await asyncio.wait_for(stream.next(), 1) for _ in range(count)]


# ------------------------------------------------------------------------------------------- router


async def test_a_stream_gets_chunks_in_index_order_without_duplicates_then_the_reply() -> None:
    router = ReplyRouter()
    with router.stream("turn-1", "conv-1") as stream:
        assert router.resolve(_chunk(2, "c")) is True  # early: held until 0 and 1 came
        assert router.resolve(_chunk(0, "a")) is True
        assert router.resolve(_chunk(0, "a")) is False  # duplicate
        assert await asyncio.wait_for(stream.next(), 1) == Chunk(0, "a")
        assert router.resolve(_chunk(2, "c")) is False  # duplicate of an early one
        assert router.resolve(_chunk(1, "b")) is True
        assert await _drain(stream, 2) == [Chunk(1, "b"), Chunk(2, "c")]
        assert router.resolve(_chunk(1, "b")) is False  # already handed out
        assert router.resolve(_replied("abc")) is True
        reply = await asyncio.wait_for(stream.next(), 1)
        assert isinstance(reply, generator_pb2.Reply) and reply.text == "abc"
        assert router.resolve(_chunk(3, "late")) is False  # after the reply
    assert len(router) == 0


async def test_chunks_in_order_are_handed_out_before_the_reply_that_follows_them() -> None:
    router = ReplyRouter()
    with router.stream("turn-1", "conv-1") as stream:
        router.resolve(_chunk(0, "a"))
        router.resolve(_chunk(2, "never read: the gap before it is never filled"))
        router.resolve(_replied("a b c"))
        first, second = await _drain(stream, 2)
    assert first == Chunk(0, "a")
    assert second.text == "a b c"


async def test_a_stream_holds_a_bounded_number_of_chunks() -> None:
    router = ReplyRouter(max_buffered_chunks=3)
    with router.stream("turn-1", "conv-1") as stream:
        assert [router.resolve(_chunk(i, str(i))) for i in (5, 6, 7, 8)] == [True, True, True, False]
        assert stream.buffered == 3
        assert router.resolve(_chunk(0, "0")) is False  # full, even for the one it waits for
        router.resolve(_replied("the reply fills in what was lost"))
        reply = await asyncio.wait_for(stream.next(), 1)
        assert reply.text == "the reply fills in what was lost"


async def test_chunks_are_ignored_by_non_streaming_waiters_and_other_turns() -> None:
    router = ReplyRouter()
    with router.expect("turn-1", "conv-1") as future:
        assert router.resolve(_chunk(0, "a")) is False
        assert not future.done()
    with router.stream("turn-1", "conv-1") as stream:
        assert router.resolve(_chunk(0, "x", turn_id="other")) is False
        assert router.resolve(_chunk(0, "x", conversation_id="conv-2")) is False
        assert stream.buffered == 0


async def test_a_streaming_waiter_is_gone_when_its_reader_is_cancelled() -> None:
    router = ReplyRouter()
    entered = asyncio.Event()

    async def read() -> None:
        with router.stream("turn-1", "conv-1") as stream:
            entered.set()
            await stream.next()

    task = asyncio.create_task(read())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(router) == 0
    assert router.resolve(_chunk(0, "a")) is False


# -------------------------------------------------------------------------------- ChatService.stream


class ChunkPublisher:
    """Publishes by feeding the router what a streaming generator would send, at once."""

    def __init__(self, router: ReplyRouter, chunks: list[tuple[int, str]], reply: str | None) -> None:
        self.router, self.chunks, self.reply = router, chunks, reply

    async def publish(self, topic: str, event: pb.TurnEvent) -> None:
        for index, text in self.chunks:
            self.router.resolve(_chunk(index, text, event.conversation_id, event.turn_id))
        if self.reply is not None:
            self.router.resolve(_replied(self.reply, event.conversation_id, event.turn_id))


async def _collect(chat: ChatService, conversation_id: str | None = None) -> list[Any]:
    return [event async for event in chat.stream("t", "u", conversation_id, "hi")]


async def test_stream_yields_typing_chunks_in_order_and_the_reply() -> None:
    router = ReplyRouter()
    publisher = ChunkPublisher(router, [(1, "lo"), (0, "hel"), (0, "hel")], "hello")
    chat = ChatService(FakeConversations(), publisher, router, instance_id="gw", reply_timeout_s=1)

    typing, *chunks, replied = await _collect(chat)

    assert isinstance(typing, Typing)
    assert chunks == [Chunk(0, "hel"), Chunk(1, "lo")]
    assert isinstance(replied, Replied) and replied.reply.text == "hello"
    assert (replied.conversation_id, replied.turn_id) == (typing.conversation_id, typing.turn_id)
    assert len(router) == 0


async def test_stream_of_a_template_reply_is_typing_then_the_reply() -> None:
    router = ReplyRouter()
    chat = ChatService(FakeConversations(), ChunkPublisher(router, [], "hi!"), router, instance_id="gw")
    events = await _collect(chat)
    assert [type(e) for e in events] == [Typing, Replied]


async def test_stream_ends_pending_when_nothing_comes_in_time() -> None:
    router = ReplyRouter()
    publisher = ChunkPublisher(router, [(0, "a")], None)
    chat = ChatService(FakeConversations(), publisher, router, instance_id="gw", reply_timeout_s=0.05)
    events = await _collect(chat)
    assert [type(e) for e in events] == [Typing, Chunk, Pending]
    assert len(router) == 0


async def test_stream_raises_before_its_first_event_for_an_unknown_conversation() -> None:
    router = ReplyRouter()
    publisher = ChunkPublisher(router, [], "x")
    chat = ChatService(FakeConversations(), publisher, router, instance_id="gw")
    with pytest.raises(NotFoundError):
        await anext(chat.stream("t", "u", str(uuid.uuid4()), "hi"))
    assert len(router) == 0


# ------------------------------------------------------------------------------------------------ SSE


async def test_sse_delivers_each_chunk_before_the_next_is_published() -> None:
    async with (
        live_gateway(make_settings(), gated=True) as live,
        httpx.AsyncClient(base_url=live.base_url, timeout=5) as client,
        client.stream("POST", "/v1/messages/stream", json={"text": "hi"}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assistant = live.assistant
        assert isinstance(assistant, ChunkingAssistant)
        events = sse_events(response)
        name, typing = await next_json_event(events)
        assert name == "typing" and typing["type"] == "typing"
        assert assistant.published == []

        for index, text in enumerate(assistant.chunks):
            assistant.permits.put_nowait(None)
            name, chunk = await next_json_event(events)
            assert (name, chunk) == ("chunk", {"type": "chunk", "index": index, "text": text})
            # Received while the generator has published only up to this one.
            assert assistant.published == list(range(index + 1))

        assistant.permits.put_nowait(None)
        name, reply = await next_json_event(events)
        assert name == "reply"
        assert reply == {
            "type": "reply",
            "conversation_id": typing["conversation_id"],
            "turn_id": typing["turn_id"],
            "reply": {
                "text": "Hello, world!",
                "quick_replies": [{"title": "More", "payload": "more"}],
                "links": [],
            },
        }
        assert [e async for e in events] == []  # the stream ends with the reply
    assert len(live.server.service.router) == 0


async def test_sse_reorders_out_of_order_chunks_and_drops_duplicates() -> None:
    async with (
        live_gateway(make_settings(), order=[1, 0, 0, 3, 2, 3], delay_s=0.01) as live,
        httpx.AsyncClient(base_url=live.base_url, timeout=5) as client,
    ):
        conversation_id = (await client.post("/v1/conversations")).json()["conversation_id"]
        async with client.stream(
            "POST", f"/v1/conversations/{conversation_id}/messages/stream", json={"text": "hi"}
        ) as response:
            received = [(name, json.loads(data)) async for name, data in sse_events(response)]
    names = [name for name, _ in received]
    assert names == ["typing", "chunk", "chunk", "chunk", "chunk", "reply"]
    assert [d["index"] for n, d in received if n == "chunk"] == [0, 1, 2, 3]
    assert "".join(d["text"] for n, d in received if n == "chunk") == received[-1][1]["reply"]["text"]
    assert received[0][1]["conversation_id"] == conversation_id


async def test_sse_of_a_template_reply_is_typing_then_reply(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/messages/stream", json={"text": "hello"})
    assert response.status_code == 200
    frames = [f for f in response.text.split("\n\n") if f]
    assert [f.splitlines()[0] for f in frames] == ["event: typing", "event: reply"]
    reply = json.loads(frames[1].splitlines()[1].removeprefix("data: "))
    assert reply["reply"] == {
        "text": "echo: hello",
        "quick_replies": [{"title": "Again", "payload": "hello"}],
        "links": [{"title": "Help", "url": "https://example.org/help"}],
    }


@pytest.mark.parametrize("settings", [make_settings(reply_timeout_s=0.2)])
async def test_sse_ends_with_pending_when_no_reply_comes(client: httpx.AsyncClient, harness: Harness) -> None:
    harness.assistant.silent = True
    response = await client.post("/v1/messages/stream", json={"text": "anyone?"})
    frames = [f.splitlines() for f in response.text.split("\n\n") if f]
    assert [f[0] for f in frames] == ["event: typing", "event: pending"]
    pending = json.loads(frames[1][1].removeprefix("data: "))
    assert pending["status"] == "pending" and pending["type"] == "pending"
    assert len(harness.gateway.router) == 0


async def test_sse_bad_input_is_an_ordinary_error_response(client: httpx.AsyncClient) -> None:
    def check(response: httpx.Response, status: int, code: str, fragment: str) -> None:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] == code
        assert fragment in response.json()["error"]["message"]

    check(await client.post("/v1/messages/stream", json={"text": ""}), 422, "invalid_input", "empty")
    check(await client.post("/v1/messages/stream", json={"text": 5}), 422, "invalid_input", "text:")
    check(
        await client.post(
            "/v1/messages/stream", content=b'{"text":', headers={"Content-Type": "application/json"}
        ),
        400,
        "invalid_json",
        "not valid JSON",
    )
    unknown = f"/v1/conversations/{uuid.uuid4()}/messages/stream"
    check(await client.post(unknown, json={"text": "hi"}), 404, "not_found", "not found")
    check(
        await client.post("/v1/conversations/nope/messages/stream", json={"text": "hi"}), 404, "not_found", ""
    )
    big = {"text": "x" * 4000}
    check(await client.post("/v1/messages/stream", json=big), 413, "payload_too_large", "at most")


# ------------------------------------------------------------------------------------------ WebSocket


async def _receive(socket: Any) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(socket.recv(), 5))


async def _turn(socket: Any) -> list[dict[str, Any]]:
    events = [await _receive(socket)]
    while events[-1]["type"] in {"typing", "chunk"}:
        events.append(await _receive(socket))
    return events


async def test_websocket_streams_turns_and_keeps_its_conversation() -> None:
    async with (
        live_gateway(make_settings(), gated=True) as live,
        connect(live.ws_url, additional_headers={"X-Parley-User": "ann"}) as socket,
    ):
        assistant = live.assistant
        assert isinstance(assistant, ChunkingAssistant)
        await socket.send(json.dumps({"text": "first"}))
        typing = await _receive(socket)
        assert typing["type"] == "typing"
        assistant.permits.put_nowait(None)
        assert await _receive(socket) == {"type": "chunk", "index": 0, "text": "Hel"}
        assert assistant.published == [0]  # the first chunk arrived before the others were published
        for _ in range(len(assistant.chunks)):
            assistant.permits.put_nowait(None)
        rest = await _turn(socket)
        assert [e["type"] for e in rest] == ["chunk", "chunk", "chunk", "reply"]
        assert rest[-1]["reply"]["text"] == "Hello, world!"

        for _ in range(len(assistant.chunks) + 1):
            assistant.permits.put_nowait(None)
        await socket.send(json.dumps({"text": "second"}))  # no id: the socket's conversation goes on
        second = await _turn(socket)
        assert second[0]["conversation_id"] == typing["conversation_id"]
        assert second[0]["turn_id"] != typing["turn_id"]
        owner = live.conversations.conversations[typing["conversation_id"]].principal
        assert owner.user_id == "ann"


async def test_websocket_answers_bad_frames_with_error_events_and_stays_open() -> None:
    async with (
        live_gateway(make_settings(), chunking=False) as live,
        connect(live.ws_url) as socket,
    ):
        bad_frames: list[tuple[str | bytes, str, str]] = [
            ("not json", "invalid_json", "not valid JSON"),
            ("[1, 2]", "invalid_input", "JSON object"),
            (json.dumps({"text": 5}), "invalid_input", "text:"),
            (json.dumps({"txt": "hi"}), "invalid_input", "Field required"),
            (json.dumps({"text": "   "}), "invalid_input", "must not be empty"),
            (json.dumps({"text": "x" * 51}), "invalid_input", "at most 50 characters"),
            (json.dumps({"text": "hi", "conversation_id": str(uuid.uuid4())}), "not_found", "not found"),
            (b"\xff\xfe", "invalid_json", "not valid JSON"),
            ("x" * 3000, "payload_too_large", "at most 2048 bytes"),
        ]
        for frame, code, fragment in bad_frames:
            await socket.send(frame)
            event = await _receive(socket)
            assert event["type"] == "error", frame
            assert event["error"]["code"] == code, event
            assert fragment in event["error"]["message"], event
        await socket.send(json.dumps({"text": "still here?"}))
        events = await _turn(socket)
        assert [e["type"] for e in events] == ["typing", "reply"]
        assert events[-1]["reply"]["text"] == "echo: still here?"


async def test_websocket_identity_from_query_parameters_for_browsers() -> None:
    async with live_gateway(make_settings(), chunking=False) as live:
        async with connect(f"{live.ws_url}?x-parley-tenant=acme&x-parley-user=bea") as socket:
            await socket.send(json.dumps({"text": "hi"}))
            typing = (await _turn(socket))[0]
        owner = live.conversations.conversations[typing["conversation_id"]].principal
        assert (owner.tenant_id, owner.user_id) == ("acme", "bea")

        # Another user cannot continue bea's conversation.
        async with connect(live.ws_url, additional_headers={"X-Parley-Tenant": "acme"}) as socket:
            await socket.send(json.dumps({"text": "hi", "conversation_id": typing["conversation_id"]}))
            assert (await _receive(socket))["error"]["code"] == "not_found"

        with pytest.raises(InvalidStatus) as denied:
            async with connect(live.ws_url, additional_headers={"X-Parley-User": "not valid"}):
                pass
        assert denied.value.response.status_code == 422
        assert json.loads(denied.value.response.body)["error"]["code"] == "invalid_input"


async def test_published_chunk_events_use_the_reply_chunk_topic() -> None:
    async with live_gateway(make_settings(), order=[0, 1]) as live:
        async with httpx.AsyncClient(base_url=live.base_url, timeout=5) as client:
            response = await client.post("/v1/messages/stream", json={"text": "hi"})
        assert response.status_code == 200
        topics = [topic for topic, _ in live.bus.published]
        assert topics == [Topic.USER_MESSAGE, Topic.REPLY_CHUNK, Topic.REPLY_CHUNK, Topic.REPLIED]


async def test_the_web_chat_page_streams_replies_over_sse(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    assert 'fetch("/v1/messages/stream"' in page
    assert "text/event-stream" in page
    for event in ("typing", "chunk", "reply", "pending", "error"):
        assert f'event.type === "{event}"' in page
    assert "addQuickReplies(event.reply.quick_replies)" in page


# --- gRPC Converse --------------------------------------------------------------------------------------


async def test_grpc_converse_streams_typing_each_chunk_and_the_final_reply() -> None:
    import grpc  # noqa: PLC0415

    from parley.gateway.v1 import gateway_pb2, gateway_pb2_grpc  # noqa: PLC0415

    async with live_gateway(make_settings(), gated=True) as live:
        assistant = live.assistant
        assert isinstance(assistant, ChunkingAssistant)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{live.server.grpc_port}") as channel:
            call = gateway_pb2_grpc.GatewayServiceStub(channel).Converse()
            await call.write(gateway_pb2.ConverseRequest(text="hi", stream=True))
            typing = await asyncio.wait_for(call.read(), 5)
            assert typing.typing and typing.conversation_id and not typing.final
            for index, text in enumerate(assistant.chunks):
                assistant.permits.put_nowait(None)  # release exactly one chunk...
                piece = await asyncio.wait_for(call.read(), 5)  # ...and it arrives before the next exists
                assert (piece.chunk.index, piece.chunk.text) == (index, text)
                assert assistant.published == list(range(index + 1))
            assistant.permits.put_nowait(None)
            final = await asyncio.wait_for(call.read(), 5)
            assert final.final and final.reply.text == "Hello, world!" and not final.pending
            assert final.turn_id == typing.turn_id
            # an unstreamed request on the same call continues the conversation with one response
            for _ in range(len(assistant.chunks) + 1):
                assistant.permits.put_nowait(None)
            await call.write(gateway_pb2.ConverseRequest(text="again"))
            whole = await asyncio.wait_for(call.read(), 5)
            assert whole.final and whole.reply.text == "Hello, world!" and not whole.HasField("chunk")
            assert whole.conversation_id == typing.conversation_id
            await call.done_writing()
            assert await call.read() == grpc.aio.EOF


async def test_each_websocket_frame_spends_the_keys_rate_limit_and_a_revoked_key_ends_the_socket() -> None:
    from parley.core.bus import InMemoryBus  # noqa: PLC0415
    from parley.gateway.app import GatewayServer  # noqa: PLC0415

    from .conftest import FakeAssistant  # noqa: PLC0415
    from .test_gateway_auth_domain import MemoryKeyStore  # noqa: PLC0415

    keys = MemoryKeyStore()
    key = keys.add("acme")
    bus, conversations = InMemoryBus(), FakeConversations()
    bus.subscribe(FakeAssistant(conversations).subscription())
    settings = make_settings(
        auth="api_key", rate_limit_per_s=0.01, rate_limit_burst=2, api_key_cache_ttl_s=0.05
    )
    server = GatewayServer(settings, bus, conversations, keys=keys)
    await server.start()
    try:
        url = f"ws://127.0.0.1:{server.http_port}/v1/ws"
        async with connect(url, additional_headers={"X-API-Key": key}) as socket:  # token 1: handshake
            kinds = []
            for text in ("one", "two", "three"):  # the first frame rides on the handshake's token
                await socket.send(json.dumps({"text": text}))
                while (event := json.loads(await asyncio.wait_for(socket.recv(), 5)))["type"] == "typing":
                    pass
                kinds.append(event["type"])
            assert kinds == ["reply", "reply", "error"]
            assert event["error"]["code"] == "rate_limited" and event["retry_after_s"] >= 1
            # the socket is still open: a client may wait and go on
            keys.revoke(key)
            await asyncio.sleep(0.1)  # past the key cache's TTL
            await socket.send(json.dumps({"text": "four"}))
            gone = json.loads(await asyncio.wait_for(socket.recv(), 5))
            assert gone["type"] == "error" and gone["error"]["code"] == "unauthenticated"
            with pytest.raises(ConnectionClosed):  # and the socket is closed
                await asyncio.wait_for(socket.recv(), 5)
    finally:
        await server.stop()


async def test_a_quiet_sse_stream_gets_keepalive_comments_and_loses_no_event() -> None:
    async with (
        live_gateway(make_settings(sse_keepalive_s=0.05), gated=True) as live,
        httpx.AsyncClient(base_url=live.base_url, timeout=5) as client,
        client.stream("POST", "/v1/messages/stream", json={"text": "hi"}) as response,
    ):
        assistant = live.assistant
        assert isinstance(assistant, ChunkingAssistant)
        lines = response.aiter_lines()
        seen: list[str] = []

        async def read_until(prefix: str) -> None:
            while not (line := await asyncio.wait_for(anext(lines), 5)).startswith(prefix):
                seen.append(line)
            seen.append(line)

        await read_until("event: typing")
        await asyncio.sleep(0.3)  # the generator is silent: comments keep the connection busy
        await read_until(": keep-alive")
        for _ in range(len(assistant.chunks) + 1):
            assistant.permits.put_nowait(None)
        await read_until("event: reply")
        seen.append(await asyncio.wait_for(anext(lines), 5))  # its data line
        data = [json.loads(line[6:]) for line in seen if line.startswith("data: ")]
        assert [d["type"] for d in data] == ["typing", "chunk", "chunk", "chunk", "chunk", "reply"]
        assert "".join(d["text"] for d in data if d["type"] == "chunk") == "Hello, world!"
