"""Conversation tests: YAML files of scripted conversations and what the assistant must do at each turn.

A file holds ``conversations:``, each with a ``name``, an optional ``profile`` (the user's timezone, locale,
display name, preferences), an optional ``now`` (the clock of the first user message, ISO 8601; each later
message is one second later, so "next Friday" always means the same day) and ``steps``. A step is a user
message followed by expectations on that turn::

    conversations:
      - name: order status, then delivery through context
        steps:
          - user: "Hello, I need help with my order"
            intent: order_help
            flow: order_status
            bot_contains: order number
          - user: "My order number is 12345"
            slots: {order_id: "12345"}
            actions: [lookup_order, utter_order_shipped]
          - user: "When will it arrive?"
            entities: {order_id: "12345"}
            bot_matches: 'arrive on \\w+day'

Expectations (all optional; a step without any only has to get a reply):

==================  ====================================================================================
``bot``             the reply text, exactly
``bot_contains``    text (or a list of texts) the reply contains, ignoring case
``bot_not_contains`` text (or a list) the reply must not contain, ignoring case
``bot_matches``     a regular expression found in the reply (``re.search``)
``actions``         the names of the decided actions, in order (responses and tool calls)
``action_kinds``    their kinds (``ask``, ``confirm``, ``execute_task``...), in order
``intent``          the top intent; a list: every intent of a multi-intent message, in order
``entities``        ``{type: value}`` found by NLU (values as text, ignoring case; ``null``: none found)
``slots``           ``{name: value}`` after the turn; only the slots named are checked (``null``: empty)
``flow``            the active flow after the turn (``""``: none)
``step``            the active step (its id, or ``collect:order_id`` style)
``reason``          why the engine decided so (``flow``, ``digression``, ``correction``, ``fallback``...)
``ended``           whether the conversation ended with this turn
``handoff``         whether it was handed to a human with this turn
``options``         the titles of the reply's quick replies, in order
==================  ====================================================================================

This module is the domain part: reading files (every problem as ``file:line: message``) and comparing what
a turn did with what a step expects. Driving an assistant is :mod:`parley.cli.convtest`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import yaml

from parley.core.errors import ConfigurationError

#: Expectation keys and the type each value must have (checked when a file loads).
EXPECTATIONS: dict[str, str] = {
    "bot": "text",
    "bot_contains": "texts",
    "bot_not_contains": "texts",
    "bot_matches": "regex",
    "actions": "list",
    "action_kinds": "list",
    "intent": "text_or_list",
    "entities": "mapping",
    "slots": "mapping",
    "flow": "text",
    "step": "text",
    "reason": "text",
    "ended": "bool",
    "handoff": "bool",
    "options": "list",
}
_CONVERSATION_KEYS = frozenset({"name", "description", "profile", "now", "steps", "skip"})
_PROFILE_KEYS = frozenset({"timezone", "locale", "display_name", "preferences"})
_FILE_KEYS = frozenset({"version", "conversations"})


class ConvTestError(ConfigurationError):
    """Conversation test files are invalid; ``problems`` holds ``file:line: message`` strings."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid conversation tests:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Expectation:
    """One expectation of a step: ``key`` (one of :data:`EXPECTATIONS`) and the expected ``value``."""

    key: str
    value: Any
    line: int


@dataclass(frozen=True)
class TestStep:
    """A user message and what the assistant must do with it."""

    __test__ = False  # not a pytest test class

    user: str
    expectations: tuple[Expectation, ...]
    line: int


@dataclass(frozen=True)
class TestConversation:
    """A scripted conversation, run with a fresh conversation id."""

    __test__ = False  # not a pytest test class

    name: str
    steps: tuple[TestStep, ...]
    file: Path
    line: int
    profile: Mapping[str, Any] = field(default_factory=dict)
    now: datetime | None = None
    description: str = ""
    #: A reason to skip it (``skip: "why"`` in the file); empty: run it.
    skip: str = ""

    @property
    def test_id(self) -> str:
        """``file.yml::name``, unique in a run (names are unique per file)."""
        return f"{self.file.name}::{self.name}"


@dataclass(frozen=True)
class Observation:
    """What one turn did, as the tests see it (from its decided and replied events)."""

    text: str
    quick_replies: tuple[str, ...] = ()
    #: (name, kind) of each decided action, in order.
    actions: tuple[tuple[str, str], ...] = ()
    intent: str = ""
    intents: tuple[str, ...] = ()
    #: entity type -> values, in text order.
    entities: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    slots: Mapping[str, Any] = field(default_factory=dict)
    flow: str = ""
    step: str = ""
    reason: str = ""
    ended: bool = False
    handoff: bool = False


@dataclass(frozen=True)
class Mismatch:
    """An expectation a turn did not meet."""

    key: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.key}: {self.message}"


@dataclass
class StepResult:
    """One step run: what happened and which expectations failed (or the error that stopped it)."""

    step: TestStep
    observation: Observation | None = None
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.mismatches and not self.error


@dataclass
class ConversationResult:
    """A conversation run: its steps up to the first failing one (the rest did not run)."""

    conversation: TestConversation
    steps: list[StepResult] = field(default_factory=list)
    conversation_id: str = ""
    error: str = ""
    duration_s: float = 0.0
    skipped: bool = False

    @property
    def passed(self) -> bool:
        return self.skipped or (
            not self.error
            and len(self.steps) == len(self.conversation.steps)
            and all(s.passed for s in self.steps)
        )

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if not s.passed), None)


# --- reading files ------------------------------------------------------------------------------------------


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _pairs(node: yaml.MappingNode) -> list[tuple[str, yaml.Node, yaml.Node]]:
    return [(str(k.value), k, v) for k, v in node.value]


def _value(node: yaml.Node) -> Any:
    """The Python value of a node, built as ``yaml.safe_load`` would."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _check_expectation(key: str, value: Any) -> str:
    """Why ``value`` cannot be expected under ``key``, or ""."""
    kind = EXPECTATIONS[key]
    if kind == "text" and not isinstance(value, str):
        return "must be text (quote it)"
    if kind == "texts":
        texts = value if isinstance(value, list) else [value]
        if not texts or not all(isinstance(t, str) and t for t in texts):
            return "must be a text or a list of texts, none empty"
    if kind == "regex":
        if not isinstance(value, str):
            return "must be a regular expression (text)"
        try:
            re.compile(value)
        except re.error as exc:
            return f"regular expression does not compile: {exc}"
    if kind == "list" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return "must be a list of texts"
    if kind == "text_or_list" and not (
        isinstance(value, str)
        or (isinstance(value, list) and value and all(isinstance(v, str) for v in value))
    ):
        return "must be an intent name or a list of them"
    if kind == "mapping" and not (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
        return "must be a mapping of names to values"
    if kind == "bool" and not isinstance(value, bool):
        return "must be true or false"
    return ""


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        raise ValueError("must be an ISO 8601 date and time, e.g. 2026-11-25T10:00:00Z")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _step(path: Path, node: yaml.Node, problems: list[str]) -> TestStep | None:
    where = f"{path}:{_line(node)}"
    if not isinstance(node, yaml.MappingNode):
        problems.append(f'{where}: a step is a mapping: user: "..." and its expectations')
        return None
    user: str | None = None
    expectations: list[Expectation] = []
    for key, key_node, value_node in _pairs(node):
        at = f"{path}:{_line(key_node)}"
        if key == "user":
            value = _value(value_node)
            if not isinstance(value, str | int | float) or isinstance(value, bool) or not str(value).strip():
                problems.append(f"{at}: user: must be the user's message (non-empty text)")
            else:
                user = str(value)
            continue
        if key not in EXPECTATIONS:
            problems.append(f"{at}: unknown key {key!r}; a step has user and {', '.join(EXPECTATIONS)}")
            continue
        value = _value(value_node)
        why = _check_expectation(key, value)
        if why:
            problems.append(f"{at}: {key}: {why}")
            continue
        expectations.append(Expectation(key, value, _line(key_node)))
    if user is None:
        if not any(k == "user" for k, _, _ in _pairs(node)):
            problems.append(f'{where}: a step needs a user message (user: "...")')
        return None
    return TestStep(user=user, expectations=tuple(expectations), line=_line(node))


def _conversation(path: Path, node: yaml.Node, problems: list[str]) -> TestConversation | None:
    where = f"{path}:{_line(node)}"
    if not isinstance(node, yaml.MappingNode):
        problems.append(f"{where}: a conversation is a mapping with name and steps")
        return None
    fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, key_node, value_node in _pairs(node):
        if key not in _CONVERSATION_KEYS:
            problems.append(
                f"{path}:{_line(key_node)}: unknown key {key!r}; a conversation has "
                f"{', '.join(sorted(_CONVERSATION_KEYS))}"
            )
        fields[key] = (key_node, value_node)
    before = len(problems)
    name = _value(fields["name"][1]) if "name" in fields else None
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}: a conversation needs a name (non-empty text)")
    profile: dict[str, Any] = {}
    if "profile" in fields:
        key_node, value_node = fields["profile"]
        value = _value(value_node)
        if not isinstance(value, dict):
            problems.append(
                f"{path}:{_line(key_node)}: profile: must be a mapping ({', '.join(_PROFILE_KEYS)})"
            )
        else:
            unknown = sorted(set(map(str, value)) - _PROFILE_KEYS)
            if unknown:
                problems.append(
                    f"{path}:{_line(key_node)}: profile: unknown key(s) {', '.join(unknown)}; "
                    f"use {', '.join(sorted(_PROFILE_KEYS))}"
                )
            profile = value
    now: datetime | None = None
    if "now" in fields:
        key_node, value_node = fields["now"]
        try:
            now = _timestamp(_value(value_node))
        except ValueError as exc:
            problems.append(f"{path}:{_line(key_node)}: now: {exc}")
    steps: list[TestStep] = []
    if "steps" not in fields:
        problems.append(f"{where}: a conversation needs steps")
    else:
        key_node, value_node = fields["steps"]
        if not isinstance(value_node, yaml.SequenceNode) or not value_node.value:
            problems.append(f"{path}:{_line(key_node)}: steps: must be a non-empty list of steps")
        else:
            for item in value_node.value:
                step = _step(path, item, problems)
                if step is not None:
                    steps.append(step)
    skip = _value(fields["skip"][1]) if "skip" in fields else ""
    if skip is True:
        skip = "skipped"
    if not isinstance(skip, str):
        problems.append(f"{path}:{_line(fields['skip'][0])}: skip: must be a reason (text)")
        skip = ""
    description = _value(fields["description"][1]) if "description" in fields else ""
    if len(problems) > before:
        return None
    return TestConversation(
        name=str(name).strip(),
        steps=tuple(steps),
        file=path,
        line=_line(node),
        profile=profile,
        now=now,
        description=str(description or ""),
        skip=skip,
    )


def parse_tests(text: str, path: Path | str = "tests.yml") -> list[TestConversation]:
    """The conversations of one file's ``text``; raises :class:`ConvTestError` listing every problem."""
    path = Path(path)
    problems: list[str] = []
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConvTestError(
            [f"{path}:{mark.line + 1 if mark else 1}: not valid YAML: {getattr(exc, 'problem', exc)}"]
        ) from exc
    if not isinstance(root, yaml.MappingNode):
        raise ConvTestError([f"{path}:1: a conversation test file is a mapping with a conversations: list"])
    fields = {key: (key_node, value_node) for key, key_node, value_node in _pairs(root)}
    for key, (key_node, _) in fields.items():
        if key not in _FILE_KEYS:
            problems.append(f"{path}:{_line(key_node)}: unknown key {key!r}; use conversations (and version)")
    conversations: list[TestConversation] = []
    if "conversations" not in fields:
        problems.append(f"{path}:1: no conversations: list")
    else:
        key_node, value_node = fields["conversations"]
        if not isinstance(value_node, yaml.SequenceNode) or not value_node.value:
            problems.append(f"{path}:{_line(key_node)}: conversations: must be a non-empty list")
        else:
            seen: dict[str, int] = {}
            for item in value_node.value:
                conversation = _conversation(path, item, problems)
                if conversation is None:
                    continue
                if conversation.name in seen:
                    problems.append(
                        f"{path}:{conversation.line}: conversation name {conversation.name!r} is used twice "
                        f"(also line {seen[conversation.name]})"
                    )
                    continue
                seen[conversation.name] = conversation.line
                conversations.append(conversation)
    if problems:
        raise ConvTestError(problems)
    return conversations


def load_tests(paths: Iterable[Path | str]) -> list[TestConversation]:
    """The conversations of every file (a folder means its ``*.yml`` and ``*.yaml`` files, sorted), in order;
    the problems of all files are reported together."""
    problems: list[str] = []
    conversations: list[TestConversation] = []
    for file in expand_paths(paths):
        try:
            conversations += parse_tests(file.read_text(encoding="utf-8"), file)
        except ConvTestError as exc:
            problems += exc.problems
        except OSError as exc:
            problems.append(f"{file}: cannot read: {exc.strerror or exc}")
    if problems:
        raise ConvTestError(problems)
    return conversations


def expand_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Files as given; folders replaced by their YAML files (sorted). A missing path is kept (and reported
    when read)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
        else:
            files.append(path)
    return files


# --- checking a turn ----------------------------------------------------------------------------------------


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scalar(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def same_value(expected: Any, got: Any) -> bool:
    """Whether a slot value matches: numbers by value (``2`` = ``2.0``), lists item by item, anything else
    by its text (``12345`` = ``"12345"``); ``None`` matches an empty value."""
    if expected is None:
        return got in (None, "", [])
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(map(same_value, expected, got))
    if isinstance(expected, dict):
        return isinstance(got, dict) and all(same_value(v, got.get(k)) for k, v in expected.items())
    expected, got = _scalar(expected), _scalar(got)
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected is got
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return float(expected) == float(got)
    return got is not None and str(expected) == str(got)


def _texts(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _show(value: Any) -> str:
    return repr(_scalar(value)) if not isinstance(value, list) else "[" + ", ".join(map(_show, value)) + "]"


def _check_bot(want: str, seen: Observation) -> str:
    if seen.text.strip() == want.strip():
        return ""
    return f"expected the reply {want!r}\n        got {_shorten(seen.text)!r}"


def _check_contains(want: Any, seen: Observation) -> str:
    absent = [t for t in _texts(want) if t.casefold() not in seen.text.casefold()]
    if not absent:
        return ""
    return f"expected the reply to contain {', '.join(map(repr, absent))}; got {_shorten(seen.text)!r}"


def _check_not_contains(want: Any, seen: Observation) -> str:
    present = [t for t in _texts(want) if t.casefold() in seen.text.casefold()]
    if not present:
        return ""
    return f"expected the reply not to contain {', '.join(map(repr, present))}; got {_shorten(seen.text)!r}"


def _check_matches(want: str, seen: Observation) -> str:
    if re.search(want, seen.text) is not None:
        return ""
    return f"expected the reply to match /{want}/; got {_shorten(seen.text)!r}"


def _check_actions(want: list[str], seen: Observation) -> str:
    names = [name for name, _ in seen.actions]
    return "" if names == want else f"expected actions {want}, got {names}"


def _check_kinds(want: list[str], seen: Observation) -> str:
    kinds = [kind for _, kind in seen.actions]
    if kinds == want:
        return ""
    return f"expected action kinds {want}, got {kinds} (actions {[n for n, _ in seen.actions]})"


def _check_intent(want: str | list[str], seen: Observation) -> str:
    if isinstance(want, str):
        if seen.intent == want:
            return ""
        return f"expected intent {want!r}, got {seen.intent!r} (intents {list(seen.intents)})"
    if list(seen.intents) == want:
        return ""
    return f"expected intents {want}, got {list(seen.intents)} (top {seen.intent!r})"


def _check_entities(want: Mapping[str, Any], seen: Observation) -> str:
    problems: list[str] = []
    got = {k: list(v) for k, v in seen.entities.items()}
    for entity, value in want.items():
        values = seen.entities.get(entity, ())
        if value is None:
            if values:
                problems.append(f"expected no {entity!r} entity, got {list(values)}")
        elif not any(str(_scalar(value)).casefold() == v.casefold() for v in values):
            problems.append(f"expected entity {entity}={_show(value)}, got {got or 'no entities'}")
    return "; ".join(problems)


def _check_slots(want: Mapping[str, Any], seen: Observation) -> str:
    problems: list[str] = []
    for slot, value in want.items():
        got = seen.slots.get(slot)
        if not same_value(value, got):
            shown = "empty" if got in (None, "", []) else _show(got)
            problems.append(f"expected slot {slot}={'empty' if value is None else _show(value)}, got {shown}")
    return "; ".join(problems)


def _check_equal(label: str, attribute: str, context: str = "") -> Any:
    def check(want: Any, seen: Observation) -> str:
        got = getattr(seen, attribute)
        if got == want:
            return ""
        extra = f" ({context} {getattr(seen, context)!r})" if context else ""
        return f"expected {label} {want!r}, got {got!r}{extra}"

    return check


def _check_flag(attribute: str) -> Any:
    def check(want: bool, seen: Observation) -> str:
        got = bool(getattr(seen, attribute))
        return "" if got is want else f"expected {attribute}={str(want).lower()}, got {str(got).lower()}"

    return check


def _check_options(want: list[str], seen: Observation) -> str:
    got = list(seen.quick_replies)
    return "" if got == want else f"expected quick replies {want}, got {got}"


#: How each expectation is checked: a message saying what differs, "" when met.
_CHECKS: dict[str, Any] = {
    "bot": _check_bot,
    "bot_contains": _check_contains,
    "bot_not_contains": _check_not_contains,
    "bot_matches": _check_matches,
    "actions": _check_actions,
    "action_kinds": _check_kinds,
    "intent": _check_intent,
    "entities": _check_entities,
    "slots": _check_slots,
    "flow": _check_equal("active flow", "flow", "step"),
    "step": _check_equal("step", "step", "flow"),
    "reason": _check_equal("reason", "reason"),
    "ended": _check_flag("ended"),
    "handoff": _check_flag("handoff"),
    "options": _check_options,
}


def check_step(step: TestStep, seen: Observation) -> list[Mismatch]:
    """Every expectation of ``step`` that ``seen`` does not meet, each with a message saying what differs."""
    found: list[Mismatch] = []
    for exp in step.expectations:
        message = _CHECKS[exp.key](exp.value, seen)
        if message:
            found.append(Mismatch(exp.key, exp.line, message))
    return found


# --- reporting ----------------------------------------------------------------------------------------------


def describe_observation(seen: Observation) -> str:
    """One line of what the engine decided (for failure reports)."""
    parts = [
        f"intent={seen.intent or '-'}",
        f"flow={seen.flow or '-'}",
        f"step={seen.step or '-'}",
        f"reason={seen.reason or '-'}",
        f"actions={[n for n, _ in seen.actions]}",
    ]
    if seen.entities:
        parts.append("entities=" + str({k: list(v) for k, v in seen.entities.items()}))
    if seen.slots:
        parts.append("slots=" + str({k: _scalar(v) for k, v in seen.slots.items()}))
    if seen.ended:
        parts.append("ended")
    if seen.handoff:
        parts.append("handoff")
    return " ".join(parts)


def format_result(result: ConversationResult, *, verbose: bool = False) -> str:
    """A readable report: the verdict, and for a failure the transcript up to the failing step with each
    unmet expectation (``verbose``: the transcript of a passing conversation too)."""
    conv = result.conversation
    where = f"{conv.file}:{conv.line}"
    if result.skipped:
        return f"SKIP {conv.test_id} ({conv.skip})"
    verdict = "PASS" if result.passed else "FAIL"
    lines = [
        f"{verdict} {conv.test_id} ({len(result.steps)}/{len(conv.steps)} steps, {result.duration_s:.1f} s)"
    ]
    if result.passed and not verbose:
        return lines[0]
    if result.conversation_id:
        lines.append(f"  at {where}, conversation {result.conversation_id}")
    for i, step in enumerate(result.steps, 1):
        lines.append(f"  {i}. user: {step.step.user}")
        if step.observation is not None:
            lines.append(f"     bot:  {step.observation.text}")
            if step.observation.quick_replies:
                lines.append(f"           [{' | '.join(step.observation.quick_replies)}]")
        if not step.passed:
            lines.append(f"     ✗ step at {conv.file}:{step.step.line}")
            if step.error:
                lines.append(f"       error: {step.error}")
            for mismatch in step.mismatches:
                lines.append(f"       {mismatch}")
            if step.observation is not None:
                lines.append(f"       decided: {describe_observation(step.observation)}")
    if result.error:
        lines.append(f"  error: {result.error}")
    return "\n".join(lines)


def failure_message(result: ConversationResult) -> str:
    """The first problem of a failed conversation, in one line (for JUnit and progress output)."""
    if result.error:
        return result.error
    failed = result.failed_step
    if failed is None:
        return "not every step ran"
    index = result.steps.index(failed) + 1
    first = failed.error or str(failed.mismatches[0])
    return f"step {index} ({failed.step.user!r}): {first}"


def junit_xml(results: Sequence[ConversationResult], suite: str = "parley conversations") -> str:
    """The results as a JUnit XML report (one test case per conversation, classname = file)."""
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(sum(not r.passed for r in results)),
        skipped=str(sum(r.skipped for r in results)),
        time=f"{sum(r.duration_s for r in results):.3f}",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    for result in results:
        conv = result.conversation
        case = ET.SubElement(
            root,
            "testcase",
            classname=conv.file.stem,
            name=conv.name,
            file=str(conv.file),
            line=str(conv.line),
            time=f"{result.duration_s:.3f}",
        )
        if result.skipped:
            ET.SubElement(case, "skipped", message=conv.skip)
        elif not result.passed:
            failure = ET.SubElement(case, "failure", message=failure_message(result))
            failure.text = format_result(result)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
