"""The web chat page in a real browser: headless Chromium (the system one) against a running gateway.

The first test chats with the REAL assistant (the embedded stack: NLU model, dialog, generator, context on
PostgreSQL) through the order conversation, rates a reply with a thumb and checks the feedback reached
PostgreSQL; it leaves a screenshot in ``.local/artifacts/web-chat.png`` (set
``PARLEY_UPDATE_DOCS_SCREENSHOT=1`` to refresh ``docs/img/web-chat.png`` as well). The second puts a
scripted assistant behind the gateway to check what the real one cannot produce on demand: hostile reply
text and links, and quick replies.

Playwright drives the system Chromium (``/usr/bin/chromium``, or ``PARLEY_TEST_CHROMIUM``); it never
downloads a browser. Without Chromium the tests are skipped, except under ``CI=true``, where they fail
(``make setup`` installs it on Debian).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from parley.cli.convtest import start_runner
from parley.common.v1 import common_pb2
from parley.context.v1 import context_pb2 as ctx
from parley.core.bus import InMemoryBus, Outgoing, Subscription
from parley.core.errors import NotFoundError
from parley.core.events import Topic, derive_event
from parley.core.infra import free_port
from parley.core.testing.fixtures import unavailable
from parley.gateway.app import GatewayServer
from parley.gateway.settings import GatewaySettings
from parley.generator.v1 import generator_pb2
from parley.turn.v1 import turn_event_pb2 as pb

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "examples" / "order-support"
ARTIFACTS = REPO / ".local" / "artifacts"
DOCS_SCREENSHOT = REPO / "docs" / "img" / "web-chat.png"
CHROMIUM_ENV = "PARLEY_TEST_CHROMIUM"
REPLY_TIMEOUT_MS = 90_000

# The first start may train the NLU model (minutes on a small machine); later runs reuse it.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

BOT = '[data-testid="message-bot"]'
FINAL_BOT = '[data-testid="message-bot"][data-state="final"]'


def chromium_path() -> str:
    """The system Chromium: ``PARLEY_TEST_CHROMIUM``, else ``chromium`` / ``chromium-browser`` on PATH."""
    given = os.environ.get(CHROMIUM_ENV)
    if given:
        if not Path(given).is_file():
            unavailable(f"{CHROMIUM_ENV}={given} is not a file")
        return given
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    unavailable(
        "no Chromium for the browser test: install it (Debian: apt-get install chromium; `make setup` does) "
        f"or set {CHROMIUM_ENV}"
    )


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 760, "height": 700}, device_scale_factor=1)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        await context.close()
    assert errors == [], f"the page raised: {errors}"


async def say(page: Page, text: str) -> str:
    """Type ``text``, send it with Enter, wait for the next finished bot reply and return its text."""
    replies = await page.locator(FINAL_BOT).count()
    await page.get_by_test_id("message-input").fill(text)
    await page.get_by_test_id("message-input").press("Enter")
    await expect(page.get_by_test_id("message-user").last).to_have_text(text)
    await expect(page.locator(FINAL_BOT)).to_have_count(replies + 1, timeout=REPLY_TIMEOUT_MS)
    await expect(page.get_by_test_id("send-button")).to_be_enabled()
    return await page.locator(FINAL_BOT).last.inner_text()


# ----------------------------------------------------------------------------------- the real assistant


async def test_order_conversation_in_the_browser(page: Page, postgres_dsn: str) -> None:
    runner = await start_runner(PROJECT, data_dir=REPO / ".local" / "embedded", database_url=postgres_dsn)
    try:
        await page.goto(runner.stack.url)
        await expect(page.get_by_test_id("note")).to_have_text("Say hello!")

        asked = await say(page, "Hello, I need help with my order")
        assert "order number" in asked
        shipped = await say(page, "My order number is 12345")
        assert "Order 12345" in shipped and "shipped" in shipped
        # The shipped reply carries a link: a plain anchor that opens a new tab without an opener.
        link = page.get_by_test_id("reply-link")
        await expect(link).to_have_count(1)
        await expect(link).to_have_text("Delivery questions")
        assert await link.get_attribute("href") == "https://shop.example.com/help/delivery"
        assert await link.get_attribute("target") == "_blank"
        assert await link.get_attribute("rel") == "noopener noreferrer"
        estimate = await say(page, "When will it arrive?")
        assert "Order 12345 should arrive on" in estimate

        # Every reply can be rated; thumbs up on the last one.
        feedback = page.get_by_test_id("feedback")
        await expect(feedback).to_have_count(3)
        last = feedback.last
        turn_id = await last.get_attribute("data-turn-id")
        await last.get_by_test_id("feedback-up").click()
        await expect(last.get_by_test_id("feedback-status")).to_have_text("Thanks for your feedback")
        await expect(last.get_by_test_id("feedback-up")).to_have_attribute("aria-pressed", "true")
        await expect(last.get_by_test_id("feedback-down")).to_be_disabled()

        conversation_id = await page.locator(FINAL_BOT).last.get_attribute("data-conversation-id")
        assert conversation_id is not None and turn_id is not None
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "web-chat.png"
        await page.screenshot(path=str(shot))
        if os.environ.get("PARLEY_UPDATE_DOCS_SCREENSHOT"):
            DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, DOCS_SCREENSHOT)
    finally:
        await runner.stop()

    conn = await asyncpg.connect(postgres_dsn)
    try:
        rows = await conn.fetch(
            "SELECT turn_id, rating, resolved FROM feedback WHERE conversation_id = $1",
            uuid.UUID(conversation_id),
        )
    finally:
        await conn.close()
    assert [(r["turn_id"], r["rating"], r["resolved"]) for r in rows] == [(turn_id, 5, True)]


# ------------------------------------------------------------------------------- a scripted assistant


HOSTILE = '<img src=x onerror="window.__pwned=1"><b>bold?</b>'


class Scripted:
    """Answers every message with hostile text, one good and two bad links, and two quick replies."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def subscription(self) -> Subscription:
        return Subscription("scripted", (Topic.USER_MESSAGE,), self.handle)

    async def handle(self, event: pb.TurnEvent) -> Sequence[Outgoing]:
        self.seen.append(event.user_message.text)
        reply = generator_pb2.Reply(
            text=f"{HOSTILE} you said {event.user_message.text}",
            quick_replies=[
                generator_pb2.QuickReply(title="Track it", payload="/order_status"),
                generator_pb2.QuickReply(title="Never mind", payload="/goodbye"),
            ],
            links=[
                generator_pb2.Link(title="<i>Help</i>", url="https://example.org/help?a=1&b=2"),
                generator_pb2.Link(title="evil", url="javascript:window.__pwned=2"),
                generator_pb2.Link(title="data", url="data:text/html,<script>alert(1)</script>"),
            ],
        )
        return [
            Outgoing(Topic.REPLIED, derive_event(event, "generator", replied=pb.RepliedTurn(reply=reply)))
        ]


async def test_replies_render_as_text_links_are_safe_and_quick_replies_send(page: Page) -> None:
    bus = InMemoryBus()
    scripted = Scripted()
    bus.subscribe(scripted.subscription())
    conversations = _MemoryConversations()
    server = GatewayServer(
        GatewaySettings(http_port=free_port(), grpc_port=free_port(), reply_timeout_s=10),
        bus,
        conversations,
    )
    await server.start()
    try:
        await page.goto(f"http://127.0.0.1:{server.http_port}/")
        text = await say(page, "hello")
        assert text == f"{HOSTILE} you said hello"  # shown as text, not parsed as markup
        assert await page.locator("#log img, #log b, #log i").count() == 0
        assert await page.evaluate("window.__pwned") is None

        links = page.get_by_test_id("reply-link")
        await expect(links).to_have_count(1)  # javascript: and data: URLs are not made clickable
        await expect(links).to_have_text("<i>Help</i>")
        assert await links.get_attribute("href") == "https://example.org/help?a=1&b=2"
        assert await links.get_attribute("rel") == "noopener noreferrer"

        quick = page.get_by_test_id("quick-reply")
        await expect(quick).to_have_count(2)
        await quick.first.click()
        await expect(page.locator(FINAL_BOT)).to_have_count(2, timeout=REPLY_TIMEOUT_MS)
        assert scripted.seen == ["hello", "/order_status"]
        await expect(page.get_by_test_id("message-user").last).to_have_text("Track it")
        await expect(page.get_by_test_id("quick-replies").first.locator("button").first).to_be_disabled()

        # Thumbs down stores satisfaction 1 for that turn.
        await page.get_by_test_id("feedback").first.get_by_test_id("feedback-down").click()
        await expect(page.get_by_test_id("feedback-status").first).to_have_text("Thanks for your feedback")
        [stored] = conversations.feedback
        assert (stored.rating, stored.HasField("resolved")) == (1, False)
        first_turn = await page.locator(BOT).first.get_attribute("data-turn-id")
        assert stored.turn_id == first_turn
    finally:
        await server.stop()


class _MemoryConversations:
    """The context service's conversations and feedback, in memory (owner checks included)."""

    def __init__(self) -> None:
        self.owners: dict[str, tuple[str, str]] = {}
        self.feedback: list[ctx.Feedback] = []

    async def create_conversation(self, tenant_id: str, user_id: str, conversation_id: str = ""):
        conversation_id = conversation_id or str(uuid.uuid4())
        self.owners[conversation_id] = (tenant_id, user_id)
        return ctx.Conversation(
            conversation_id=conversation_id,
            principal=common_pb2.Principal(tenant_id=tenant_id, user_id=user_id),
        )

    def _check(self, conversation_id: str, tenant_id: str, user_id: str) -> None:
        if self.owners.get(conversation_id) != (tenant_id, user_id):
            raise NotFoundError(f"conversation {conversation_id} not found")

    async def get_conversation(
        self, conversation_id: str, tenant_id: str, user_id: str, page_size: int = 50, page_token: str = ""
    ):
        self._check(conversation_id, tenant_id, user_id)
        return ctx.GetConversationResponse()

    async def record_feedback(
        self,
        conversation_id: str,
        tenant_id: str,
        user_id: str,
        *,
        rating: int = 0,
        resolved: bool | None = None,
        comment: str = "",
        turn_id: str = "",
        feedback_id: str = "",
    ):
        self._check(conversation_id, tenant_id, user_id)
        feedback = ctx.Feedback(
            feedback_id=feedback_id or str(uuid.uuid4()),
            conversation_id=conversation_id,
            turn_id=turn_id,
            rating=rating,
            comment=comment,
        )
        if resolved is not None:
            feedback.resolved = resolved
        self.feedback.append(feedback)
        return feedback
