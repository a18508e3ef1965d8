"""Helpers of the streaming tests: a generator side that streams chunks, a live gateway, an SSE reader.

``ChunkingAssistant`` plays the generator while an LLM streams: for each user message it publishes
``turn.reply-chunks`` events itself (one at a time, each only when the test releases it, in any order it
is told, duplicates included) and then the authoritative ``turn.replied``. ``live_gateway`` runs the real
``GatewayServer`` (uvicorn on a free port) over an in-process bus, so clients read real HTTP streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from parley.common.v1 import common_pb2
from parley.core.bus import InMemoryBus, Outgoing, Subscription
from parley.core.events import Topic, derive_event
from parley.gateway.app import GatewayServer
from parley.gateway.settings import GatewaySettings
from parley.generator.v1 import generator_pb2
from parley.turn.v1 import turn_event_pb2 as pb

from .conftest import FakeAssistant, FakeConversations


@dataclass
class ChunkingAssistant:
    """Streams ``chunks`` of each reply as chunk events, then publishes the whole reply."""

    bus: InMemoryBus
    conversations: FakeConversations
    chunks: Sequence[str] = ("Hel", "lo, ", "world", "!")
    #: Publishing order of chunk indexes (repeat one to send a duplicate); default: in order.
    order: Sequence[int] | None = None
    #: When set, each chunk waits for a permit put on ``permits`` (the test paces the stream).
    gated: bool = False
    #: The final reply's text; default: the chunks joined.
    final_text: str | None = None
    delay_s: float = 0.0
    permits: asyncio.Queue[None] = field(default_factory=asyncio.Queue)
    published: list[int] = field(default_factory=list)
    seen: list[pb.TurnEvent] = field(default_factory=list)

    def subscription(self) -> Subscription:
        return Subscription("assistant", (Topic.USER_MESSAGE,), self.handle)

    async def handle(self, event: pb.TurnEvent) -> Sequence[Outgoing]:
        self.seen.append(event)
        self.conversations.add_message(
            event.conversation_id, event.turn_id, common_pb2.ROLE_USER, event.user_message.text
        )
        order = list(self.order) if self.order is not None else list(range(len(self.chunks)))
        for position, index in enumerate(order):
            if self.gated:
                await self.permits.get()
            elif self.delay_s:
                await asyncio.sleep(self.delay_s)
            chunk = derive_event(
                event,
                f"generator/chunk/{position}",
                reply_chunk=pb.ReplyChunk(index=index, text=self.chunks[index]),
            )
            await self.bus.publish(Topic.REPLY_CHUNK, chunk)
            self.published.append(index)
        if self.gated:
            await self.permits.get()  # one more permit lets the final reply go
        text = self.final_text if self.final_text is not None else "".join(self.chunks)
        reply = generator_pb2.Reply(
            text=text, quick_replies=[generator_pb2.QuickReply(title="More", payload="more")]
        )
        self.conversations.add_message(event.conversation_id, event.turn_id, common_pb2.ROLE_BOT, text)
        return [
            Outgoing(Topic.REPLIED, derive_event(event, "generator", replied=pb.RepliedTurn(reply=reply)))
        ]


@dataclass
class Live:
    server: GatewayServer
    bus: InMemoryBus
    conversations: FakeConversations
    assistant: ChunkingAssistant | FakeAssistant

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.http_port}/v1/ws"


@contextlib.asynccontextmanager
async def live_gateway(
    settings: GatewaySettings, *, chunking: bool = True, **assistant: Any
) -> AsyncIterator[Live]:
    """The real gateway server on a free port, answered by a chunking (or a template) assistant."""
    bus = InMemoryBus()
    conversations = FakeConversations()
    fake: ChunkingAssistant | FakeAssistant = (
        ChunkingAssistant(bus, conversations, **assistant)
        if chunking
        else FakeAssistant(conversations, **assistant)
    )
    bus.subscribe(fake.subscription())
    server = GatewayServer(settings.model_copy(update={"http_port": 0, "grpc_port": 0}), bus, conversations)
    await server.start()
    try:
        yield Live(server, bus, conversations, fake)
    finally:
        await server.stop()


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` of each Server-Sent Event as it arrives (``event`` is "" when unnamed)."""
    name, data = "", []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield name, "\n".join(data)
            name, data = "", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


async def next_json_event(events: AsyncIterator[tuple[str, str]]) -> tuple[str, dict[str, Any]]:
    name, data = await asyncio.wait_for(anext(events), 5)
    return name, json.loads(data)
