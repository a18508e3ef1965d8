"""VADER polarity, adjusted for customer-support messages.

VADER's lexicon (shipped in the ``vaderSentiment`` wheel, loaded from disk on first use) was built on
social-media text. Measured on support messages it errs in a few systematic ways, which this adapter
corrects:

* Words that are neutral in a support conversation but positive to VADER: "help" (+1.7, so "I need help
  with my order" was positive), "please" (+1.3), "urgent" (+0.8: "This is URGENT, my order never arrived!!!"
  came out positive at +0.53); and "cancel" (-1.0), an action here. They are set to 0. "late" and
  "overdue" get a negative valence.
* "would like to" / "'d like to" is a request, not liking (+1.5 in VADER): "like" is read as "request".
* Service failures carry no sentiment words at all ("my order never arrived", "still waiting", "charged
  twice"), and reassurances ("no rush") read as negative. ``COMPLAINTS`` gives each such phrase a valence
  that is added to VADER's raw sum (recovered from the compound score, which is ``sum / sqrt(sum^2 + 15)``),
  amplified by exclamation marks the way VADER amplifies its own words.
"""

from __future__ import annotations

import math
import re
import threading
from typing import Any

ALPHA = 15.0  # VADER's normalisation constant
EXCLAMATION_BOOST = 0.292  # VADER's amplification per "!" (at most 4)

LEXICON_OVERRIDES = {
    "help": 0.0,
    "please": 0.0,
    "urgent": 0.0,
    "cancel": 0.0,
    "late": -1.0,
    "overdue": -1.2,
}

_FAILED = (
    r"arrived|arrive|received|receive|come|came|shown\s+up|showed\s+up|delivered|shipped|working|work"
    r"|refunded|responded|answered|replied|fixed|resolved"
)
COMPLAINTS: tuple[tuple[re.Pattern[str], float], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), valence)
    for pattern, valence in (
        (rf"(?:\b(?:never|not|still\s+not|not\s+yet)|n't)\s+(?:\w+\s+)?(?:yet\s+)?(?:{_FAILED})\b", -2.0),
        (
            r"(?:\bcannot|n't|\bunable\s+to)\s+(?:reach|contact|get\s+through|get\s+hold|get\s+an?\s+(?:agent|person|human))",
            -1.5,
        ),
        (r"\bon\s+hold\s+for\b", -1.0),
        (r"\bstill\s+(?:waiting|no\b|nothing|haven't|hasn't|missing)", -1.5),
        (r"\b(?:waited|waiting|been)\s+(?:for\s+)?(?:weeks|days|ages|forever|months|hours)\b", -1.0),
        (r"\bno\s+one\s+(?:has\s+)?(?:answered|responded|replied|helped|called)", -1.5),
        (r"\b(?:charged|billed)\s+twice\b|\bdouble[\s-]charged\b", -1.5),
        (r"\b(?:wrong|damaged|broken)\s+(?:item|order|size|product|package|parcel)\b", -0.5),
        (r"\bwhere\s+the\s+hell\b|\bwtf\b", -2.0),
        # VADER reads the "no" of these as negative (-1.2); they are reassurances.
        (r"\bno\s+(?:rush|hurry|pressure|worries|problem|stress)\b", 1.2),
    )
)
_WOULD_LIKE = re.compile(r"\b(would|'d|\u2019d)\s+like\b", re.IGNORECASE)


def _raw(compound: float) -> float:
    """VADER's raw valence sum from its compound score."""
    compound = max(-0.9999, min(0.9999, compound))
    return compound * math.sqrt(ALPHA / (1.0 - compound * compound))


class VaderPolarity:
    """A :class:`~parley.nlu.domain.sentiment.PolarityScorer` on VADER with the support adjustments."""

    def __init__(self, *, support_adjustments: bool = True) -> None:
        self._adjust = support_adjustments
        self._lock = threading.Lock()
        self._analyzer: Any = None

    def load(self) -> None:
        """Read VADER's lexicon now (idempotent; about 30 ms)."""
        if self._analyzer is not None:
            return
        with self._lock:
            if self._analyzer is None:
                from vaderSentiment.vaderSentiment import (  # noqa: PLC0415 - reads files: on first use
                    SentimentIntensityAnalyzer,
                )

                analyzer = SentimentIntensityAnalyzer()
                if self._adjust:
                    analyzer.lexicon.update(LEXICON_OVERRIDES)
                self._analyzer = analyzer

    def polarity(self, text: str) -> float:
        """The compound score in [-1, 1]."""
        self.load()
        if not self._adjust:
            return float(self._analyzer.polarity_scores(text)["compound"])
        compound = float(self._analyzer.polarity_scores(_WOULD_LIKE.sub(r"\1 request", text))["compound"])
        extra = sum(valence * len(pattern.findall(text)) for pattern, valence in COMPLAINTS)
        if not extra:
            return compound
        extra += math.copysign(min(text.count("!"), 4) * EXCLAMATION_BOOST, extra)
        total = _raw(compound) + extra
        return round(total / math.sqrt(total * total + ALPHA), 4)
