"""The assistant project on disk: ``assistant.yml``, ``nlu.yml``, ``flows.yml`` (version 2, schema in
:mod:`parley.core.flows`), ``responses.yml`` and the optional ``tools.yml`` (:mod:`parley.core.tools`).

Every service that needs part of a project loads it through here, so there is one schema and one kind of
error: a :class:`ProjectError` naming the file and line of each problem (``flows.yml:12: flows.book.steps[3]
.on_confirm: ...``). What is legal but probably a mistake (a step nothing reaches) is a warning on
:attr:`Project.warnings`.
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

from parley.core.conditions import ConditionError, compile_condition, template_names
from parley.core.errors import ConfigurationError
from parley.core.flows import (
    SPECIAL_TARGETS,
    STEP_KEYS,
    V1_FORMAT_MESSAGE,
    ActionStep,
    BranchStep,
    CallStep,
    CollectStep,
    ConfirmStep,
    EndStep,
    FlowsFileV2,
    FlowSpec,
    HandoffStep,
    LinkStep,
    QuestionStep,
    RespondStep,
    Step,
    ValidateStep,
    is_builtin_response,
    is_v1_flows,
    jump_targets,
    reachable_steps,
)
from parley.core.tools import TOOLS_DIR, ToolsFile, module_file


class ProjectError(ConfigurationError):
    """An assistant project file is invalid; ``problems`` holds ``file:line: message`` strings (and
    ``warnings`` what was found besides, in the same form)."""

    def __init__(self, problems: list[str], warnings: Sequence[str] = ()) -> None:
        super().__init__("invalid assistant project:\n  " + "\n  ".join(problems))
        self.problems = problems
        self.warnings = list(warnings)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class NluTraining(_Strict):
    """How the joint NLU model is fine-tuned; unset fields keep the defaults (docs/nlu.md#training).

    A larger encoder is a configuration change: name it and give its local Hugging Face folder.
    """

    encoder: str | None = None
    #: A local folder (relative to the project); nothing is downloaded.
    encoder_path: str | None = None
    epochs: int | None = Field(default=None, ge=1, le=100)
    batch_size: int | None = Field(default=None, ge=1, le=1024)
    lr: float | None = Field(default=None, gt=0, lt=1)
    max_len: int | None = Field(default=None, ge=8, le=512)
    seed: int | None = None
    freeze_embeddings: bool | None = None
    tag_loss_weight: float | None = Field(default=None, ge=0)
    #: Choose the out-of-scope threshold as the lowest one rejecting this share of the validation
    #: out-of-scope examples, instead of maximising balanced accuracy.
    oos_min_recall: float | None = Field(default=None, gt=0, le=1)

    def overrides(self, root: Path) -> dict[str, Any]:
        """The set fields, with ``encoder_path`` made absolute against the project folder ``root``."""
        out = self.model_dump(exclude_none=True)
        if "encoder_path" in out:
            out["encoder_path"] = str((root / out["encoder_path"]).resolve())
        return out


class NluSettings(_Strict):
    """NLU knobs of a project."""

    fallback_threshold: float = Field(default=0.5, ge=0, le=1)
    training: NluTraining = NluTraining()


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


class QuickReplySpec(_Strict):
    """A button under a reply."""

    title: str
    payload: str


class LinkSpec(_Strict):
    """A link under a reply (clients show it as a card or an anchor)."""

    title: str = Field(min_length=1)
    url: str = Field(pattern=r"^(https?://|mailto:|tel:)\S+$", description="http(s), mailto: or tel: only")


#: The personalities a variant can be written for (the generator's personality picks among them).
Style = Literal["friendly", "professional", "concise"]
#: How one of several fitting variants is chosen: ``random`` (per turn, reproducible), ``rotating``
#: (each in turn within a conversation), ``sticky`` (always the same one for a user).
Selection = Literal["random", "rotating", "sticky"]


class ResponseVariant(_Strict):
    """One wording of a response."""

    text: str = Field(min_length=1)
    quick_replies: list[QuickReplySpec] = []
    links: list[LinkSpec] = []
    #: BCP-47 language of this wording (``de``, ``pt-BR``); absent = the assistant's language.
    language: str | None = Field(default=None, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    #: The personality this wording is written for; absent = any.
    style: Style | None = None


class ResponsesFile(_Strict):
    """``responses.yml``."""

    version: str = "1"
    #: How a variant is chosen when several fit (see :data:`Selection`).
    selection: Selection = "random"
    #: Per-response exceptions to ``selection``.
    selection_by_response: dict[str, Selection] = {}
    responses: dict[str, list[ResponseVariant]]

    def selection_of(self, name: str) -> Selection:
        return self.selection_by_response.get(name, self.selection)


class Project(BaseModel):
    """A loaded, validated assistant project."""

    model_config = ConfigDict(frozen=True)

    root: Path
    assistant: AssistantFile
    nlu: NluFile
    flows: FlowsFileV2
    responses: ResponsesFile
    #: ``tools.yml``; empty when the project has none.
    tools: ToolsFile = ToolsFile()
    #: ``file:line: message`` notes about things that are allowed but look like mistakes.
    warnings: tuple[str, ...] = ()

    def training_data_hash(self) -> str:
        """A hash of the NLU training data (and training settings, when any are set), stored with trained
        models to detect stale ones."""
        text = self.nlu.model_dump_json()
        training = self.assistant.nlu.training.model_dump_json(exclude_none=True)
        if training != "{}":
            text += training
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of the YAML node at ``loc`` (or of its closest existing parent).

    A ``[key]`` step (pydantic's marker for a bad mapping key) gives the line of the key itself, and so does a
    block mapping or list under a key (``parameters:`` rather than the first line inside it).
    """
    line = node.start_mark.line + 1 if node is not None else 1
    key_line = line
    by_key = False
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
        by_key = isinstance(node, yaml.MappingNode)
        node = match
        line = node.start_mark.line + 1
    if by_key and isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style:
        return key_line
    return line


_STEP_TAG = re.compile(r"<(\w+) step>")


def _format_loc(loc: Loc) -> str:
    """``("flows", "book", "steps", 3, "next")`` -> ``flows.book.steps[3].next``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}"
    return out or "(top level)"


def _where(path: Path, node: yaml.Node | None, loc: Loc, message: str) -> str:
    return f"{path}:{_line_of(node, loc)}: {_format_loc(loc)}: {message}"


def _pydantic_problems(exc: ValidationError) -> list[tuple[Loc, str]]:
    """Pydantic's errors as (location, message), without the union tags it adds to locations."""
    found: list[tuple[Loc, str]] = []
    for err in exc.errors():
        # "Value error, " is pydantic's prefix for a validator's own message: noise to a user.
        message = err["msg"].removeprefix("Value error, ")
        kinds = [m.group(1) for p in err["loc"] if isinstance(p, str) and (m := _STEP_TAG.fullmatch(p))]
        loc = tuple(p for p in err["loc"] if p not in (_PLAIN, _MAPPING) and not _is_tag(p))
        if kinds:
            kind = kinds[-1]
            if err["type"] == "extra_forbidden":
                fields = [i.alias or n for n, i in STEP_KEYS[kind].model_fields.items()]
                message = f"unknown field (a {kind} step has {', '.join(fields)})"
            message = f"{kind} step: {message}"
        found.append((loc, message))
    return found


def _is_tag(part: int | str) -> bool:
    return isinstance(part, str) and _STEP_TAG.fullmatch(part) is not None


def _parse(
    text: str, path: Path, model: type[BaseModel], problems: list[str]
) -> tuple[Any, yaml.Node | None]:
    """``model`` validated from YAML ``text`` (``None`` if invalid) and the YAML node tree (for lines)."""
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problems.append(f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}")
        return None, None
    try:
        return model.model_validate(data if data is not None else {}), node
    except ValidationError as exc:
        problems += [_where(path, node, loc, message) for loc, message in _pydantic_problems(exc)]
        return None, node


def _validate_text(
    text: str,
    path: Path,
    model: type[BaseModel],
    problems: list[str],
    checks: Callable[[Any], list[tuple[Loc, str]]] | None = None,
) -> Any:
    """``model`` validated from YAML ``text``; each problem goes to ``problems`` as ``path:line: ...``."""
    value, node = _parse(text, path, model, problems)
    if value is None or checks is None:
        return value
    found = checks(value)
    problems += [_where(path, node, loc, message) for loc, message in found]
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


def _responses_checks(responses: ResponsesFile) -> list[tuple[Loc, str]]:
    return [
        (("selection_by_response", name), f"selection for unknown response {name!r}")
        for name in responses.selection_by_response
        if name not in responses.responses
    ]


def load_nlu_text(text: str, source: Path | str = "nlu.yml") -> NluFile:
    """``nlu.yml`` content validated exactly as :func:`load_project` does; errors name ``source:line``.

    For tools that produce training data (importers) and want to check it before writing it.
    """
    problems: list[str] = []
    nlu = _validate_text(text, Path(source), NluFile, problems, _nlu_checks)
    if problems:
        raise ProjectError(problems)
    return nlu


class _FlowsChecker:
    """What the schema of ``flows.yml`` cannot see alone: references between steps, flows, slots, and the
    other files (``None`` for a file that failed to load: its references are not checked)."""

    def __init__(
        self,
        flows: FlowsFileV2,
        nlu: NluFile | None,
        responses: ResponsesFile | None,
        tools: ToolsFile | None,
    ) -> None:
        self.flows = flows
        self.nlu = nlu
        self.responses = responses
        self.tools = tools
        self.problems: list[tuple[Loc, str]] = []
        self.warnings: list[tuple[Loc, str]] = []
        self.intents: set[str] | None = None
        if nlu is not None:
            self.intents = set(nlu.intents) | {a for name in nlu.intents for a in intent_ancestors(name)}

    def run(self) -> None:
        self._settings()
        self._slots()
        self._constraints()
        for name, flow in self.flows.flows.items():
            self._flow(name, flow)
        self._calls()

    # -- one reference ------------------------------------------------------------------------------------

    def response(self, loc: Loc, name: str) -> None:
        if self.responses is None or name in self.responses.responses:
            return
        if not is_builtin_response(name, self.flows.slots):
            self.problems.append((loc, f"response {name!r} is not defined in responses.yml"))

    def slot(self, loc: Loc, name: str) -> None:
        if name not in self.flows.slots:
            self.problems.append((loc, f"slot {name!r} is not declared under slots"))

    def intent(self, loc: Loc, name: str) -> None:
        if self.intents is not None and name not in self.intents:
            self.problems.append((loc, f"intent {name!r} is not defined in nlu.yml"))

    def entity(self, loc: Loc, name: str) -> None:
        if self.nlu is not None and name not in self.nlu.entities:
            self.problems.append((loc, f"entity {name!r} is not defined in nlu.yml"))

    def condition(self, loc: Loc, text: str) -> None:
        try:
            compiled = compile_condition(text)
        except ConditionError as exc:
            self.problems.append((loc, f"condition does not compile: {exc}"))
            return
        for name in sorted(compiled.slots - set(self.flows.slots)):
            self.problems.append(
                (loc, f"the condition reads slot {name!r}, which is not declared under slots")
            )

    # -- sections ------------------------------------------------------------------------------------------

    def _settings(self) -> None:
        settings = self.flows.settings
        for field in ("greet_response", "goodbye_response", "clarify_response", "resume_response"):
            self.response(("settings", field), getattr(settings, field))
        self.response(("settings", "cancelled_response"), settings.cancelled_response)
        for field in ("rephrase", "options", "handoff"):
            self.response(("settings", "fallback", field), getattr(settings.fallback, field))
        # Meta intents are optional (a project may have no "correct" intent); one named on purpose that NLU
        # never predicts is likely a typo.
        for field in sorted(settings.model_fields_set):
            if field.endswith("_intent") and self.intents is not None:
                name = getattr(settings, field)
                if name not in self.intents:
                    self.warnings.append((("settings", field), f"intent {name!r} is not defined in nlu.yml"))

    def _slots(self) -> None:
        for name, spec in self.flows.slots.items():
            loc: Loc = ("slots", name)
            if spec.entity is not None:
                self.entity((*loc, "entity"), spec.entity)
            if spec.regex is not None:
                try:
                    re.compile(spec.regex)
                except re.error as exc:
                    self.problems.append(((*loc, "regex"), f"regex does not compile: {exc}"))
            if spec.min is not None and spec.max is not None and spec.min > spec.max:
                self.problems.append(((*loc, "min"), f"min {spec.min:g} is above max {spec.max:g}"))
            if spec.invalid_response is not None:
                self.response((*loc, "invalid_response"), spec.invalid_response)
            if spec.type == "categorical" and not spec.values:
                self.warnings.append(((*loc, "type"), "a categorical slot without values accepts any value"))

    def _constraints(self) -> None:
        seen: set[str] = set()
        for i, spec in enumerate(self.flows.constraints):
            loc: Loc = ("constraints", i)
            if spec.name in seen:
                self.problems.append(((*loc, "name"), f"constraint {spec.name!r} is defined twice"))
            seen.add(spec.name)
            self.condition((*loc, "when"), spec.when)
            self.condition((*loc, "forbid"), spec.forbid)
            for j, slot in enumerate(spec.slots):
                self.slot((*loc, "slots", j), slot)
            self.response((*loc, "ask"), spec.ask)

    def _flow(self, name: str, flow: FlowSpec) -> None:
        base: Loc = ("flows", name)
        if flow.trigger is not None:
            for j, intent in enumerate(flow.trigger.intents):
                self.intent((*base, "trigger", "intents", j), intent)
            for j, entity in enumerate(flow.trigger.entities):
                self.entity((*base, "trigger", "entities", j), entity)
            if flow.trigger.condition is not None:
                self.condition((*base, "trigger", "condition"), flow.trigger.condition)
        for j, slot in enumerate(flow.reset_slots or ()):
            self.slot((*base, "reset_slots", j), slot)
        ids: dict[str, int] = {}
        for i, step in enumerate(flow.steps):
            if step.id is None:
                continue
            loc = (*base, "steps", i, "id")
            if step.id in SPECIAL_TARGETS:
                self.problems.append(
                    (loc, f"{step.id!r} is reserved as a jump target; choose another step id")
                )
            elif step.id in ids:
                self.problems.append(
                    (loc, f"step id {step.id!r} is used twice in flow {name!r} (also steps[{ids[step.id]}])")
                )
            else:
                ids[step.id] = i
        dangling = False
        for i, step in enumerate(flow.steps):
            loc = (*base, "steps", i)
            for jump in jump_targets(step):
                if jump.target not in ids and jump.target not in SPECIAL_TARGETS:
                    dangling = True
                    self.problems.append(
                        (
                            (*loc, *jump.field),
                            f"{jump.target!r} is not a step id of flow {name!r} "
                            f"(nor one of {', '.join(sorted(SPECIAL_TARGETS))})",
                        )
                    )
            self._step(loc, step)
        # With a dangling jump, "unreachable" steps are a consequence already reported.
        reached = set(range(len(flow.steps))) if dangling else reachable_steps(flow)
        for i in range(len(flow.steps)):
            if i not in reached:
                self.warnings.append(((*base, "steps", i), "no path from the first step reaches this step"))
        started_elsewhere = any(
            _flow_named(step) == name for other in self.flows.flows.values() for step in other.steps
        )
        if flow.trigger is None and not started_elsewhere:
            self.warnings.append(
                (base, f"flow {name!r} never starts: it has no trigger and no flow calls or links it")
            )

    def _step(self, loc: Loc, step: Step) -> None:
        if isinstance(step, RespondStep):
            self.response((*loc, "respond"), step.respond)
        elif isinstance(step, QuestionStep):
            self.response((*loc, "question"), step.question)
            for intent in step.expect:
                self.intent((*loc, "expect", intent), intent)
        elif isinstance(step, CollectStep):
            self.slot((*loc, "collect"), step.collect)
            for field in ("ask", "reask", "invalid_response"):
                if getattr(step, field) is not None:
                    self.response((*loc, field), getattr(step, field))
            if step.validate_ is not None:
                self.condition((*loc, "validate"), step.validate_)
        elif isinstance(step, ValidateStep):
            for j, slot in enumerate(step.validate_):
                self.slot((*loc, "validate", j), slot)
            if step.condition is not None:
                self.condition((*loc, "condition"), step.condition)
        elif isinstance(step, ConfirmStep):
            self.response((*loc, "confirm"), step.confirm)
        elif isinstance(step, BranchStep):
            for j, case in enumerate(step.branch):
                if case.if_ is not None:
                    self.condition((*loc, "branch", j, "if"), case.if_)
        elif isinstance(step, ActionStep):
            self._action(loc, step)
        elif isinstance(step, CallStep | LinkStep):
            key = "call" if isinstance(step, CallStep) else "link"
            target = getattr(step, key)
            if target not in self.flows.flows:
                self.problems.append(((*loc, key), f"flow {target!r} is not defined under flows"))
        elif isinstance(step, HandoffStep):
            if isinstance(step.handoff, str):
                self.response((*loc, "handoff"), step.handoff)
        elif isinstance(step, EndStep) and step.respond is not None:
            self.response((*loc, "respond"), step.respond)

    def _action(self, loc: Loc, step: ActionStep) -> None:
        if self.tools is not None and step.action not in self.tools.tools:
            known = ", ".join(sorted(self.tools.tools)) or "none: the project has no tools.yml or it is empty"
            self.problems.append(
                ((*loc, "action"), f"tool {step.action!r} is not defined in tools.yml ({known})")
            )
        for key, value in step.args.items():
            for name in sorted(template_names(value)):
                if name not in self.flows.slots:
                    self.problems.append(
                        (
                            (*loc, "args", key),
                            f"{{{name}}} names no slot: only declared slots can be filled in",
                        )
                    )

    def _calls(self) -> None:
        """A flow that calls itself, directly or through others, would stack up forever."""
        calls: dict[str, list[tuple[int, str]]] = {
            name: [
                (i, s.call)
                for i, s in enumerate(flow.steps)
                if isinstance(s, CallStep) and s.call in self.flows.flows
            ]
            for name, flow in self.flows.flows.items()
        }
        done: set[str] = set()
        path: list[str] = []

        def visit(name: str) -> None:
            path.append(name)
            for i, callee in calls[name]:
                if callee in path:
                    cycle = " -> ".join([*path[path.index(callee) :], callee])
                    self.problems.append(
                        (
                            ("flows", name, "steps", i, "call"),
                            f"call cycle {cycle}: a flow cannot call itself, directly or through other "
                            "flows (use link to continue in a flow for good)",
                        )
                    )
                elif callee not in done:
                    visit(callee)
            path.pop()
            done.add(name)

        for name in calls:
            if name not in done:
                visit(name)


def _flow_named(step: Step) -> str | None:
    """The flow a ``call`` or ``link`` step goes to."""
    return step.call if isinstance(step, CallStep) else step.link if isinstance(step, LinkStep) else None


def _tools_checks(root: Path, tools: ToolsFile) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for key, spec in tools.tools.items():
        if spec.name != key:
            problems.append((("tools", key, "name"), f"name {spec.name!r} differs from its key {key!r}"))
        if module_file(root, spec) is None:
            expected = Path(TOOLS_DIR, *spec.module.split("."))
            problems.append(
                (
                    ("tools", key, "python"),
                    f"module {spec.module!r} not found: expected {expected}.py or {expected}/__init__.py",
                )
            )
    return problems


def _load_flows(
    path: Path,
    nlu: NluFile | None,
    responses: ResponsesFile | None,
    tools: ToolsFile | None,
    problems: list[str],
    warnings: list[str],
) -> FlowsFileV2 | None:
    if not path.is_file():
        problems.append(f"{path}: missing file")
        return None
    text = path.read_text(encoding="utf-8")
    try:
        data, node = yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError:
        data, node = None, None  # reported by _parse below
    if is_v1_flows(data):
        problems.append(f"{path}:{_line_of(node, ('version',))}: {V1_FORMAT_MESSAGE}")
        return None
    flows, node = _parse(text, path, FlowsFileV2, problems)
    if flows is None:
        return None
    checker = _FlowsChecker(flows, nlu, responses, tools)
    checker.run()
    problems += [_where(path, node, loc, message) for loc, message in checker.problems]
    warnings += [_where(path, node, loc, message) for loc, message in checker.warnings]
    return None if checker.problems else flows


def load_project(root: Path | str) -> Project:
    """Load and validate the project in ``root``; raises :class:`ProjectError` listing every problem."""
    root = Path(root)
    if not root.is_dir():
        raise ProjectError([f"{root}: no such assistant project folder"])
    problems: list[str] = []
    warnings: list[str] = []
    assistant = _load_file(root / "assistant.yml", AssistantFile, problems)
    nlu = _load_file(root / "nlu.yml", NluFile, problems, _nlu_checks)
    responses = _load_file(root / "responses.yml", ResponsesFile, problems, _responses_checks)
    tools: ToolsFile | None = ToolsFile()
    if (root / "tools.yml").is_file():
        tools = _load_file(root / "tools.yml", ToolsFile, problems, lambda t: _tools_checks(root, t))
    flows = _load_flows(root / "flows.yml", nlu, responses, tools, problems, warnings)
    if problems:
        raise ProjectError(problems, warnings)
    return Project(
        root=root.resolve(),
        assistant=assistant,
        nlu=nlu,
        flows=flows,
        responses=responses,
        tools=tools,
        warnings=tuple(warnings),
    )
