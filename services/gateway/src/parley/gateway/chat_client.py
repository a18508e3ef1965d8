"""A terminal chat with a running gateway (behind ``parley chat``): type a line, read the reply.

It talks to the public REST API only, exactly like any client app would, so it doubles as a quick check
that a deployed gateway works end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Iterable
from typing import Any, TextIO

import httpx

QUIT = "/quit"
_POLL_INTERVAL_S = 1.0
_POLL_LIMIT_S = 60.0


class _StdinLines:
    """Lines from stdin without blocking the event loop.

    A daemon thread does the blocking reads, so Ctrl-C or ``/quit`` end the program at once instead of
    waiting for a read that never returns.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, name="parley-chat-stdin", daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            self._put(line)
        self._put(None)

    def _put(self, line: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the chat has ended
            self._loop.call_soon_threadsafe(self._queue.put_nowait, line)

    async def readline(self) -> str | None:
        return await self._queue.get()


class _ListLines:
    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)

    async def readline(self) -> str | None:
        return next(self._lines, None)


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the gateway answered HTTP {response.status_code}"


class _Chat:
    def __init__(self, client: httpx.AsyncClient, base_url: str, out: TextIO) -> None:
        self._client = client
        self._base_url = base_url
        self._out = out
        self.conversation_id: str | None = None
        self.quick_replies: list[dict[str, str]] = []

    def say(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def unreachable(self, exc: Exception) -> None:
        self.say(
            f"Cannot reach the Parley gateway at {self._base_url} ({type(exc).__name__}: {exc}). "
            "Is it running?"
        )

    async def reachable(self) -> bool:
        try:
            response = await self._client.get("/healthz")
        except httpx.TransportError as exc:
            self.unreachable(exc)
            return False
        if response.status_code != 200:
            self.say(f"The gateway at {self._base_url} is not healthy (HTTP {response.status_code}).")
            return False
        return True

    async def send(self, text: str) -> None:
        body: dict[str, Any] = {"text": text}
        if self.conversation_id:
            body["conversation_id"] = self.conversation_id
        response = await self._client.post("/v1/messages", json=body)
        if response.status_code == 404 and self.conversation_id:
            self.say("(the conversation is gone; starting a new one)")
            self.conversation_id = None
            body.pop("conversation_id")
            response = await self._client.post("/v1/messages", json=body)
        if response.status_code not in (200, 202):
            self.say(f"! {_error_message(response)}")
            return
        result = response.json()
        self.conversation_id = result["conversation_id"]
        if response.status_code == 202:
            await self._wait_for_reply(result["turn_id"])
            return
        self._show(result["reply"]["text"], result["reply"].get("quick_replies") or [])

    def _show(self, text: str, quick_replies: list[dict[str, str]]) -> None:
        self.say(f"bot> {text}")
        self.quick_replies = quick_replies
        for number, quick in enumerate(quick_replies, start=1):
            self.say(f"     [{number}] {quick['title']}")

    async def _wait_for_reply(self, turn_id: str) -> None:
        self.say("(the assistant is taking a moment...)")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _POLL_LIMIT_S
        while loop.time() < deadline:
            await asyncio.sleep(_POLL_INTERVAL_S)
            history = await self._history()
            if history is None:
                return
            replies = [m for m in history if m["role"] == "bot" and m["turn_id"] == turn_id]
            if replies:
                for message in replies:
                    self._show(message["text"], [])
                return
        self.say("(no reply yet; it will be in the conversation history)")

    async def _history(self) -> list[dict[str, Any]] | None:
        """Every message of the conversation, oldest first; ``None`` (after saying why) if unreadable."""
        messages: list[dict[str, Any]] = []
        token = ""
        while True:
            params = {"page_size": "200", **({"page_token": token} if token else {})}
            response = await self._client.get(
                f"/v1/conversations/{self.conversation_id}/messages", params=params
            )
            if response.status_code != 200:
                self.say(f"! {_error_message(response)}")
                return None
            page = response.json()
            messages.extend(page["messages"])
            token = page.get("next_page_token") or ""
            if not token:
                return messages

    def resolve_shortcut(self, line: str) -> str:
        """A number picks a quick reply of the last answer; anything else is sent as typed."""
        if line.isdigit() and 1 <= int(line) <= len(self.quick_replies):
            return self.quick_replies[int(line) - 1]["payload"]
        return line


async def run_chat(
    base_url: str,
    user: str = "anonymous",
    *,
    tenant: str | None = None,
    api_key: str | None = None,
    lines: Iterable[str] | None = None,
    out: TextIO | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Chat with the gateway at ``base_url`` as ``user`` until ``/quit`` or end of input.

    ``api_key`` is sent as ``Authorization: Bearer ...`` for gateways that require API keys.

    ``lines``, ``out`` and ``transport`` replace stdin, stdout and the network (for tests and embedding).
    """
    out = out or sys.stdout
    headers = {"X-Parley-User": user, **({"X-Parley-Tenant": tenant} if tenant else {})}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    base_url = base_url.rstrip("/")
    async with httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=httpx.Timeout(60.0, connect=5.0),
        transport=transport,
    ) as client:
        chat = _Chat(client, base_url, out)
        if not await chat.reachable():
            return
        reader = _ListLines(lines) if lines is not None else _StdinLines()
        chat.say(f"Chatting with {base_url} as {user}. Type {QUIT} to leave.")
        while True:
            if lines is None:
                print("you> ", end="", file=out, flush=True)
            line = await reader.readline()
            if line is None:
                chat.say("")
                return
            text = line.strip()
            if not text:
                continue
            if text == QUIT:
                chat.say("bye")
                return
            try:
                await chat.send(chat.resolve_shortcut(text))
            except httpx.TransportError as exc:
                chat.unreachable(exc)
