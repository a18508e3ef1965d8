"""Running flows: steps execute until one needs the user (collect, question, confirm) or the flow ends.

The executor works on the top frame of the stack. A step either moves the frame (``next``, ``on_*``, a
branch), waits (it asks and sets the pending interaction), or changes the stack (``call`` pushes a
sub-flow, ``link`` replaces the flow, ``end``/``handoff`` finish it). When a flow ends it is popped and
remembered in the history; the frame below continues (a caller), is resumed or offered for resumption
(a flow interrupted by a digression), and when the stack is empty the next queued intent starts.
At most ``max_steps`` steps run per turn: a flow that loops without asking anything is stopped with an
error and a handoff rather than spinning.
"""

from __future__ import annotations

from parley.core.conditions import compile_condition, render_template
from parley.core.flows import (
    ActionStep,
    BranchStep,
    CallStep,
    CollectStep,
    ConfirmStep,
    EndStep,
    HandoffStep,
    LinkStep,
    QuestionStep,
    RespondStep,
    ValidateStep,
)
from parley.dialog.domain.catalog import Catalog
from parley.dialog.domain.slots import coerce
from parley.dialog.domain.state import HISTORY_LIMIT, Frame, HistoryEntry, Option, Pending, ToolCall
from parley.dialog.domain.turn import Work
from parley.dialog.ports import ToolRunner

#: Responses the engine says besides those named in ``flows.yml`` settings.
ERROR_RESPONSE = "utter_error"
TRANSITION_RESPONSE = "utter_transition"
SLOT_UPDATED_RESPONSE = "utter_slot_updated"
#: How deep ``call`` may nest flows.
MAX_DEPTH = 16


def ask_response(slot: str) -> str:
    """The default question of a collect step for ``slot``."""
    return f"utter_ask_{slot}"


def yes_no_options(work: Work) -> list[Option]:
    settings = work.settings
    return [
        Option(title="Yes", payload=f"/{settings.affirm_intent}", intent=settings.affirm_intent),
        Option(title="No", payload=f"/{settings.deny_intent}", intent=settings.deny_intent),
    ]


class Executor:
    """Runs the flows of one :class:`Catalog`; tool calls go through a :class:`ToolRunner`."""

    def __init__(self, catalog: Catalog, tools: ToolRunner, max_steps: int = 64) -> None:
        self.catalog = catalog
        self.tools = tools
        self.max_steps = max_steps

    # -- the loop

    async def run(self, work: Work) -> None:
        """Run until the conversation waits on the user, the stack is empty, or the turn stopped."""
        state = work.state
        while not work.stopped:
            pending = state.pending
            if pending is not None:
                if work.waiting() or pending.kind not in ("collect", "confirm", "question"):
                    return
                state.pending = None  # a step question that no longer matches the stack
            top = state.top
            if top is None:
                if not self.start_queued(work):
                    return
                continue
            if top.paused:
                self.resume_or_offer(work, top)
                continue
            await self.step(work, top)

    async def step(self, work: Work, frame: Frame) -> None:
        """Execute the frame's current step."""
        if work.steps >= self.max_steps:
            self.error(work, f"more than {self.max_steps} steps in one turn")
            return
        work.steps += 1
        step = self.catalog.step(frame.flow, frame.step)
        if step is None:
            self.finish(work, "completed")
            return
        frame.step_id = step.id
        if isinstance(step, RespondStep):
            work.emit(step.respond, step.kind)
            self.advance(work, frame, step.next)
        elif isinstance(step, CollectStep):
            self.collect(work, frame, step)
        elif isinstance(step, QuestionStep):
            self.prompt(work, frame, "question", step.question, "ask")
        elif isinstance(step, ConfirmStep):
            self.prompt(work, frame, "confirm", step.confirm, "confirm")
        elif isinstance(step, ValidateStep):
            self.validate(work, frame, step)
        elif isinstance(step, BranchStep):
            self.branch(work, frame, step)
        elif isinstance(step, ActionStep):
            await self.action(work, frame, step)
        elif isinstance(step, CallStep):
            self.call(work, frame, step)
        elif isinstance(step, LinkStep):
            self.link(work, frame, step)
        elif isinstance(step, HandoffStep):
            response = step.handoff if isinstance(step.handoff, str) else work.settings.fallback.handoff
            self.handoff(work, response, queue=step.queue)
        elif isinstance(step, EndStep):
            if step.end == "conversation":
                self.end_conversation(work, step.respond)
            else:
                if step.respond:
                    work.emit(step.respond, "provide_info")
                self.finish(work, "completed")

    # -- moving within a flow

    def advance(self, work: Work, frame: Frame, target: str | None) -> None:
        """Leave the current step for ``target`` (the next step when ``None``)."""
        if target is None:
            frame.attempts.pop(str(frame.step), None)
            self.move(frame, frame.step + 1)
        else:
            self.goto(work, frame, target)

    def goto(self, work: Work, frame: Frame, target: str) -> None:
        """Go to a step id, or ``end`` (the flow ends), ``handoff``, ``repeat`` (ask the step again)."""
        if target == "repeat":
            frame.attempts.pop(str(frame.step), None)
            work.reprompt()
            return
        frame.attempts.pop(str(frame.step), None)
        if target == "handoff":
            self.handoff(work, work.settings.fallback.handoff)
        elif target == "end":
            self.move(frame, self.catalog.length(frame.flow))
        else:
            index = self.catalog.index_of(frame.flow, target)
            if index is None:  # the catalog checked every target; a stale state may still name one
                self.error(work, f"flow {frame.flow!r} has no step {target!r}")
                return
            self.move(frame, index)

    def move(self, frame: Frame, index: int) -> None:
        frame.step = index
        step = self.catalog.step(frame.flow, index)
        frame.step_id = step.id if step is not None else None

    def prompt(
        self, work: Work, frame: Frame, kind: str, response: str, action_kind: str, slot: str | None = None
    ) -> None:
        """Ask the step's question and wait (a first ask counts as attempt 1; asking again after an
        interruption does not count)."""
        key = str(frame.step)
        frame.attempts[key] = max(1, frame.attempts.get(key, 0))
        extra = {"flow": self.catalog.title(frame.flow, work.state.slots)}
        options = yes_no_options(work) if kind == "confirm" else []
        work.emit(response, action_kind, extra, options=options)
        work.state.pending = Pending(
            kind=kind,
            flow=frame.flow,
            step=frame.step,
            slot=slot,
            asked_at=work.now,
            attempts=frame.attempts[key],
            response=response,
        )

    def collect(self, work: Work, frame: Frame, step: CollectStep) -> None:
        value = work.state.slots.get(step.collect)
        if value is not None and not step.ask_again:
            if step.validate_ and not compile_condition(step.validate_).evaluate(work.namespace(value=value)):
                work.set_slot(step.collect, None)
                invalid = step.invalid_response or self.catalog.slot_spec(step.collect).invalid_response
                if invalid:
                    work.emit(invalid, "provide_info", {"value": value})
            else:
                self.advance(work, frame, step.next)
                return
        self.prompt(work, frame, "collect", step.ask or ask_response(step.collect), "ask", slot=step.collect)

    def validate(self, work: Work, frame: Frame, step: ValidateStep) -> None:
        missing = [name for name in step.validate_ if work.state.slots.get(name) in (None, "", [])]
        ok = not missing and (
            step.condition is None or compile_condition(step.condition).evaluate(work.namespace())
        )
        if ok:
            self.advance(work, frame, step.on_success or step.next)
        else:
            self.goto(work, frame, step.on_missing)

    def branch(self, work: Work, frame: Frame, step: BranchStep) -> None:
        namespace = work.namespace()
        for case in step.branch:
            if case.if_ is None:
                self.goto(work, frame, case.else_)  # type: ignore[arg-type]  # a case has if or else
                return
            if compile_condition(case.if_).evaluate(namespace):
                self.goto(work, frame, case.then)  # type: ignore[arg-type]  # checked by BranchCase
                return
        self.advance(work, frame, step.next)

    async def action(self, work: Work, frame: Frame, step: ActionStep) -> None:
        values = {**work.params(), **work.namespace()["slots"]}
        args = render_template(dict(step.args), values)
        args = {k: v for k, v in args.items() if v is not None}
        try:
            result = await (work.runner or self.tools).call(step.action, args)
            call = ToolCall(step.action, args, bool(result.ok), result.data, result.error)
        except Exception as exc:  # the port reports errors as values; a bug in it must not lose the turn
            call = ToolCall(step.action, args, False, None, f"{type(exc).__name__}: {exc}")
        work.tools.append(call)
        if step.save_as:
            work.state.results[step.save_as] = call.data if call.ok else None
            if call.ok and step.save_as in self.catalog.slots:
                coerced = coerce(self.catalog.slot_spec(step.save_as), call.data)
                work.set_slot(step.save_as, coerced.value if coerced.ok else None)
        work.emit(
            step.action,
            "execute_task",
            {
                "tool": {
                    "name": call.name,
                    "args": dict(call.args),
                    "ok": call.ok,
                    "data": call.data,
                    "error": call.error,
                }
            },
        )
        if call.ok:
            self.advance(work, frame, step.next)
        elif step.on_error:
            self.goto(work, frame, step.on_error)
        else:
            work.emit(ERROR_RESPONSE, "unknown", {"error": call.error or ""})
            work.set_reason("tool_error")
            self.finish(work, "failed")

    def call(self, work: Work, frame: Frame, step: CallStep) -> None:
        if len(work.state.stack) >= MAX_DEPTH:
            self.error(work, f"flows call each other more than {MAX_DEPTH} deep")
            return
        self.advance(work, frame, step.next)
        work.state.stack.append(Frame(flow=step.call, via="call", intent=frame.intent))

    def link(self, work: Work, frame: Frame, step: LinkStep) -> None:
        self.remember(work, frame.flow, "linked")
        work.state.stack[-1] = Frame(flow=step.link, via=frame.via, intent=frame.intent)

    # -- finishing flows and conversations

    def remember(self, work: Work, flow: str, status: str) -> None:
        """Add a flow to the history with its key slot values."""
        slots = {
            name: work.state.slots[name] for name in self.catalog.key_slots(flow) if name in work.state.slots
        }
        work.state.history = [
            *work.state.history,
            HistoryEntry(flow=flow, status=status, slots=slots, turn=work.state.turns),
        ][-HISTORY_LIMIT:]

    def pop(self, work: Work, status: str) -> Frame:
        """Take the top frame off the stack, remembering it (a sub-flow is part of its caller) and
        clearing its slots."""
        frame = work.state.stack.pop()
        if frame.via != "call":
            self.remember(work, frame.flow, status)
        for name in self.catalog.reset_slots(frame.flow):
            work.set_slot(name, None)
        if work.state.pending is not None and work.state.pending.flow == frame.flow:
            work.state.pending = None
        return frame

    def finish(self, work: Work, status: str) -> None:
        """The top flow is done."""
        self.pop(work, status)

    def cancel_active(self, work: Work) -> str | None:
        """Cancel the running flow (with the sub-flows it called); returns its name."""
        cancelled = None
        while work.active() is not None:
            frame = self.pop(work, "cancelled")
            cancelled = frame.flow
            if frame.via != "call":
                break
        return cancelled

    def clear_stack(self, work: Work, status: str) -> None:
        while work.state.stack:
            self.pop(work, status)
        work.state.pending = None
        work.state.queue = []

    def handoff(self, work: Work, response: str, queue: str = "") -> None:
        """Hand the conversation to a human: every flow stops, nothing more happens this turn."""
        self.clear_stack(work, "handoff")
        work.emit(response, "handoff", {"queue": queue})
        work.state.handoff = True
        work.stopped = True
        work.set_reason("handoff")

    def end_conversation(self, work: Work, response: str | None = None) -> None:
        """End the conversation: the top flow completed, anything below it is dropped."""
        if work.state.stack:
            self.pop(work, "completed")
        self.clear_stack(work, "cancelled")
        work.emit(response or work.settings.goodbye_response, "end_conversation")
        work.state.ended = True
        work.stopped = True
        work.set_reason("end")

    def error(self, work: Work, why: str) -> None:
        """Something is wrong with the flows (a loop, a missing step): apologise and hand over."""
        work.emit(ERROR_RESPONSE, "unknown", {"error": why})
        work.set_reason("error")
        self.handoff(work, work.settings.fallback.handoff)
        work.set_reason("error")

    # -- between flows

    def resume_or_offer(self, work: Work, frame: Frame) -> None:
        """A flow interrupted by a digression is back on top: offer to resume it, or resume it."""
        spec = self.catalog.flow(frame.flow)
        if spec.ask_to_resume:
            response = work.settings.resume_response
            work.emit(
                response,
                "ask",
                {"flow": self.catalog.title(frame.flow, work.state.slots)},
                options=yes_no_options(work),
            )
            work.state.pending = Pending(kind="resume", flow=frame.flow, asked_at=work.now, response=response)
            return
        self.resume(work, frame)

    def resume(self, work: Work, frame: Frame) -> None:
        frame.paused = False
        work.set_reason("resume")

    def start(self, work: Work, flow: str, intent: str | None) -> Frame:
        """Push a new flow started by ``intent`` (it runs when the executor next runs)."""
        frame = Frame(flow=flow, via="trigger", intent=intent)
        work.state.stack.append(frame)
        return frame

    def start_queued(self, work: Work) -> bool:
        """Start the first queued intent that still triggers a flow, with a short transition."""
        state = work.state
        while state.queue:
            queued = state.queue.pop(0)
            flow = next(
                (
                    f
                    for f in self.catalog.flows_for(queued.intent)
                    if self.trigger_holds(work, f, needs_entities=False)
                ),
                None,
            )
            if flow is None:
                continue
            work.emit(TRANSITION_RESPONSE, "provide_info", {"flow": self.catalog.title(flow, state.slots)})
            work.set_reason("queued")
            self.start(work, flow, queued.intent)
            return True
        return False

    def trigger_holds(self, work: Work, flow: str, needs_entities: bool = True) -> bool:
        """Whether ``flow``'s trigger entities are in the message and its condition holds."""
        trigger = self.catalog.flow(flow).trigger
        if trigger is None:
            return False
        if needs_entities and any(e not in work.message.entities for e in trigger.entities):
            return False
        if trigger.condition is None:
            return True
        # A trigger reads the message's intent (in a flow, ``intent`` is the one that started it).
        return compile_condition(trigger.condition).evaluate(work.namespace(intent=work.message.top))
