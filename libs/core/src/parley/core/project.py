"""The assistant project on disk: ``assistant.yml``, ``nlu.yml``, ``flows.yml``, ``responses.yml``.

Every service that needs part of a project loads it through here, so there is one schema and one kind of
error: a :class:`ProjectError` naming the file and line of each problem.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    field_validator,
)

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


# --- nlu.yml ------------------------------------------------------------------------------------------------

_NAME = r"[A-Za-z0-9_][A-Za-z0-9_-]*"
#: An entity name: letters, digits, ``_`` and ``-``.
ENTITY_NAME = re.compile(rf"{_NAME}")
#: An intent name: like an entity name, with ``.`` between levels of a hierarchy (``order.status``).
INTENT_NAME = re.compile(rf"{_NAME}(?:\.{_NAME})*")
#: Resolution hints an entity may declare with ``type``.
EntityType = Literal["date", "time", "number", "money", "text", "id"]

_ANNOTATION_KEYS = frozenset({"entity", "value", "role"})
_JSON = json.JSONDecoder()


def parent_intent(name: str) -> str | None:
    """The intent one level up (``order.status`` -> ``order``), ``None`` for a top-level intent."""
    parent, dot, _ = name.rpartition(".")
    return parent if dot else None


def intent_ancestors(name: str) -> tuple[str, ...]:
    """Every level above ``name``, outermost first (``a.b.c`` -> ``("a", "a.b")``)."""
    parts = name.split(".")
    return tuple(".".join(parts[:i]) for i in range(1, len(parts)))


@dataclass(frozen=True)
class EntitySpan:
    """Characters ``[start, end)`` of an example's plain text are an entity ``type`` meaning ``value``."""

    start: int
    end: int
    type: str
    value: str
    role: str | None = None


class AnnotationError(ValueError):
    """An example's inline entity annotation is malformed; ``column`` is 1-based in the written text."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column
        self.message = message


def _annotation_attrs(text: str, close: int, allowed: frozenset[str]) -> tuple[dict[str, Any], int]:
    """The attributes of the annotation whose ``]`` is at ``close``, and the index just after it."""
    opener = close + 1
    if text[opener] == "(":
        end = text.find(")", opener)
        if end == -1:
            raise AnnotationError(opener + 1, "'(' after '[...]' is never closed with ')'")
        entity, colon, value = text[opener + 1 : end].partition(":")
        attrs: dict[str, Any] = {"entity": entity.strip()}
        if colon:
            if not value.strip():
                raise AnnotationError(opener + 1, f"empty value after ':' in ({text[opener + 1 : end]})")
            attrs["value"] = value.strip()
        return attrs, end + 1
    try:
        attrs, end = _JSON.raw_decode(text, opener)
    except json.JSONDecodeError as exc:
        raise AnnotationError(exc.pos + 1, f"the {{...}} after '[...]' is not valid JSON: {exc.msg}") from exc
    if not isinstance(attrs, dict):
        raise AnnotationError(opener + 1, "the {...} after '[...]' must be a JSON object")
    unknown = sorted(set(attrs) - allowed)
    if unknown:
        raise AnnotationError(
            opener + 1, f"unknown annotation key(s) {', '.join(map(repr, unknown))}; use {sorted(allowed)}"
        )
    for key, value in attrs.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float) or not str(value).strip():
            raise AnnotationError(opener + 1, f"annotation key {key!r} needs a non-empty string")
        attrs[key] = str(value).strip()
    return attrs, end


def scan_annotations(
    text: str, *, allowed_keys: frozenset[str] = _ANNOTATION_KEYS
) -> tuple[str, list[tuple[EntitySpan, dict[str, str]]]]:
    """The plain text of an annotated example and each span with all its annotation attributes.

    The engine under :func:`parse_annotations`; importers pass ``allowed_keys`` to see keys Parley drops.
    """
    out: list[str] = []
    length = 0
    found: list[tuple[EntitySpan, dict[str, str]]] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "]" and text[i + 1 : i + 2] in ("(", "{"):
            raise AnnotationError(i + 1, f"']{text[i + 1]}' without a matching '[' before it")
        close = text.find("]", i + 1) if char == "[" else -1
        nested = text.find("[", i + 1, close) if close != -1 else -1
        if close == -1 or nested != -1 or text[close + 1 : close + 2] not in ("(", "{"):
            out.append(char)  # not an annotation: brackets without (...) or {...} stay literal text
            length += 1
            i += 1
            continue
        surface = text[i + 1 : close]
        if not surface.strip():
            raise AnnotationError(i + 1, "the annotated text between '[' and ']' is empty")
        if surface != surface.strip():
            raise AnnotationError(i + 1, f"annotated text {surface!r} starts or ends with a space")
        attrs, i = _annotation_attrs(text, close, allowed_keys)
        entity = attrs.get("entity")
        if not entity:
            raise AnnotationError(close + 2, f"annotation of {surface!r} names no entity")
        if not ENTITY_NAME.fullmatch(entity):
            raise AnnotationError(
                close + 2, f"{entity!r} is not an entity name (letters, digits, '_' and '-')"
            )
        span = EntitySpan(
            length, length + len(surface), entity, attrs.get("value", surface), attrs.get("role")
        )
        found.append((span, attrs))
        out.append(surface)
        length += len(surface)
    plain = "".join(out)
    if not plain.strip():
        raise AnnotationError(1, "the example is empty")
    return plain, found


def parse_annotations(text: str) -> tuple[str, tuple[EntitySpan, ...]]:
    """Split ``My order is [12345](order_id)`` into plain text and entity spans over that text.

    Forms: ``[text](entity)``, ``[text](entity:value)``, ``[text]{"entity": e, "value": v, "role": r}``
    (``value`` and ``role`` optional). Square brackets not followed by ``(`` or ``{`` are literal text.
    Raises :class:`AnnotationError` with the column of a malformed annotation.
    """
    plain, found = scan_annotations(text)
    return plain, tuple(span for span, _ in found)


def format_annotations(text: str, spans: Sequence[EntitySpan]) -> str:
    """The written form of plain ``text`` with ``spans``: the inverse of :func:`parse_annotations`."""
    out: list[str] = []
    cursor = 0
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if span.start < cursor or not 0 <= span.start < span.end <= len(text):
            raise ValueError(f"span {span.start}:{span.end} overlaps another or lies outside {text!r}")
        surface = text[span.start : span.end]
        if any(c in surface for c in "[]") or surface != surface.strip():
            raise ValueError(f"{surface!r} cannot be annotated (brackets or surrounding spaces)")
        out.append(text[cursor : span.start])
        if span.value == surface and span.role is None:
            out.append(f"[{surface}]({span.type})")
        else:
            attrs = {"entity": span.type}
            attrs |= {"value": span.value} if span.value != surface else {}
            attrs |= {"role": span.role} if span.role else {}
            out.append(f"[{surface}]{json.dumps(attrs, ensure_ascii=False)}")
        cursor = span.end
    out.append(text[cursor:])
    return "".join(out)


def example_key(text: str) -> str:
    """What makes two examples the same for duplicate checks: case and runs of spaces do not count."""
    return " ".join(text.split()).casefold()


def _annotated_text(value: str) -> str:
    try:
        parse_annotations(value)
    except AnnotationError as exc:
        raise ValueError(f"malformed entity annotation, {exc}") from exc
    return value


def _intent_name(value: str) -> str:
    if not INTENT_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an intent name: letters, digits, '_' and '-', with '.' between levels"
        )
    return value


def _entity_name(value: str) -> str:
    if not ENTITY_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an entity name: letters, digits, '_' and '-'")
    return value


#: Example text, possibly with inline entity annotations (checked when loaded).
AnnotatedText = Annotated[str, AfterValidator(_annotated_text)]
IntentName = Annotated[str, AfterValidator(_intent_name)]
EntityName = Annotated[str, AfterValidator(_entity_name)]
NonEmptyText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

# Discriminator tags of the two example forms; they never name a YAML key, so error paths drop them.
_PLAIN, _MAPPING = "<text>", "<mapping>"


class ExampleSpec(_Strict):
    """An example written as a mapping: for messages that express several intents at once."""

    text: AnnotatedText
    #: Every intent the message expresses, including the one it is listed under; empty means just that one.
    intents: list[IntentName] = []


def _example_form(value: Any) -> str:
    return _MAPPING if isinstance(value, dict | ExampleSpec) else _PLAIN


Example = Annotated[
    Annotated[AnnotatedText, Tag(_PLAIN)] | Annotated[ExampleSpec, Tag(_MAPPING)],
    Discriminator(_example_form),
]


class IntentSpec(_Strict):
    """One intent with its example utterances: strings, or mappings for multi-intent messages."""

    examples: list[Example] = Field(min_length=1)


class EntitySpec(_Strict):
    """An entity type, learned from annotated examples and found by ``regex``, ``lookup`` and ``synonyms``.

    ``regex`` group 1 (or the whole match) is the value; ``synonyms`` maps a canonical value to the variants
    users write; ``type`` tells resolution how to read a value (a date, an amount of money, an id...).
    """

    type: EntityType = "text"
    regex: str | None = None
    lookup: list[NonEmptyText] = []
    synonyms: dict[NonEmptyText, list[NonEmptyText]] = {}

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"regex does not compile: {exc}") from exc
        return value

    def canonical(self, value: str) -> str:
        """``value`` mapped through ``synonyms`` (ignoring case and spacing); unchanged when no variant."""
        key = example_key(value)
        for canonical, variants in self.synonyms.items():
            if key in {example_key(v) for v in variants}:
                return canonical
        return value


class NluFile(_Strict):
    """``nlu.yml``."""

    version: str = "1"
    intents: dict[IntentName, IntentSpec] = Field(min_length=2)
    entities: dict[EntityName, EntitySpec] = {}
    #: Messages the assistant should recognise as outside what it does (weather, jokes...).
    out_of_scope: list[AnnotatedText] = []

    @field_validator("entities", mode="before")
    @classmethod
    def _bare_entities(cls, value: Any) -> Any:
        """``order_id:`` with nothing under it declares an entity learned from annotations only."""
        if value is None:
            return {}
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value


Loc = tuple[int | str, ...]


def _nlu_checks(nlu: NluFile) -> list[tuple[Loc, str]]:
    """What one field cannot see: intent and entity references, duplicate examples, synonym clashes."""
    problems: list[tuple[Loc, str]] = []
    seen: dict[str, str] = {}

    def check_text(text: str, loc: Loc, owner: str) -> None:
        plain, spans = parse_annotations(text)
        for span in spans:
            if span.type not in nlu.entities:
                problems.append((loc, f"entity {span.type!r} is not declared under entities"))
        key = example_key(plain)
        if key in seen:
            problems.append((loc, f"duplicate example {plain!r} (also in {seen[key]})"))
        else:
            seen[key] = owner

    for name, spec in nlu.intents.items():
        for i, example in enumerate(spec.examples):
            loc: Loc = ("intents", name, "examples", i)
            if isinstance(example, str):
                check_text(example, loc, f"intent {name!r}")
                continue
            if example.intents and name not in example.intents:
                problems.append(((*loc, "intents"), f"must include {name!r}, the intent it is listed under"))
            if len(set(example.intents)) != len(example.intents):
                problems.append(((*loc, "intents"), "an intent is listed twice"))
            for j, other in enumerate(example.intents):
                if other not in nlu.intents:
                    problems.append(((*loc, "intents", j), f"intent {other!r} is not defined in intents"))
            check_text(example.text, (*loc, "text"), f"intent {name!r}")
    for i, text in enumerate(nlu.out_of_scope):
        check_text(text, ("out_of_scope", i), "out_of_scope")
    for entity, spec in nlu.entities.items():
        owner: dict[str, str] = {}
        for canonical, variants in spec.synonyms.items():
            for j, variant in enumerate(variants):
                other = owner.setdefault(example_key(variant), canonical)
                if other != canonical:
                    problems.append(
                        (
                            ("entities", entity, "synonyms", canonical, j),
                            f"{variant!r} is also a synonym of {other!r}",
                        )
                    )
        for canonical in spec.synonyms:
            other = owner.get(example_key(canonical), canonical)
            if other != canonical:
                problems.append(
                    (
                        ("entities", entity, "synonyms", canonical),
                        f"{canonical!r} is also a synonym of {other!r}",
                    )
                )
    return problems


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
    """The 1-based line of the YAML node at ``loc`` (or of its closest existing parent).

    A ``[key]`` step (pydantic's marker for a bad mapping key) gives the line of the key itself.
    """
    line = node.start_mark.line + 1 if node is not None else 1
    key_line = line
    for key in loc:
        if key == "[key]":
            return key_line
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == key), None)
            match = pair[1] if pair else None
            key_line = pair[0].start_mark.line + 1 if pair else key_line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            match = node.value[key]
        else:
            match = None
        if match is None:
            break
        node = match
        line = node.start_mark.line + 1
    return line


def _validate_text(
    text: str,
    path: Path,
    model: type[BaseModel],
    problems: list[str],
    checks: Callable[[Any], list[tuple[Loc, str]]] | None = None,
) -> Any:
    """``model`` validated from YAML ``text``; each problem goes to ``problems`` as ``path:line: ...``."""
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problems.append(f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}")
        return None
    found: list[tuple[Loc, str]] = []
    try:
        value = model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        value = None
        # "Value error, " is pydantic's prefix for a validator's own message: noise to a user.
        found = [(tuple(err["loc"]), err["msg"].removeprefix("Value error, ")) for err in exc.errors()]
    if value is not None and checks is not None:
        found = checks(value)
    for raw_loc, message in found:
        loc = tuple(p for p in raw_loc if p not in (_PLAIN, _MAPPING))
        where = ".".join(str(p) for p in loc) or "(top level)"
        problems.append(f"{path}:{_line_of(node, loc)}: {where}: {message}")
    return None if found else value


def _load_file(
    path: Path,
    model: type[BaseModel],
    problems: list[str],
    checks: Callable[[Any], list[tuple[Loc, str]]] | None = None,
) -> Any:
    if not path.is_file():
        problems.append(f"{path}: missing file")
        return None
    return _validate_text(path.read_text(encoding="utf-8"), path, model, problems, checks)


def load_nlu_text(text: str, source: Path | str = "nlu.yml") -> NluFile:
    """``nlu.yml`` content validated exactly as :func:`load_project` does; errors name ``source:line``.

    For tools that produce training data (importers) and want to check it before writing it.
    """
    problems: list[str] = []
    nlu = _validate_text(text, Path(source), NluFile, problems, _nlu_checks)
    if problems:
        raise ProjectError(problems)
    return nlu


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
    nlu = _load_file(root / "nlu.yml", NluFile, problems, _nlu_checks)
    flows = _load_file(root / "flows.yml", FlowsFile, problems)
    responses = _load_file(root / "responses.yml", ResponsesFile, problems)
    if not problems:
        problems = _cross_check(root, nlu, flows, responses)
    if problems:
        raise ProjectError(problems)
    return Project(root=root.resolve(), assistant=assistant, nlu=nlu, flows=flows, responses=responses)
