"""Running conversation tests against the whole assistant in this process (``parley test`` and pytest).

The assistant is the embedded app: the real NLU model, the context service on PostgreSQL (the embedded
server unless a URL is given), the dialog engine, the generator and the in-memory bus. Each conversation
gets a fresh conversation id (and its own user, so profiles do not leak between conversations); each user
message is published as the gateway would publish it, and the turn's ``turn.decided`` and ``turn.replied``
events are what the expectations are checked against (see :mod:`parley.core.convtest` for the format).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from parley.cli.embedded import EmbeddedSettings, EmbeddedStack
from parley.common.v1 import common_pb2
from parley.context.v1 import context_pb2
from parley.core.bus.base import Outgoing, Subscription
from parley.core.context_client import ContextClient, to_struct
from parley.core.convtest import (
    ConversationResult,
    Observation,
    StepResult,
    TestConversation,
    check_step,
    format_result,
)
from parley.core.events import Topic, event_type, new_event
from parley.core.infra import free_port
from parley.core.rpc import InProcess
from parley.gateway.settings import GatewaySettings
from parley.turn.v1 import turn_event_pb2 as pb

#: The tenant every test conversation belongs to.
TENANT = "convtest"
#: The consumer group that watches decided and replied turns.
WATCHER = "convtest"


def observe(decided: pb.DecidedTurn | None, replied: pb.RepliedTurn) -> Observation:
    """What a turn did, from its decided turn (``None`` if it never came) and its reply."""
    reply = replied.reply
    if decided is None:
        return Observation(text=reply.text, quick_replies=tuple(q.title for q in reply.quick_replies))
    decision, understanding = decided.decision, decided.understanding
    entities: dict[str, list[str]] = {}
    for entity in sorted(understanding.entities, key=lambda e: (e.start, e.end)):
        entities.setdefault(entity.type, []).append(entity.value or entity.text)
    return Observation(
        text=reply.text,
        quick_replies=tuple(q.title for q in reply.quick_replies),
        actions=tuple((a.name, a.kind) for a in decision.actions),
        intent=understanding.intent.name,
        intents=tuple(i.name for i in understanding.intents),
        entities={k: tuple(v) for k, v in entities.items()},
        slots=MessageToDict(decision.slots) if decision.HasField("slots") else {},
        flow=decision.active_flow,
        step=decision.step,
        reason=decision.reason,
        ended=decision.ended,
        handoff=decision.handoff,
    )


class _Watcher:
    """Collects each turn's decided event and hands its reply to whoever waits for it."""

    def __init__(self) -> None:
        self.decided: dict[str, pb.DecidedTurn] = {}
        self._replies: dict[str, asyncio.Future[pb.RepliedTurn]] = {}

    def expect(self, turn_id: str) -> asyncio.Future[pb.RepliedTurn]:
        future: asyncio.Future[pb.RepliedTurn] = asyncio.get_running_loop().create_future()
        self._replies[turn_id] = future
        return future

    def forget(self, turn_id: str) -> None:
        self._replies.pop(turn_id, None)
        self.decided.pop(turn_id, None)

    async def handle(self, event: pb.TurnEvent) -> Sequence[Outgoing]:
        kind = event_type(event)
        if kind == "decided":
            self.decided[event.turn_id] = event.decided
        elif kind == "replied":
            future = self._replies.get(event.turn_id)
            if future is not None and not future.done():
                future.set_result(event.replied)
        return []

    def subscription(self) -> Subscription:
        return Subscription(name=WATCHER, topics=(Topic.DECIDED, Topic.REPLIED), handler=self.handle)


@dataclass
class ConversationRunner:
    """Runs test conversations through a started :class:`EmbeddedStack` (see :func:`start_runner`)."""

    stack: EmbeddedStack
    #: How long one turn may take before the step fails (the first parse also warms the NLU up).
    turn_timeout_s: float = 90.0
    _watcher: _Watcher = field(default_factory=_Watcher)

    async def start(self) -> None:
        """Start the stack with the watcher subscribed (it must be before the bus starts)."""
        self.stack.bus.subscribe(self._watcher.subscription())
        await self.stack.start()

    async def stop(self) -> None:
        """Stop the assistant (servers, bus, database pool)."""
        await self.stack.stop()

    @property
    def _context(self) -> ContextClient:
        assert self.stack.context is not None, "start() the runner first"
        return ContextClient.in_process(self.stack.context.servicer)

    async def run(self, conversation: TestConversation) -> ConversationResult:
        """Run one conversation step by step, stopping at the first step that fails."""
        result = ConversationResult(conversation)
        if conversation.skip:
            result.skipped = True
            return result
        started = time.perf_counter()
        user_id = f"convtest-{uuid.uuid4().hex[:12]}"
        try:
            if conversation.profile:
                await self._set_profile(user_id, conversation.profile)
            created = await self._context.create_conversation(TENANT, user_id)
            result.conversation_id = created.conversation_id
            for index, step in enumerate(conversation.steps):
                at = conversation.now + timedelta(seconds=index) if conversation.now else None
                outcome = StepResult(step)
                result.steps.append(outcome)
                try:
                    decided, replied = await self._turn(result.conversation_id, user_id, step.user, at)
                except TimeoutError as exc:
                    outcome.error = str(exc)
                    break
                outcome.observation = observe(decided, replied)
                if decided is None:
                    outcome.error = "the turn was replied to without a decided event"
                outcome.mismatches = check_step(step, outcome.observation)
                if not outcome.passed:
                    break
        except Exception as exc:  # a broken assistant fails the conversation, not the whole run
            result.error = f"{type(exc).__name__}: {exc}"
        result.duration_s = time.perf_counter() - started
        return result

    async def run_all(
        self,
        conversations: Sequence[TestConversation],
        on_result: Callable[[ConversationResult], None] | None = None,
    ) -> list[ConversationResult]:
        """Run conversations one after another (a turn's CPU is the NLU model: parallel runs gain little)."""
        results: list[ConversationResult] = []
        for conversation in conversations:
            result = await self.run(conversation)
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results

    async def _set_profile(self, user_id: str, profile: Mapping[str, Any]) -> None:
        request = context_pb2.UpdateProfileRequest(
            profile=context_pb2.UserProfile(
                principal=common_pb2.Principal(tenant_id=TENANT, user_id=user_id),
                display_name=str(profile.get("display_name", "")),
                timezone=str(profile.get("timezone", "")),
                locale=str(profile.get("locale", "")),
                preferences=to_struct(profile.get("preferences") or {}),
            )
        )
        assert self.stack.context is not None
        await InProcess(self.stack.context.servicer).call("UpdateProfile", request)

    async def _turn(
        self, conversation_id: str, user_id: str, text: str, at: datetime | None
    ) -> tuple[pb.DecidedTurn | None, pb.RepliedTurn]:
        turn_id = str(uuid.uuid4())
        event = new_event(
            conversation_id=conversation_id,
            tenant_id=TENANT,
            user_id=user_id,
            turn_id=turn_id,
            origin=WATCHER,
            user_message=pb.UserMessage(text=text),
        )
        if at is not None:
            stamp = Timestamp()
            stamp.FromDatetime(at)
            event.occurred_at.CopyFrom(stamp)
        reply = self._watcher.expect(turn_id)
        try:
            await self.stack.bus.publish(Topic.USER_MESSAGE, event)
            try:
                replied = await asyncio.wait_for(reply, self.turn_timeout_s)
            except TimeoutError as exc:
                raise TimeoutError(self._why_no_reply(conversation_id)) from exc
            return self._watcher.decided.get(turn_id), replied
        finally:
            self._watcher.forget(turn_id)

    def _why_no_reply(self, conversation_id: str) -> str:
        letters = [d for d in self.stack.bus.dead_letters if d.key == conversation_id]
        if letters:
            last = letters[-1]
            return f"no reply: the {last.stage} stage gave up on the turn: {last.error}"
        return f"no reply within {self.turn_timeout_s:g} s"


async def start_runner(
    project_dir: Path,
    *,
    data_dir: Path | None = None,
    database_url: str | None = None,
    turn_timeout_s: float = 90.0,
) -> ConversationRunner:
    """A started runner over the embedded app of ``project_dir`` (servers on free local ports).

    ``data_dir`` holds the embedded PostgreSQL and the NLU models (default ``.local/embedded``, shared with
    ``parley run``, so the model trained there is reused); ``database_url`` uses that server instead.
    """
    settings = EmbeddedSettings(grpc_port=free_port())
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    stack = EmbeddedStack(
        project_dir=project_dir,
        settings=settings,
        gateway_settings=GatewaySettings(http_port=free_port(), grpc_port=free_port()),
        database_url=database_url,
    )
    runner = ConversationRunner(stack, turn_timeout_s=turn_timeout_s)
    try:
        await runner.start()
    except BaseException:
        await stack.stop()
        raise
    return runner


class Progress:
    """A one-line progress bar on a terminal (nothing when the output is not one)."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = total > 1 and self.stream.isatty()
        self._current = ""

    def advance(self, result: ConversationResult) -> None:
        self.done += 1
        self.failed += not result.passed
        self._current = result.conversation.name

    def draw(self) -> None:
        if not self.enabled:
            return
        filled = round(self.width * self.done / self.total)
        bar = "█" * filled + "·" * (self.width - filled)
        self.stream.write(
            f"\r[{bar}] {self.done}/{self.total}, {self.failed} failed  {self._current[:40]:<40}"
        )
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * (self.width + 70) + "\r")
            self.stream.flush()


def select(conversations: Sequence[TestConversation], pattern: str | None) -> list[TestConversation]:
    """The conversations whose ``file::name`` contains ``pattern`` (ignoring case); all without one."""
    if not pattern:
        return list(conversations)
    return [c for c in conversations if pattern.casefold() in c.test_id.casefold()]


async def run_tests(
    project_dir: Path,
    conversations: Sequence[TestConversation],
    *,
    out: TextIO = sys.stdout,
    verbose: bool = False,
    data_dir: Path | None = None,
    database_url: str | None = None,
    turn_timeout_s: float = 90.0,
) -> list[ConversationResult]:
    """Start the assistant, run ``conversations`` printing each verdict (failures in full), stop it."""
    progress = Progress(len(conversations))
    runner = await start_runner(
        project_dir, data_dir=data_dir, database_url=database_url, turn_timeout_s=turn_timeout_s
    )

    def show(result: ConversationResult) -> None:
        progress.advance(result)
        progress.clear()
        print(format_result(result, verbose=verbose), file=out, flush=True)
        progress.draw()

    try:
        progress.draw()
        return await runner.run_all(conversations, on_result=show)
    finally:
        progress.clear()
        await runner.stop()


def test_command(
    project_dir: Path,
    files: Sequence[Path],
    *,
    junit: Path | None = None,
    pattern: str | None = None,
    verbose: bool = False,
    turn_timeout_s: float = 90.0,
    out: TextIO = sys.stdout,
) -> int:
    """``parley test``: 0 when every conversation passes, 1 when one fails, 2 when nothing could run."""
    from parley.core.convtest import ConvTestError, junit_xml, load_tests  # noqa: PLC0415
    from parley.core.logging import configure_logging  # noqa: PLC0415
    from parley.core.project import ProjectError, load_project  # noqa: PLC0415
    from parley.core.settings import LogSettings  # noqa: PLC0415

    err = sys.stderr
    try:
        load_project(project_dir)
    except ProjectError as exc:
        print("\n".join(exc.problems), file=err)
        return 2
    paths = list(files) or [project_dir / "tests"]
    try:
        conversations = select(load_tests(paths), pattern)
    except ConvTestError as exc:
        print("\n".join(exc.problems), file=err)
        return 2
    if not conversations:
        print(f"no conversations to run in {', '.join(map(str, paths))}", file=err)
        return 2
    if "level" not in LogSettings().model_fields_set:
        configure_logging(LogSettings(level="WARNING"), service="parley-test")
    print(
        f"running {len(conversations)} conversation(s) against {project_dir} "
        "(the NLU model trains first if it has not yet)",
        file=err,
        flush=True,
    )
    started = time.perf_counter()
    results = asyncio.run(
        run_tests(project_dir, conversations, out=out, verbose=verbose, turn_timeout_s=turn_timeout_s)
    )
    failed = [r for r in results if not r.passed]
    skipped = sum(r.skipped for r in results)
    summary = f"{len(results) - len(failed) - skipped} passed, {len(failed)} failed"
    summary += f", {skipped} skipped" if skipped else ""
    print(f"\n{summary} in {time.perf_counter() - started:.1f} s", file=out)
    for result in failed:
        print(f"  FAILED {result.conversation.test_id}", file=out)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(junit_xml(results), encoding="utf-8")
        print(f"JUnit report: {junit}", file=out)
    return 1 if failed else 0
