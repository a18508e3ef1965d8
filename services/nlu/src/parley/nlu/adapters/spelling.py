"""Spelling correction with SymSpell, tuned so it never touches ids, numbers or the project's own words.

The English frequency dictionary ships inside the ``symspellpy`` wheel (82,765 words with corpus counts),
so nothing is downloaded. Two choices keep it fast and safe:

* Every dictionary word counts as known (a known word is never changed), but only the most frequent
  ``suggestion_words`` words (plus the project vocabulary) are offered as corrections: a rare word is a
  poor guess for a typo, and indexing 30,000 words for edit distance 2 takes about 0.8 s instead of 3 s.
* Candidates are ranked by a small noisy-channel score, word frequency times how likely the typo is: a
  missing or doubled letter, a swap of neighbours or a key next to the intended one are common, any other
  substitution is not. Plain SymSpell ranking (distance, then frequency) turns "wher" into "when"; this
  ranking gives "where".

Words considered: alphabetic, at least ``min_length`` letters, not touching digits, apostrophes, ``@``, ``#``,
``_`` or ``/`` (ids, handles, contractions, paths), not all capitals up to five letters (acronyms: ASAP, NYC),
not capitalised mid-sentence (names), and outside every protected span (entities found on the raw text).
URLs, e-mail addresses and any token holding a digit are protected automatically.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Sequence
from importlib.resources import files
from typing import TYPE_CHECKING

from parley.nlu.v1 import nlu_pb2

if TYPE_CHECKING:
    from symspellpy import SymSpell

DICTIONARY = "frequency_dictionary_en_82_765.txt"
Span = tuple[int, int]

_WORD = re.compile(r"(?<![\w'\u2019@#/\\-])[^\W\d_]+(?![\w'\u2019@#/\\-])")
_AUTO_PROTECTED = re.compile(
    r"https?://\S+|www\.\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\S*\d\S*",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?:^|[.!?])\s*$")

# QWERTY neighbours: a substitution by a key next to the intended one is a common slip.
_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
_NEIGHBOURS: dict[str, set[str]] = {}
for _r, _row in enumerate(_ROWS):
    for _c, _key in enumerate(_row):
        _near = _NEIGHBOURS.setdefault(_key, set())
        for _dr in (-1, 0, 1):
            for _dc in (-1, 0, 1):
                _rr, _cc = _r + _dr, _c + _dc
                if (_dr or _dc) and 0 <= _rr < len(_ROWS) and 0 <= _cc < len(_ROWS[_rr]):
                    _near.add(_ROWS[_rr][_cc])
_VOWELS = set("aeiouy")
# Contractions typed without their apostrophe: SymSpell's dictionary has no apostrophes and would turn
# "hasnt" into "hast"; they get their apostrophe back instead.
_CONTRACTIONS = {
    word.replace("'", ""): word
    for word in [
        *("aren't", "can't", "couldn't", "didn't", "doesn't", "don't", "hadn't", "hasn't", "haven't"),
        *("isn't", "mustn't", "needn't", "shouldn't", "wasn't", "weren't", "won't", "wouldn't"),
        *("i've", "i'd", "you're", "you've", "they're", "they've", "that's", "what's", "where's"),
        *("there's", "who's"),
    ]
    if len(word.replace("'", "")) >= 4
}


def _edit_probability(typed: str, word: str, distance: int) -> float:
    """How likely someone meaning ``word`` types ``typed`` (rough, single-edit channel model)."""
    if distance == 0:
        return 1.0
    if distance > 1:
        return 0.002
    if len(word) == len(typed) + 1:  # a letter left out
        i = next((k for k in range(len(typed)) if typed[k] != word[k]), len(typed))
        doubled = (i > 0 and word[i] == word[i - 1]) or (i + 1 < len(word) and word[i] == word[i + 1])
        return 0.3 if doubled else 0.1
    if len(word) == len(typed) - 1:  # a letter too many
        i = next((k for k in range(len(word)) if typed[k] != word[k]), len(word))
        extra = typed[i]
        around = {typed[i - 1] if i > 0 else "", typed[i + 1] if i + 1 < len(typed) else ""}
        if extra in around:
            return 0.2
        return 0.05 if around & _NEIGHBOURS.get(extra, set()) else 0.01
    diff = [k for k in range(len(typed)) if typed[k] != word[k]]
    if len(diff) == 2 and diff[1] == diff[0] + 1:  # neighbours swapped
        return 0.1
    if len(diff) == 1:
        a, b = typed[diff[0]], word[diff[0]]
        if b in _NEIGHBOURS.get(a, set()):
            return 0.05
        if a in _VOWELS and b in _VOWELS:
            return 0.02
        return 0.002
    return 0.002


def vocabulary_words(texts: Iterable[str]) -> set[str]:
    """The alphabetic words (lower case) of some texts: training examples, synonyms, lookup entries."""
    return {m.group(0).lower() for text in texts for m in re.finditer(r"[^\W\d_]+", text)}


class SpellingCorrector:
    """Word-by-word correction that keeps case, punctuation and everything protected.

    ``vocabulary`` holds the project's own words; they are known (never corrected) and preferred as
    corrections, with a count of ``domain_count`` (above all but the commonest English words).

    The dictionary is loaded on first use, once per instance (about 0.8 s, thread-safe); call :meth:`load`
    at start-up to pay that early.
    """

    def __init__(
        self,
        vocabulary: Iterable[str] = (),
        *,
        min_length: int = 4,
        max_edit_distance: int = 2,
        suggestion_words: int = 30_000,
        domain_count: int = 1_000_000_000,
    ) -> None:
        self._vocabulary = {w.lower() for w in vocabulary if w}
        self._min_length = min_length
        self._max_edit_distance = max_edit_distance
        self._suggestion_words = suggestion_words
        self._domain_count = domain_count
        self._lock = threading.Lock()
        self._symspell: SymSpell | None = None
        self._known: dict[str, int] = {}

    def load(self) -> None:
        """Load the dictionary and index the suggestion words now (idempotent)."""
        if self._symspell is not None:
            return
        with self._lock:
            if self._symspell is not None:
                return
            from symspellpy import SymSpell  # noqa: PLC0415 - only where correction is used

            counts: dict[str, int] = {}
            path = files("symspellpy").joinpath(DICTIONARY)
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    word, _, count = line.partition(" ")
                    counts[word] = int(count)
            symspell = SymSpell(max_dictionary_edit_distance=self._max_edit_distance, prefix_length=7)
            for word, count in sorted(counts.items(), key=lambda kv: -kv[1])[: self._suggestion_words]:
                symspell.create_dictionary_entry(word, count)
            for word in self._vocabulary:
                count = max(counts.get(word, 0), self._domain_count)
                counts[word] = count
                symspell.create_dictionary_entry(word, count)
            self._known = counts
            self._symspell = symspell

    def correct(
        self, text: str, protected_spans: Sequence[Span | nlu_pb2.Entity] = ()
    ) -> tuple[str, list[nlu_pb2.Correction]]:
        """The corrected text and the corrections made, with offsets into the original ``text``."""
        self.load()
        protected = [
            (s.start, s.end) if isinstance(s, nlu_pb2.Entity) else (s[0], s[1]) for s in protected_spans
        ]
        protected += [m.span() for m in _AUTO_PROTECTED.finditer(text)]
        corrections: list[nlu_pb2.Correction] = []
        pieces: list[str] = []
        cursor = 0
        for match in _WORD.finditer(text):
            start, end = match.span()
            word = match.group(0)
            if not self._candidate(word, text, start, end, protected):
                continue
            suggestion = self._suggest(word.lower())
            if suggestion is None:
                continue
            fixed = _with_case_of(word, suggestion)
            if fixed == word:
                continue
            corrections.append(nlu_pb2.Correction(original=word, corrected=fixed, start=start, end=end))
            pieces += [text[cursor:start], fixed]
            cursor = end
        pieces.append(text[cursor:])
        return "".join(pieces), corrections

    def _candidate(self, word: str, text: str, start: int, end: int, protected: list[Span]) -> bool:
        if len(word) < self._min_length:
            return False
        if any(start < p_end and p_start < end for p_start, p_end in protected):
            return False
        if word.isupper() and len(word) <= 5:
            return False  # an acronym
        return not (word[0].isupper() and word[1:].islower() and not _SENTENCE_END.search(text[:start]))

    def _suggest(self, word: str) -> str | None:
        """The best correction of a lower-case word, or None when it is known or nothing is close."""
        if word in _CONTRACTIONS:
            return _CONTRACTIONS[word]
        if word in self._known:
            return None
        from symspellpy import Verbosity  # noqa: PLC0415 - loaded with the dictionary

        distance = 1 if len(word) <= 5 else self._max_edit_distance
        if self._symspell is None:
            raise RuntimeError("SpellingCorrector.load() must run before suggestions")
        suggestions = self._symspell.lookup(word, Verbosity.ALL, max_edit_distance=distance)
        best, best_score = None, -math.inf
        for item in suggestions:
            score = math.log(item.count) + math.log(_edit_probability(word, item.term, item.distance))
            if score > best_score:
                best, best_score = item.term, score
        return best


def _with_case_of(original: str, word: str) -> str:
    if original.isupper():
        return word.upper()
    if original[0].isupper():
        return word[:1].upper() + word[1:]
    return word
