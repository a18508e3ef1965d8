"""The example assistant's conversation tests (examples/order-support/tests/*.yml), one pytest test each.

The whole assistant runs in this process once for the session (real NLU model, context on PostgreSQL,
dialog engine, generator, in-memory bus); every conversation gets a fresh conversation id. The NLU model
is kept in .local/embedded/models (shared with `parley run`), so it is trained only when nlu.yml changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.cli.convtest import ConversationRunner, start_runner
from parley.core.convtest import TestConversation, format_result, load_tests

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "examples" / "order-support"
CONVERSATIONS = load_tests([PROJECT / "tests"])

# Training the NLU model (first run after nlu.yml changed) takes minutes on a small machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


@pytest.fixture(scope="session")
async def runner(postgres_dsn: str) -> AsyncIterator[ConversationRunner]:
    runner = await start_runner(PROJECT, data_dir=REPO / ".local" / "embedded", database_url=postgres_dsn)
    yield runner
    await runner.stop()


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=[c.test_id for c in CONVERSATIONS])
async def test_conversation(runner: ConversationRunner, conversation: TestConversation) -> None:
    if conversation.skip:
        pytest.skip(conversation.skip)
    result = await runner.run(conversation)
    assert result.passed, "\n" + format_result(result)


def test_every_test_file_was_collected() -> None:
    files = {c.file.name for c in CONVERSATIONS}
    assert files == {p.name for p in (PROJECT / "tests").glob("*.yml")}
    assert len(CONVERSATIONS) >= 20
