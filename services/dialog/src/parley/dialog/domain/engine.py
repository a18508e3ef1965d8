"""The flow engine: from the dialog state and what NLU understood, the next actions and the next state.

Pure and deterministic: no I/O but the :class:`~parley.dialog.ports.ToolRunner` port (``action`` steps),
no clock (the turn carries ``now``), no randomness; the given state is never changed (the engine works on
a copy). One turn, in this order of precedence:

1. **Replay**: a turn already in the ``applied`` log returns its recorded decision, nothing changes.
2. **Restart**: a conversation that ended (or was handed to a human) starts afresh on a new message
   (slots and history are kept).
3. **Timeout**: a question asked more than its ``timeout_s`` ago goes to ``on_timeout``; the message is then
   not taken as its answer.
4. **Slot filling** from entities, for slots with ``fill: always`` (coerced and validated; an invalid
   value is ignored).
5. **The pending interaction**, when the message answers it: a question (an ``expect``-ed intent), a
   confirmation (affirm; deny; a correction such as "no, make it Tuesday": the slot changes and the
   confirmation is asked again), a clarification (the option picked by intent, title or number), a
   conflict between slots (the value to keep), a resume offer (affirm resumes, deny drops the flow), or
   a slot being collected (its entity, or the message text when no other intent claims the message; an
   intent starting another flow that does not collect this slot makes the message a digression instead).
6. **Meta intents**: ``cancel`` (the running flow is cancelled, a pending offer dropped; the message's
   other intents are handled right after: "Actually, forget that. Tell me about the weather"),
   ``correct`` (the slot of each entity type is replaced; a confirmation already given is asked again),
   ``human_handoff``, ``goodbye`` (ends the conversation), ``greet`` (unless a flow triggers on it).
7. **Clarification** when NLU reports ``requires_clarification`` and its top intents start different
   flows: the user is asked which one, with options.
8. **Flow triggering** by intent, confidence, trigger entities and condition: the first flow intent
   starts its flow (or, while another flow runs, interrupts it when it is ``interruptible``: a digression;
   the same flow's intent just continues it); the message's further flow intents are queued and start
   when the current flow is done. Slots the new flow collects are filled from the message's entities.
9. **A back-reference** not otherwise understood ("I want that thing we discussed", or an NLU ambiguity
   no flow resolves): a clarification offering the recent flows (paused ones, then the history with their
   slot values; without any, flows using an entity the context snapshot tracks).
10. **Not understood**: the collect/question/confirm the flow waits on is asked again (``reask``) until
    its ``max_attempts``, then ``on_fail`` (``on_deny`` for a confirmation); with nothing waiting, the
    fallback ladder: rephrase, then options, then a human after ``handoff_after`` failures in a row.
    Any understood turn resets the ladder.
11. **Constraints** over the slots changed this turn: a contradiction ("a vegetarian meal with bacon")
    asks which value to keep, and the flow waits for the answer.
12. **Execution**: the top flow runs until it needs the user or ends (see
    :mod:`parley.dialog.domain.executor`); then the decision is recorded in ``applied``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from parley.core.conditions import compile_condition
from parley.core.flows import CollectStep, ConfirmStep, FlowsFileV2, QuestionStep
from parley.dialog.domain.catalog import Catalog
from parley.dialog.domain.executor import SLOT_UPDATED_RESPONSE, Executor, ask_response, yes_no_options
from parley.dialog.domain.slots import Coerced, coerce, normalise
from parley.dialog.domain.state import (
    STEP_KINDS,
    AppliedDecision,
    DecisionInfo,
    DialogState,
    Option,
    Pending,
    QueuedIntent,
)
from parley.dialog.domain.turn import Message, Turn, TurnResult, Work
from parley.dialog.ports import NoTools, ToolRunner

#: A message that points back at something said before ("that thing we discussed", "like last time").
BACK_REFERENCE = re.compile(
    r"\b(?:we|you|i)\s+(?:discussed|talked|spoke|were\s+talking|mentioned|said)\b"
    r"|\b(?:earlier|last\s+time|before)\b"
    r"|\bthat\s+(?:thing|one|stuff|matter|issue)\b",
    re.IGNORECASE,
)
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5}
_ORDINAL = re.compile(
    r"^(?:(?:option|number|no\.?)\s*|the\s+)?(?P<n>\d+|first|second|third|fourth|fifth|last)"
    r"(?:st|nd|rd|th)?(?:\s+(?:one|option))?[.!]?$",
    re.IGNORECASE,
)
#: How many options a clarification or the fallback ladder offers.
MAX_OPTIONS = 5
#: How often a conflict question is asked before both values are dropped.
CONFLICT_ATTEMPTS = 2


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s/]", " ", text.casefold()).split())


def _text(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


class Engine:
    """Decides turns with the flows of a project (``flows.yml`` version 2)."""

    def __init__(
        self,
        flows: FlowsFileV2,
        tools: ToolRunner | None = None,
        *,
        min_confidence: float = 0.5,
        max_steps: int = 64,
    ) -> None:
        self.catalog = Catalog(flows, min_confidence)
        self.executor = Executor(self.catalog, tools if tools is not None else NoTools(), max_steps)

    @property
    def tools(self) -> ToolRunner:
        """The runner of the project's tools."""
        return self.executor.tools

    @classmethod
    def from_project(cls, project: Any, tools: ToolRunner | None = None) -> Engine:
        """The engine of a loaded project (its NLU fallback threshold is the default confidence floor)."""
        return cls(project.flows, tools, min_confidence=project.assistant.nlu.fallback_threshold)

    # -- the turn

    async def decide(self, state: DialogState, turn: Turn, tools: ToolRunner | None = None) -> TurnResult:
        """The actions for ``turn`` and the state after it, with the decision remembered in ``applied``
        under ``turn.event_id`` (so deciding the same turn again returns the same decision).

        ``tools`` runs this turn's tool calls instead of the engine's runner (a replay passes recorded
        results; the manager passes a memo so a retried turn does not repeat a call)."""
        done = state.applied_for(turn.event_id)
        if done is not None:
            info = done.decision
            return TurnResult(
                state=state,
                actions=done.actions,
                reason=info.reason,
                active_flow=info.active_flow,
                step=info.step,
                slots=info.slots,
                ended=info.ended,
                handoff=info.handoff,
                tools=done.tools,
                replayed=True,
            )
        message = Message.of(turn.understanding)
        work = Work(self.catalog, state.copy(), turn, message, intents=list(message.intents), runner=tools)
        await self._turn(work)
        return self._result(work)

    async def _turn(self, work: Work) -> None:
        """The order of precedence of the module docstring; a phase that ends or hands over the
        conversation (``work.stopped``) ends the turn."""
        self._prepare(work)
        timed_out = self._timeout(work)
        self._fill_always(work)
        answered = False
        if not work.stopped and not timed_out and work.state.pending is not None:
            answered = self._answer_pending(work)
        if work.stopped:
            return
        handled = self._meta(work) or answered or timed_out
        if work.stopped:
            return
        if not handled:
            handled = self._clarify_intents(work)
        # Once the message answered the flow's question, its other flow intents wait their turn.
        handled = self._trigger(work, queue_only=answered) or handled
        if not handled:
            handled = self._back_reference(work) or self._unanswered(work)
        if handled:
            work.state.failures = 0
        else:
            self._not_understood(work)
        if work.stopped or self._conflicts(work):
            return
        await self.executor.run(work)
        if not work.stopped and not any(a.kind != "execute_task" for a in work.actions):
            self._say_something(work)

    def _result(self, work: Work) -> TurnResult:
        state = work.state
        state.last_turn_at = work.now
        top = work.active()
        info = DecisionInfo(
            reason=work.reason or "flow",
            active_flow=top.flow if top else "",
            step=self.catalog.step_name(top.flow, top.step) if top else "",
            slots=dict(state.slots),
            ended=state.ended,
            handoff=state.handoff,
        )
        state.remember(
            AppliedDecision(
                event_id=work.turn.event_id,
                actions=tuple(work.actions),
                at=work.now,
                tools=tuple(work.tools),
                decision=info,
            )
        )
        return TurnResult(
            state=state,
            actions=tuple(work.actions),
            reason=info.reason,
            active_flow=info.active_flow,
            step=info.step,
            slots=info.slots,
            ended=info.ended,
            handoff=info.handoff,
            tools=tuple(work.tools),
        )

    # -- 2. preparing the state

    def _prepare(self, work: Work) -> None:
        """Count the turn, drop what the current flows no longer know, restart an ended conversation."""
        state, catalog = work.state, self.catalog
        if state.turns == 0:  # a new conversation: slots start at their initial values
            state.slots.update({n: s.initial for n, s in catalog.slots.items() if s.initial is not None})
        state.turns += 1
        if state.ended or state.handoff:
            state.stack, state.pending, state.queue, state.failures = [], None, [], 0
            state.ended = state.handoff = False
        state.slots = {k: normalise(catalog.slots.get(k), v) for k, v in state.slots.items()}
        frames = []
        for frame in state.stack:
            if not catalog.has_flow(frame.flow):
                continue
            if (
                frame.step_id is not None
                and (index := catalog.index_of(frame.flow, frame.step_id)) is not None
            ):
                frame.step = index
            frame.step = min(frame.step, catalog.length(frame.flow))
            frames.append(frame)
        state.stack = frames
        pending = state.pending
        if pending is not None and pending.kind in STEP_KINDS and not work.waiting():
            state.pending = None
        if pending is not None and pending.kind == "resume" and not (work.top and work.top.paused):
            state.pending = None

    # -- 3. question timeouts

    def _timeout(self, work: Work) -> bool:
        pending, frame = work.state.pending, work.active()
        if pending is None or pending.kind != "question" or frame is None or not work.waiting():
            return False
        step = self.catalog.step(frame.flow, frame.step)
        if not isinstance(step, QuestionStep) or step.timeout_s is None or pending.asked_at is None:
            return False
        if work.now - pending.asked_at < step.timeout_s:
            return False
        work.state.pending = None
        work.set_reason("timeout")
        self.executor.goto(work, frame, step.on_timeout or "repeat")
        return True

    # -- 4. slot filling

    def _assign(self, work: Work, names: Sequence[str], values: list[Any], overwrite: bool = False) -> None:
        """Values of one entity type to the slots mapping it: one slot takes the first value (a list slot
        all of them); several slots take one value each, in order: the empty ones, or all of them when
        ``overwrite`` (a message that starts a flow: "a flight from Rome to Oslo")."""
        if not names or not values:
            return
        if len(names) == 1:
            name = names[0]
            work.fill(name, values if self.catalog.slot_spec(name).type == "list" else values[0])
            return
        targets = names if overwrite else [n for n in names if work.state.slots.get(n) is None]
        for name, value in zip(targets, values, strict=False):
            work.fill(name, value)

    def _fill_always(self, work: Work) -> None:
        for entity, values in work.message.entities.items():
            names = [
                n for n in self.catalog.slots_for_entity(entity) if self.catalog.slots[n].fill == "always"
            ]
            self._assign(work, names, values)

    def _fill_flow_slots(
        self,
        work: Work,
        flow: str,
        overwrite: bool,
        skip: str | None = None,
        used: dict[str, int] | None = None,
    ) -> None:
        """Fill the ``when_asked`` slots a flow collects from the message that started it (``overwrite``:
        the message is the new request), or from one said while it runs (only empty slots; ``skip``: the
        slot asked, ``used``: how many values of an entity type the answer itself took)."""
        collected = [n for n in self.catalog.collected_slots(flow) if n != skip]
        for entity, all_values in work.message.entities.items():
            values = all_values[(used or {}).get(entity, 0) :]
            names = [
                n
                for n in collected
                if self.catalog.slot_spec(n).entity == entity
                and self.catalog.slot_spec(n).fill == "when_asked"
            ]
            if not overwrite:
                names = [n for n in names if work.state.slots.get(n) is None]
            self._assign(work, names, values, overwrite=overwrite)

    # -- 5. the pending interaction

    def _answer_pending(self, work: Work) -> bool:
        kind = work.state.pending.kind  # type: ignore[union-attr]  # checked by the caller
        if kind == "collect":
            return self._answer_collect(work)
        if kind == "question":
            return self._answer_question(work)
        if kind == "confirm":
            return self._answer_confirm(work)
        if kind == "clarify":
            return self._answer_clarify(work)
        if kind == "conflict":
            return self._answer_conflict(work)
        return self._answer_resume(work)

    def _free_text(self, work: Work) -> bool:
        """Whether the message's text may be taken as the answer itself: nothing else claims it (a meta
        intent, a flow's trigger), it is not out of scope and does not point back at earlier talk."""
        message, top = work.message, work.understood_top()
        if not message.text or message.out_of_scope or BACK_REFERENCE.search(message.text):
            return False
        return not top or (top not in self.catalog.meta_intents and not self.catalog.flows_for(top))

    def _other_flow(self, work: Work, intent: str) -> str | None:
        """The flow other than the running one that ``intent`` (as confident as this message says) starts."""
        confidence = next((c for name, c in work.intents if name == intent), 0.0)
        flow, active = self._select(work, intent, confidence), work.active()
        return flow if flow is not None and (active is None or flow != active.flow) else None

    def _answer_collect(self, work: Work) -> bool:
        frame, pending = work.active(), work.state.pending
        step = self.catalog.step(frame.flow, frame.step)  # type: ignore[union-attr]  # waiting() holds
        if not isinstance(step, CollectStep) or pending is None:
            return False
        slot = step.collect
        top = work.understood_top()
        other = self._other_flow(work, top) if top else None
        if other is not None and slot not in self.catalog.collected_slots(other):
            # A request for something else ("what's the weather in Paris?" when asked where from): a
            # digression. An intent whose flow wants this very slot ("12345" read as "check an order")
            # is taken as the answer.
            return False
        spec = self.catalog.slot_spec(slot)
        raw: Any = None
        if slot in work.changed and work.state.slots.get(slot) is not None:
            raw = work.state.slots[slot]
        elif spec.entity and spec.entity in work.message.entities:
            values = work.message.entities[spec.entity]
            raw = values if spec.type == "list" else values[0]
        elif spec.type == "bool" and work.confident(work.settings.affirm_intent):
            raw = True
        elif spec.type == "bool" and work.confident(work.settings.deny_intent):
            raw = False
        elif self._free_text(work):
            raw = work.message.text
        if raw is None:
            return False
        result = coerce(spec, raw)
        if (
            result.ok
            and step.validate_
            and not compile_condition(step.validate_).evaluate(work.namespace(value=result.value))
        ):
            result = Coerced(False, raw=raw, reason="failed the step's check")
        if top and top not in self.catalog.meta_intents:
            work.consume(top)
        if not result.ok:
            if slot in work.changed:
                work.set_slot(slot, None)  # filled from an entity this turn, but not good enough here
            invalid = step.invalid_response or spec.invalid_response
            if invalid:
                work.emit(invalid, "provide_info", {"value": _text(raw)})
            self._failed_attempt(work)
            work.set_reason("invalid")
            return True
        work.set_slot(slot, result.value)
        used = {spec.entity: 1} if spec.entity and spec.type != "list" else {}
        self._fill_flow_slots(work, frame.flow, overwrite=False, skip=slot, used=used)  # type: ignore[union-attr]
        work.state.pending = None
        self.executor.advance(work, frame, step.next)  # type: ignore[arg-type]
        work.set_reason("flow")
        return True

    def _answer_question(self, work: Work) -> bool:
        frame = work.active()
        step = self.catalog.step(frame.flow, frame.step)  # type: ignore[union-attr]
        if not isinstance(step, QuestionStep):
            return False
        for intent, _ in list(work.intents):
            if intent in step.expect and work.confident(intent):
                work.consume(intent)
                work.state.pending = None
                self.executor.goto(work, frame, step.expect[intent])  # type: ignore[arg-type]
                work.set_reason("flow")
                return True
        return False

    def _answer_confirm(self, work: Work) -> bool:
        frame = work.active()
        step = self.catalog.step(frame.flow, frame.step) if frame is not None else None
        if not isinstance(step, ConfirmStep) or frame is None:
            return False
        settings = work.settings
        correcting = work.confident(settings.correct_intent)
        if correcting:
            self._correct(work)
        # An explicit correction may change any slot; otherwise only new values of this flow's slots count.
        changed = work.changed if correcting else work.changed & set(self.catalog.key_slots(frame.flow))
        if changed and (
            correcting
            or not work.understood_top()
            or work.understood_top() in (settings.deny_intent, settings.affirm_intent)
        ):
            for intent in (settings.correct_intent, settings.deny_intent, settings.affirm_intent):
                work.consume(intent)
            frame.attempts.pop(str(frame.step), None)
            work.state.pending = None  # the confirmation is asked again, with the new values
            work.set_reason("correction")
            return True
        if work.confident(settings.affirm_intent):
            work.consume(settings.affirm_intent)
            work.state.pending = None
            frame.confirmed = frame.step
            self.executor.advance(work, frame, step.on_confirm or step.next)
            work.set_reason("flow")
            return True
        if work.confident(settings.deny_intent):
            work.consume(settings.deny_intent)
            work.state.pending = None
            self.executor.goto(work, frame, step.on_deny)
            work.set_reason("deny")
            return True
        return False

    def _pick(self, work: Work, options: Sequence[Option]) -> Option | None:
        """The option the message chooses: by intent (then by its slot values), number, title or value."""
        if not options:
            return None
        by_intent = [o for o in options if o.intent and work.confident(o.intent, threshold=0.0)]
        if by_intent:
            said = {
                kind: {str(v).casefold() for v in values} for kind, values in work.message.entities.items()
            }

            def says(name: str, value: Any) -> bool:
                heard = said.get(self.catalog.slot_spec(name).entity or name, set())
                return all(
                    str(v).casefold() in heard for v in (value if isinstance(value, list) else [value])
                )

            exact = [o for o in by_intent if o.slots and all(says(k, v) for k, v in o.slots.items())]
            return (exact or by_intent)[0]
        text = _norm(work.message.text)
        match = _ORDINAL.match(text)
        if match:
            n = match["n"].lower()
            index = len(options) if n == "last" else int(_ORDINALS.get(n, n) if not n.isdigit() else n)
            if 1 <= index <= len(options):
                return options[index - 1]
        titled = [o for o in options if text and text in (_norm(o.title), _norm(o.payload))]
        if len(titled) == 1:
            return titled[0]
        values = {str(v).casefold() for vs in work.message.entities.values() for v in vs}
        mentioned = [
            o
            for o in options
            if o.value is not None
            and (
                {str(v).casefold() for v in (o.value if isinstance(o.value, list) else [o.value])} & values
                or re.search(rf"\b{re.escape(_norm(_text(o.value)))}\b", text)
            )
        ]
        return mentioned[0] if len(mentioned) == 1 else None

    def _answer_clarify(self, work: Work) -> bool:
        pending = work.state.pending
        option = self._pick(work, pending.options)  # type: ignore[union-attr]
        if option is None or option.flow is None or not self.catalog.has_flow(option.flow):
            return False
        work.state.pending = None
        if option.intent:
            work.consume(option.intent)
        for name, value in option.slots.items():
            work.fill(name, value)
        self._start(work, option.flow, intent=option.intent)
        work.set_reason("clarify")
        return True

    def _answer_conflict(self, work: Work) -> bool:
        pending = work.state.pending
        option = self._pick(work, pending.options)  # type: ignore[union-attr]
        if option is None or option.slot is None:
            return False
        work.state.pending = None
        top = work.understood_top()
        if top and top not in self.catalog.meta_intents:
            work.consume(top)
        for other in pending.options:  # type: ignore[union-attr]
            if other.slot and other.slot != option.slot:
                self._drop_slot(work, other.slot)
        work.set_reason("conflict_resolved")
        return True

    def _drop_slot(self, work: Work, slot: str) -> None:
        """Clear a slot; if the running flow collected it earlier, go back to ask it again."""
        work.set_slot(slot, None)
        frame = work.active()
        if frame is None:
            return
        for index, step in enumerate(self.catalog.flow(frame.flow).steps):
            if isinstance(step, CollectStep) and step.collect == slot and index < frame.step:
                frame.attempts.pop(str(frame.step), None)
                self.executor.move(frame, index)
                return

    def _answer_resume(self, work: Work) -> bool:
        settings, top = work.settings, work.top
        if top is None or not top.paused:
            return False
        if work.confident(settings.affirm_intent):
            work.consume(settings.affirm_intent)
            work.state.pending = None
            self.executor.resume(work, top)
            return True
        if work.confident(settings.deny_intent):
            work.consume(settings.deny_intent)
            work.state.pending = None
            self.executor.pop(work, "cancelled")
            work.emit(settings.cancelled_response, "provide_info", {"flow": self.catalog.title(top.flow)})
            work.set_reason("cancel")
            return True
        return False

    # -- 6. meta intents

    def _meta(self, work: Work) -> bool:
        settings = work.settings
        handled = False
        if work.confident(settings.cancel_intent):
            work.consume(settings.cancel_intent)
            self._cancel(work)
            handled = True
        if work.confident(settings.correct_intent):
            work.consume(settings.correct_intent)
            handled = self._correction(work) or handled
        if work.confident(settings.handoff_intent):
            work.consume(settings.handoff_intent)
            self.executor.handoff(work, settings.fallback.handoff)
            return True
        if work.confident(settings.goodbye_intent) and not self.catalog.flows_for(settings.goodbye_intent):
            work.consume(settings.goodbye_intent)
            self.executor.end_conversation(work, settings.goodbye_response)
            return True
        if work.confident(settings.greet_intent) and not self.catalog.flows_for(settings.greet_intent):
            work.consume(settings.greet_intent)
            work.emit(settings.greet_response, "greet")
            work.reprompt()
            work.set_reason("greet")
            handled = True
        return handled

    def _cancel(self, work: Work) -> None:
        """Cancel what is going on: the flow offered for resumption, a clarification, or the running flow."""
        pending = work.state.pending
        flow: str | None = None
        if pending is not None and pending.kind == "resume" and work.top is not None and work.top.paused:
            flow = self.executor.pop(work, "cancelled").flow
        elif pending is None or pending.kind != "clarify":
            flow = self.executor.cancel_active(work)
        work.state.pending = None
        work.emit(
            work.settings.cancelled_response,
            "provide_info",
            {"flow": self.catalog.title(flow) if flow else ""},
        )
        work.set_reason("cancel")

    def _correct(self, work: Work) -> set[str]:
        """Replace slots from this message's entities ("no, make it Tuesday"): for each entity type, the
        slot mapping it that the running flow uses and has filled (the last such), else any filled one,
        else the first. Returns the slots changed (including any ``fill: always`` slot this turn)."""
        frame = work.active()
        collected = self.catalog.collected_slots(frame.flow) if frame else []
        for entity, values in work.message.entities.items():
            names = self.catalog.slots_for_entity(entity)
            if not names or set(names) & work.changed:
                continue
            in_flow = [n for n in collected if n in names and work.state.slots.get(n) is not None]
            filled = [n for n in names if work.state.slots.get(n) is not None]
            target = (in_flow or filled or names)[-1 if in_flow or filled else 0]
            spec = self.catalog.slot_spec(target)
            work.fill(target, values if spec.type == "list" else values[0])
        return set(work.changed)

    def _correction(self, work: Work) -> bool:
        changed = self._correct(work)
        if not changed:
            return False
        work.set_reason("correction")
        frame = work.active()
        if frame is None:
            slot = sorted(changed)[0]
            work.emit(
                SLOT_UPDATED_RESPONSE, "provide_info", {"slot": slot, "value": work.state.slots.get(slot)}
            )
            return True
        if frame.confirmed is not None and isinstance(
            self.catalog.step(frame.flow, frame.confirmed), ConfirmStep
        ):
            work.state.pending = None
            frame.attempts.pop(str(frame.step), None)
            self.executor.move(frame, frame.confirmed)
            frame.attempts.pop(str(frame.step), None)
            frame.confirmed = None
        else:
            work.reprompt()
        return True

    # -- 7. clarification between flows

    def _clarify_intents(self, work: Work) -> bool:
        if not work.message.requires_clarification:
            return False
        options: list[Option] = []
        for intent, _ in work.message.ranking[:3] or work.message.intents[:3]:
            flows = [f for f in self.catalog.flows_for(intent) if self.executor.trigger_holds(work, f, False)]
            if flows and flows[0] not in {o.flow for o in options}:
                options.append(
                    Option(
                        title=self.catalog.title(flows[0]), payload=f"/{intent}", intent=intent, flow=flows[0]
                    )
                )
        if len(options) < 2:
            return False
        self._ask_clarification(work, options)
        work.intents = []
        return True

    def _ask_clarification(self, work: Work, options: list[Option], response: str | None = None) -> None:
        response = response or work.settings.clarify_response
        work.emit(response, "clarify", {"options": " or ".join(o.title for o in options)}, options=options)
        work.state.pending = Pending(kind="clarify", options=options, asked_at=work.now, response=response)
        work.set_reason("clarify")

    # -- 8. flow triggering

    def _select(self, work: Work, intent: str, confidence: float) -> str | None:
        for flow in self.catalog.flows_for(intent):
            if confidence >= self.catalog.trigger_threshold(flow) and self.executor.trigger_holds(work, flow):
                return flow
        return None

    def _trigger(self, work: Work, queue_only: bool) -> bool:
        """Start the first flow the message's intents trigger; queue the others."""
        handled = False
        for intent, confidence in list(work.intents):
            flow = self._select(work, intent, confidence)
            if flow is None:
                continue
            work.consume(intent)
            active = work.active()
            if queue_only and active is not None and active.flow == flow:
                pass  # the answer named the flow it answers
            elif handled or queue_only:
                self._queue(work, intent, confidence)
            else:
                self._start(work, flow, intent=intent, confidence=confidence)
            handled = True
        return handled

    def _queue(self, work: Work, intent: str, confidence: float) -> None:
        queue = work.state.queue
        if len(queue) < work.settings.max_queued_intents and intent not in {q.intent for q in queue}:
            queue.append(QueuedIntent(intent, round(confidence, 4)))

    def _start(self, work: Work, flow: str, intent: str | None = None, confidence: float = 1.0) -> None:
        """Start ``flow`` for this message: new, a digression from the running flow, or the running flow
        itself (which then just asks its question again)."""
        pending = work.state.pending
        if pending is not None and pending.kind not in STEP_KINDS:
            work.state.pending = None  # a new request supersedes an offer or a clarification
        active = work.active()
        if active is not None and active.flow == flow:
            work.reprompt()
            self._fill_flow_slots(work, flow, overwrite=False)
            work.set_reason("flow")
            return
        paused = next((f for f in work.state.stack if f.flow == flow and f.paused), None)
        if active is None and paused is not None and work.top is paused:
            work.state.pending = None
            self.executor.resume(work, paused)
            self._fill_flow_slots(work, flow, overwrite=False)
            return
        if active is not None:
            if not self.catalog.flow(active.flow).interruptible:
                if intent is not None:
                    self._queue(work, intent, confidence)
                work.reprompt()
                work.set_reason("queued")
                return
            active.paused = True
            work.reprompt()
            work.set_reason("digression")
        else:
            work.set_reason("flow")
        self.executor.start(work, flow, intent or self.catalog.trigger_intent(flow))
        self._fill_flow_slots(work, flow, overwrite=True)

    # -- 9. an unanswered step

    def _unanswered(self, work: Work) -> bool:
        pending = work.state.pending
        if pending is None:
            return False
        if pending.kind in STEP_KINDS and work.waiting():
            self._failed_attempt(work)
            work.set_reason("reask")
            return True
        if pending.kind == "conflict":
            pending.attempts += 1
            if pending.attempts > CONFLICT_ATTEMPTS:
                work.state.pending = None
                for option in pending.options:
                    if option.slot:
                        self._drop_slot(work, option.slot)
            else:
                work.emit(
                    pending.response or work.settings.clarify_response, "clarify", options=pending.options
                )
            work.set_reason("conflict")
            return True
        return False

    def _failed_attempt(self, work: Work) -> None:
        """The step's question got no usable answer: ask again, or give up (``on_fail``/``on_deny``)."""
        frame, pending = work.active(), work.state.pending
        if frame is None or pending is None:
            return
        step = self.catalog.step(frame.flow, frame.step)
        key = str(frame.step)
        attempts = frame.attempts.get(key, 1)
        if isinstance(step, CollectStep | QuestionStep | ConfirmStep) and attempts >= step.max_attempts:
            work.state.pending = None
            target = step.on_deny if isinstance(step, ConfirmStep) else step.on_fail
            self.executor.goto(work, frame, target)
            return
        frame.attempts[key] = attempts + 1
        pending.attempts = attempts + 1
        pending.asked_at = work.now
        if isinstance(step, CollectStep):
            response, kind = step.reask or step.ask or ask_response(step.collect), "ask"
        elif isinstance(step, ConfirmStep):
            response, kind = step.confirm, "confirm"
        else:
            response, kind = pending.response or getattr(step, "question", ""), "ask"
        options = yes_no_options(work) if kind == "confirm" else []
        work.emit(response, kind, {"flow": self.catalog.title(frame.flow, work.state.slots)}, options=options)

    # -- 10. not understood

    def _history_options(self, work: Work) -> list[Option]:
        """Recent flows as options, newest first: paused ones, then finished ones with their slot values;
        without any, flows that use an entity the conversation tracks (from the context snapshot)."""
        options: list[Option] = []
        seen: set[str] = set()

        def add(flow: str, values: dict[str, Any]) -> None:
            if not self.catalog.has_flow(flow) or len(options) >= MAX_OPTIONS:
                return
            # In the flow's own slot order: stored documents do not keep the order of keys.
            slots = {n: values[n] for n in self.catalog.key_slots(flow) if values.get(n) is not None}
            title = self.catalog.history_title(flow, slots)
            if title in seen:
                return
            seen.add(title)
            intent = self.catalog.trigger_intent(flow)
            payload = f"/{intent}{self._payload_entities(slots)}" if intent else title
            options.append(Option(title=title, payload=payload, intent=intent, flow=flow, slots=slots))

        for frame in reversed(work.state.stack):
            if frame.paused:
                add(
                    frame.flow,
                    {
                        n: work.state.slots[n]
                        for n in self.catalog.key_slots(frame.flow)
                        if n in work.state.slots
                    },
                )
        for entry in reversed(work.state.history):
            if entry.status != "handoff":
                add(entry.flow, dict(entry.slots))
        context = work.turn.context
        if not options and context is not None:
            for flow in self.catalog.triggered_flows():
                for name in self.catalog.key_slots(flow):
                    entity = self.catalog.slot_spec(name).entity
                    if entity and entity in context.entities:
                        add(flow, {name: context.entities[entity]})
                        break
        return options

    def _back_reference(self, work: Work) -> bool:
        """ "I want that thing we discussed": nothing understood but a pointer to earlier talk (or an NLU
        ambiguity no flow resolves): offer the recent flows."""
        message = work.message
        if work.understood_top() or not (
            message.requires_clarification or BACK_REFERENCE.search(message.text)
        ):
            return False
        options = self._history_options(work)
        if not options:
            return False
        self._ask_clarification(work, options)
        return True

    def _payload_entities(self, slots: dict[str, Any]) -> str:
        """The ``{"entity": value}`` part of a quick reply's payload that says these slot values again (a
        list when several slots share an entity type, in the order the flow fills them)."""
        entities: dict[str, list[Any]] = {}
        for name, value in slots.items():
            if isinstance(value, dict):
                continue
            entity = self.catalog.slot_spec(name).entity or name
            entities.setdefault(entity, []).extend(value if isinstance(value, list) else [value])
        flat = {k: v[0] if len(v) == 1 else v for k, v in sorted(entities.items())}
        return json.dumps(flat) if flat else ""

    def _not_understood(self, work: Work) -> None:
        state, fallback = work.state, work.settings.fallback
        state.failures += 1
        work.set_reason("fallback")
        if state.failures >= fallback.handoff_after:
            state.failures = 0
            self.executor.handoff(work, fallback.handoff)
            return
        if state.failures == 1:
            # The user's words go along: a generator with a language model can answer them directly.
            work.emit(fallback.rephrase, "unknown", {"text": work.turn.understanding.text})
            return
        options = self._history_options(work)
        for flow in self.catalog.triggered_flows():
            intent = self.catalog.trigger_intent(flow)
            if len(options) < MAX_OPTIONS and flow not in {o.flow for o in options}:
                options.append(
                    Option(title=self.catalog.title(flow), payload=f"/{intent}", intent=intent, flow=flow)
                )
        work.emit(
            fallback.options, "unknown", {"options": " or ".join(o.title for o in options)}, options=options
        )
        work.state.pending = Pending(
            kind="clarify", options=options, asked_at=work.now, response=fallback.options
        )

    # -- 11. constraints

    def _conflicts(self, work: Work) -> bool:
        """Ask about the first constraint the changed slots break; ``True`` when the turn now waits."""
        if not work.changed:
            return False
        for constraint in self.catalog.constraints:
            if not set(constraint.slots) & work.changed:
                continue
            namespace = work.namespace()
            if not (
                compile_condition(constraint.when).evaluate(namespace)
                and compile_condition(constraint.forbid).evaluate(namespace)
            ):
                continue
            work.set_reason("conflict")
            values = {name: work.state.slots.get(name) for name in constraint.slots}
            if len(constraint.slots) == 1:
                work.emit(constraint.ask, "clarify", {"constraint": constraint.name})
                self._drop_slot(work, constraint.slots[0])
                work.reprompt()
                return False
            options = [
                Option(title=_text(value), payload=_text(value), slot=name, value=value)
                for name, value in values.items()
                if value is not None
            ]
            work.reprompt()
            work.emit(
                constraint.ask,
                "clarify",
                {"constraint": constraint.name, "options": " or ".join(o.title for o in options)},
                options=options,
            )
            work.state.pending = Pending(
                kind="conflict", options=options, asked_at=work.now, response=constraint.ask
            )
            return True
        return False

    # -- the last word

    def _say_something(self, work: Work) -> None:
        """Every turn answers: a silent turn (a flow that finished without a response) says so."""
        if work.changed:
            slot = sorted(work.changed)[0]
            work.emit(
                SLOT_UPDATED_RESPONSE, "provide_info", {"slot": slot, "value": work.state.slots.get(slot)}
            )
        else:
            work.emit(work.settings.fallback.rephrase, "unknown")
