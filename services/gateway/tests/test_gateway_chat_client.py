"""The terminal chat against the real HTTP app (in-process transport) and against nothing at all."""

from __future__ import annotations

import io
import socket

import httpx
import pytest

from parley.gateway import chat_client
from parley.gateway.chat_client import run_chat

from .conftest import Harness, make_settings


def transport(harness: Harness) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=harness.gateway.http_app)


async def test_chat_prints_replies_and_keeps_one_conversation(harness: Harness) -> None:
    out = io.StringIO()

    await run_chat(
        "http://gateway.test/",
        user="ann",
        lines=["hello", "", "1", "/quit", "never sent"],
        out=out,
        transport=transport(harness),
    )

    text = out.getvalue()
    assert "Chatting with http://gateway.test as ann. Type /quit to leave." in text
    assert "bot> echo: hello" in text
    assert "[1] Again" in text
    assert text.count("bot> echo: hello") == 2  # "1" picked the quick reply, whose payload is "hello"
    assert text.rstrip().endswith("bye")
    sent = [event.user_message.text for event in harness.assistant.seen]
    assert sent == ["hello", "hello"]
    assert len({event.conversation_id for event in harness.assistant.seen}) == 1
    assert {event.user_id for event in harness.assistant.seen} == {"ann"}


async def test_chat_shows_the_gateways_error_message(harness: Harness) -> None:
    out = io.StringIO()
    await run_chat("http://gateway.test", lines=["x" * 51], out=out, transport=transport(harness))
    assert "! text must be at most 50 characters" in out.getvalue()


@pytest.mark.parametrize("settings", [make_settings(reply_timeout_s=0.05)])
async def test_chat_reads_a_late_reply_from_the_history(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat_client, "_POLL_INTERVAL_S", 0.02)
    harness.assistant.silent = True
    harness.assistant.late_s = 0.1

    out = io.StringIO()
    await run_chat("http://gateway.test", lines=["hi"], out=out, transport=transport(harness))

    text = out.getvalue()
    assert "taking a moment" in text
    assert "bot> late echo: hi" in text


async def test_chat_says_clearly_when_the_gateway_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    out = io.StringIO()

    await run_chat(f"http://127.0.0.1:{port}", lines=["hello"], out=out)

    assert f"Cannot reach the Parley gateway at http://127.0.0.1:{port}" in out.getvalue()
    assert "Is it running?" in out.getvalue()
