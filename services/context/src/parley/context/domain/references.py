"""Reference resolution before NLU: what "it", "what about 67890?" and "tomorrow" stand for, and topic shifts.

The resolver rewrites the user's text so that a turn can be understood on its own ("When will it arrive?"
with order 12345 in focus becomes "When will order 12345 arrive?"), and reports every reference it found
with its offsets in the original text, so NLU and dialog can use either. All rules are English and
deliberately conservative: a pronoun it is not sure about stays as it is, because a wrong rewrite misleads
NLU more than an unresolved pronoun does. Texts in other languages get temporal references only.

**Focus.** The entity in focus for a pronoun is the most recently updated tracked entity whose category fits
the pronoun (``entities`` come most recent first). Categories come from the entity type's name (overridable
per type, and from an ``attributes["kind"]`` that NLU's entity resolution wrote, when there is one):

* *thing*: ids ("order_id", "ticket_no") and anything not below; antecedents of "it", "its", "this", "that",
  "this/that one", "them" and of noun phrases naming the type ("the order", "this order", "my order");
* *person* ("person", "name", "recipient", ...): "he", "she", "him", "her", "his";
* *place* ("city", "address", "destination", ...): "there";
* *time* ("date", "delivery_time", ...): "then";
* *quantity* (numbers, money): never antecedents ("it" does not mean "3").

When the text itself names a value of the category (an id, a tracked value), its pronouns refer to that and
are left alone: "Order 67890, when will it arrive?" is already explicit.

**Not references** (left alone): weather and time "it" ("it is raining", "it's 5 pm", "it's been two weeks"),
extraposition and evaluations ("is it possible to...", "it's fine", "it seems that..."), idioms ("got it",
"forget it", "that's it"), "this/that" as subjects or determiners ("that's all", "that sounds good", "that
question"): a bare "this"/"that" is resolved only as the object of an action verb ("cancel that"). "there"
is skipped before a verb ("there is...") and in greetings ("hi there"); "then" only counts after "by",
"until", ... or at the end of a clause ("can you deliver it then?").

**Ellipsis.** A fragment with a cue ("what about 67890?", "and tomorrow?", "how about Berlin?", "same for
12345", "Berlin instead?") after a previous user message is rebuilt from that message with the new value in
place of the old one of the same kind: id-like tokens, temporal expressions, tracked entity values, and as a
last resort (low confidence) a proper noun. Fragments without a replaceable counterpart are not rewritten.

**Temporal.** Expressions found by :class:`parley.core.temporal.TemporalFinder` become references with their
best reading; the text keeps the user's words for them (NLU resolves dates itself from the same reference
time and timezone, with alternatives).

**Topic shift.** An explicit cue ("by the way", "actually, forget that", "another question", "never mind")
is a shift unless the message refers to the entity in focus; otherwise a message is a shift only when it is
long enough to judge (three content words or more), refers to nothing tracked, does not lean on the
conversation (no pronoun or demonstrative, no leading "and"/"what about", no "the ..."/"my ..." while a thing
is in focus), and shares (almost) nothing with the last user messages and the last bot message: the
similarity is the cosine of :meth:`~parley.context.domain.embedding.HashedEmbedder.features`, the embedder's
features before hashing (nothing is stored here, so the hash noise of the 256-dimension vectors is not
needed). Short follow-ups ("yes", "ok",
"12345", "sure, go ahead") are never shifts. Lexical similarity cannot see that "parcel" and "order" are
related, hence these extra conditions: they trade missed shifts for fewer false ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from parley.context.domain.embedding import STOP_WORDS, HashedEmbedder, feature_cosine
from parley.context.domain.models import EntityValue, Message, Role
from parley.core.errors import InvalidInputError
from parley.core.temporal import TemporalFinder, TemporalMention

PRONOUN = "pronoun"
ELLIPSIS = "ellipsis"
TEMPORAL = "temporal"

THING = "thing"
PERSON = "person"
PLACE = "place"
TIME = "time"
QUANTITY = "quantity"


class FindsTemporal(Protocol):
    """What the resolver needs of :class:`parley.core.temporal.TemporalFinder`."""

    def find(
        self,
        text: str,
        reference_time: datetime,
        timezone: str,
        *,
        exclude: Sequence[tuple[int, int]] = (),
        language: str = "en",
    ) -> list[TemporalMention]:
        """Temporal expressions in ``text``, in text order, none overlapping an ``exclude`` span."""
        ...


@dataclass(frozen=True)
class Reference:
    """Words in the user's text and what they stand for (mirrors ``parley.context.v1.Reference``)."""

    kind: str
    #: The words as written, at ``start``:``end`` (end exclusive) of the original text.
    text: str
    start: int
    end: int
    #: What the words stand for, as text ("order 12345", "2026-11-26").
    resolved_text: str
    entity_type: str = ""
    entity_value: str = ""
    #: Structured resolution (for dates: the reading's fields).
    resolved: dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.0


@dataclass(frozen=True)
class Resolution:
    """The references of one message, its rewritten text, and whether it changes the topic."""

    references: list[Reference]
    #: The text with pronouns replaced (or an elliptical fragment rebuilt); dates keep the user's words.
    resolved_text: str
    topic_shift: bool
    #: How unlike the recent turns the message is, 0 to 1 (at least 0.9 with an explicit cue).
    topic_score: float


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ------------------------------------------------------------------------------------------- categories

_TIME_TYPE = re.compile(r"date|time|day|when|deadline|schedule")
_ID_TYPE = re.compile(r"(?:^|_)(?:id|no|number|code|ref|reference|sku)$")
_QUANTITY_TYPE = re.compile(
    r"money|price|cost|amount|budget|fee|total|payment|refund_value|number|quantity|count|qty|num|percent"
)
_PLACE_TYPE = re.compile(
    r"city|country|location|address|place|destination|origin|airport|station|store|shop|branch|region|town"
    r"|venue|street|hotel|restaurant"
)
_PERSON_TYPES = _words(
    "person name first_name last_name full_name contact customer agent recipient passenger driver courier"
    " employee manager sender receiver doctor"
)
_KIND_CATEGORIES = {
    "date": TIME,
    "time": TIME,
    "datetime": TIME,
    "interval": TIME,
    "temporal": TIME,
    "number": QUANTITY,
    "money": QUANTITY,
    "quantity": QUANTITY,
    "id": THING,
}
_ID_SUFFIX = re.compile(r"_(?:id|no|number|code|ref|reference)$")


def entity_category(entity_type: str, attributes: Mapping[str, Any] | None = None) -> str:
    """thing, person, place, time or quantity, from an ``attributes["kind"]`` hint or the type's name."""
    kind = str((attributes or {}).get("kind", "")).lower()
    if kind in _KIND_CATEGORIES:
        return _KIND_CATEGORIES[kind]
    name = entity_type.lower()
    if name in _PERSON_TYPES or name.endswith("_person"):
        return PERSON
    if _ID_TYPE.search(name) and name != "number":
        return THING
    if _TIME_TYPE.search(name):
        return TIME
    if _QUANTITY_TYPE.search(name):
        return QUANTITY
    if _PLACE_TYPE.search(name):
        return PLACE
    return THING


# ------------------------------------------------------------------------------------------------ words

_TOKEN_RE = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*|[^\w\s]", re.UNICODE)
# Order numbers, ticket ids, codes ("#12345", "AB-12345"); not years ("2026") nor times ("10AM").
_ID_LIKE_RE = re.compile(
    r"(?<![\w#-])#?(?!(?:19|20)\d\d(?!\d))\d{4,}(?![\w-])"
    r"|\b(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9][A-Z0-9-]{4,}\b"
)
_FRAGMENT_ID_RE = re.compile(r"#?\d{3,}|(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9][A-Z0-9-]{2,}")
_SENTENCE_END = re.compile(r"(?:^|[.!?]\s*)$")

_AUX = _words(
    "is was are 's will 'll would 'd might may could should must can be been being has have had does did do"
    " not n't isn't wasn't won't doesn't didn't keeps kept started stopped getting gets going to gonna"
    " still already just even also always never definitely probably absolutely totally completely so very"
    " really too quite pretty rather extremely fairly"
)
_WEATHER = re.compile(
    r"^(?:rain|snow|pour|drizzl|hail|thunder|storm|sunny|cloudy|windy|cold|hot|warm|chilly|freez|foggy|humid"
    r"|icy|muggy|dark|bright|night|daytime|morning|evening)"
)
# "it is X to/that ...", "it's fine", "is it possible": the situation, not a thing.
_EXPLETIVE_ADJ = _words(
    "possible impossible necessary important likely unlikely true false clear obvious hard difficult easy"
    " worth better best worse ok okay alright fine good great bad nice normal safe allowed weird odd strange"
    " frustrating annoying ridiculous unacceptable sad funny cool perfect awesome me you time about enough"
    " all right up"
)
_RAISING = _words(
    "seems seemed appears appeared turns turned happens happened looks looked sounds sounded feels felt"
)
_RAISING_NEXT = frozenset({"that", "like", "as"})
_MATTERS = _words("depends depended matters mattered matter depend")
_DURATION_START = _words(
    "a an over almost nearly more ages forever long one two three four five six seven eight nine ten"
)
_IDIOMS = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\b(?:got|get)\s+(?P<p>it)\s*(?:[.!,;]|$)",
        r"\bforget\s+(?:about\s+)?(?P<p>it|that|this|them)\b",
        r"\bnever\s*mind\s+(?:about\s+)?(?P<p>it|that|this|them)\b",
        r"\b(?:that|this)(?:['\u2019]s|\s+is|\s+was)\s+(?P<p>it)\b",
        r"\bis\s+that\s+(?P<p>it)\b",
        r"\bhow(?:['\u2019]s|\s+is|\s+was|\s+did|\s+does)\s+(?P<p>it)\s+(?:going|go|goes)\b",
        r"\b(?:go|went|going)\s+for\s+(?P<p>it)\b",
        r"\btake\s+(?P<p>it)\s+easy\b",
        r"\b(?:hate|love|like)\s+(?P<p>it)\s+when\b",
        r"\bi\s+mean\s+(?P<p>it)\b",
        r"\bwhat\s+is\s+(?P<p>it)\s*(?:[?.!]|$)",
        r"\b(?:let['\u2019]?s|let\s+us)\s+do\s+(?P<p>it)\b",
        r"\bhere\s+(?P<p>it)\s+is\b",
        r"\bas\s+(?P<p>it)\s+(?:is|were|stands)\b",
        r"\bwhatever\s+(?P<p>it)\b",
        r"\bmake\s+(?P<p>it)\s+(?:to|by|on|in|at|through|work|happen)\b",
        r"\bthere\s+(?P<p>it)\s+is\b",
    )
)
_THING_VERBS = _words(
    "track cancel return refund ship deliver send resend check change update find exchange replace reorder"
    " modify expedite trace locate reship redeliver"
)
_CLAUSE_END_WORDS = _words("please now today tomorrow again for too asap instead then as well")
_THERE_SKIP_NEXT = _words(
    "is are was were 's will 'll would might may must could should seems seem appears appear exist exists"
    " remain remains used has have had isn't aren't wasn't weren't won't goes go you we"
)
_THERE_SKIP_PREV = frozenset({"hi", "hello", "hey", "over", "out", "here", "and"})
_TAG_AUX = _words("isn't wasn't won't wouldn't doesn't didn't can't couldn't shouldn't hasn't hadn't")
_BE_FORMS = _words("is are was were isn't aren't wasn't weren't")
_MOTION_VERBS = _words(
    "go get ship send deliver travel fly drive move come take bring return mail post forward"
)
_PREPOSITIONS = _words("from to in at near around through via by until till before after since")
_THEN_PREPOSITIONS = _words("by until till before after since from")
_THEN_SKIP_PREV = _words(
    "ok okay fine alright and but so well bye good right what how great sure thanks yes no now just even back"
    " since"
)
_OBJECT_FOLLOWERS = _words(
    "to for about again now please today tomorrow yesterday and or back up down that if when yet too also"
    " know a an the my your it this some any with at in on by from as than so then first later soon"
    " directly immediately right asap"
)
_PERSON_PRONOUNS = _words("he she him her his")
_DETERMINER_CONFIDENCE = {"this": 0.9, "that": 0.9, "the": 0.8, "my": 0.7, "your": 0.7, "our": 0.7}

# ---------------------------------------------------------------------------------------------- ellipsis

_FRAGMENT_RE = re.compile(
    r"""^(?:(?:and|but|ok|okay|so|well|hmm|also)[,\s]+)*
        (?:
            (?:what|how)\s+about\s+(?P<about>.+?)
          | same\s+(?:thing\s+)?(?:for|with)\s+(?P<same>.+?)
          | (?P<instead>.+?)\s+instead
          | (?:and|or)\s+(?P<and>.+?)
          | what\s+if\s+it\s+(?:was|were|is)\s+(?P<whatif>.+?)
        )
        (?:\s+(?:then|too|please|as\s+well))?\s*[?.!]*\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_LEADING_PREPOSITION = re.compile(r"^(?:for|with|in|on|at|from|to|by)\s+", re.IGNORECASE)
_WH_WORDS = _words("what when where why how who which whom whose is are do does did can could will would")
_PROPER_NOUN_RE = re.compile(r"(?<=[\w,]\s)(?P<n>[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*)")
_MAX_FRAGMENT_WORDS = 5

# ----------------------------------------------------------------------------------------------- topics

_SHIFT_CUES = re.compile(
    r"\b(?:by\s+the\s+way|btw|forget\s+(?:about\s+)?(?:that|it|this)|never\s*mind|nvm|something\s+else"
    r"|another\s+(?:question|thing|topic|matter)|different\s+(?:topic|question|subject|thing|matter|issue)"
    r"|chang(?:e|ing)\s+(?:of\s+)?(?:the\s+)?(?:topic|subject)|unrelated|on\s+another\s+note|moving\s+on"
    r"|new\s+(?:question|topic)|one\s+more\s+thing|let['\u2019]?s\s+talk\s+about)\b"
    r"|^\s*anyways?\b",
    re.IGNORECASE,
)
_CUE_SCORE = 0.9
# Words that lean on earlier turns: a message with one is never taken for a shift by similarity alone.
_CONTINUATIONS = _words("and also so but then plus") | {"what about", "how about", "what if", "ok so"}
_ANAPHORS = _words("it its they them their theirs this that these those he she him her his there then one")
_DEFINITES = _words("the my your our")
# Words that carry no topic: function words and acknowledgements ("sure, go ahead" is a follow-up).
_NOT_CONTENT = STOP_WORDS | _words("ok okay sure go ahead thanks thank fine great good right yeah yep nope")


@dataclass(frozen=True)
class _Token:
    text: str
    lower: str
    start: int
    end: int

    @property
    def is_word(self) -> bool:
        return self.text[0].isalnum()


def _tokens(text: str) -> list[_Token]:
    return [
        _Token(m.group(0), m.group(0).lower().replace("\u2019", "'"), m.start(), m.end())
        for m in _TOKEN_RE.finditer(text)
    ]


@dataclass
class _Found:
    """A reference plus how to write it into the text."""

    reference: Reference
    replacement: str | None


class ReferenceResolver:
    """Resolves references in a user message against the conversation (see the module docstring).

    ``labels`` maps an entity type to a template for how its values are written in the rewritten text
    (``{"order_id": "order {value}"}``; by default an id type is written as its noun and the value, any other
    type as the value). ``aliases`` adds nouns that name a type in noun phrases (``{"order_id": ["package",
    "parcel"]}``; the type's own noun is always one). ``categories`` overrides the category of a type.
    ``embedder`` supplies the features compared for topic shifts (its dimensions do not matter);
    ``shift_threshold`` is the dissimilarity (1 - cosine) from which an unanchored message counts as a topic
    shift, against the last ``history_size`` user messages and the last bot message. ``temporal`` defaults to
    a :class:`~parley.core.temporal.TemporalFinder` with dateparser on; pass one built once by the composition
    root (say, with ``warm()`` called at start-up) to share it.
    """

    def __init__(
        self,
        *,
        embedder: HashedEmbedder | None = None,
        temporal: FindsTemporal | None = None,
        labels: Mapping[str, str] | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
        categories: Mapping[str, str] | None = None,
        shift_threshold: float = 0.93,
        history_size: int = 3,
    ) -> None:
        if not 0.0 <= shift_threshold <= 1.0:
            raise InvalidInputError(f"shift_threshold must be between 0 and 1, got {shift_threshold}")
        if history_size < 1:
            raise InvalidInputError(f"history_size must be at least 1, got {history_size}")
        self._embedder = embedder or HashedEmbedder()
        self._temporal = temporal if temporal is not None else TemporalFinder()
        self._labels = dict(labels or {})
        self._aliases = {k: tuple(a.lower() for a in v) for k, v in (aliases or {}).items()}
        self._categories = dict(categories or {})
        self._shift_threshold = shift_threshold
        self._history_size = history_size

    # -- public

    def resolve(
        self,
        text: str,
        *,
        recent: Sequence[Message],
        entities: Sequence[EntityValue],
        reference_time: datetime,
        timezone: str,
        previous_user_text: str | None = None,
        language: str = "en",
    ) -> Resolution:
        """The references in ``text`` and the rewritten text.

        ``recent`` are the last messages, oldest first, without the current one (a trailing user message
        equal to ``text`` is taken to be the current one and ignored). ``entities`` are the tracked values,
        most recently updated first. ``previous_user_text`` is the user's previous message (default: the last
        user message in ``recent``). A naive ``reference_time`` is taken as UTC; an empty ``timezone`` means
        UTC, one that is not an IANA name raises InvalidInputError (from the temporal finder).
        """
        if reference_time.tzinfo is None:
            reference_time = reference_time.replace(tzinfo=UTC)
        timezone = timezone or "UTC"
        history = list(recent)
        if history and history[-1].role is Role.USER and history[-1].text.strip() == text.strip():
            history.pop()
        if previous_user_text is None:
            previous_user_text = next((m.text for m in reversed(history) if m.role is Role.USER), None)
        english = language.lower().startswith("en")

        found: list[_Found] = []
        resolved_text = text
        ellipsis = None
        if english and previous_user_text:
            ellipsis = self._ellipsis(text, previous_user_text, entities, reference_time, timezone)
        if ellipsis is not None:
            found.append(ellipsis)
            resolved_text = ellipsis.reference.resolved_text
        elif english:
            found.extend(self._pronouns(text, entities))
            resolved_text = _rewrite(text, found)

        taken = [(f.reference.start, f.reference.end) for f in found if f.reference.kind == PRONOUN]
        taken.extend(m.span() for m in _ID_LIKE_RE.finditer(text))
        temporal = [
            _temporal_reference(m)
            for m in self._temporal.find(text, reference_time, timezone, exclude=taken, language=language)
        ]
        references = sorted([f.reference for f in found] + temporal, key=lambda r: (r.start, r.end))

        shift, score = self._topic_shift(text, history, entities, found, english)
        return Resolution(references, resolved_text, shift, score)

    # -- pronouns and noun phrases

    def _pronouns(self, text: str, entities: Sequence[EntityValue]) -> list[_Found]:
        tokens = _tokens(text)
        by_category: dict[str, list[EntityValue]] = {}
        for entity in entities:
            if entity.value.strip():
                by_category.setdefault(self._category(entity), []).append(entity)
        if not any(c in by_category for c in (THING, PERSON, PLACE, TIME)):
            return []
        explicit = {c for c in (THING, PERSON, PLACE) if self._names_value(text, by_category.get(c, []), c)}
        idiom_spans = [m.span("p") for pattern in _IDIOMS for m in pattern.finditer(text)]
        found: list[_Found] = []
        used: set[int] = set()

        if THING in by_category and THING not in explicit:
            found.extend(self._noun_phrases(tokens, by_category[THING], used))
        for i, token in enumerate(tokens):
            if i in used or not token.is_word or (token.start, token.end) in idiom_spans:
                continue
            base, _, suffix = token.lower.partition("'")
            hit: _Found | None = None
            if base in {"it", "its"} and THING in by_category and THING not in explicit:
                hit = self._it(tokens, i, base, suffix, by_category[THING])
            elif base in {"this", "that"} and not suffix and THING in by_category and THING not in explicit:
                hit = self._demonstrative(tokens, i, by_category[THING])
            elif base == "them" and THING in by_category and THING not in explicit:
                hit = self._make(tokens, i, i, by_category[THING], 0.5)
            elif base in _PERSON_PRONOUNS and PERSON in by_category and PERSON not in explicit:
                hit = self._person(tokens, i, base, suffix, by_category[PERSON])
            elif token.lower == "there" and PLACE in by_category and PLACE not in explicit:
                hit = self._there(tokens, i, by_category[PLACE])
            elif token.lower == "then" and TIME in by_category:
                hit = self._then(tokens, i, by_category[TIME])
            if hit is not None:
                found.append(hit)
        return sorted(found, key=lambda f: f.reference.start)

    def _noun_phrases(self, tokens: list[_Token], things: list[EntityValue], used: set[int]) -> list[_Found]:
        nouns: dict[str, EntityValue] = {}
        for entity in things:  # most recent first: the first entity naming a noun wins
            for noun in self._nouns(entity.entity_type):
                nouns.setdefault(noun, entity)
        found: list[_Found] = []
        for i in range(len(tokens) - 1):
            det, head = tokens[i], tokens[i + 1]
            if det.lower not in _DETERMINER_CONFIDENCE:
                continue
            confidence = _DETERMINER_CONFIDENCE[det.lower]
            if head.lower == "one" and det.lower in {"this", "that"}:
                after = tokens[i + 2].lower if i + 2 < len(tokens) else ""
                if after == "of":
                    continue
                hit = self._make(tokens, i, i + 1, things, 0.75)
            elif head.lower in nouns:
                after = tokens[i + 2] if i + 2 < len(tokens) else None
                if after is not None and (
                    after.lower in {"number", "id", "no", "code", "#", "of"} or after.lower[0].isdigit()
                ):
                    continue  # "the order number is ...", "the order 67890": not a reference
                entity = nouns[head.lower]
                hit = self._found(tokens, i, i + 1, entity, confidence, self._label(entity), ambiguous=False)
            else:
                continue
            used.update({i, i + 1})
            found.append(hit)
        return found

    def _it(
        self, tokens: list[_Token], i: int, base: str, suffix: str, things: list[EntityValue]
    ) -> _Found | None:
        if base == "its":
            return self._make(tokens, i, i, things, 0.75, possessive=True)
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if i > 0 and tokens[i - 1].lower in _TAG_AUX and (following is None or not following.is_word):
            return None  # a question tag ("..., won't it?") repeats the subject already resolved
        after = [t.lower for t in tokens[i + 1 : i + 8] if t.is_word]
        if suffix:
            after = [{"s": "is", "ll": "will", "d": "would"}.get(suffix, suffix), *after]
        if _expletive(after):
            return None
        return self._make(tokens, i, i, things, 0.8, contraction=suffix)

    def _demonstrative(self, tokens: list[_Token], i: int, things: list[EntityValue]) -> _Found | None:
        prev = tokens[i - 1].lower if i > 0 else ""
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        at_end = following is None or not following.is_word or following.lower in _CLAUSE_END_WORDS
        if prev not in _THING_VERBS or not at_end:
            return None
        return self._make(tokens, i, i, things, 0.6)

    def _person(
        self, tokens: list[_Token], i: int, base: str, suffix: str, people: list[EntityValue]
    ) -> _Found | None:
        if base == "his":
            return self._make(tokens, i, i, people, 0.7, possessive=True)
        if base == "her":
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if following is not None and following.is_word and following.lower not in _OBJECT_FOLLOWERS:
                return self._make(tokens, i, i, people, 0.65, possessive=True)
            return self._make(tokens, i, i, people, 0.7)
        if base == "him":
            return self._make(tokens, i, i, people, 0.7)
        return self._make(tokens, i, i, people, 0.75, contraction=suffix)

    def _there(self, tokens: list[_Token], i: int, places: list[EntityValue]) -> _Found | None:
        prev = tokens[i - 1].lower if i > 0 else ""
        following = tokens[i + 1].lower if i + 1 < len(tokens) else ""
        existential = prev in _BE_FORMS and i + 1 < len(tokens) and tokens[i + 1].is_word  # "is there a..."
        if following in _THERE_SKIP_NEXT or prev in _THERE_SKIP_PREV or i == 0 or existential:
            return None
        entity = places[0]
        value = self._label(entity)
        if prev in _PREPOSITIONS:
            replacement = value
        elif any(t.lower in _MOTION_VERBS for t in tokens[max(0, i - 3) : i]):
            replacement = f"to {value}"
        else:
            replacement = f"in {value}"
        return self._found(tokens, i, i, entity, 0.7, replacement, ambiguous=len(places) > 1)

    def _then(self, tokens: list[_Token], i: int, times: list[EntityValue]) -> _Found | None:
        prev = tokens[i - 1].lower if i > 0 else ""
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        entity = times[0]
        value = self._label(entity)
        if prev in _THEN_PREPOSITIONS:
            return self._found(tokens, i, i, entity, 0.7, value, ambiguous=len(times) > 1)
        clause_words = 0
        for t in reversed(tokens[:i]):
            if not t.is_word:
                break
            clause_words += 1
        at_end = following is None or not following.is_word
        if not at_end or prev in _THEN_SKIP_PREV or clause_words < 2 or tokens[0].lower == "if":
            return None
        preposition = "on" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", entity.value) else "at"
        return self._found(tokens, i, i, entity, 0.6, f"{preposition} {value}", ambiguous=len(times) > 1)

    # -- building references

    def _make(
        self,
        tokens: list[_Token],
        first: int,
        last: int,
        candidates: list[EntityValue],
        confidence: float,
        *,
        possessive: bool = False,
        contraction: str = "",
    ) -> _Found:
        entity = candidates[0]
        label = self._label(entity)
        if possessive:
            replacement = f"{label}'s"
        elif contraction:
            verb = {"s": "is", "ll": "will", "d": "would", "re": "are", "ve": "have"}.get(contraction, "")
            if contraction == "s" and last + 1 < len(tokens) and tokens[last + 1].lower in {"been", "got"}:
                verb = "has"
            replacement = f"{label} {verb}".rstrip()
        else:
            replacement = label
        ambiguous = len(candidates) > 1
        return self._found(tokens, first, last, entity, confidence, replacement, ambiguous=ambiguous)

    def _found(
        self,
        tokens: list[_Token],
        first: int,
        last: int,
        entity: EntityValue,
        confidence: float,
        replacement: str,
        *,
        ambiguous: bool,
    ) -> _Found:
        start, end = tokens[first].start, tokens[last].end
        words = " ".join(t.text for t in tokens[first : last + 1])
        if ambiguous:
            confidence *= 0.85
        reference = Reference(
            kind=PRONOUN,
            text=words,
            start=start,
            end=end,
            resolved_text=self._label(entity),
            entity_type=entity.entity_type,
            entity_value=entity.value,
            resolved={"entity_type": entity.entity_type, "value": entity.value},
            confidence=round(confidence, 3),
        )
        return _Found(reference, replacement)

    def _category(self, entity: EntityValue) -> str:
        override = self._categories.get(entity.entity_type)
        return override or entity_category(entity.entity_type, entity.attributes)

    def _label(self, entity: EntityValue) -> str:
        template = self._labels.get(entity.entity_type)
        if template is not None:
            return template.format(value=entity.value)
        name = entity.entity_type.lower()
        if _ID_SUFFIX.search(name) and self._category(entity) == THING:
            noun = _ID_SUFFIX.sub("", name).replace("_", " ").strip()
            if noun and not entity.value.lower().startswith(noun):
                return f"{noun} {entity.value}"
        return entity.value

    def _nouns(self, entity_type: str) -> tuple[str, ...]:
        name = entity_type.lower()
        own = _ID_SUFFIX.sub("", name).replace("_", " ").strip()
        nouns = [own] if own and " " not in own else []
        return (*nouns, *self._aliases.get(entity_type, ()))

    def _names_value(self, text: str, entities: list[EntityValue], category: str) -> bool:
        """Whether the text itself names something of ``category`` (so its pronouns point there)."""
        if category == THING and _ID_LIKE_RE.search(text):
            return True
        lowered = text.casefold()
        return any(re.search(rf"(?<!\w){re.escape(e.value.casefold())}(?!\w)", lowered) for e in entities)

    # -- ellipsis

    def _ellipsis(
        self,
        text: str,
        previous: str,
        entities: Sequence[EntityValue],
        reference_time: datetime,
        timezone: str,
    ) -> _Found | None:
        match = _FRAGMENT_RE.match(text.strip())
        if match is None:
            return None
        group = next(g for g in ("about", "same", "instead", "and", "whatif") if match.group(g))
        fragment = match.group(group).strip()
        offset = len(text) - len(text.lstrip()) + match.start(group)
        value = _LEADING_PREPOSITION.sub("", fragment)
        offset += len(fragment) - len(value)
        words = value.split()
        if not words or len(words) > _MAX_FRAGMENT_WORDS:
            return None
        # Rebuild from the previous question as it would have been resolved ("it" -> "order 12345").
        base = _rewrite(previous, self._pronouns(previous, entities))
        start, end = offset, offset + len(value)

        if _FRAGMENT_ID_RE.fullmatch(value):
            olds = list(_ID_LIKE_RE.finditer(base))
            if not olds:
                return None
            old = olds[-1]
            entity_type = next((e.entity_type for e in entities if e.value == old.group(0).lstrip("#")), "")
            rebuilt = base[: old.start()] + value + base[old.end() :]
            return _ellipsis_found(
                text, start, end, value, rebuilt, old.group(0), previous, entity_type, 0.85
            )

        mentions = self._temporal.find(value, reference_time, timezone, language="en")
        if mentions and sum(m.end - m.start for m in mentions) >= 0.6 * len(value):
            new = mentions[0].text
            prior = self._temporal.find(
                base, reference_time, timezone, exclude=[m.span() for m in _ID_LIKE_RE.finditer(base)]
            )
            if prior:
                old_m = prior[-1]
                rebuilt = base[: old_m.start] + new + base[old_m.end :]
                return _ellipsis_found(text, start, end, value, rebuilt, old_m.text, previous, "", 0.8)
            stem = base.rstrip()
            punct = ""
            while stem and stem[-1] in "?.!":
                punct = stem[-1] + punct
                stem = stem[:-1].rstrip()
            rebuilt = f"{stem} {new}{punct}"
            return _ellipsis_found(text, start, end, value, rebuilt, "", previous, "", 0.5)

        lowered = {w.lower() for w in re.findall(r"[\w']+", value)}
        if lowered & _WH_WORDS or len(words) > 3 or not (lowered - STOP_WORDS):
            return None
        for entity in entities:
            category = self._category(entity)
            if category in {TIME, QUANTITY} or _ID_LIKE_RE.fullmatch(entity.value):
                continue
            old_match = re.search(rf"(?<!\w){re.escape(entity.value)}(?!\w)", base, re.IGNORECASE)
            if old_match is None:
                continue
            if old_match.group(0).casefold() == value.casefold():
                return None
            same_shape = value[:1].isupper() == old_match.group(0)[:1].isupper()
            rebuilt = base[: old_match.start()] + value + base[old_match.end() :]
            confidence = 0.7 if same_shape else 0.5
            return _ellipsis_found(
                text, start, end, value, rebuilt, old_match.group(0), previous, entity.entity_type, confidence
            )
        if value[:1].isupper():
            nouns = [m for m in _PROPER_NOUN_RE.finditer(base) if m.group("n").lower() not in STOP_WORDS]
            if nouns:
                old_n = nouns[-1]
                rebuilt = base[: old_n.start("n")] + value + base[old_n.end("n") :]
                return _ellipsis_found(text, start, end, value, rebuilt, old_n.group("n"), previous, "", 0.4)
        return None

    # -- topic shift

    def _topic_shift(
        self,
        text: str,
        history: Sequence[Message],
        entities: Sequence[EntityValue],
        found: Sequence[_Found],
        english: bool,
    ) -> tuple[bool, float]:
        users = [m.text for m in history if m.role is Role.USER][-self._history_size :]
        bots = [m.text for m in history if m.role is Role.BOT][-1:]
        score = 0.0
        if users or bots:
            # The exact similarity of the embedder's features: nothing is stored, so no hash noise is needed.
            features = self._embedder.features(text)
            similarity = max(feature_cosine(features, self._embedder.features(h)) for h in [*users, *bots])
            score = round(min(1.0, max(0.0, 1.0 - similarity)), 3)
        refers = any(f.reference.kind in {PRONOUN, ELLIPSIS} for f in found) or any(
            re.search(rf"(?<!\w){re.escape(e.value.casefold())}(?!\w)", text.casefold())
            for e in entities
            if e.value.strip()
        )
        if english and _SHIFT_CUES.search(text):
            return not refers, max(score, _CUE_SCORE)
        words = re.findall(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)?", text.lower())
        if sum(1 for w in words if w.partition("'")[0] not in _NOT_CONTENT) < 3:
            return False, 0.0  # "yes", "ok", "12345", "tomorrow please": follow-ups, never shifts
        if not users or refers:
            return False, score
        if english and self._continues(words, entities):
            return False, score
        return score >= self._shift_threshold, score

    def _continues(self, words: Sequence[str], entities: Sequence[EntityValue]) -> bool:
        """Whether the words lean on what was said before, even though nothing was resolved."""
        if words and (words[0] in _CONTINUATIONS or " ".join(words[:2]) in _CONTINUATIONS):
            return True
        if any(w.partition("'")[0] in _ANAPHORS for w in words):
            return True
        in_focus = any(self._category(e) == THING for e in entities)
        return in_focus and any(w in _DEFINITES for w in words)


# ------------------------------------------------------------------------------------------------ helpers


def _expletive(after: list[str]) -> bool:
    """Whether "it" followed by the words ``after`` is expletive (weather, time, extraposition)."""
    if not after:
        return False
    if after[0] in _RAISING and len(after) > 1 and after[1] in _RAISING_NEXT:
        return True
    if after[0] in _MATTERS or (after[0] in {"doesn't", "does"} and "matter" in after[:3]):
        return True
    i = 0
    saw_been = False
    while i < len(after) and after[i] in _AUX:
        saw_been = saw_been or after[i] == "been"
        i += 1
    if i >= len(after):
        return False
    word = after[i]
    if _WEATHER.match(word) or word in _EXPLETIVE_ADJ:
        return True
    if word[0].isdigit() or word in {"noon", "midnight", "o'clock"}:
        return True  # "it's 5 pm", "it's been 3 days"
    return saw_been and word in _DURATION_START


def _rewrite(text: str, found: Sequence[_Found]) -> str:
    out: list[str] = []
    position = 0
    for item in sorted(found, key=lambda f: f.reference.start):
        ref = item.reference
        if item.replacement is None or ref.start < position:
            continue
        replacement = item.replacement
        if ref.text[:1].isupper() and _SENTENCE_END.search(text[: ref.start]) and replacement[:1].islower():
            replacement = replacement[0].upper() + replacement[1:]
        out.extend((text[position : ref.start], replacement))
        position = ref.end
    out.append(text[position:])
    return "".join(out)


def _ellipsis_found(
    text: str,
    start: int,
    end: int,
    value: str,
    rebuilt: str,
    replaced: str,
    previous: str,
    entity_type: str,
    confidence: float,
) -> _Found:
    reference = Reference(
        kind=ELLIPSIS,
        text=text[start:end],
        start=start,
        end=end,
        resolved_text=rebuilt,
        entity_type=entity_type,
        entity_value=value,
        resolved={"previous_text": previous, "replaced": replaced, "value": value},
        confidence=confidence,
    )
    return _Found(reference, rebuilt)


def _temporal_reference(mention: TemporalMention) -> Reference:
    resolved: dict[str, Any] = {**mention.best.resolved, "value": mention.best.value}
    if mention.alternatives:
        resolved["alternatives"] = [
            {"value": a.value, "confidence": a.confidence} for a in mention.alternatives
        ]
    return Reference(
        kind=TEMPORAL,
        text=mention.text,
        start=mention.start,
        end=mention.end,
        resolved_text=mention.best.value,
        resolved=resolved,
        confidence=round(mention.confidence * mention.best.confidence, 3),
    )
