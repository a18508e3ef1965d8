"""Import Rasa 3.x NLU training data (``nlu.yml``) into a Parley project's ``nlu.yml``.

What maps, and how:

- ``- intent: name`` with ``examples: |`` (``- `` lines) or a list of ``text:`` items -> ``intents.name``;
  retrieval intents ``faq/ask_name`` -> ``faq.ask_name`` (a hierarchical intent); ``a+b`` (Rasa's
  multi-intent) -> ``{text, intents: [a, b]}`` examples; the ``out_of_scope`` intent -> ``out_of_scope``.
- Entity annotations ``[text](entity)``, ``[text](entity:value)``, ``[text]{"entity": e, "value": v,
  "role": r}`` -> Parley annotations (the same syntax); every annotated entity is declared under
  ``entities``; an annotation whose value differs from its text adds that synonym (as Rasa learns it).
- ``- synonym: canonical`` -> ``synonyms`` of each entity whose annotations or lookup use the value.
- ``- regex: name`` -> ``regex`` of entity ``name`` when there is one (several patterns are joined);
  the whole match stays the value, as in Rasa.
- ``- lookup: name`` -> ``lookup`` of entity ``name`` (declared if need be).

What cannot be mapped (metadata, entity groups, regexes that name no entity, synonyms no entity uses,
lists of entities on one text, stories/rules/responses in the same file) is dropped with a warning.
Malformed input (not YAML, an item of no known kind, an example line without ``- ``, a broken annotation,
a regex that does not compile) raises :class:`RasaImportError` listing every problem as ``file:line``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from parley.core.errors import InvalidInputError
from parley.core.project import (
    ENTITY_NAME,
    INTENT_NAME,
    AnnotationError,
    EntitySpan,
    NluFile,
    example_key,
    format_annotations,
    load_nlu_text,
    scan_annotations,
)

_KINDS = ("intent", "synonym", "regex", "lookup")
_RASA_ANNOTATION_KEYS = frozenset({"entity", "value", "role", "group"})
#: Rasa's ``[text][{...}, {...}]``: several entities on one text, which Parley's format cannot hold.
_ENTITY_LIST = re.compile(r"\[([^\[\]]+)\]\[\s*(\{[^\[\]]*?\})\s*(,\s*\{[^\[\]]*?\}\s*)*\]")
_OUT_OF_SCOPE = "out_of_scope"


class RasaImportError(InvalidInputError):
    """The Rasa data is malformed; ``problems`` holds ``file:line: message`` strings."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("cannot import Rasa NLU data:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass
class _Example:
    text: str
    spans: tuple[EntitySpan, ...]
    intents: tuple[str, ...]
    where: str


@dataclass
class _Items:
    kind: str
    name: str
    values: list[tuple[str, str]]  # (example text, "file:line")
    where: str


class _Importer:
    """Collects everything from one or more files, then builds the Parley structure."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.examples: list[_Example] = []
        self.out_of_scope: list[_Example] = []
        self.synonyms: list[_Items] = []
        self.regexes: list[_Items] = []
        self.lookups: list[_Items] = []
        self._renamed: dict[str, str | None] = {}

    # --- reading ------------------------------------------------------------------------------------------

    def read(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
            data = yaml.safe_load(text)
            root = yaml.compose(text)
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(f"{path}: cannot read: {exc}")
            return
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            self.problems.append(
                f"{path}:{mark.line + 1 if mark else 1}: not valid YAML: {getattr(exc, 'problem', exc)}"
            )
            return
        if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
            self.problems.append(f"{path}:1: expected a mapping with an 'nlu:' list (Rasa 3.x format)")
            return
        nodes = {k.value: (k, v) for k, v in root.value}
        for key in data:
            if key not in ("version", "nlu"):
                line = nodes[str(key)][0].start_mark.line + 1 if str(key) in nodes else 1
                self.warnings.append(f"{path}:{line}: '{key}' ignored: only NLU training data is imported")
        version = str(data.get("version", "3"))
        if not version.startswith("3"):
            self.warnings.append(f"{path}:1: version {version!r}: read as Rasa 3.x training data")
        if "nlu" not in data:
            self.problems.append(f"{path}:1: no 'nlu:' list")
            return
        nlu, nlu_node = data["nlu"], nodes["nlu"][1]
        if not isinstance(nlu, list) or not isinstance(nlu_node, yaml.SequenceNode):
            self.problems.append(f"{path}:{nlu_node.start_mark.line + 1}: 'nlu:' must be a list of items")
            return
        for item, node in zip(nlu, nlu_node.value, strict=True):
            self._item(path, item, node)

    def _item(self, path: Path, item: Any, node: yaml.Node) -> None:
        where = f"{path}:{node.start_mark.line + 1}"
        if not isinstance(item, dict) or not isinstance(node, yaml.MappingNode):
            self.problems.append(f"{where}: an nlu item must be a mapping with one of {', '.join(_KINDS)}")
            return
        kinds = [k for k in _KINDS if k in item]
        if len(kinds) != 1:
            found = f"both {' and '.join(kinds)}" if kinds else f"none of {', '.join(_KINDS)}"
            self.problems.append(
                f"{where}: an nlu item needs exactly one of {', '.join(_KINDS)}; it has {found}"
            )
            return
        kind = kinds[0]
        name = item[kind]
        if isinstance(name, bool) or not isinstance(name, str | int | float) or not str(name).strip():
            self.problems.append(f"{where}: '{kind}:' needs a name")
            return
        name = str(name).strip()
        nodes = {k.value: v for k, v in node.value}
        for key in item:
            if key in (kind, "examples"):
                continue
            what = "metadata is not carried over" if key == "metadata" else f"unknown key '{key}' ignored"
            self.warnings.append(f"{where}: {kind} '{name}': {what}")
        if "examples" not in item:
            self.problems.append(f"{where}: {kind} '{name}' has no 'examples'")
            return
        values = self._examples(path, item["examples"], nodes.get("examples", node), f"{kind} '{name}'")
        if kind == "intent":
            self._intent(name, values, where)
        else:
            {"synonym": self.synonyms, "regex": self.regexes, "lookup": self.lookups}[kind].append(
                _Items(kind, name, values, where)
            )

    def _examples(self, path: Path, examples: Any, node: yaml.Node, what: str) -> list[tuple[str, str]]:
        """``(text, "file:line")`` of each example of an item, from a ``|`` block or a list."""
        out: list[tuple[str, str]] = []
        problems = len(self.problems)
        first = node.start_mark.line + 1
        if isinstance(examples, str) and isinstance(node, yaml.ScalarNode):
            offset = 1 if node.style in ("|", ">") else 0
            for i, raw in enumerate(examples.split("\n")):
                line = f"{path}:{first + offset + i}"
                stripped = raw.strip()
                if not stripped:
                    continue
                if not stripped.startswith("-"):
                    self.problems.append(f"{line}: {what}: an example line must start with '- ': {raw!r}")
                elif not stripped[1:].strip():
                    self.problems.append(f"{line}: {what}: empty example")
                else:
                    out.append((stripped[1:].strip(), line))
        elif isinstance(examples, list) and isinstance(node, yaml.SequenceNode):
            dropped_metadata = False
            for entry, item_node in zip(examples, node.value, strict=True):
                line = f"{path}:{item_node.start_mark.line + 1}"
                value = entry
                if isinstance(entry, dict) and "text" in entry:
                    dropped_metadata |= bool(set(entry) - {"text"})
                    value = entry["text"]
                if (
                    isinstance(value, bool)
                    or not isinstance(value, str | int | float)
                    or not str(value).strip()
                ):
                    self.problems.append(
                        f"{line}: {what}: an example must be a text or a mapping with 'text'"
                    )
                    continue
                out.append((str(value).strip(), line))
            if dropped_metadata:
                self.warnings.append(f"{path}:{first}: {what}: example metadata is not carried over")
        else:
            self.problems.append(
                f"{path}:{first}: {what}: 'examples' must be a '|' block of '- ' lines or a list"
            )
        if not out and len(self.problems) == problems:
            self.warnings.append(f"{path}:{first}: {what} has no examples")
        return out

    def _intent_name(self, rasa: str, where: str) -> str | None:
        """Parley's name for a Rasa intent: ``faq/ask_name`` -> ``faq.ask_name``; odd characters -> ``_``."""
        if rasa in self._renamed:
            return self._renamed[rasa]
        name = rasa.strip().replace("/", ".")
        if not INTENT_NAME.fullmatch(name):
            fixed = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]", "_", name)).strip(".")
            if INTENT_NAME.fullmatch(fixed):
                self.warnings.append(f"{where}: intent {rasa!r} renamed {fixed!r}")
                name = fixed
            else:
                self.problems.append(f"{where}: intent {rasa!r} cannot be named in Parley")
                name = None
        self._renamed[rasa] = name
        return name

    def _intent(self, rasa: str, values: list[tuple[str, str]], where: str) -> None:
        names = [self._intent_name(part, where) for part in rasa.split("+")]
        if any(n is None for n in names):
            return
        intents = tuple(dict.fromkeys(n for n in names if n is not None))
        for written, line in values:
            parsed = self._annotated(written, line, f"intent '{rasa}'")
            if parsed is None:
                continue
            text, spans = parsed
            if intents == (_OUT_OF_SCOPE,):
                self.out_of_scope.append(_Example(text, spans, (), line))
            else:
                self.examples.append(_Example(text, spans, intents, line))

    def _annotated(self, written: str, line: str, what: str) -> tuple[str, tuple[EntitySpan, ...]] | None:
        def first_only(match: re.Match[str]) -> str:
            self.warnings.append(
                f"{line}: {what}: several entities on [{match.group(1)}]; only the first is kept"
            )
            return f"[{match.group(1)}]{match.group(2)}"

        written = _ENTITY_LIST.sub(first_only, written)
        try:
            text, found = scan_annotations(written, allowed_keys=_RASA_ANNOTATION_KEYS)
        except AnnotationError as exc:
            self.problems.append(f"{line}: {what}: malformed entity annotation, {exc} in {written!r}")
            return None
        for span, attrs in found:
            if "group" in attrs:
                self.warnings.append(
                    f"{line}: {what}: entity group {attrs['group']!r} of [{text[span.start : span.end]}] "
                    "dropped (Parley has no entity groups)"
                )
        return text, tuple(span for span, _ in found)

    # --- building -----------------------------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        examples = self._dedupe()
        intents = self._place(examples)
        entities = self._entities(examples)
        data: dict[str, Any] = {"version": "1", "intents": intents}
        if entities:
            data["entities"] = entities
        if self.out_of_scope:
            data["out_of_scope"] = [format_annotations(ex.text, ex.spans) for ex in self.out_of_scope]
        return data

    def _dedupe(self) -> list[_Example]:
        """One copy of each text (case and spacing ignored): Parley rejects duplicates and conflicts."""
        seen: dict[str, _Example] = {}
        kept: list[_Example] = []
        oos: list[_Example] = []
        for ex in [*self.examples, *self.out_of_scope]:
            key = example_key(ex.text)
            first = seen.get(key)
            if first is None:
                seen[key] = ex
                (kept if ex.intents else oos).append(ex)
            elif first.intents == ex.intents:
                self.warnings.append(f"{ex.where}: duplicate example {ex.text!r} dropped")
            else:
                self.warnings.append(
                    f"{ex.where}: {ex.text!r} is also an example of {_label(first)} at {first.where}; "
                    f"kept there, dropped from {_label(ex)}"
                )
        self.out_of_scope = oos
        return kept

    def _place(self, examples: list[_Example]) -> dict[str, dict[str, list[Any]]]:
        """Intents with their examples; a multi-intent example goes under a part it defines, else the first.

        A multi-intent example naming an intent that ends up with no examples is dropped (the intent would
        be undefined), which can leave another intent empty: hence the loop.
        """
        while True:
            placed: dict[str, list[Any]] = {}
            for ex in examples:
                if len(ex.intents) == 1:
                    placed.setdefault(ex.intents[0], []).append(format_annotations(ex.text, ex.spans))
            for ex in examples:
                if len(ex.intents) > 1:
                    owner = next((i for i in ex.intents if i not in placed), ex.intents[0])
                    others = [i for i in ex.intents if i != owner]
                    item = {"text": format_annotations(ex.text, ex.spans), "intents": [owner, *others]}
                    placed.setdefault(owner, []).append(item)
            orphans = [ex for ex in examples if any(i not in placed for i in ex.intents)]
            if not orphans:
                return {name: {"examples": items} for name, items in placed.items()}
            for ex in orphans:
                self.warnings.append(
                    f"{ex.where}: multi-intent example {ex.text!r} dropped: an intent has no examples"
                )
            examples = [ex for ex in examples if ex not in orphans]

    def _entities(self, examples: list[_Example]) -> dict[str, dict[str, Any]]:
        specs: dict[str, dict[str, Any]] = {}
        uses: dict[str, set[str]] = {}  # entity -> example_key of its annotated texts, values, lookups
        synonyms: dict[str, dict[str, list[str]]] = {}
        for ex in [*examples, *self.out_of_scope]:
            for span in ex.spans:
                specs.setdefault(span.type, {})
                surface = ex.text[span.start : span.end]
                uses.setdefault(span.type, set()).update({example_key(surface), example_key(span.value)})
                if example_key(surface) != example_key(span.value):
                    clash = _add_synonym(synonyms.setdefault(span.type, {}), span.value, surface)
                    if clash:
                        self.warnings.append(
                            f"{ex.where}: [{surface}] means {clash!r} elsewhere; not also {span.value!r} "
                            f"as a synonym of entity '{span.type}'"
                        )
        for items in self.lookups:
            if not ENTITY_NAME.fullmatch(items.name):
                self.warnings.append(f"{items.where}: lookup {items.name!r} dropped: not an entity name")
                continue
            lookup = specs.setdefault(items.name, {}).setdefault("lookup", [])
            for value, _ in items.values:
                if example_key(value) not in {example_key(v) for v in lookup}:
                    lookup.append(value)
            uses.setdefault(items.name, set()).update(example_key(v) for v in lookup)
        patterns: dict[str, list[str]] = {}
        for items in self.regexes:
            for pattern, line in items.values:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    self.problems.append(f"{line}: regex '{items.name}': does not compile: {exc}")
                    continue
                if items.name in specs:
                    patterns.setdefault(items.name, []).append(pattern)
            if items.name not in specs:
                self.warnings.append(
                    f"{items.where}: regex '{items.name}' dropped: no entity of that name "
                    "(Parley uses regexes to find entities, not as intent features)"
                )
        for name, found in patterns.items():
            specs[name]["regex"] = _whole_match_regex(found)
        for items in self.synonyms:
            variants = [v for v, _ in items.values]
            names = {example_key(items.name), *(example_key(v) for v in variants)}
            targets = [e for e in specs if uses.get(e, set()) & names]
            if not targets:
                self.warnings.append(f"{items.where}: synonym '{items.name}' dropped: no entity uses it")
            for entity in targets:
                for variant in variants:
                    clash = _add_synonym(synonyms.setdefault(entity, {}), items.name, variant)
                    if clash:
                        self.warnings.append(
                            f"{items.where}: {variant!r} already means {clash!r} for entity '{entity}'; "
                            f"not also {items.name!r}"
                        )
        for entity, table in synonyms.items():
            if table:
                specs[entity]["synonyms"] = table
        return specs


def _label(ex: _Example) -> str:
    return "+".join(ex.intents) if ex.intents else _OUT_OF_SCOPE


def _add_synonym(table: dict[str, list[str]], canonical: str, variant: str) -> str | None:
    """Add ``variant`` -> ``canonical`` unless that clashes; returns what the clash already means."""
    folded, target = example_key(variant), example_key(canonical)
    if folded == target:
        return None
    meaning = {example_key(v): c for c, variants in table.items() for v in variants}
    meaning.update({example_key(c): c for c in table})
    if folded in meaning:
        return None if meaning[folded] == canonical else meaning[folded]
    if target in meaning and meaning[target] != canonical:
        return meaning[target]
    table.setdefault(canonical, []).append(variant)
    return None


def _whole_match_regex(patterns: list[str]) -> str:
    """One pattern whose value is the whole match, as Rasa's regex extractor takes it.

    Parley takes group 1 when a pattern has groups, so patterns with groups get one group around all.
    """
    joined = patterns[0] if len(patterns) == 1 else "|".join(f"(?:{p})" for p in patterns)
    return f"({joined})" if re.compile(joined).groups else joined


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
        return [p for p in found if _has_nlu(p)]
    return [path]


def _has_nlu(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return True  # let the reader report it with its line
    return isinstance(data, dict) and "nlu" in data


def import_rasa_nlu(path: Path, *, warnings: list[str] | None = None) -> dict[str, Any]:
    """The ``nlu.yml`` data structure for Rasa 3.x NLU data in ``path`` (a file, or a folder of them).

    What cannot be mapped is appended to ``warnings`` (when given) as ``file:line: message``; malformed
    input raises :class:`RasaImportError` listing every problem.
    """
    path = Path(path)
    if not path.exists():
        raise RasaImportError([f"{path}: no such file or folder"])
    files = _files(path)
    if not files:
        raise RasaImportError([f"{path}: no Rasa NLU data (a YAML file with an 'nlu:' list)"])
    importer = _Importer()
    for file in files:
        importer.read(file)
    data = importer.build()
    if importer.problems:
        raise RasaImportError(importer.problems)
    if warnings is not None:
        warnings.extend(importer.warnings)
    return data


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key, as the rest of a project is written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dump_project_nlu(data: dict[str, Any]) -> str:
    """``data`` (as :func:`import_rasa_nlu` returns it) written as ``nlu.yml`` text."""
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10_000)
    return "# Training data: intents with example utterances, and entities (imported from Rasa).\n" + body


def write_project_nlu(data: dict[str, Any], out_path: Path) -> NluFile:
    """Write ``data`` as ``out_path`` after validating it as ``load_project`` would; returns the model.

    Raises :class:`parley.core.project.ProjectError` (``out_path:line`` problems) and writes nothing
    when the data is not a valid ``nlu.yml``.
    """
    out_path = Path(out_path)
    text = dump_project_nlu(data)
    nlu = load_nlu_text(text, out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(out_path)
    return nlu
