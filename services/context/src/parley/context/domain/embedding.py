"""A dependency-free sentence embedding for long-term memory search and topic-shift detection.

Why not a real sentence-embedding model: the context service runs no model (no torch, transformers or numpy
in its process, so it starts fast and stays small), and what it stores must be reproducible anywhere, today
and after a restart. Feature hashing gives that: the vector of a text depends on nothing but the text, so
memories written by one replica are searchable by another, and PostgreSQL stores the vectors as they are
(a pgvector ``vector(256)`` column when the server has the extension, a ``real[]`` column with cosine
computed in SQL otherwise).

How: lowercased word unigrams plus the character 3-grams of each word (with ``<`` and ``>`` marking the
word's edges, as fastText does, so "seat" and "seats" share most features) are hashed with BLAKE2b into
:data:`DIMENSIONS` buckets. One more bit of the hash chooses the sign, so collisions cancel out on average
instead of piling up. Term frequencies are damped (``1 + log tf``) so a repeated word does not dominate, and
the vector is L2-normalised so cosine similarity is a plain dot product. A few English function words are
left out: "is", "the" and "my" would otherwise make any two questions look alike.

Limits: this is lexical, not semantic. "When will my parcel arrive?" and "Has the package shipped?" share
no words and come out unrelated; spelling variants and inflections are only partly caught by the 3-grams;
another language's function words are not filtered. Callers use it where a lexical signal is good enough
(recalling a remembered fact by its words, noticing that a message shares nothing with the recent turns)
and keep their thresholds conservative. Comparisons that are not stored can use
:meth:`HashedEmbedder.features` and :func:`feature_cosine`, the same similarity without hash collisions. A
model-based embedder can replace it later behind the same ``embed`` method, at the cost of re-embedding the
stored memories.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from parley.core.errors import InvalidInputError

#: Size of every vector (the store's column is declared with it).
DIMENSIONS = 256

_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Function words left out of the features: frequent, and nearly meaningless for similarity.
STOP_WORDS = _words(
    """a an the and or but if so of to in on at by for with from as is are was were be been being am do does
    did have has had i me my mine you your yours we us our he him his she her it its they them their this
    that these those there here what which who whom whose when where why how will would shall should can
    could may might must not no yes just very too also than then please s t ll d re ve m"""
)


class HashedEmbedder:
    """Texts to L2-normalised vectors of :data:`DIMENSIONS` floats, deterministic across processes.

    ``char_weight`` scales the character 3-grams against the words: below 1 so that a shared word counts
    more than a few shared letters. An empty text (or one of stop words only) embeds to the zero vector,
    whose cosine with anything is 0.
    """

    def __init__(
        self,
        dimensions: int = DIMENSIONS,
        *,
        char_ngram: int = 3,
        char_weight: float = 0.5,
        stop_words: Iterable[str] = STOP_WORDS,
    ) -> None:
        if dimensions < 2:
            raise InvalidInputError(f"dimensions must be at least 2, got {dimensions}")
        if char_ngram < 1:
            raise InvalidInputError(f"char_ngram must be at least 1, got {char_ngram}")
        if char_weight < 0:
            raise InvalidInputError(f"char_weight must not be negative, got {char_weight}")
        self.dimensions = dimensions
        self._n = char_ngram
        self._char_weight = char_weight
        self._stop_words = frozenset(w.lower() for w in stop_words)
        # Per instance, so nothing is shared between embedders of different sizes; bounded.
        self._bucket = lru_cache(maxsize=65_536)(self._hash_bucket)

    def embed(self, text: str) -> list[float]:
        """The vector of ``text``."""
        vector = [0.0] * self.dimensions
        for feature, weight in self._features(text).items():
            index, sign = self._bucket(feature)
            vector[index] += sign * weight
        norm = math.sqrt(sum(x * x for x in vector))
        if norm == 0.0:
            return vector
        return [x / norm for x in vector]

    def embed_many(self, texts: Iterable[str]) -> list[list[float]]:
        """The vectors of several texts, in order."""
        return [self.embed(text) for text in texts]

    def features(self, text: str) -> dict[str, float]:
        """The weighted features of ``text`` before hashing, L2-normalised (``w:word``, ``c:3-gram``).

        For comparisons that are not stored (topic shifts), :func:`feature_cosine` of these is the exact
        similarity that the cosine of two :meth:`embed` vectors approximates, without hash collisions (at
        256 dimensions they add noise of about ±0.1 between unrelated texts).
        """
        weights = self._features(text)
        norm = math.sqrt(sum(w * w for w in weights.values()))
        return {f: w / norm for f, w in weights.items()} if norm else {}

    def _features(self, text: str) -> dict[str, float]:
        words = [w for w in _WORD_RE.findall(text.lower()) if w not in self._stop_words]
        counts: Counter[str] = Counter()
        for word in words:
            counts["w:" + word] += 1
            padded = f"<{word}>"
            if len(padded) <= self._n:
                counts["c:" + padded] += 1
                continue
            for i in range(len(padded) - self._n + 1):
                counts["c:" + padded[i : i + self._n]] += 1
        return {
            feature: (1.0 + math.log(tf)) * (1.0 if feature.startswith("w:") else self._char_weight)
            for feature, tf in counts.items()
        }

    def _hash_bucket(self, feature: str) -> tuple[int, float]:
        digest = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "big")
        return digest % self.dimensions, (1.0 if (digest >> 63) & 1 else -1.0)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors of the same length; 0 when either is the zero vector."""
    if len(a) != len(b):
        raise InvalidInputError(f"vectors differ in length: {len(a)} and {len(b)}")
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm_a = math.sqrt(sum(x * x for x in a))
    norm_b = math.sqrt(sum(y * y for y in b))
    if norm_a == 0.0 or norm_b == 0.0:
        return 0.0
    return max(-1.0, min(1.0, dot / (norm_a * norm_b)))


def feature_cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Cosine similarity of two normalised feature maps (see :meth:`HashedEmbedder.features`)."""
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(f, 0.0) for f, w in a.items())
