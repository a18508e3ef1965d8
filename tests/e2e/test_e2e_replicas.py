"""Two gateway processes in front of one stack: each reply reaches the replica that holds its request."""

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from parley.cli.stack import Stack
from parley.core.infra import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def second_gateway(e2e_stack: Stack) -> Iterator[str]:
    """Another gateway replica (own gRPC and HTTP ports, own instance id) on the same Kafka and context."""
    http_port = free_port()
    env = {
        **e2e_stack.config.env("gateway"),
        "PARLEY_GATEWAY_GRPC_PORT": str(free_port()),
        "PARLEY_GATEWAY_HTTP_PORT": str(http_port),
        "PARLEY_GATEWAY_INSTANCE_ID": "gateway-replica-2",
    }
    log_path = e2e_stack.config.run_dir / "gateway-2.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "parley.gateway"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"second gateway exited; see {log_path}"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"second gateway not ready; see {log_path}"
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def test_turns_alternating_between_two_replicas_each_get_their_own_reply(e2e_stack, second_gateway):
    async with (
        httpx.AsyncClient(base_url=e2e_stack.config.gateway_url, timeout=120) as one,
        httpx.AsyncClient(base_url=second_gateway, timeout=120) as two,
    ):
        created = await one.post("/v1/conversations", json={})
        conversation_id = created.json()["conversation_id"]
        script = [
            (one, "Hello, I need help with my order"),
            (two, "My order number is 12345"),
            (one, "When will it arrive?"),
        ]
        replies = []
        for client, text in script:
            response = await client.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text})
            assert response.status_code == 200, response.text  # the reply came to the replica that asked
            replies.append(response.json()["reply"]["text"])
        assert "12345" in replies[1] or "12345" in replies[2]
        # the second replica reads the history the first one's turns wrote
        history = await two.get(f"/v1/conversations/{conversation_id}/messages")
        assert [m["role"] for m in history.json()["messages"]] == ["user", "bot"] * 3


async def test_concurrent_conversations_on_both_replicas_get_exactly_their_replies(e2e_stack, second_gateway):
    async def converse(base_url: str, n: int) -> tuple[str, list[str]]:
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
            conversation_id = (await client.post("/v1/conversations", json={})).json()["conversation_id"]
            texts = []
            for text in ("Hi", f"My order number is {10000 + n}"):
                response = await client.post(
                    f"/v1/conversations/{conversation_id}/messages", json={"text": text}
                )
                assert response.status_code == 200, response.text
                texts.append(response.json()["reply"]["text"])
            return conversation_id, texts

    urls = [e2e_stack.config.gateway_url, second_gateway]
    results = await asyncio.gather(*(converse(urls[n % 2], n) for n in range(6)))
    assert len({conversation_id for conversation_id, _ in results}) == 6
    for n, (_, texts) in enumerate(results):
        others = {str(10000 + m) for m in range(6) if m != n}
        assert not any(other in texts[1] for other in others), (n, texts)  # no crossed replies
