"""Text in, :class:`ParseResult` out: intent ranking from the head, entities from the extractor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from parley.nlu.domain.classifier import IntentClassifier
from parley.nlu.domain.entities import RegexEntityExtractor
from parley.nlu.ports import Encoder
from parley.nlu.v1 import nlu_pb2

FALLBACK_INTENT = "nlu_fallback"


class Parser:
    """Parses utterances with one trained model.

    When the best intent's confidence is below ``fallback_threshold`` the top intent is
    ``nlu_fallback``, carrying that best confidence (so callers see how close it was); the ranking
    still lists the real intents, best first.
    """

    def __init__(
        self,
        encoder: Encoder,
        classifier: IntentClassifier,
        extractor: RegexEntityExtractor,
        fallback_threshold: float,
        model_version: str,
    ) -> None:
        if encoder.dimension != classifier.dimension:
            raise ValueError(
                f"encoder {encoder.name} gives {encoder.dimension}-d embeddings, "
                f"the intent head expects {classifier.dimension}"
            )
        self._encoder = encoder
        self._classifier = classifier
        self._extractor = extractor
        self.fallback_threshold = fallback_threshold
        self.model_version = model_version

    @property
    def intents(self) -> tuple[str, ...]:
        """The intents the model knows."""
        return self._classifier.intents

    def parse(self, text: str) -> nlu_pb2.ParseResult:
        """Parse one utterance."""
        return self.parse_batch([text])[0]

    def parse_batch(self, texts: Sequence[str]) -> list[nlu_pb2.ParseResult]:
        """Parse many utterances with one encoder call, in order."""
        if not texts:
            return []
        confidences = self._classifier.predict(self._encoder.encode(texts))
        return [self._result(text, row) for text, row in zip(texts, confidences, strict=True)]

    def _result(self, text: str, confidences: npt.NDArray[np.float32]) -> nlu_pb2.ParseResult:
        order = np.argsort(-confidences, kind="stable")
        ranking = [
            nlu_pb2.Intent(name=self._classifier.intents[i], confidence=float(confidences[i])) for i in order
        ]
        best = ranking[0]
        top = (
            best
            if best.confidence >= self.fallback_threshold
            else nlu_pb2.Intent(name=FALLBACK_INTENT, confidence=best.confidence)
        )
        return nlu_pb2.ParseResult(
            text=text,
            intent=top,
            ranking=ranking,
            entities=self._extractor.extract(text),
            model_version=self.model_version,
        )
