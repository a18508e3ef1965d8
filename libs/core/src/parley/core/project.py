"""The assistant project on disk: ``assistant.yml``, ``nlu.yml``, ``flows.yml``, ``responses.yml``.

Every service that needs part of a project loads it through here, so there is one schema and one kind of
error: a :class:`ProjectError` naming the file and line of each problem.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from parley.core.errors import ConfigurationError


class ProjectError(ConfigurationError):
    """An assistant project file is invalid; ``problems`` holds ``file:line: message`` strings."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid assistant project:\n  " + "\n  ".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class NluSettings(_Strict):
    """NLU knobs of a project."""

    fallback_threshold: float = Field(default=0.5, ge=0, le=1)


class AssistantFile(_Strict):
    """``assistant.yml``."""

    name: str
    language: str = "en"
    nlu: NluSettings = NluSettings()


class IntentSpec(_Strict):
    """One intent with its example utterances."""

    examples: list[str] = Field(min_length=1)


class EntitySpec(_Strict):
    """One entity type; ``regex`` group 1 (or the whole match) is the value."""

    regex: str | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"regex does not compile: {exc}") from exc
        return value


class NluFile(_Strict):
    """``nlu.yml``."""

    version: str = "1"
    intents: dict[str, IntentSpec] = Field(min_length=2)
    entities: dict[str, EntitySpec] = {}


class SlotSpec(_Strict):
    """A slot of the dialog state."""

    from_entity: str | None = None


class RuleSpec(_Strict):
    """When ``intent`` is recognised: ask for missing ``requires`` slots, else run ``actions``."""

    intent: str
    actions: list[str] = Field(min_length=1)
    requires: list[str] = []
    asks: str | None = None


class FlowsFile(_Strict):
    """``flows.yml``."""

    version: str = "1"
    slots: dict[str, SlotSpec] = {}
    rules: list[RuleSpec] = []
    fallback: list[str] = Field(default_factory=lambda: ["utter_fallback"])


class QuickReplySpec(_Strict):
    """A button under a reply."""

    title: str
    payload: str


class ResponseVariant(_Strict):
    """One wording of a response."""

    text: str = Field(min_length=1)
    quick_replies: list[QuickReplySpec] = []


class ResponsesFile(_Strict):
    """``responses.yml``."""

    version: str = "1"
    responses: dict[str, list[ResponseVariant]]


class Project(BaseModel):
    """A loaded, validated assistant project."""

    model_config = ConfigDict(frozen=True)

    root: Path
    assistant: AssistantFile
    nlu: NluFile
    flows: FlowsFile
    responses: ResponsesFile

    def training_data_hash(self) -> str:
        """A hash of the NLU training data, stored with trained models to detect stale ones."""
        return hashlib.sha256(self.nlu.model_dump_json().encode()).hexdigest()[:16]


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of the YAML node at ``loc`` (or of its closest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            match = node.value[key]
        else:
            match = None
        if match is None:
            break
        node = match
        line = node.start_mark.line + 1
    return line


def _load_file(path: Path, model: type[BaseModel], problems: list[str]) -> Any:
    if not path.is_file():
        problems.append(f"{path}: missing file")
        return None
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problems.append(f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}")
        return None
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "(top level)"
            problems.append(f"{path}:{_line_of(node, loc)}: {where}: {err['msg']}")
        return None


def _cross_check(root: Path, nlu: NluFile, flows: FlowsFile, responses: ResponsesFile) -> list[str]:
    problems: list[str] = []
    for i, rule in enumerate(flows.rules):
        where = f"{root / 'flows.yml'}: rules[{i}]"
        if rule.intent not in nlu.intents:
            problems.append(f"{where}: intent {rule.intent!r} is not defined in nlu.yml")
        for slot in [*rule.requires, *([rule.asks] if rule.asks else [])]:
            if slot not in flows.slots:
                problems.append(f"{where}: slot {slot!r} is not declared under slots")
        for action in rule.actions:
            if action.startswith("utter_") and action not in responses.responses:
                problems.append(f"{where}: response {action!r} is not defined in responses.yml")
    for name, slot in flows.slots.items():
        if slot.from_entity and slot.from_entity not in nlu.entities:
            problems.append(
                f"{root / 'flows.yml'}: slot {name!r} maps entity {slot.from_entity!r} not in nlu.yml"
            )
    return problems


def load_project(root: Path | str) -> Project:
    """Load and validate the project in ``root``; raises :class:`ProjectError` listing every problem."""
    root = Path(root)
    if not root.is_dir():
        raise ProjectError([f"{root}: no such assistant project folder"])
    problems: list[str] = []
    assistant = _load_file(root / "assistant.yml", AssistantFile, problems)
    nlu = _load_file(root / "nlu.yml", NluFile, problems)
    flows = _load_file(root / "flows.yml", FlowsFile, problems)
    responses = _load_file(root / "responses.yml", ResponsesFile, problems)
    if not problems:
        problems = _cross_check(root, nlu, flows, responses)
    if problems:
        raise ProjectError(problems)
    return Project(root=root.resolve(), assistant=assistant, nlu=nlu, flows=flows, responses=responses)
