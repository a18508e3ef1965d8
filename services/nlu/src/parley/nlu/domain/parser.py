"""Text in, :class:`ParseResult` out: the whole understanding pipeline for one or many utterances.

1. language detection;
2. rule entities on the raw text (regex, lookup tables) and temporal/number/money expressions — these are
   protected from spelling correction, so an order id is never "corrected";
3. spelling correction (project language only) → the text the model reads;
4. the intent model (full ranking; a joint model also tags entity spans) on the corrected text, plus each
   clause of a multi-clause message, so "cancel my order and also update my address" yields both intents;
5. entity merging (exact-pattern rules win) and resolution to canonical values relative to the
   conversation's reference time and timezone;
6. out-of-scope, clarification, sentiment/emotion/urgency and the semantic frame.

A message written as a payload, ``/intent_name`` or ``/intent_name{"entity": "value"}`` (what a quick reply
sends back; handy in tests), skips all of that: the intent is taken as said, with confidence 1.0, and the
entities as given (resolved like any other, so ``{"date": "next Tuesday"}`` becomes a date).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf.struct_pb2 import Struct

from parley.nlu.domain.extractors import LookupExtractor, RegexExtractor, SynonymMapper, merge_entities
from parley.nlu.domain.offsets import OffsetMap
from parley.nlu.domain.resolution import EntityResolver
from parley.nlu.v1 import nlu_pb2

FALLBACK_INTENT = "nlu_fallback"

# Where one request ends and another begins inside a message ("X and also Y", "X; Y", "X. Also, Y").
_CLAUSE_SPLIT = re.compile(
    r"\s*(?:[.;!?]+\s+(?:and\s+)?(?:also,?\s+)?|,?\s+and\s+(?:then\s+|also\s+)?|,?\s+also\s+|,?\s+plus\s+)",
    re.IGNORECASE,
)


# "/intent_name" optionally followed by a JSON object of entities: the whole message, nothing else.
_PAYLOAD = re.compile(r"/(?P<intent>[A-Za-z0-9_][A-Za-z0-9_.-]*)\s*(?P<entities>\{.*\})?", re.DOTALL)
PAYLOAD_EXTRACTOR = "payload"


@dataclass(frozen=True)
class ParseInput:
    """One utterance with what resolving it needs."""

    text: str
    reference_time: datetime | None = None
    timezone: str = ""
    language: str = ""


class TaggedSpan(Protocol):
    """An entity span found by a model, on the text it was given."""

    start: int
    end: int
    type: str
    score: float


class IntentPrediction(Protocol):
    """A model's reading of one text."""

    intent_probs: Mapping[str, float]
    tags: Sequence[TaggedSpan]


class IntentModel(Protocol):
    """Intent probabilities (and optionally entity tags) for texts."""

    @property
    def intents(self) -> tuple[str, ...]: ...

    @property
    def version(self) -> str: ...

    def predict(self, texts: Sequence[str]) -> Sequence[IntentPrediction]: ...


class LanguagePort(Protocol):
    def detect(self, text: str) -> nlu_pb2.Language: ...


class SpellingPort(Protocol):
    def correct(
        self, text: str, protected_spans: Sequence[tuple[int, int]] = ()
    ) -> tuple[str, list[nlu_pb2.Correction]]: ...


class SentimentPort(Protocol):
    def analyze(self, text: str) -> nlu_pb2.Sentiment: ...


@dataclass(frozen=True)
class ParserConfig:
    """Thresholds and project knowledge the parser needs."""

    fallback_threshold: float = 0.5
    #: An intent of a multi-clause message counts when its clause gives it at least this confidence.
    clause_threshold: float = 0.6
    #: Two top intents closer than this (and both plausible) → ask which one was meant.
    clarification_margin: float = 0.15
    language: str = "en"
    #: intent → the entity types its flow needs (for ``frame.missing``).
    required_entities: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: entity types that express preferences rather than constraints.
    preference_entities: frozenset[str] = frozenset()


@dataclass
class Parser:
    """Parses utterances with one intent model and the project's extractors."""

    model: IntentModel
    config: ParserConfig
    regex: RegexExtractor | None = None
    lookup: LookupExtractor | None = None
    synonyms: Mapping[str, SynonymMapper] = field(default_factory=dict)
    resolver: EntityResolver | None = None
    speller: SpellingPort | None = None
    language: LanguagePort | None = None
    sentiment: SentimentPort | None = None

    @property
    def intents(self) -> tuple[str, ...]:
        """The intents the model knows."""
        return self.model.intents

    @property
    def model_version(self) -> str:
        return self.model.version

    @property
    def fallback_threshold(self) -> float:
        return self.config.fallback_threshold

    def parse(self, text: str | ParseInput) -> nlu_pb2.ParseResult:
        """Parse one utterance."""
        return self.parse_batch([text])[0]

    def parse_batch(self, inputs: Sequence[str | ParseInput]) -> list[nlu_pb2.ParseResult]:
        """Parse many utterances with one model call, in order."""
        items = [i if isinstance(i, ParseInput) else ParseInput(i) for i in inputs]
        if not items:
            return []
        payloads = {i: result for i, item in enumerate(items) if (result := self._payload(item)) is not None}
        if payloads:
            rest = [item for i, item in enumerate(items) if i not in payloads]
            parsed = iter(self.parse_batch(rest))
            return [payloads[i] if i in payloads else next(parsed) for i in range(len(items))]
        prepared = [self._prepare(item) for item in items]
        texts: list[str] = []
        for p in prepared:
            texts.append(p.corrected)
            texts.extend(p.clauses)
        predictions = list(self.model.predict(texts))
        results: list[nlu_pb2.ParseResult] = []
        cursor = 0
        for p in prepared:
            whole = predictions[cursor]
            clauses = predictions[cursor + 1 : cursor + 1 + len(p.clauses)]
            cursor += 1 + len(p.clauses)
            results.append(self._result(p, whole, clauses))
        return results

    # -- steps

    def _payload(self, item: ParseInput) -> nlu_pb2.ParseResult | None:
        """The result a ``/intent{...}`` payload says, or ``None`` for ordinary text.

        Only intents the model knows count, and the entities must be a JSON object of names to strings,
        numbers or lists of them: anything else ("/help", "/etc/passwd") is parsed as the text it is.
        """
        text = item.text.strip()
        match = _PAYLOAD.fullmatch(text)
        if match is None or match["intent"] not in self.model.intents:
            return None
        given: object = {}
        if match["entities"]:
            try:
                given = json.loads(match["entities"])
            except json.JSONDecodeError:
                return None
        if not isinstance(given, dict):
            return None
        reference = item.reference_time or datetime.now(UTC)
        timezone = item.timezone or "UTC"
        entities: list[nlu_pb2.Entity] = []
        for entity_type, raw in given.items():
            values = raw if isinstance(raw, list) else [raw]
            for value in values:
                if isinstance(value, bool) or not isinstance(value, str | int | float) or not str(value):
                    return None
                entities.append(self._payload_entity(text, str(entity_type), str(value), reference, timezone))
        intent = nlu_pb2.Intent(name=match["intent"], confidence=1.0, parent=_parent(match["intent"]))
        language = item.language.split("-")[0] if item.language else self.config.language
        return nlu_pb2.ParseResult(
            text=item.text,
            intent=intent,
            ranking=[intent],
            entities=entities,
            model_version=self.model.version,
            intents=[intent],
            language=nlu_pb2.Language(code=language, confidence=1.0),
            corrected_text=item.text,
            frame=self._frame(intent.name, [intent], entities),
        )

    def _payload_entity(
        self, text: str, entity_type: str, value: str, reference: datetime, timezone: str
    ) -> nlu_pb2.Entity:
        """A payload's entity, its span the value's place in the message, resolved like any entity."""
        start = text.find(value)
        start, end = (start, start + len(value)) if start >= 0 else (0, 0)
        entity = nlu_pb2.Entity(
            type=entity_type, text=value, value=value, confidence=1.0, extractor=PAYLOAD_EXTRACTOR
        )
        mapper = self.synonyms.get(entity_type)
        if mapper is not None:
            entity.value = mapper.map(value)
        if self.resolver is not None:
            entity.start, entity.end = 0, len(value)
            entity = self.resolver.resolve(entity, value, reference, timezone, language=self.config.language)
        entity.start, entity.end = start, end
        return entity

    def _prepare(self, item: ParseInput) -> _Prepared:
        text = item.text
        reference = item.reference_time or datetime.now(UTC)
        timezone = item.timezone or "UTC"
        language = (
            self.language.detect(text)
            if self.language is not None
            else nlu_pb2.Language(code=item.language or self.config.language, confidence=0.5)
        )
        lang_code = item.language.split("-")[0] if item.language else language.code
        rules: list[nlu_pb2.Entity] = []
        if self.regex is not None:
            rules.extend(self.regex.extract(text))
        if self.lookup is not None:
            rules.extend(self.lookup.extract(text))
        found: list[nlu_pb2.Entity] = []
        if self.resolver is not None:
            found = self.resolver.find_all(text, reference, timezone, exclude=rules, language=lang_code)
        corrected, corrections = text, []
        if self.speller is not None and lang_code == self.config.language:
            protected = [(e.start, e.end) for e in (*rules, *found)]
            corrected, corrections = self.speller.correct(text, protected)
        clauses = [c for c in _CLAUSE_SPLIT.split(corrected) if len(c.split()) >= 2]
        return _Prepared(
            item=item,
            reference=reference,
            timezone=timezone,
            language=language,
            lang_code=lang_code,
            rule_entities=[*rules, *found],
            corrected=corrected,
            corrections=list(corrections),
            clauses=clauses if len(clauses) > 1 else [],
        )

    def _result(
        self, p: _Prepared, whole: IntentPrediction, clauses: Sequence[IntentPrediction]
    ) -> nlu_pb2.ParseResult:
        ranking = [
            nlu_pb2.Intent(name=name, confidence=float(conf), parent=_parent(name))
            for name, conf in sorted(whole.intent_probs.items(), key=lambda kv: -kv[1])
        ]
        best = ranking[0] if ranking else nlu_pb2.Intent(name=FALLBACK_INTENT)
        # Intents of a multi-clause message: each clause's confident top intent, in the order said.
        expressed: list[nlu_pb2.Intent] = []
        for clause in clauses:
            if not clause.intent_probs:
                continue
            name, conf = max(clause.intent_probs.items(), key=lambda kv: kv[1])
            if conf >= self.config.clause_threshold and name not in {i.name for i in expressed}:
                expressed.append(nlu_pb2.Intent(name=name, confidence=float(conf), parent=_parent(name)))
        out_of_scope = best.confidence < self.config.fallback_threshold and len(expressed) < 2
        if len(expressed) >= 2:
            intents = expressed
            top = max(expressed, key=lambda i: i.confidence)
        elif out_of_scope:
            intents = []
            top = nlu_pb2.Intent(name=FALLBACK_INTENT, confidence=best.confidence)
        else:
            intents = [best]
            top = best
        second = ranking[1].confidence if len(ranking) > 1 else 0.0
        requires_clarification = (
            not out_of_scope
            and len(intents) == 1
            and second >= 0.2
            and best.confidence - second < self.config.clarification_margin
        )
        entities = self._entities(p, whole)
        return nlu_pb2.ParseResult(
            text=p.item.text,
            intent=top,
            ranking=ranking,
            entities=entities,
            model_version=self.model.version,
            intents=intents,
            out_of_scope=out_of_scope,
            sentiment=self.sentiment.analyze(p.item.text) if self.sentiment is not None else None,
            language=p.language,
            corrections=p.corrections,
            corrected_text=p.corrected,
            requires_clarification=requires_clarification,
            frame=self._frame(None if out_of_scope else top.name, intents, entities),
        )

    def _entities(self, p: _Prepared, whole: IntentPrediction) -> list[nlu_pb2.Entity]:
        offsets = OffsetMap(p.corrections)
        text = p.item.text
        tagged: list[nlu_pb2.Entity] = []
        for span in whole.tags:
            start = offsets.to_original(span.start)
            end = offsets.to_original(span.end, is_end=True)
            if not 0 <= start < end <= len(text):
                continue
            surface = text[start:end]
            mapper = self.synonyms.get(span.type)
            tagged.append(
                nlu_pb2.Entity(
                    type=span.type,
                    text=surface,
                    value=mapper.map(surface) if mapper is not None else surface,
                    start=start,
                    end=end,
                    confidence=float(span.score),
                    extractor="model",
                )
            )
        merged = merge_entities(
            [*p.rule_entities, *tagged],
            pattern_types={e.type for e in p.rule_entities if e.extractor == "regex"},
        )
        if self.resolver is None:
            return merged
        return [self.resolver.resolve(e, text, p.reference, p.timezone, language=p.lang_code) for e in merged]

    def _frame(
        self, goal: str | None, intents: Sequence[nlu_pb2.Intent], entities: Sequence[nlu_pb2.Entity]
    ) -> nlu_pb2.SemanticFrame:
        given = {e.type for e in entities}
        missing: list[str] = []
        for intent in intents:
            for needed in self.config.required_entities.get(intent.name, ()):
                if needed not in given and needed not in missing:
                    missing.append(needed)
        constraints, preferences = Struct(), Struct()
        for e in entities:
            target = preferences if e.type in self.config.preference_entities else constraints
            target.update({e.type: e.value})
        return nlu_pb2.SemanticFrame(
            goal=goal or "", missing=missing, constraints=constraints, preferences=preferences
        )


@dataclass(frozen=True)
class _Prepared:
    item: ParseInput
    reference: datetime
    timezone: str
    language: nlu_pb2.Language
    lang_code: str
    rule_entities: list[nlu_pb2.Entity]
    corrected: str
    corrections: list[nlu_pb2.Correction]
    clauses: list[str]


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""
