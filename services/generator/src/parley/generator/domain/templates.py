"""Rendering replies from ``responses.yml`` templates, safely and reproducibly.

Safety: a template is parsed once with :meth:`string.Formatter.parse`, and only plain ``{name}``
placeholders are accepted -- attribute or index access (``{x.__class__}``, ``{x[0]}``), positional fields,
conversions and format specs are rejected when the project is loaded. Rendering never calls
``str.format``: it concatenates the literal pieces with ``str()`` of the values, so a value such as
``"{__class__}"`` is printed as written and can never be evaluated.

Choosing a variant: among the variants whose placeholders are all known, those in the turn's language
(else those of the assistant's language), then those written for the generator's personality (``style``),
then -- for a user who prefers brief answers -- the shortest; among what is left ``responses.yml``'s
``selection`` decides: ``random`` hashes the turn id and the response name, so rendering the same turn again
(a replay after a crash) gives the same text; ``sticky`` hashes the user id, so a user always reads the same
wording; ``rotating`` says the variants in turn within a conversation (remembered per process for the
conversations of the last hours: the bus keeps a conversation on one generator, and a replayed turn gets
the variant it got the first time).

Never empty: a variant whose placeholders are not all available is skipped for one that is; when none
fits, the project's ``utter_fallback`` (or a built-in sentence) stands in for it.

The dialog engine says some things of its own (asking to rephrase, offering options, clarifying, offering to
resume a flow, asking for a slot): a project may word them in ``responses.yml``; when it does not, the
built-in texts of :data:`DEFAULT_RESPONSES` are used, so a new project works before it writes a single one.
An action's ``options`` (clarification choices, fallback offers) become quick replies after the template's
own.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.json_format import MessageToDict

from parley.core.errors import ConfigurationError
from parley.core.flows import ASK_PREFIX, BUILTIN_RESPONSES, DEFAULT_ASK_TEXT
from parley.core.logging import get_logger
from parley.core.project import ResponsesFile, ResponseVariant, Selection
from parley.dialog.v1 import dialog_pb2
from parley.generator.v1 import generator_pb2

log = get_logger(__name__)

#: The response used when an action cannot be rendered.
FALLBACK_RESPONSE = "utter_fallback"
#: The last resort when even the fallback response cannot be rendered (or the project has none).
BUILTIN_FALLBACK = "Sorry, I can't help with that right now."

#: Wordings tried before the core's default text of a response, when the values they need are known.
_RICHER: dict[str, tuple[str, ...]] = {
    "utter_offer_options": ("I can help with {options}. What would you like to do?",),
    "utter_clarify": ("Did you mean {options}?",),
}
#: Wordings tried after it, when the default text needs a value the action lacks.
_PLAINER: dict[str, tuple[str, ...]] = {
    "utter_resume": ("Shall we get back to what we were doing?",),
}
#: Responses the dialog engine says on its own that ``flows.yml`` never names.
ENGINE_RESPONSES: dict[str, tuple[str, ...]] = {
    "utter_error": ("Sorry, something went wrong on my side.",),
    "utter_transition": ("Now, {flow}.", "Now, the next thing you asked for."),
    "utter_slot_updated": ("Okay, the {slot} is now {value}.", "Okay, updated."),
}
#: Built-in wording of every response the engine may use, for projects whose ``responses.yml`` lacks it
#: (the core's :data:`~parley.core.flows.BUILTIN_RESPONSES` plus the engine's own). The variants of one
#: response are tried in order and the first whose placeholders are all known is said.
DEFAULT_RESPONSES: dict[str, tuple[str, ...]] = {
    **{
        name: (*_RICHER.get(name, ()), text, *_PLAINER.get(name, ()))
        for name, text in BUILTIN_RESPONSES.items()
    },
    **ENGINE_RESPONSES,
}

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
    """The text of a param value, or ``None`` when it does not count as available.

    A list reads as words (``bacon``, ``bacon and cheese``, ``ham, eggs and cheese``); an empty one, like an
    empty text, is not available.
    """
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Struct numbers are doubles: 12345 arrives as 12345.0
    if isinstance(value, list):
        items = [text for item in value if (text := _value_text(item)) is not None]
        if not items:
            return None
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    text = str(value)
    return text if text.strip() else None


@dataclass(frozen=True)
class Audience:
    """Whom a reply is for: what variant choice may depend on beyond the turn itself."""

    conversation_id: str = ""
    user_id: str = ""
    #: BCP-47 language of the turn; ``None`` = the assistant's language.
    language: str | None = None
    #: The personality replies are written in (a variant's ``style``).
    style: str | None = None
    #: The user prefers brief answers: the shortest fitting variant.
    brief: bool = False


def _primary(language: str | None) -> str:
    return (language or "").split("-")[0].casefold()


@dataclass(frozen=True)
class Template:
    """One variant of a response, parsed."""

    pieces: tuple[Piece, ...]
    quick_replies: tuple[generator_pb2.QuickReply, ...]
    links: tuple[generator_pb2.Link, ...] = ()
    language: str | None = None
    style: str | None = None

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
            links=tuple(generator_pb2.Link(title=link.title, url=link.url) for link in variant.links),
            language=variant.language,
            style=variant.style,
        )

    def fits(self, values: Mapping[str, str]) -> bool:
        return self.fields <= values.keys()

    def render(self, values: Mapping[str, str]) -> str:
        """The text with each placeholder replaced by its value, verbatim; call only when it ``fits``."""
        return "".join(literal + (values[name] if name is not None else "") for literal, name in self.pieces)


def _default_variants(name: str) -> tuple[str, ...]:
    """The built-in wording of ``name`` (none for a response that is not the engine's own)."""
    if name in DEFAULT_RESPONSES:
        return DEFAULT_RESPONSES[name]
    slot = name.removeprefix(ASK_PREFIX)
    if slot != name and slot.strip("_"):
        return (DEFAULT_ASK_TEXT.replace("{slot}", slot.replace("_", " ").strip()),)
    return ()


def _options_text(titles: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    if len(titles) <= 1:
        return "".join(titles)
    return ", ".join(titles[:-1]) + " or " + titles[-1]


def _stable_index(turn_id: str, name: str, count: int) -> int:
    digest = hashlib.sha256(f"{turn_id}\x1f{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


class Rotation:
    """Which variant each conversation said last, per response: the memory of ``rotating`` selection.

    Bounded (least recently used conversations are forgotten first); a turn rendered again gets the same
    variant as the first time.
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self._max = max_entries
        self._last: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()

    def next(self, conversation_id: str, name: str, turn_id: str, count: int) -> int:
        key = (conversation_id, name)
        previous = self._last.get(key)
        if previous is None:
            index = 0
        elif previous[0] == turn_id:
            index = previous[1] % count
        else:
            index = (previous[1] + 1) % count
        self._last[key] = (turn_id, index)
        self._last.move_to_end(key)
        while len(self._last) > self._max:
            self._last.popitem(last=False)
        return index


def _narrow(candidates: list[Template], keep: Any) -> list[Template]:
    """The candidates ``keep`` accepts, or all of them when it accepts none (never empty-handed)."""
    kept = [t for t in candidates if keep(t)]
    return kept or candidates


def split_words(text: str) -> list[str]:
    """``text`` in word-sized pieces (each with its trailing space) whose concatenation is ``text``."""
    return _WORDS.findall(text)


class TemplateRenderer:
    """Renders dialog actions with a project's responses."""

    def __init__(self, responses: ResponsesFile, default_language: str = "en") -> None:
        self._responses = responses
        self._default_language = _primary(default_language)
        self._rotation = Rotation()
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
        """The project's own responses (built-in defaults not included)."""
        return frozenset(self._templates)

    def knows(self, name: str) -> bool:
        """Whether ``name`` renders: a project response or a built-in default."""
        return name in self._templates or bool(_default_variants(name))

    def _choose(
        self, turn_id: str, name: str, values: Mapping[str, str], audience: Audience | None = None
    ) -> Template | None:
        if name not in self._templates:
            # Built-in defaults: the most specific variant that fits, always the same one.
            for text in _default_variants(name):
                default = Template(parse_template(text), ())
                if default.fits(values):
                    return default
            return None
        fitting = [t for t in self._templates[name] if t.fits(values) and t.render(values).strip()]
        if not fitting:
            return None
        who = audience or Audience()
        wanted = _primary(who.language) or self._default_language
        languages = [_primary(t.language) or self._default_language for t in fitting]
        candidates = (
            [t for t, lang in zip(fitting, languages, strict=True) if lang == wanted]
            or [t for t, lang in zip(fitting, languages, strict=True) if lang == self._default_language]
            or fitting
        )
        if who.style:
            candidates = _narrow(candidates, lambda t: t.style == who.style)
            candidates = _narrow(candidates, lambda t: t.style in (who.style, None))
        if who.brief:
            lengths = [len(t.render(values)) for t in candidates]
            candidates = [t for t, n in zip(candidates, lengths, strict=True) if n == min(lengths)]
        if len(candidates) == 1:
            return candidates[0]
        selection: Selection = self._responses.selection_of(name)
        if selection == "sticky":
            index = _stable_index(who.user_id or who.conversation_id or turn_id, name, len(candidates))
        elif selection == "rotating" and who.conversation_id:
            index = self._rotation.next(who.conversation_id, name, turn_id, len(candidates))
        else:
            index = _stable_index(turn_id, name, len(candidates))
        return candidates[index]

    def render(
        self, turn_id: str, actions: Sequence[dialog_pb2.Action], audience: Audience | None = None
    ) -> generator_pb2.Reply:
        """The reply for ``actions``: each response action rendered, texts joined with a space."""
        texts: list[str] = []
        templates: list[str] = []
        quick_replies: list[generator_pb2.QuickReply] = []
        links: list[generator_pb2.Link] = []
        needs_fallback = False
        fallback_values: Mapping[str, str] = {}
        for action in actions:
            options = [
                generator_pb2.QuickReply(title=o.title, payload=o.payload or o.title) for o in action.options
            ]
            if not self.knows(action.name):
                log.info("action is not a response, skipped", action=action.name, turn_id=turn_id)
                quick_replies.extend(options)
                continue
            values = {
                key: text
                for key, value in MessageToDict(action.params).items()
                if (text := _value_text(value)) is not None
            }
            if options and "options" not in values:
                values["options"] = _options_text([o.title for o in options])
            template = self._choose(turn_id, action.name, values, audience)
            if template is None:
                log.warning(
                    "no variant fits the available values, using the fallback",
                    response=action.name,
                    available=sorted(values),
                    turn_id=turn_id,
                )
                if not needs_fallback:
                    needs_fallback, fallback_values = True, values
                quick_replies.extend(options)
                continue
            texts.append(template.render(values).strip())
            templates.append(action.name)
            quick_replies.extend(template.quick_replies)
            quick_replies.extend(options)
            links.extend(template.links)
        if needs_fallback or not texts:
            fallback = self._choose(turn_id, FALLBACK_RESPONSE, fallback_values, audience)
            if fallback is not None:
                texts.append(fallback.render(fallback_values).strip())
                templates.append(FALLBACK_RESPONSE)
                quick_replies.extend(fallback.quick_replies)
                links.extend(fallback.links)
            else:
                texts.append(BUILTIN_FALLBACK)
        unique_links = list({(link.title, link.url): link for link in links}.values())
        return generator_pb2.Reply(
            text=" ".join(texts),
            quick_replies=_unique(quick_replies),
            templates=templates,
            links=unique_links,
        )


def _unique(replies: Sequence[generator_pb2.QuickReply]) -> list[generator_pb2.QuickReply]:
    """Quick replies without repeats (a template's own button and an option may be the same)."""
    seen: set[tuple[str, str]] = set()
    out: list[generator_pb2.QuickReply] = []
    for reply in replies:
        key = (reply.title.casefold(), reply.payload)
        if key not in seen:
            seen.add(key)
            out.append(reply)
    return out
