"""Entity resolution: dates and times relative to the conversation's clock, numbers, money, ids and synonyms.

Temporal expressions are found and resolved by the shared grammar (and its dateparser fallback) in
:mod:`parley.core.temporal`, which the context service uses too: its docstring has the rules ("next Friday",
dates without a year, times without a date, slash dates, weekends). Here its mentions become entities.

Entities found here have ``extractor="resolver"``; ``confidence`` is the extraction confidence (0.95 for the
grammar, 0.75 for dateparser, lower for readings that often are not what they look like), and the resolution's
own confidence is ``resolved["confidence"]`` with the other readings in ``alternatives``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from parley.core.project import Project
from parley.core.temporal import (
    GRAMMAR_CONFIDENCE,
    NUMBER_WORDS,
    Reading,
    TemporalFinder,
    TemporalMention,
    parse_digits,
    parse_number,
    words_to_number,
)
from parley.nlu.domain.extractors import SynonymMapper
from parley.nlu.v1 import nlu_pb2

RESOLVER = "resolver"
MAX_ALTERNATIVES = 3

Span = tuple[int, int]
Excluded = Iterable[nlu_pb2.Entity | Span]
_Found = TypeVar("_Found", nlu_pb2.Entity, TemporalMention)

# ---------------------------------------------------------------------------------------------- numbers

_DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_NUMBER_RE = re.compile(
    rf"(?<![\w.,/:#$€£¥-])(?:(?P<digits>{_DIGITS})(?![\w/:-]|[.,]\d)|(?P<words>\b{NUMBER_WORDS}\b))",
    re.IGNORECASE,
)
# A lone "one" is a quantity only before a noun ("one item"), not as a pronoun ("the blue one", "this one",
# "one of them").
_PRONOUN_ONE_BEFORE = re.compile(r"\b(?:the|this|that|which|another|each|every|any|no|a)\s+$", re.I)
_NOUN_AFTER_ONE = re.compile(r"\s+(?!(?:of|by|another|or|and|is|was|that|which)\b)[^\W\d_]", re.I)


def format_number(value: float) -> str:
    """Canonical text of a number: "3", "2.5", "1000000"."""
    if value.is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


# ------------------------------------------------------------------------------------------------ money

_SYMBOLS = {"$": "USD", "us$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "chf": "CHF"}
_CODES = ["USD", "EUR", "GBP", "CHF", "JPY", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN", "CZK", "INR"]
_CURRENCY_WORDS = {
    "dollar": "USD", "dollars": "USD", "buck": "USD", "bucks": "USD", "euro": "EUR", "euros": "EUR",
    "pound": "GBP", "pounds": "GBP", "quid": "GBP", "franc": "CHF", "francs": "CHF", "yen": "JPY",
    "cent": "USD", "cents": "USD",
}  # fmt: skip
# Words that are also something else ("5 pounds" of flour) get a lower extraction confidence.
_UNSURE_CURRENCY_WORDS = {"pound", "pounds", "cent", "cents"}
_ZERO_DECIMAL = {"JPY"}
_AMOUNT = r"\d{1,3}(?:[.,]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_SYMBOL_RE = r"US\$|\$|€|£|¥|₹"
_CODE_RE = "|".join(_CODES)
_WORD_RE = "|".join(sorted(_CURRENCY_WORDS, key=len, reverse=True))
_MONEY_RE = re.compile(
    rf"(?<![\w.,])(?:"
    rf"(?P<sym>{_SYMBOL_RE})\s?(?P<amt1>{_AMOUNT})"
    rf"|(?P<code>{_CODE_RE})\s?(?P<amt2>{_AMOUNT})"
    rf"|(?:(?P<amt3>{_AMOUNT})|(?P<words>\b{NUMBER_WORDS}))\s?(?P<unit>{_SYMBOL_RE}|\b(?:{_CODE_RE}|{_WORD_RE}))"
    rf")(?![\w]|[.,]\d)",
    re.IGNORECASE,
)


# ------------------------------------------------------------------------------------------ the resolver

_KINDS = {
    "temporal": "temporal",
    "date": "temporal",
    "time": "temporal",
    "money": "money",
    "number": "number",
    "id": "id",
    "text": "text",
}
_ID_TYPE = re.compile(r"(?:^|_)(?:id|no|number)$")
_TEMPORAL_TYPE = re.compile(r"date|time|day|when|deadline")
_MONEY_TYPE = re.compile(r"money|price|cost|amount|budget|fee|total|payment|refund")
_NUMBER_TYPE = re.compile(r"number|quantity|count|qty|num")


def _spans(excluded: Excluded) -> list[Span]:
    return [(e.start, e.end) if isinstance(e, nlu_pb2.Entity) else (e[0], e[1]) for e in excluded]


def _overlaps(start: int, end: int, spans: Iterable[Span]) -> bool:
    return any(start < s_end and s_start < end for s_start, s_end in spans)


def _entity(
    kind: str, text: str, start: int, end: int, readings: Sequence[Reading], confidence: float
) -> nlu_pb2.Entity:
    entity = nlu_pb2.Entity(
        type=kind, text=text[start:end], start=start, end=end, confidence=confidence, extractor=RESOLVER
    )
    _apply(entity, readings)
    return entity


def _apply(entity: nlu_pb2.Entity, readings: Sequence[Reading]) -> None:
    """Write the best reading into ``entity`` and the next ones as alternatives."""
    best, *others = readings
    entity.value = best.value
    entity.resolved.Clear()
    entity.resolved.update({**best.resolved, "confidence": round(best.confidence, 4)})
    del entity.alternatives[:]
    for other in others[:MAX_ALTERNATIVES]:
        entity.alternatives.add(value=other.value, confidence=round(other.confidence, 4))


def _kind_of_reading(reading: Reading) -> str:
    return {"interval": "date", "time": "time", "datetime": "datetime"}.get(reading.resolved["kind"], "date")


def _temporal_entity(mention: TemporalMention) -> nlu_pb2.Entity:
    """A core temporal mention as an entity: type date (intervals too), time or datetime."""
    entity = nlu_pb2.Entity(
        type=_kind_of_reading(mention.best),
        text=mention.text,
        start=mention.start,
        end=mention.end,
        confidence=mention.confidence,
        extractor=RESOLVER,
    )
    _apply(entity, mention.readings)
    return entity


class EntityResolver:
    """Finds and resolves dates, times, numbers and money; resolves ids and synonyms of other entities.

    Construction is cheap: dateparser (about a second to import and warm) is only loaded the first time the
    temporal grammar (:mod:`parley.core.temporal`) cannot handle an expression; call :meth:`warm` at start-up
    to pay that early.

    ``kinds`` maps entity types to how they are resolved: "temporal" (or a project's "date"/"time"),
    "money", "number", "id" or "text". Types it does not name are guessed from their name ("delivery_date"
    is temporal, "order_id" an id, "quantity" a number, "price" money, anything else text). ``synonyms``
    (one mapper, or one per entity type) gives text entities their canonical value.
    """

    def __init__(
        self,
        synonyms: SynonymMapper | Mapping[str, SynonymMapper] | None = None,
        kinds: Mapping[str, str] | None = None,
        *,
        use_dateparser: bool = True,
    ) -> None:
        unknown = {k for k in (kinds or {}).values() if k not in _KINDS}
        if unknown:
            raise ValueError(f"unknown entity kind(s) {sorted(unknown)}; use {sorted(_KINDS)}")
        self._synonyms = synonyms
        self._kinds = {name: _KINDS[kind] for name, kind in (kinds or {}).items()}
        self._temporal = TemporalFinder(use_dateparser=use_dateparser)

    @classmethod
    def from_project(cls, project: Project, *, use_dateparser: bool = True) -> EntityResolver:
        """A resolver that knows the declared ``type`` and ``synonyms`` of every entity of ``project``."""
        return cls(
            SynonymMapper.for_project(project),
            {name: spec.type for name, spec in project.nlu.entities.items()},
            use_dateparser=use_dateparser,
        )

    def warm(self) -> None:
        """Load dateparser's data now rather than on the first expression that needs it."""
        self._temporal.warm()

    # -- finding

    def find_temporal(
        self,
        text: str,
        reference_time: datetime,
        timezone: str,
        *,
        exclude: Excluded = (),
        language: str = "en",
    ) -> list[nlu_pb2.Entity]:
        """Dates, times, datetimes and intervals in ``text``, in text order, resolved.

        Nothing overlapping an ``exclude`` span (say, an order id the regex found) is returned.
        """
        mentions = self._temporal.find(
            text, reference_time, timezone, exclude=_spans(exclude), language=language
        )
        return [_temporal_entity(mention) for mention in mentions]

    def find_numbers(self, text: str, *, exclude: Excluded = ()) -> list[nlu_pb2.Entity]:
        """Numbers written with digits or words ("3", "2.5", "1,000", "three", "twenty-five")."""
        excluded = _spans(exclude)
        found: list[nlu_pb2.Entity] = []
        for match in _NUMBER_RE.finditer(text):
            start, end = match.span()
            if _overlaps(start, end, excluded):
                continue
            confidence = GRAMMAR_CONFIDENCE
            if (match["words"] or "").lower() == "one":
                if _PRONOUN_ONE_BEFORE.search(text[:start]) or not _NOUN_AFTER_ONE.match(text, end):
                    continue
                confidence = 0.7
            value = parse_number(match.group(0))
            if value is None:
                continue
            reading = Reading(format_number(value), {"kind": "number", "number": value}, 1.0)
            found.append(_entity("number", text, start, end, [reading], confidence))
        return found

    def find_money(self, text: str, *, exclude: Excluded = ()) -> list[nlu_pb2.Entity]:
        """Amounts of money ("$20", "20 euros", "EUR 15.50", "15,50 €", "twenty dollars")."""
        excluded = _spans(exclude)
        found: list[nlu_pb2.Entity] = []
        for match in _MONEY_RE.finditer(text):
            start, end = match.span()
            if _overlaps(start, end, excluded):
                continue
            reading = _money_reading(match)
            if reading is None:
                continue
            unsure = (match["unit"] or "").lower() in _UNSURE_CURRENCY_WORDS
            found.append(_entity("money", text, start, end, [reading], 0.7 if unsure else GRAMMAR_CONFIDENCE))
        return found

    def find_all(
        self,
        text: str,
        reference_time: datetime,
        timezone: str,
        *,
        exclude: Excluded = (),
        language: str = "en",
    ) -> list[nlu_pb2.Entity]:
        """Money, then temporal expressions, then the numbers left over, none overlapping another."""
        taken = _spans(exclude)
        found: list[nlu_pb2.Entity] = []
        for finder in (
            lambda ex: self.find_money(text, exclude=ex),
            lambda ex: self.find_temporal(text, reference_time, timezone, exclude=ex, language=language),
            lambda ex: self.find_numbers(text, exclude=ex),
        ):
            new = finder(taken)
            found.extend(new)
            taken.extend((e.start, e.end) for e in new)
        return sorted(found, key=lambda e: e.start)

    # -- resolving

    def kind_of(self, entity_type: str) -> str:
        """How entities of ``entity_type`` are resolved: temporal, money, number, id or text."""
        if entity_type in self._kinds:
            return self._kinds[entity_type]
        name = entity_type.lower()
        if name in {"date", "time", "datetime"} or _TEMPORAL_TYPE.search(name):
            return "temporal"
        if name == "money" or _MONEY_TYPE.search(name):
            return "money"
        if _ID_TYPE.search(name) and name != "number":
            return "id"
        if _NUMBER_TYPE.search(name):
            return "number"
        return "text"

    def resolve(
        self,
        entity: nlu_pb2.Entity,
        text: str,
        reference_time: datetime,
        timezone: str,
        *,
        language: str = "en",
    ) -> nlu_pb2.Entity:
        """A copy of ``entity`` with ``value``, ``resolved`` and ``alternatives`` filled in.

        ``text`` is the whole utterance: an expression found around the entity's span wins over the span
        alone, so a tagger's "Friday" inside "next Friday" resolves as "next Friday". An entity that cannot
        be resolved keeps its value and gets no ``resolved``.
        """
        out = nlu_pb2.Entity()
        out.CopyFrom(entity)
        surface = entity.text or text[entity.start : entity.end]
        kind = self.kind_of(entity.type)
        readings: list[Reading] = []
        if kind == "temporal":
            readings = self._resolve_temporal(entity, surface, text, reference_time, timezone, language)
        elif kind == "money":
            readings = self._resolve_from(self.find_money(text), entity) or self._money_of(surface)
        elif kind == "number":
            value = parse_number(entity.value or surface)
            if value is None:
                readings = self._resolve_from(self.find_numbers(text), entity)
            else:
                readings = [Reading(format_number(value), {"kind": "number", "number": value}, 1.0)]
        elif kind == "id":
            ident = entity.value if entity.extractor == "regex" and entity.value else surface
            ident = re.sub(r"^[#\s]+|\s+$", "", ident)
            id_kind = "order_id" if entity.type == "order_id" else "id"
            readings = [Reading(ident, {"kind": id_kind, "id": ident, "type": entity.type}, 1.0)]
        else:
            raw = entity.value or surface
            mapper = (
                self._synonyms.get(entity.type) if isinstance(self._synonyms, Mapping) else self._synonyms
            )
            canonical = mapper.map(raw) if mapper is not None else raw
            readings = [Reading(canonical, {"kind": "text", "value": canonical}, 1.0)]
        if readings:
            _apply(out, readings)
        return out

    def _resolve_temporal(
        self,
        entity: nlu_pb2.Entity,
        surface: str,
        text: str,
        reference_time: datetime,
        timezone: str,
        language: str,
    ) -> list[Reading]:
        around = _most_overlapping(
            self._temporal.find(text, reference_time, timezone, language=language), entity
        )
        if around is not None:
            return list(around.readings)
        alone = self._temporal.find(surface, reference_time, timezone, language=language)
        if alone:
            return list(alone[0].readings)
        parsed = self._temporal.parse(surface, reference_time, timezone, language=language)
        return [parsed] if parsed is not None else []

    @staticmethod
    def _resolve_from(found: list[nlu_pb2.Entity], entity: nlu_pb2.Entity) -> list[Reading]:
        """The readings of the found entity that overlaps ``entity``'s span the most."""
        best = _most_overlapping(found, entity)
        return _readings_of(best) if best is not None else []

    @staticmethod
    def _money_of(surface: str) -> list[Reading]:
        match = _MONEY_RE.search(surface)
        reading = _money_reading(match) if match else None
        return [reading] if reading else []


def _most_overlapping(found: Sequence[_Found], entity: nlu_pb2.Entity) -> _Found | None:
    """The first of ``found`` that overlaps ``entity``'s span the most, None when none overlaps it."""
    best, best_overlap = None, 0
    for candidate in found:
        overlap = min(candidate.end, entity.end) - max(candidate.start, entity.start)
        if overlap > best_overlap:
            best, best_overlap = candidate, overlap
    return best


def _readings_of(entity: nlu_pb2.Entity) -> list[Reading]:
    """Readings back from a resolved entity: the best one, then its alternatives (bare values, as stored)."""
    resolved = dict(entity.resolved.items())
    confidence = float(resolved.pop("confidence", 1.0))
    readings = [Reading(entity.value, resolved, confidence)]
    readings.extend(Reading(alt.value, {}, alt.confidence) for alt in entity.alternatives)
    return readings


def _money_reading(match: re.Match[str]) -> Reading | None:
    amount_text = match["amt1"] or match["amt2"] or match["amt3"]
    amount = parse_digits(amount_text) if amount_text else words_to_number(match["words"] or "")
    if amount is None:
        return None
    if match["sym"]:
        currency = _SYMBOLS[match["sym"].lower()]
    elif match["code"]:
        currency = match["code"].upper()
    else:
        unit = match["unit"].lower()
        currency = _SYMBOLS.get(unit) or _CURRENCY_WORDS.get(unit) or unit.upper()
        if unit in {"cent", "cents"}:
            amount /= 100
    amount = round(amount, 0 if currency in _ZERO_DECIMAL else 2)
    shown = f"{amount:.0f}" if currency in _ZERO_DECIMAL else f"{amount:.2f}"
    return Reading(f"{shown} {currency}", {"kind": "money", "amount": amount, "currency": currency}, 1.0)


def find_temporal(
    text: str, reference_time: datetime, timezone: str, *, exclude: Excluded = (), language: str = "en"
) -> list[nlu_pb2.Entity]:
    """Dates and times in ``text`` (see :meth:`EntityResolver.find_temporal`) with a default resolver."""
    return EntityResolver().find_temporal(text, reference_time, timezone, exclude=exclude, language=language)
