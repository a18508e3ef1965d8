"""Sentiment, emotion and urgency of a message: a polarity score from a port plus documented cue lexicons.

* **Sentiment**: the polarity port returns VADER's compound score in [-1, 1]; the label uses VADER's own
  thresholds: ``>= 0.05`` positive, ``<= -0.05`` negative, neutral in between.
* **Emotion**: one of anger, joy, sadness, fear, surprise, disgust or neutral (Ekman's six basic emotions).
  Each has a small hand-made cue lexicon below (weights 0.3-1.0; the NRC Emotion Lexicon was not used:
  its terms require a licence for commercial use). A cue right after a negation ("not happy") counts for
  sadness when it was joy and is ignored otherwise. Negative polarity with shouting (two or more "!" or a
  word in capitals) adds 1.0 to anger. Without any cue, plain negative is weak sadness and clearly positive
  (>= 0.5) weak joy. The confidence is the best emotion's share of all cue weight, damped when there is
  little evidence.
* **Urgency**: low, normal or high from additive cues: urgency words ("urgent", "asap", "immediately",
  "right now", "emergency", ...), time pressure ("by tomorrow", "before Friday", "deadline", "in time"),
  exclamation marks (0.5 each, at most 1.5), words in capitals (0.5 each, at most 1.0; common acronyms
  excepted; 1.0 more when the whole message is in capitals) and negative sentiment (0.5, or 1.0 when
  <= -0.5). Calm-down cues ("no rush", "not urgent", "whenever you have time", ...) count -2 and hide the
  urgency words inside them. A total of 2 or more is high, -1 or less is low.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Protocol

from parley.nlu.v1 import nlu_pb2

POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05
HIGH_URGENCY = 2.0
LOW_URGENCY = -1.0

EMOTION_CUES: Mapping[str, Mapping[str, float]] = {
    "anger": {
        "angry": 1.0, "anger": 1.0, "furious": 1.0, "mad": 0.7, "annoyed": 0.8, "annoying": 0.8,
        "irritated": 0.8, "frustrated": 0.9, "frustrating": 0.9, "outraged": 1.0, "outrageous": 1.0,
        "ridiculous": 0.8, "unacceptable": 1.0, "pissed": 1.0, "livid": 1.0, "hate": 0.8, "sick of": 0.8,
        "fed up": 0.9, "disgraceful": 0.9, "incompetent": 0.9, "useless": 0.7, "worst": 0.6,
        "terrible": 0.5, "horrible": 0.5, "awful": 0.4, "scam": 0.8, "rip-off": 0.8, "ripoff": 0.8,
        "rude": 0.7, "what the hell": 1.0, "wtf": 1.0, "how dare": 1.0, "never again": 0.7,
        "enough is enough": 1.0, "joke": 0.4,
    },
    "joy": {
        "happy": 1.0, "glad": 0.9, "great": 0.6, "love": 0.8, "loved": 0.8, "awesome": 0.9,
        "amazing": 0.8, "excellent": 0.8, "fantastic": 0.9, "wonderful": 0.9, "delighted": 1.0,
        "pleased": 0.8, "thrilled": 1.0, "perfect": 0.7, "thanks": 0.4, "thank you": 0.4,
        "appreciate": 0.5, "yay": 1.0, "brilliant": 0.8, "nice": 0.4, "good": 0.3, ":)": 0.7, ":-)": 0.7,
        "😊": 0.8, "😀": 0.8, "🙂": 0.6, "❤️": 0.8,
    },
    "sadness": {
        "sad": 1.0, "unhappy": 0.9, "disappointed": 1.0, "disappointing": 0.9, "upset": 0.8,
        "heartbroken": 1.0, "depressed": 1.0, "unfortunately": 0.5, "cry": 0.8, "crying": 0.8,
        "regret": 0.7, "let down": 0.9, "let me down": 0.9, "gutted": 0.9, "shame": 0.5, "lonely": 0.9,
        "miss": 0.3, ":(": 0.8, ":-(": 0.8, "😢": 1.0, "😞": 0.9,
    },
    "fear": {
        "afraid": 1.0, "scared": 1.0, "worried": 0.9, "worry": 0.8, "anxious": 0.9, "nervous": 0.8,
        "fear": 0.9, "terrified": 1.0, "panic": 0.9, "concerned": 0.7, "frightened": 1.0, "unsafe": 0.8,
        "what if": 0.5, "stolen": 0.5, "fraud": 0.6, "hacked": 0.7, "😨": 1.0, "😱": 0.8,
    },
    "surprise": {
        "surprised": 1.0, "surprise": 0.8, "wow": 0.8, "whoa": 0.9, "unexpected": 0.8,
        "unexpectedly": 0.8, "shocked": 0.9, "shock": 0.7, "can't believe": 0.8, "cannot believe": 0.8,
        "no way": 0.6, "astonished": 1.0, "amazed": 0.7, "suddenly": 0.5, "out of nowhere": 0.7,
        "?!": 0.8, "!?": 0.8, "😮": 1.0, "😲": 1.0,
    },
    "disgust": {
        "disgusting": 1.0, "disgusted": 1.0, "gross": 0.9, "nasty": 0.8, "revolting": 1.0, "vile": 0.9,
        "yuck": 1.0, "sickening": 0.9, "repulsive": 1.0, "filthy": 0.9, "rotten": 0.8, "moldy": 0.8,
        "mouldy": 0.8, "stinks": 0.8, "🤢": 1.0, "🤮": 1.0,
    },
}  # fmt: skip

URGENCY_CUES: Mapping[str, float] = {
    "urgent": 2.0, "urgently": 2.0, "asap": 2.0, "as soon as possible": 2.0, "emergency": 2.0,
    "immediately": 2.0, "right now": 1.5, "right away": 1.5, "straight away": 1.5, "hurry": 1.5,
    "critical": 1.5, "now": 0.75, "quickly": 0.75, "quick": 0.5, "fast": 0.5, "today": 0.5,
    "tonight": 0.5, "deadline": 1.0, "in time": 1.0, "running out of time": 1.5, "can't wait": 1.0,
    "cannot wait": 1.0, "still": 0.5, "again": 0.3, "by tomorrow": 1.0, "by tonight": 1.0,
    "by today": 1.0, "by the end of the day": 1.0, "before": 0.5, "at once": 1.5,
}  # fmt: skip

CALM_CUES: tuple[str, ...] = (
    "no rush", "no hurry", "not urgent", "not in a hurry", "no pressure", "whenever", "take your time",
    "when you get a chance", "when you have a chance", "when you have time", "when you get time",
    "at your convenience", "just curious", "just wondering", "not a big deal", "low priority",
    "not important",
)  # fmt: skip

# All-caps words that are names, not shouting.
ACRONYMS = frozenset(
    {"USA", "UK", "EU", "NYC", "DHL", "UPS", "USPS", "FEDEX", "FAQ", "PDF", "URL", "USD", "EUR", "GBP"}
    | {"CHF", "CEO", "API", "SMS", "GPS", "ATM", "VAT", "ETA", "ID", "OK"}
)

_NEGATION = re.compile(r"\b(?:not|never|no|hardly|isn't|wasn't|aren't|don't|didn't|n't)\s+(?:\w+\s+)?$", re.I)
_CAPS_WORD = re.compile(r"\b[A-Z]{3,}\b")


class PolarityScorer(Protocol):
    """Scores a text's polarity in [-1, 1] (VADER's compound score)."""

    def polarity(self, text: str) -> float:
        """The polarity of ``text``."""
        ...


def _phrase_pattern(phrases: Mapping[str, float] | tuple[str, ...]) -> re.Pattern[str]:
    """One alternation of the phrases, longest first; word boundaries only where the phrase has a word end."""
    parts = []
    for phrase in sorted(phrases, key=len, reverse=True):
        body = r"\s+".join(re.escape(w) for w in phrase.split())
        left = r"(?<!\w)" if phrase[0].isalnum() else ""
        right = r"(?!\w)" if phrase[-1].isalnum() else ""
        parts.append(f"{left}{body}{right}")
    return re.compile("|".join(parts), re.IGNORECASE)


def sentiment_label(score: float) -> str:
    """VADER's label for a compound score."""
    if score >= POSITIVE_THRESHOLD:
        return "positive"
    if score <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"


class SentimentAnalyzer:
    """Sentiment, emotion and urgency of one message (cheap to build; the polarity port may load lazily)."""

    def __init__(self, polarity: PolarityScorer) -> None:
        self._polarity = polarity
        self._emotion_patterns = {emotion: _phrase_pattern(cues) for emotion, cues in EMOTION_CUES.items()}
        self._urgency_pattern = _phrase_pattern(URGENCY_CUES)
        self._calm_pattern = _phrase_pattern(CALM_CUES)

    def analyze(self, text: str) -> nlu_pb2.Sentiment:
        """The sentiment message for ``text``."""
        score = max(-1.0, min(1.0, float(self._polarity.polarity(text))))
        emotion, emotion_confidence = self.emotion(text, score)
        urgency, urgency_confidence = self.urgency(text, score)
        return nlu_pb2.Sentiment(
            label=sentiment_label(score),
            score=score,
            emotion=emotion,
            emotion_confidence=emotion_confidence,
            urgency=urgency,
            urgency_confidence=urgency_confidence,
        )

    def emotion(self, text: str, score: float) -> tuple[str, float]:
        """The dominant emotion and its confidence."""
        weights = dict.fromkeys(EMOTION_CUES, 0.0)
        for emotion, pattern in self._emotion_patterns.items():
            cues = EMOTION_CUES[emotion]
            for match in pattern.finditer(text):
                weight = cues[" ".join(match.group(0).lower().split())]
                if _NEGATION.search(text[: match.start()]):
                    if emotion == "joy":
                        weights["sadness"] += weight * 0.7
                    continue
                weights[emotion] += weight
        shouting = text.count("!") >= 2 or _shouting_words(text) > 0
        if score <= NEGATIVE_THRESHOLD and shouting:
            weights["anger"] += 1.0
        elif not any(weights.values()):
            if score <= NEGATIVE_THRESHOLD:
                weights["sadness"] += 0.5 * abs(score)
            elif score >= 0.5:
                weights["joy"] += 0.5 * score
        total = sum(weights.values())
        if total <= 0:
            return "neutral", round(max(0.5, 1.0 - abs(score)), 4)
        best = max(weights, key=lambda e: weights[e])
        share = weights[best] / total
        evidence = 1.0 - math.exp(-2.0 * weights[best])
        return best, round(max(0.2, min(0.95, share * evidence)), 4)

    def urgency(self, text: str, score: float) -> tuple[str, float]:
        """Urgency (low/normal/high) and its confidence."""
        total = 0.0
        calm_spans = []
        for match in self._calm_pattern.finditer(text):
            total -= 2.0
            calm_spans.append(match.span())
        for match in self._urgency_pattern.finditer(text):
            if any(s <= match.start() < e for s, e in calm_spans):
                continue
            total += URGENCY_CUES[" ".join(match.group(0).lower().split())]
        total += min(text.count("!"), 3) * 0.5
        total += min(_shouting_words(text), 2) * 0.5
        if _all_capitals(text):
            total += 1.0
        if score <= -0.5:
            total += 1.0
        elif score <= NEGATIVE_THRESHOLD:
            total += 0.5
        if total >= HIGH_URGENCY:
            return "high", round(min(0.95, 0.6 + 0.1 * (total - HIGH_URGENCY)), 4)
        if total <= LOW_URGENCY:
            return "low", round(min(0.95, 0.6 + 0.1 * (LOW_URGENCY - total)), 4)
        margin = min(HIGH_URGENCY - total, total - LOW_URGENCY)
        return "normal", round(min(0.9, 0.5 + 0.2 * margin), 4)


def _shouting_words(text: str) -> int:
    """Words of three or more capitals that are not acronyms (all of a text in capitals counts too)."""
    return sum(1 for w in _CAPS_WORD.findall(text) if w not in ACRONYMS)


def _all_capitals(text: str) -> bool:
    """Whether the message is written in capitals (at least two letters' worth of words)."""
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 6 and all(c.isupper() for c in letters)
