"""Rendering replies from ``responses.yml`` templates, safely and reproducibly.

Safety: a template is parsed once with :meth:`string.Formatter.parse`, and only plain ``{name}``
placeholders are accepted -- attribute or index access (``{x.__class__}``, ``{x[0]}``), positional fields,
conversions and format specs are rejected when the project is loaded. Rendering never calls
``str.format``: it concatenates the literal pieces with ``str()`` of the values, so a value such as
``"{__class__}"`` is printed as written and can never be evaluated.

Reproducibility: the variant of a response is picked by a hash of the turn id and the response name, so
rendering the same turn again (a replay after a crash) gives the same text.

Never empty: a variant whose placeholders are not all available is skipped for one that is; when none
fits, the project's ``utter_fallback`` (or a built-in sentence) stands in for it.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.json_format import MessageToDict

from parley.core.errors import ConfigurationError
from parley.core.logging import get_logger
from parley.core.project import ResponsesFile, ResponseVariant
from parley.dialog.v1 import dialog_pb2
from parley.generator.v1 import generator_pb2

log = get_logger(__name__)

#: The response used when an action cannot be rendered.
FALLBACK_RESPONSE = "utter_fallback"
#: The last resort when even the fallback response cannot be rendered (or the project has none).
BUILTIN_FALLBACK = "Sorry, I can't help with that right now."

_FORMATTER = string.Formatter()
_WORDS = re.compile(r"^\s+|\S+\s*")

#: (literal text, placeholder name or None), in order.
Piece = tuple[str, str | None]


class TemplateError(ConfigurationError):
    """A response template is unsafe or malformed; the message names the response and variant."""


def parse_template(text: str) -> tuple[Piece, ...]:
    """Split ``text`` into literal pieces and plain placeholder names; raises :class:`ValueError` for
    anything but ``{name}`` (``{{`` and ``}}`` stay literal braces)."""
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise ValueError(f"malformed braces: {exc}") from exc
    pieces: list[Piece] = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            pieces.append((literal, None))
            continue
        shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if not field.isidentifier():
            raise ValueError(f"placeholder {shown} is not a plain name (use {{slot_name}})")
        if conversion or spec:
            raise ValueError(f"placeholder {shown} may not have a conversion or format spec")
        pieces.append((literal, field))
    return tuple(pieces)


def _value_text(value: Any) -> str | None:
    """The text of a param value, or ``None`` when it does not count as available."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Struct numbers are doubles: 12345 arrives as 12345.0
    text = str(value)
    return text if text.strip() else None


@dataclass(frozen=True)
class Template:
    """One variant of a response, parsed."""

    pieces: tuple[Piece, ...]
    quick_replies: tuple[generator_pb2.QuickReply, ...]

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(name for _, name in self.pieces if name is not None)

    @classmethod
    def from_variant(cls, variant: ResponseVariant) -> Template:
        return cls(
            pieces=parse_template(variant.text),
            quick_replies=tuple(
                generator_pb2.QuickReply(title=q.title, payload=q.payload) for q in variant.quick_replies
            ),
        )

    def fits(self, values: Mapping[str, str]) -> bool:
        return self.fields <= values.keys()

    def render(self, values: Mapping[str, str]) -> str:
        """The text with each placeholder replaced by its value, verbatim; call only when it ``fits``."""
        return "".join(literal + (values[name] if name is not None else "") for literal, name in self.pieces)


def _stable_index(turn_id: str, name: str, count: int) -> int:
    digest = hashlib.sha256(f"{turn_id}\x1f{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def split_words(text: str) -> list[str]:
    """``text`` in word-sized pieces (each with its trailing space) whose concatenation is ``text``."""
    return _WORDS.findall(text)


class TemplateRenderer:
    """Renders dialog actions with a project's responses."""

    def __init__(self, responses: ResponsesFile) -> None:
        templates: dict[str, tuple[Template, ...]] = {}
        problems: list[str] = []
        for name, variants in responses.responses.items():
            parsed = []
            for i, variant in enumerate(variants):
                try:
                    parsed.append(Template.from_variant(variant))
                except ValueError as exc:
                    problems.append(f"responses.yml: responses.{name}[{i}]: {exc}")
            templates[name] = tuple(parsed)
        if problems:
            raise TemplateError("unsafe or malformed response templates:\n  " + "\n  ".join(problems))
        self._templates = templates

    @property
    def response_names(self) -> frozenset[str]:
        return frozenset(self._templates)

    def _choose(self, turn_id: str, name: str, values: Mapping[str, str]) -> Template | None:
        fitting = [t for t in self._templates.get(name, ()) if t.fits(values) and t.render(values).strip()]
        if not fitting:
            return None
        return fitting[_stable_index(turn_id, name, len(fitting))]

    def render(self, turn_id: str, actions: Sequence[dialog_pb2.Action]) -> generator_pb2.Reply:
        """The reply for ``actions``: each response action rendered, texts joined with a space."""
        texts: list[str] = []
        templates: list[str] = []
        quick_replies: list[generator_pb2.QuickReply] = []
        needs_fallback = False
        fallback_values: Mapping[str, str] = {}
        for action in actions:
            if action.name not in self._templates:
                log.info("action is not a response, skipped", action=action.name, turn_id=turn_id)
                continue
            values = {
                key: text
                for key, value in MessageToDict(action.params).items()
                if (text := _value_text(value)) is not None
            }
            template = self._choose(turn_id, action.name, values)
            if template is None:
                log.warning(
                    "no variant fits the available values, using the fallback",
                    response=action.name,
                    available=sorted(values),
                    turn_id=turn_id,
                )
                if not needs_fallback:
                    needs_fallback, fallback_values = True, values
                continue
            texts.append(template.render(values).strip())
            templates.append(action.name)
            quick_replies.extend(template.quick_replies)
        if needs_fallback or not texts:
            fallback = self._choose(turn_id, FALLBACK_RESPONSE, fallback_values)
            if fallback is not None:
                texts.append(fallback.render(fallback_values).strip())
                templates.append(FALLBACK_RESPONSE)
                quick_replies.extend(fallback.quick_replies)
            else:
                texts.append(BUILTIN_FALLBACK)
        return generator_pb2.Reply(text=" ".join(texts), quick_replies=quick_replies, templates=templates)
