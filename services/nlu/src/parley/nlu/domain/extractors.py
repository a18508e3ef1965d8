"""Rule-based entity extractors on character spans, synonym mapping and the merge of every extractor's output.

Every extractor returns :class:`nlu_pb2.Entity` messages whose ``start``/``end`` index the text it was given
and whose ``text`` is exactly ``text[start:end]``, so entities from different extractors (regex, lookup
tables, the model's tagger, the resolver) can be compared by span and merged.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence

from parley.core.project import Project
from parley.nlu.v1 import nlu_pb2

REGEX = "regex"
LOOKUP = "lookup"

# Tie-break between extractors when span length and confidence are equal: exact rules first.
_EXTRACTOR_RANK = {REGEX: 0, LOOKUP: 1, "resolver": 2, "model": 3}


def _normalise(phrase: str) -> str:
    """Lower case with single spaces: the key lookup tables and synonyms compare on."""
    return " ".join(phrase.lower().split())


class RegexExtractor:
    """One or more patterns per entity type; the value is group 1 if the pattern has a group, else the match.

    The span (``start``, ``end``, ``text``) is the whole match, so a leading ``#`` that a pattern allows stays
    visible in ``text`` while ``value`` is the bare id. Empty matches are ignored.
    """

    def __init__(self, patterns: Mapping[str, str | Sequence[str]], confidence: float = 1.0) -> None:
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for name, regexes in sorted(patterns.items()):
            for regex in [regexes] if isinstance(regexes, str) else regexes:
                try:
                    self._patterns.append((name, re.compile(regex)))
                except re.error as exc:
                    raise ValueError(f"entity {name!r}: regex {regex!r} does not compile: {exc}") from exc
        self._confidence = confidence

    @classmethod
    def from_project(cls, project: Project) -> RegexExtractor:
        """The extractor for every entity of ``project`` that declares a ``regex``."""
        return cls({name: spec.regex for name, spec in project.nlu.entities.items() if spec.regex})

    @property
    def entity_types(self) -> tuple[str, ...]:
        """The entity types this extractor can find, sorted."""
        return tuple(sorted({name for name, _ in self._patterns}))

    def extract(self, text: str) -> list[nlu_pb2.Entity]:
        """Every non-empty match of every pattern, in text order (one per span and type)."""
        found: dict[tuple[int, int, str], nlu_pb2.Entity] = {}
        for name, pattern in self._patterns:
            for match in pattern.finditer(text):
                if match.end() == match.start() or (match.start(), match.end(), name) in found:
                    continue
                value = match.group(1) if pattern.groups else None
                found[(match.start(), match.end(), name)] = nlu_pb2.Entity(
                    type=name,
                    text=match.group(0),
                    value=value if value is not None else match.group(0),
                    start=match.start(),
                    end=match.end(),
                    confidence=self._confidence,
                    extractor=REGEX,
                )
        return sorted(found.values(), key=lambda e: (e.start, e.end, e.type))


class SynonymMapper:
    """Maps extracted values to canonical ones ("NYC" -> "New York"), case- and whitespace-insensitively.

    Built from ``{canonical: [synonym, ...]}`` (the shape of Rasa's ``synonym`` blocks). A canonical value
    also maps to itself, so "new york" becomes "New York". A synonym listed under two canonical values is a
    configuration error.
    """

    def __init__(self, synonyms: Mapping[str, Iterable[str]]) -> None:
        self._canonical: dict[str, str] = {}
        self._variants: dict[str, list[str]] = {}
        for canonical, variants in synonyms.items():
            for variant in [canonical, *variants]:
                key = _normalise(variant)
                if not key:
                    continue
                known = self._canonical.get(key)
                if known is not None and known != canonical:
                    raise ValueError(f"synonym {variant!r} maps to both {known!r} and {canonical!r}")
                if known is None:
                    self._canonical[key] = canonical
                    self._variants.setdefault(canonical, []).append(variant)

    @classmethod
    def for_project(cls, project: Project) -> dict[str, SynonymMapper]:
        """One mapper per entity type of ``project`` that declares ``synonyms``."""
        return {name: cls(spec.synonyms) for name, spec in project.nlu.entities.items() if spec.synonyms}

    def __len__(self) -> int:
        return len(self._canonical)

    def canonical(self, value: str) -> str | None:
        """The canonical value for ``value``, or None when it is not a known synonym."""
        return self._canonical.get(_normalise(value))

    def map(self, value: str) -> str:
        """The canonical value for ``value``, or ``value`` itself when it has none."""
        return self._canonical.get(_normalise(value), value)

    def apply(self, entity: nlu_pb2.Entity) -> nlu_pb2.Entity:
        """A copy of ``entity`` whose ``value`` is canonical (the original when nothing maps)."""
        canonical = self.canonical(entity.value or entity.text)
        if canonical is None:
            return entity
        mapped = nlu_pb2.Entity()
        mapped.CopyFrom(entity)
        mapped.value = canonical
        return mapped

    def variants(self, canonical: str | None = None) -> list[str]:
        """The spellings of ``canonical`` (itself included), or of every canonical value when None.

        The full list is what a vocabulary needs (spelling correction must keep every synonym).
        """
        if canonical is not None:
            return list(self._variants.get(canonical, [canonical]))
        return sorted({v for variants in self._variants.values() for v in variants})


class LookupExtractor:
    """Lookup tables: whole-word, case-insensitive phrase matches; the longest match wins.

    ``tables`` maps an entity type to its entries. With ``synonyms`` (one mapper for every table, or one per
    entity type), the synonyms of every entry are matched too and the value is the canonical entry ("NYC"
    -> value "New York"). Otherwise the value is the entry as the table writes it. Whitespace inside a
    phrase matches any run of whitespace.

    Overlapping candidates are resolved greedily: longest span first, then earliest start, so "New York
    City" beats "New York" and "York". When one phrase belongs to several types, every type is returned for
    that span (``merge_entities`` decides later).
    """

    def __init__(
        self,
        tables: Mapping[str, Iterable[str]],
        synonyms: SynonymMapper | Mapping[str, SynonymMapper] | None = None,
        confidence: float = 0.9,
    ) -> None:
        # normalised phrase -> [(type, value)]
        self._entries: dict[str, list[tuple[str, str]]] = {}
        for name, entries in sorted(tables.items()):
            mapper = synonyms.get(name) if isinstance(synonyms, Mapping) else synonyms
            for entry in entries:
                value = entry if mapper is None else mapper.map(entry)
                phrases = [entry] if mapper is None else [entry, *mapper.variants(value)]
                for phrase in phrases:
                    key = _normalise(phrase)
                    if key and (name, value) not in self._entries.setdefault(key, []):
                        self._entries[key].append((name, value))
        self._confidence = confidence
        self._pattern = self._compile(self._entries)

    @classmethod
    def from_project(cls, project: Project) -> LookupExtractor:
        """The extractor for every ``lookup`` table of ``project``, matching their synonyms too."""
        return cls(
            {name: spec.lookup for name, spec in project.nlu.entities.items() if spec.lookup},
            SynonymMapper.for_project(project),
        )

    @staticmethod
    def _compile(entries: Mapping[str, object]) -> re.Pattern[str] | None:
        if not entries:
            return None
        # Longest first, so at any start position the alternation tries the longest phrase first.
        alternatives = sorted(entries, key=lambda p: (-len(p), p))
        body = "|".join(r"\s+".join(re.escape(word) for word in phrase.split()) for phrase in alternatives)
        # A lookahead captures overlapping candidates: one (the longest) per start position.
        return re.compile(rf"(?<!\w)(?=({body})(?!\w))", re.IGNORECASE)

    @property
    def entity_types(self) -> tuple[str, ...]:
        """The entity types of the tables, sorted."""
        return tuple(sorted({name for found in self._entries.values() for name, _ in found}))

    def extract(self, text: str) -> list[nlu_pb2.Entity]:
        """Every table phrase in ``text`` (longest, non-overlapping), in text order."""
        if self._pattern is None:
            return []
        candidates = [(m.start(1), m.end(1)) for m in self._pattern.finditer(text) if m.group(1)]
        candidates.sort(key=lambda span: (span[0] - span[1], span[0]))
        taken: list[tuple[int, int]] = []
        found: list[nlu_pb2.Entity] = []
        for start, end in candidates:
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            for name, value in self._entries[_normalise(text[start:end])]:
                found.append(
                    nlu_pb2.Entity(
                        type=name,
                        text=text[start:end],
                        value=value,
                        start=start,
                        end=end,
                        confidence=self._confidence,
                        extractor=LOOKUP,
                    )
                )
        return sorted(found, key=lambda e: (e.start, e.end, e.type))


def merge_entities(
    entities: Iterable[nlu_pb2.Entity],
    *,
    pattern_types: Collection[str] | None = None,
    rule_extractors: Collection[str] = (REGEX,),
) -> list[nlu_pb2.Entity]:
    """One entity per stretch of text: overlaps are resolved and the survivors returned in text order.

    Order of precedence among overlapping entities:

    1. A rule entity (extractor in ``rule_extractors``, by default the regex extractor) of an exact-pattern
       type beats every non-rule entity, whatever its span or confidence: an order id the pattern matched is
       an order id, not the model's guess of a shorter or longer span, nor a number or a year. The
       exact-pattern types are ``pattern_types``; when None, every type a rule extractor produced here.
    2. The longer span.
    3. The higher confidence.
    4. The earlier start, then the extractor (regex, lookup, resolver, model), then the type, so the result
       does not depend on the input order.

    Entities that do not overlap are all kept, including adjacent ones (``end == start``).
    """
    items = list(entities)
    if pattern_types is None:
        pattern_types = {e.type for e in items if e.extractor in rule_extractors}

    def priority(entity: nlu_pb2.Entity) -> tuple[int, int, float, int, int, str]:
        exact_rule = entity.extractor in rule_extractors and entity.type in pattern_types
        return (
            0 if exact_rule else 1,
            entity.start - entity.end,
            -entity.confidence,
            entity.start,
            _EXTRACTOR_RANK.get(entity.extractor, len(_EXTRACTOR_RANK)),
            entity.type,
        )

    kept: list[nlu_pb2.Entity] = []
    for entity in sorted(items, key=priority):
        if entity.end <= entity.start:
            continue
        if any(entity.start < k.end and k.start < entity.end for k in kept):
            continue
        kept.append(entity)
    return sorted(kept, key=lambda e: (e.start, e.end, e.type))
