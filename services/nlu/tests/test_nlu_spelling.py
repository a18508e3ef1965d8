"""Spelling correction: typos fixed with offsets; ids, numbers, protected spans and domain words kept."""

import pytest

from parley.nlu.adapters.spelling import SpellingCorrector, vocabulary_words
from parley.nlu.domain.extractors import RegexExtractor

ORDER_ID = r"(?<![\d])#?(\d{5,10})(?![\d])"


@pytest.fixture(scope="module")
def corrector():
    return SpellingCorrector(vocabulary_words(["Pay with Klarna", "track my parcel"]))


def _pairs(corrections):
    return [(c.original, c.corrected, c.start, c.end) for c in corrections]


def test_typos_are_corrected_keeping_case_punctuation_and_original_offsets(corrector):
    text = "Wher is my ordr?"
    corrected, corrections = corrector.correct(text)
    assert corrected == "Where is my order?"
    assert _pairs(corrections) == [("Wher", "Where", 0, 4), ("ordr", "order", 11, 15)]
    assert all(text[c.start : c.end] == c.original for c in corrections)


def test_typo_shaped_order_ids_and_numbers_never_change(corrector):
    for text in ["order 12354", "my order A12B45 is late", "ordr #12354", "code ABCD12 and x1y2z3"]:
        corrected, corrections = corrector.correct(text)
        for token in ("12354", "A12B45", "ABCD12", "x1y2z3"):
            if token in text:
                assert token in corrected, (text, corrected)
        assert all(not any(ch.isdigit() for ch in c.original) for c in corrections)


def test_protected_spans_are_left_alone(corrector):
    text = "my ordr nummber is REFX"
    [protected] = RegexExtractor({"ref": r"ordr nummber"}).extract(text)
    corrected, corrections = corrector.correct(text, [protected])
    assert corrected == text
    assert corrections == []
    assert corrector.correct(text, [(3, 7)])[0] == "my ordr number is REFX"


def test_urls_emails_acronyms_names_and_short_words_are_left_alone(corrector):
    for text in [
        "mail jon.doe@exmple.com or see https://exmple.com/ordr",
        "I need it ASAP, the NYC store",
        "ask Katarzyna about it",
        "thx, ok",
    ]:
        assert corrector.correct(text) == (text, []), text


def test_domain_vocabulary_is_never_corrected_and_is_preferred(corrector):
    assert corrector.correct("pay with klarna")[0] == "pay with klarna"
    assert (
        SpellingCorrector().correct("pay with klarna")[0] != "pay with klarna"
    )  # why the vocabulary matters
    assert corrector.correct("pay with klrna")[0] == "pay with klarna"


def test_contractions_without_apostrophe_get_it_back(corrector):
    corrected, corrections = corrector.correct("It hasnt arrived and I dont know why")
    assert corrected == "It hasn't arrived and I don't know why"
    assert _pairs(corrections) == [("hasnt", "hasn't", 3, 8), ("dont", "don't", 23, 27)]


def test_uppercase_typos_stay_uppercase(corrector):
    assert corrector.correct("WHERE IS MY PACKGE")[0] == "WHERE IS MY PACKAGE"


def test_vocabulary_words_are_lower_case_alphabetic_words():
    assert vocabulary_words(["Track order #12345, please!", "Klarna"]) == {
        "track",
        "order",
        "please",
        "klarna",
    }
