"""The schema of ``flows.yml`` (version 2): slots, constraints, flows made of steps, and dialog settings.

A flow is a named list of steps the dialog engine walks through; a step is one of the node types below,
told apart by its key (``respond``, ``question``, ``collect``, ``validate``, ``confirm``, ``branch``,
``action``, ``call``, ``link``, ``handoff``, ``end``). Steps run in order unless one says where to go
(``next``, ``on_*``, ``branch``). Step ids are optional; a step that is a jump target needs one.
Conditions are small expressions over ``slots``, ``entities``, ``intent`` and tool ``results``
(``slots.passengers > 4 and slots.diet == 'vegan'``), compiled and evaluated safely by
:mod:`parley.core.conditions` (dot access reads dict keys, a few functions, nothing else).

Everything here is declarative and validated with file:line errors by
:func:`parley.core.project.load_project`; the engine lives in the dialog service.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


#: Where a step can send the conversation: a step id of the same flow, or one of these.
#: ``end`` ends the flow, ``handoff`` hands over to a human, ``repeat`` asks the same step again.
SPECIAL_TARGETS = frozenset({"end", "handoff", "repeat"})

#: Responses the engine uses on its own and the generator can say without a ``responses.yml`` entry
#: (name -> default English text; ``{flow}`` and ``{slot}`` are filled in by the generator). Besides these,
#: ``utter_ask_<slot>`` has a default for every declared slot (see :func:`is_builtin_response`).
BUILTIN_RESPONSES: dict[str, str] = {
    "utter_rephrase": "Sorry, I didn't get that. Could you say it another way?",
    "utter_offer_options": "I can help with the following. What would you like to do?",
    "utter_handoff": "Let me connect you with a person who can help.",
    "utter_clarify": "Did you mean one of these?",
    "utter_resume": "Shall we get back to {flow}?",
    "utter_flow_cancelled": "Okay, I've stopped that.",
    "utter_greet": "Hello! How can I help?",
    "utter_goodbye": "Goodbye!",
    "utter_transition": "Now, about {flow}.",
    "utter_slot_updated": "Got it, {slot} is now {value}.",
    "utter_error": "Sorry, something went wrong on my side.",
}
#: Prefix of the default question for a slot: ``utter_ask_<slot>``.
ASK_PREFIX = "utter_ask_"
#: Default text of ``utter_ask_<slot>`` when the project has none.
DEFAULT_ASK_TEXT = "What is the {slot}?"


def is_builtin_response(name: str, slots: Iterable[str] = ()) -> bool:
    """Whether the engine/generator can say ``name`` although ``responses.yml`` lacks it."""
    return name in BUILTIN_RESPONSES or (
        name.startswith(ASK_PREFIX) and name[len(ASK_PREFIX) :] in set(slots)
    )


SlotType = Literal["text", "integer", "float", "bool", "categorical", "date", "list", "any"]


class SlotSpec(_Strict):
    """A slot of the dialog state.

    ``entity`` fills it from that NLU entity type: whenever one is mentioned (``fill: always``), or only
    while the slot is being collected or corrected (``fill: when_asked``; right for generic types such as
    numbers or dates that mean something else elsewhere).
    """

    type: SlotType = "text"
    entity: str | None = None
    fill: Literal["always", "when_asked"] = "always"
    #: Allowed values of a categorical slot (matched case-insensitively; synonyms come from NLU).
    values: list[str] = []
    #: A text slot's value must match this (full match).
    regex: str | None = None
    #: Bounds of a number slot (inclusive), or of a list slot's length.
    min: float | None = None
    max: float | None = None
    #: Value at the start of a conversation.
    initial: Any = None
    #: Response explaining a rejected value (``{value}`` is the rejected value); default: ask again.
    invalid_response: str | None = None
    #: Keep the value after the flow that filled it ends (default: cleared with its flow's slots).
    persist: bool = True


class ConstraintSpec(_Strict):
    """Values that cannot go together ("a vegetarian meal with bacon"): when ``when`` holds and ``forbid``
    holds too, the engine asks the user which to keep (``ask``, with both slots' values as options)."""

    name: str
    description: str = ""
    #: Condition on the slots that makes the constraint apply, e.g. ``slots.diet in ['vegetarian', 'vegan']``.
    when: str
    #: Condition that must then be false, e.g. ``'bacon' in slots.ingredients``.
    forbid: str
    #: The two slots in conflict: the question offers to keep one or the other.
    slots: list[str] = Field(min_length=1, max_length=2)
    ask: str


class TriggerSpec(_Strict):
    """When a flow starts: one of ``intents`` recognised with enough confidence, and ``condition`` true."""

    intents: list[str] = Field(min_length=1)
    #: Defaults to the project's NLU fallback threshold.
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    #: Entity types that must be present for this flow to trigger (otherwise another flow may).
    entities: list[str] = []
    condition: str | None = None


class _Step(_Strict):
    #: Unique within the flow; needed by steps that are jump targets.
    id: str | None = None
    #: Where to go after this step (a step id or ``end``); default: the next step in the list.
    next: str | None = None


class RespondStep(_Step):
    """Say a response (``respond: utter_x``)."""

    respond: str
    #: The kind of action this is for the generator (``provide_info``, ``greet``, ...).
    kind: str = "provide_info"


class QuestionStep(_Step):
    """Ask and wait for one of ``expect``'s intents; each can go somewhere else."""

    question: str
    #: intent -> target; an intent not listed (or low confidence) re-asks, then ``on_fail``.
    expect: dict[str, str] = Field(min_length=1)
    #: Seconds without an answer before ``on_timeout`` (checked by the engine on the next event).
    timeout_s: float | None = Field(default=None, gt=0)
    on_timeout: str | None = None
    max_attempts: int = Field(default=2, ge=1)
    on_fail: str = "handoff"


class CollectStep(_Step):
    """Fill a slot: ask (``ask``, default ``utter_ask_<slot>``) until a valid value comes, at most
    ``max_attempts`` times (re-asking with ``reask`` if given), then ``on_fail``. Skipped when the slot is
    already filled, unless ``ask_again``."""

    collect: str
    ask: str | None = None
    reask: str | None = None
    max_attempts: int = Field(default=3, ge=1)
    on_fail: str = "handoff"
    ask_again: bool = False
    #: Extra condition the value must meet (``value`` is the candidate), with its error response. Written
    #: ``validate:`` in YAML (the attribute name would shadow ``BaseModel.validate``).
    validate_: str | None = Field(default=None, alias="validate")
    invalid_response: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True, populate_by_name=True)


class ValidateStep(_Step):
    """Check that slots are filled (and ``condition`` holds): go to ``on_success`` or ``on_missing``."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True, populate_by_name=True)

    #: The slots that must be filled; ``validate:`` in YAML.
    validate_: list[str] = Field(alias="validate", min_length=1)
    condition: str | None = None
    on_success: str | None = None
    on_missing: str


class ConfirmStep(_Step):
    """Ask a yes/no question (``confirm: utter_confirm_x``); affirm -> ``on_confirm``, deny -> ``on_deny``.
    A correction while confirming ("no, make it Tuesday") updates the slot and asks again."""

    confirm: str
    on_confirm: str | None = None
    on_deny: str = "end"
    max_attempts: int = Field(default=2, ge=1)


class BranchCase(_Strict):
    """``if`` a condition holds, go to ``then``; a case with only ``else`` is the default."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True, populate_by_name=True)

    if_: str | None = Field(default=None, alias="if")
    then: str | None = None
    else_: str | None = Field(default=None, alias="else")

    @model_validator(mode="after")
    def _one_form(self) -> BranchCase:
        if (self.if_ is None) == (self.else_ is None) or (self.if_ is None) == (self.then is not None):
            raise ValueError("a branch case is either {if: <condition>, then: <target>} or {else: <target>}")
        return self


class BranchStep(_Step):
    """Go to the first case whose condition holds (``else`` as the default; none: the next step)."""

    branch: list[BranchCase] = Field(min_length=1)


class ActionStep(_Step):
    """Call a tool from ``tools.yml`` with ``args`` (values may be ``{slot}`` templates); its result is
    stored under ``results.<save_as>`` (and in slot ``save_as`` when one exists). Errors and timeouts go to
    ``on_error``."""

    action: str
    args: dict[str, Any] = {}
    save_as: str | None = None
    on_error: str | None = None


class CallStep(_Step):
    """Run another flow, then come back here (``call``), sharing the slots."""

    call: str


class LinkStep(_Step):
    """Continue in another flow and never come back (``link``)."""

    link: str


class HandoffStep(_Step):
    """Hand the conversation to a human (``handoff: utter_handoff`` or ``handoff: true``)."""

    handoff: str | bool = True
    #: Queue or team to route to, passed on with the action.
    queue: str = ""


class EndStep(_Step):
    """End the flow (``end: true``), or the whole conversation (``end: conversation``)."""

    end: Literal[True, "flow", "conversation"] = True
    #: Response said when ending (optional).
    respond: str | None = None


#: The key that names each step type, in the order steps are recognised.
STEP_KEYS: dict[str, type[_Step]] = {
    "respond": RespondStep,
    "question": QuestionStep,
    "collect": CollectStep,
    "validate": ValidateStep,
    "confirm": ConfirmStep,
    "branch": BranchStep,
    "action": ActionStep,
    "call": CallStep,
    "link": LinkStep,
    "handoff": HandoffStep,
    "end": EndStep,
}
_KIND_OF: dict[type[_Step], str] = {cls: key for key, cls in STEP_KEYS.items()}


def _field_keys(cls: type[BaseModel]) -> frozenset[str]:
    return frozenset(info.alias or name for name, info in cls.model_fields.items())


_FIELDS_OF: dict[str, frozenset[str]] = {key: _field_keys(cls) for key, cls in STEP_KEYS.items()}


def step_tag(kind: str) -> str:
    """The discriminator tag of a step type; it appears in pydantic error locations (drop it for users)."""
    return f"<{kind} step>"


def _kind_of_mapping(value: dict[Any, Any]) -> str:
    """The step type a YAML mapping names, or a ``ValueError`` saying why it names none.

    Some types have a field named like another type (``collect`` has ``validate``, ``end`` has ``respond``):
    the type is the key whose class owns every other step key present.
    """
    present = [key for key in STEP_KEYS if key in value]
    kinds = [key for key in present if all(other in _FIELDS_OF[key] for other in present if other != key)]
    if len(kinds) == 1:
        return kinds[0]
    if not present:
        keys = ", ".join(repr(k) for k in value) or "none"
        raise ValueError(f"a step needs one of the keys {', '.join(STEP_KEYS)} (it has {keys})")
    raise ValueError(
        f"a step has one type, but this one has {' and '.join(repr(k) for k in present)}: split it into steps"
    )


def step_kind(step: _Step) -> str:
    """The key naming ``step``'s type (``respond``, ``collect``, ...)."""
    return _KIND_OF[type(step)]


def _check_step(value: Any) -> Any:
    if isinstance(value, dict):
        _kind_of_mapping(value)
    elif not isinstance(value, _Step):
        raise ValueError(f"a step is a mapping such as {{respond: utter_hello}}, not {type(value).__name__}")
    return value


def _discriminate(value: Any) -> str | None:
    if isinstance(value, dict):
        return step_tag(_kind_of_mapping(value))
    kind = _KIND_OF.get(type(value))
    return step_tag(kind) if kind else None


#: One step of a flow: the type is chosen by its key, so errors name that type's fields only.
Step = Annotated[
    Annotated[RespondStep, Tag(step_tag("respond"))]
    | Annotated[QuestionStep, Tag(step_tag("question"))]
    | Annotated[CollectStep, Tag(step_tag("collect"))]
    | Annotated[ValidateStep, Tag(step_tag("validate"))]
    | Annotated[ConfirmStep, Tag(step_tag("confirm"))]
    | Annotated[BranchStep, Tag(step_tag("branch"))]
    | Annotated[ActionStep, Tag(step_tag("action"))]
    | Annotated[CallStep, Tag(step_tag("call"))]
    | Annotated[LinkStep, Tag(step_tag("link"))]
    | Annotated[HandoffStep, Tag(step_tag("handoff"))]
    | Annotated[EndStep, Tag(step_tag("end"))],
    Discriminator(_discriminate),
    BeforeValidator(_check_step),
]


class FlowSpec(_Strict):
    """A named flow: what starts it and its steps."""

    description: str = ""
    trigger: TriggerSpec | None = None
    steps: list[Step] = Field(min_length=1)
    #: May another flow interrupt this one (digression)? The interrupted flow is offered for resumption.
    interruptible: bool = True
    #: Offer to resume this flow after a digression (``utter_resume`` with ``{flow}``), rather than resuming
    #: silently.
    ask_to_resume: bool = True
    #: Slots cleared when the flow ends (default: every slot it collects that is not ``persist``).
    reset_slots: list[str] | None = None


class FallbackSpec(_Strict):
    """The fallback ladder: consecutive turns not understood -> rephrase, then options, then a human."""

    #: Response asking to rephrase (first failure).
    rephrase: str = "utter_rephrase"
    #: Response offering the flows as options (second failure).
    options: str = "utter_offer_options"
    #: Failures in a row before handing over (third by default).
    handoff_after: int = Field(default=3, ge=1)
    handoff: str = "utter_handoff"


class DialogSettingsSpec(_Strict):
    """Project-wide dialog settings."""

    #: Below this confidence an intent does not trigger a flow (default: the NLU fallback threshold).
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    #: Intents the engine gives a fixed meaning (rename them to match your nlu.yml).
    affirm_intent: str = "affirm"
    deny_intent: str = "deny"
    cancel_intent: str = "cancel"
    correct_intent: str = "correct"
    handoff_intent: str = "human_handoff"
    goodbye_intent: str = "goodbye"
    greet_intent: str = "greet"
    #: Responses the engine uses for its own patterns.
    greet_response: str = "utter_greet"
    goodbye_response: str = "utter_goodbye"
    clarify_response: str = "utter_clarify"
    resume_response: str = "utter_resume"
    cancelled_response: str = "utter_flow_cancelled"
    #: How many flows a message with several intents may start (the rest wait their turn).
    max_queued_intents: int = Field(default=3, ge=0)
    fallback: FallbackSpec = FallbackSpec()


#: The error for a ``flows.yml`` written in the retired version 1 (intent -> actions rules).
V1_FORMAT_MESSAGE = (
    "this is a version 1 flows.yml (intent rules); the format changed to version 2 (flows made of steps, "
    "with slots, settings and conditions): see docs/dialog.md to rewrite it"
)


def is_v1_flows(data: Any) -> bool:
    """Whether parsed ``flows.yml`` data is in the version 1 rules format."""
    return isinstance(data, dict) and (str(data.get("version", "")) == "1" or "rules" in data)


class FlowsFileV2(_Strict):
    """``flows.yml``, version 2."""

    version: Literal["2"] = "2"
    settings: DialogSettingsSpec = DialogSettingsSpec()
    slots: dict[str, SlotSpec] = {}
    constraints: list[ConstraintSpec] = []
    flows: dict[str, FlowSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _not_v1(cls, data: Any) -> Any:
        if is_v1_flows(data):
            raise ValueError(V1_FORMAT_MESSAGE)
        if isinstance(data, dict) and isinstance(data.get("version"), int):  # ``version: 2`` unquoted
            data = {**data, "version": str(data["version"])}
        return data


# --- the graph of a flow (shared by validation, diagrams and the engine) -----------------------------------


@dataclass(frozen=True)
class Jump:
    """A place where a step names a target: its field (as a location under the step), a label, the target."""

    field: tuple[str | int, ...]
    label: str
    target: str


def jump_targets(step: _Step) -> list[Jump]:
    """Every target ``step`` names explicitly (``next``, ``on_*``, ``expect`` values, branch cases)."""
    jumps: list[Jump] = []
    if isinstance(step, QuestionStep):
        jumps += [Jump(("expect", intent), intent, target) for intent, target in step.expect.items()]
    if isinstance(step, BranchStep):
        for i, case in enumerate(step.branch):
            if case.if_ is not None and case.then is not None:
                jumps.append(Jump(("branch", i, "then"), f"if {case.if_}", case.then))
            elif case.else_ is not None:
                jumps.append(Jump(("branch", i, "else"), "else", case.else_))
    for name in type(step).model_fields:
        value = getattr(step, name)
        if name.startswith("on_") and isinstance(value, str):
            jumps.append(Jump((name,), name, value))
    if step.next is not None:
        jumps.append(Jump(("next",), "next", step.next))
    return jumps


def continues(step: _Step) -> bool:
    """Whether one way out of ``step`` is its ``next`` (or the following step in the list)."""
    if isinstance(step, RespondStep | CollectStep | ActionStep | CallStep):
        return True
    if isinstance(step, ValidateStep):
        return step.on_success is None
    if isinstance(step, ConfirmStep):
        return step.on_confirm is None
    if isinstance(step, BranchStep):
        return all(case.else_ is None for case in step.branch)
    return False


@dataclass(frozen=True)
class Transition:
    """An edge of a flow's graph: ``target`` is a step index, or a special target (``end``, ``handoff``)
    or an id that names no step (only in a flow that did not pass validation)."""

    label: str
    target: int | str


def transitions(flow: FlowSpec) -> list[list[Transition]]:
    """For each step of ``flow``, where it can go next (``repeat`` resolved to the step itself)."""
    index = {step.id: i for i, step in enumerate(flow.steps) if step.id is not None}

    def resolve(target: str, i: int) -> int | str:
        if target == "repeat":
            return i
        return target if target in SPECIAL_TARGETS else index.get(target, target)

    out: list[list[Transition]] = []
    for i, step in enumerate(flow.steps):
        edges = [
            Transition(j.label, resolve(j.target, i)) for j in jump_targets(step) if j.field != ("next",)
        ]
        if continues(step):
            following: int | str = i + 1 if i + 1 < len(flow.steps) else "end"
            edges.append(Transition("", resolve(step.next, i) if step.next is not None else following))
        elif step.next is not None and not isinstance(step, LinkStep | HandoffStep | EndStep):
            edges.append(Transition("next", resolve(step.next, i)))
        out.append(edges)
    return out


def reachable_steps(flow: FlowSpec) -> set[int]:
    """Indexes of the steps that some path from the first step reaches."""
    graph = transitions(flow)
    seen: set[int] = set()
    todo = [0]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        todo += [t.target for t in graph[i] if isinstance(t.target, int)]
    return seen
