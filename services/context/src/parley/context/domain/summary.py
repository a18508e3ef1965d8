"""The rolling summary: what a conversation said before the messages a turn carries verbatim.

Messages older than the last ``max_context_length`` are folded into one summary per conversation, a batch at
a time (:func:`needs_summary`, :func:`fold_count`), so a turn loads a bounded summary instead of the whole
history while the raw messages stay in the store.

:class:`ExtractiveSummariser` is the default: deterministic, no model, cheap. It keeps the facts a later
turn needs (entity values such as order ids and dates, ids and e-mail addresses written in the text), what
the user asked for or told, and what the bot confirmed or did; it drops greetings, thanks, acknowledgements
and the bot's small talk and questions. It never exceeds its token budget: when the summary would, the
oldest lines go first, then the oldest facts (facts are small and outlive the lines that mentioned them).

A generator (LLM) summariser can replace it behind :class:`Summariser`: it receives the same previous text
(so it should accept this format, or treat it as prose) and must keep to the same budget. ``update`` is
synchronous because the extractive summariser is pure and fast (it sees one bounded batch); a summariser
that calls the generator service would be I/O, so the caller would then run it with ``asyncio.to_thread``
or the protocol's method would become ``async`` (one ``await`` at its one call site).

The text it writes looks like this (``Facts`` newest first, lines oldest first)::

    Facts: order_id=12345 | email=ann@example.com
    - user: My parcel for order 12345 has not arrived.
    - bot: I have opened a claim for order 12345.
    - user (2026-11-25): Can it come tomorrow?

A line carries its message's date when it uses a relative time ("tomorrow"), which would be meaningless
later otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Protocol

from parley.context.domain.embedding import STOP_WORDS
from parley.context.domain.memory import count_tokens
from parley.context.domain.models import EntityValue, Message, Role
from parley.core.errors import InvalidInputError

FACTS_PREFIX = "Facts: "
_FACT_SEPARATOR = " | "
_LINE_PREFIX = "- "
_ELLIPSIS = "…"
#: Longest entity value kept as a fact; longer ones are free text rather than facts.
MAX_FACT_CHARS = 60
#: Types given to facts found in the text rather than in the entity state.
_GENERIC_TYPES = frozenset({"id", "date", "email"})


class Summariser(Protocol):
    """Folds messages into a conversation's summary."""

    def update(
        self, previous: str | None, new_messages: Sequence[Message], entities: Sequence[EntityValue]
    ) -> str:
        """The summary of what ``previous`` summarised followed by ``new_messages`` (oldest first).

        ``entities`` are the conversation's current entity values, most recently updated first.
        """
        ...


def needs_summary(total_messages: int, covered_up_to_count: int, max_context_length: int, batch: int) -> bool:
    """Whether enough messages have fallen out of the last ``max_context_length`` to fold them now.

    ``covered_up_to_count`` is how many messages the summary already covers (0 without one). Folding waits
    until ``batch`` messages are waiting, so it happens once every ``batch`` turns rather than on each; until
    then up to ``max_context_length + batch - 1`` messages stay unsummarised.
    """
    _check_counts(total_messages, covered_up_to_count, max_context_length)
    if batch < 1:
        raise InvalidInputError(f"batch must be at least 1, got {batch}")
    return total_messages - max_context_length - covered_up_to_count >= batch


def fold_count(
    total_messages: int, covered_up_to_count: int, max_context_length: int, max_fold: int | None = None
) -> int:
    """How many messages to fold now: all those beyond the last ``max_context_length``, at most ``max_fold``.

    The cap keeps one turn's work bounded when a long history arrives at once (an import); the rest is
    folded by the next turns.
    """
    _check_counts(total_messages, covered_up_to_count, max_context_length)
    waiting = max(0, total_messages - max_context_length - covered_up_to_count)
    if max_fold is not None:
        if max_fold < 1:
            raise InvalidInputError(f"max_fold must be at least 1, got {max_fold}")
        waiting = min(waiting, max_fold)
    return waiting


def _check_counts(total_messages: int, covered_up_to_count: int, max_context_length: int) -> None:
    if total_messages < 0 or covered_up_to_count < 0:
        raise InvalidInputError(
            f"message counts must not be negative, got {total_messages} and {covered_up_to_count}"
        )
    if max_context_length < 1:
        raise InvalidInputError(f"max_context_length must be at least 1, got {max_context_length}")


# ------------------------------------------------------------------------------------- what is filler

_FILLER_RE = re.compile(
    r"""^(?:
        (?:hi|hello|hey|hiya|howdy|greetings|yo|good\ (?:morning|afternoon|evening|day))
            (?:\ (?:there|bot|again|everyone|all))?
      | (?:thanks|thank\ you|thx|ty|cheers|many\ thanks|much\ appreciated|appreciate\ it)
            (?:\ (?:a\ lot|so\ much|very\ much|again|for\ your\ help|for\ the\ help))*
      | (?:ok|okay|k|kk|sure|great|cool|alright|all\ right|fine|perfect|awesome|nice|good|excellent|wonderful
         |got\ it|i\ see|understood|noted|yes|yeah|yep|yup|ya|no|nope|nah|right|correct|exactly|indeed
         |sounds\ good|sounds\ great|no\ problem|np|hmm+|uh+|um+|lol|wow|oh|ah|oops|please)
            (?:\ (?:thanks|thank\ you|then|please|great|good|sure|ok|okay))*
      | (?:that|this|it)(?:\ is|s)\ (?:great|fine|all|good|ok|okay|perfect|it|right|correct|helpful|awesome)
      | (?:bye|goodbye|bye\ bye|see\ you|see\ ya|talk\ later|take\ care|have\ a\ (?:nice|good|great)\ \w+)
      | (?:you\ are|youre)\ welcome | my\ pleasure | happy\ to\ help | glad\ (?:i\ could|to)\ help
      | (?:how|what)\ (?:can|may)\ i\ (?:help|do\ for)(?:\ you)?(?:\ (?:today|with))?
      | (?:is\ there\ )?anything\ else(?:\ i\ can\ (?:help\ you\ with|do\ for\ you))?
      | let\ me\ (?:check|see|look)(?:\ (?:that|into\ it|for\ you))*
      | (?:one|just\ a)\ (?:moment|second|sec)(?:\ please)? | please\ wait
      | (?:i\ am|im)?\ ?sorry(?:\ (?:about\ that|to\ hear\ that|for\ the\ (?:wait|delay|trouble)))?
      | i\ understand | no\ worries
    )$""",
    re.VERBOSE,
)
# A greeting or acknowledgement opening a sentence with more in it: "Hi, I need help with my order".
_LEADING_FILLER_RE = re.compile(
    r"^(?:hi|hello|hey|ok|okay|thanks|thank you|great|sure|well|so|oh|yes|no|alright|perfect|hmm)\b"
    r"[,!.:;-]*\s+",
    re.IGNORECASE,
)
# A sentence ends at . ! or ? before a space (not inside "ann@example.com" or "2.5") or at a line break.
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
# What the bot did or confirmed (its questions and small talk are dropped).
_ACTION_RE = re.compile(
    r"\b(?:confirm|cancel|refund|book|schedul|updat|chang|sent|send|creat|process|ship|deliver|arriv"
    r"|dispatch|return|replac|exchang|escalat|issued|approv|declin|reject|register|reserv|paid|charg|credit"
    r"|opened|closed|resolv|done|complet|order(?:ed)?|track)\w*",
    re.IGNORECASE,
)
_RELATIVE_TIME_RE = re.compile(
    r"\b(?:today|tonight|tomorrow|yesterday|next|last|ago|weekend|monday|tuesday|wednesday|thursday|friday"
    r"|saturday|sunday|this (?:week|month|year|morning|afternoon|evening)"
    r"|in \d+ (?:days?|weeks?|hours?|months?))\b",
    re.IGNORECASE,
)
# Values worth keeping that NLU may not have tracked: ids, codes, e-mail addresses, ISO dates.
_TEXT_FACTS = (
    ("email", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("date", re.compile(r"\b\d{4}-\d{2}-\d{2}\b")),
    ("id", re.compile(r"(?<![\w#-])#?(\d{5,})(?![\w-])")),
    ("id", re.compile(r"\b(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9][A-Z0-9-]{4,}\b")),
)


def _normalise(sentence: str) -> str:
    words = (w.replace("'", "") for w in _WORD_RE.findall(sentence.lower()))
    return " ".join(words)


def _content_words(sentence: str) -> int:
    return sum(1 for w in _WORD_RE.findall(sentence.lower()) if w not in STOP_WORDS)


# ------------------------------------------------------------------------------------------ the summariser

Fact = tuple[str, str]


class ExtractiveSummariser:
    """Deterministic extractive summaries within ``token_budget`` tokens (see the module docstring).

    ``line_token_limit`` bounds what one message contributes; ``facts_share`` is the part of the budget the
    facts may take before the oldest of them drop.
    """

    def __init__(
        self, token_budget: int = 300, *, line_token_limit: int = 40, facts_share: float = 0.5
    ) -> None:
        if token_budget < 1:
            raise InvalidInputError(f"token_budget must be at least 1, got {token_budget}")
        if line_token_limit < 4:
            raise InvalidInputError(f"line_token_limit must be at least 4, got {line_token_limit}")
        if not 0.0 < facts_share <= 1.0:
            raise InvalidInputError(f"facts_share must be in (0, 1], got {facts_share}")
        self.token_budget = token_budget
        self._line_limit = line_token_limit
        self._facts_budget = max(1, int(token_budget * facts_share))

    def update(
        self, previous: str | None, new_messages: Sequence[Message], entities: Sequence[EntityValue]
    ) -> str:
        """``previous`` with ``new_messages`` (oldest first) folded in, within the budget."""
        old_facts, lines = _parse(previous or "")
        new_facts: list[Fact] = []
        for message in new_messages:
            line = self._line(message)
            if line is None:
                continue
            if line in lines:  # a repeated request: keep the latest mention only
                lines.remove(line)
            lines.append(line)
        for message in reversed(new_messages):  # newest first, like the facts
            new_facts.extend(_facts_in(message.text))
        current = [
            (e.entity_type, e.value) for e in entities if e.value.strip() and len(e.value) <= MAX_FACT_CHARS
        ]
        facts = _merge_facts([*current, *new_facts, *old_facts])
        return self._fit(facts, lines)

    def _line(self, message: Message) -> str | None:
        kept: list[str] = []
        used = 0
        for raw in _SENTENCE_SPLIT_RE.split(message.text):
            sentence = raw.strip()
            while (stripped := _LEADING_FILLER_RE.sub("", sentence, count=1)) != sentence:
                sentence = stripped
            if not sentence or not self._worth_keeping(sentence, message.role):
                continue
            cost = count_tokens(sentence)
            if used + cost > self._line_limit:
                if not kept:
                    kept.append(self._truncate(sentence))
                break
            kept.append(sentence)
            used += cost
        if not kept:
            return None
        body = " ".join(kept)
        body = body[0].upper() + body[1:]
        when = ""
        if _RELATIVE_TIME_RE.search(body):
            when = f" ({message.created_at.date().isoformat()})"
        return f"{_LINE_PREFIX}{message.role.value}{when}: {body}"

    @staticmethod
    def _worth_keeping(sentence: str, role: Role) -> bool:
        normalised = _normalise(sentence)
        if not normalised or _FILLER_RE.match(normalised):
            return False
        has_fact = any(pattern.search(sentence) for _, pattern in _TEXT_FACTS)
        if role is Role.BOT:
            return has_fact or (not sentence.rstrip().endswith("?") and bool(_ACTION_RE.search(sentence)))
        # What the user asked ("Where is my parcel?") or told with some substance.
        return has_fact or _content_words(sentence) >= (1 if sentence.rstrip().endswith("?") else 2)

    def _truncate(self, sentence: str) -> str:
        words = sentence.split()
        out: list[str] = []
        for word in words:
            if count_tokens(" ".join([*out, word])) + 1 > self._line_limit:
                break
            out.append(word)
        return " ".join(out) + _ELLIPSIS

    def _fit(self, facts: list[Fact], lines: list[str]) -> str:
        while len(facts) > 1 and count_tokens(_render_facts(facts)) > self._facts_budget:
            facts.pop()  # the oldest
        costs = [count_tokens(line) for line in lines]
        total = count_tokens(_render_facts(facts)) + sum(costs)
        drop = 0
        while total > self.token_budget and drop < len(lines):
            total -= costs[drop]
            drop += 1
        lines = lines[drop:]
        text = _render(facts, lines)
        while count_tokens(text) > self.token_budget and (facts or lines):
            if lines:
                lines.pop(0)
            else:
                facts.pop()
            text = _render(facts, lines)
        return text


def _facts_in(text: str) -> list[Fact]:
    found: list[tuple[int, Fact]] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _TEXT_FACTS:
        for match in pattern.finditer(text):
            start, end = match.span(match.lastindex or 0)
            if any(start < e and s < end for s, e in taken):
                continue
            taken.append((start, end))
            found.append((start, (kind, match.group(match.lastindex or 0))))
    return [fact for _, fact in sorted(found, reverse=True)]  # the last mention is the newest


def _merge_facts(facts: Iterable[Fact]) -> list[Fact]:
    """Distinct values, in the order of their first (newest) occurrence; a typed fact beats a generic one."""
    merged: dict[str, Fact] = {}
    for entity_type, raw in facts:
        value = _clean_value(raw)
        if not value:
            continue
        key = value.casefold()
        seen = merged.get(key)
        if seen is None:
            merged[key] = (entity_type, value)
        elif seen[0] in _GENERIC_TYPES | {""} and entity_type not in _GENERIC_TYPES | {""}:
            merged[key] = (entity_type, seen[1])
    return list(merged.values())


def _clean_value(value: str) -> str:
    return " ".join(value.replace("|", "/").split())


def _render_facts(facts: Sequence[Fact]) -> str:
    if not facts:
        return ""
    return FACTS_PREFIX + _FACT_SEPARATOR.join(f"{t}={v}" if t else v for t, v in facts)


def _render(facts: Sequence[Fact], lines: Sequence[str]) -> str:
    head = _render_facts(facts)
    return "\n".join([head, *lines] if head else lines)


def _parse(text: str) -> tuple[list[Fact], list[str]]:
    """Facts and lines of a summary this class wrote; other text is kept as lines (the oldest)."""
    facts: list[Fact] = []
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith(FACTS_PREFIX) and not facts:
            for part in line[len(FACTS_PREFIX) :].split(_FACT_SEPARATOR):
                entity_type, sep, value = part.partition("=")
                if not sep:
                    entity_type, value = "", part
                if value.strip():
                    facts.append((entity_type.strip(), value.strip()))
            continue
        lines.append(line)
    return facts, lines
