"""Rule-based extractors (regex, lookup tables), synonym mapping and the merge of overlapping entities."""

import pytest

from parley.nlu.domain.extractors import LookupExtractor, RegexExtractor, SynonymMapper, merge_entities
from parley.nlu.v1 import nlu_pb2

ORDER_ID = r"(?<![\d])#?(\d{5,10})(?![\d])"


def _entity(type_, start, end, text, *, extractor="model", confidence=0.9, value=None):
    return nlu_pb2.Entity(
        type=type_,
        text=text[start:end],
        value=value if value is not None else text[start:end],
        start=start,
        end=end,
        confidence=confidence,
        extractor=extractor,
    )


# -- regex


def test_regex_value_is_group_one_and_the_span_the_whole_match():
    text = "it is order #88231, thanks"
    [entity] = RegexExtractor({"order_id": ORDER_ID}).extract(text)
    assert (entity.type, entity.value, entity.text, entity.extractor) == (
        "order_id",
        "88231",
        "#88231",
        "regex",
    )
    assert text[entity.start : entity.end] == "#88231"


def test_regex_accepts_several_patterns_per_type_and_returns_text_order():
    extractor = RegexExtractor({"code": [r"\b[A-Z]\d{2}[A-Z]\d{2}\b", r"\bX-\d+\b"], "order_id": ORDER_ID})
    text = "X-7 then A12B45 then 123456"
    assert [(e.type, e.value) for e in extractor.extract(text)] == [
        ("code", "X-7"),
        ("code", "A12B45"),
        ("order_id", "123456"),
    ]
    assert extractor.entity_types == ("code", "order_id")


def test_regex_that_does_not_compile_names_the_entity():
    with pytest.raises(ValueError, match="entity 'broken'"):
        RegexExtractor({"broken": "(unclosed"})


def test_regex_extractor_from_project(example_project):
    assert "order_id" in RegexExtractor.from_project(example_project).entity_types


# -- synonyms


def test_synonyms_map_case_and_whitespace_insensitively_and_canonical_maps_to_itself():
    mapper = SynonymMapper({"New York": ["NYC", "the big  apple"]})
    assert mapper.map("nyc") == "New York"
    assert mapper.map("The Big Apple") == "New York"
    assert mapper.map("new york") == "New York"
    assert mapper.map("Boston") == "Boston"
    assert mapper.canonical("Boston") is None
    assert set(mapper.variants()) == {"New York", "NYC", "the big  apple"}


def test_synonym_apply_returns_a_copy_with_the_canonical_value():
    mapper = SynonymMapper({"New York": ["NYC"]})
    original = _entity("city", 8, 11, "flights NYC")
    mapped = mapper.apply(original)
    assert (mapped.value, mapped.text, mapped.start) == ("New York", "NYC", 8)
    assert original.value == "NYC"


def test_a_synonym_of_two_canonical_values_is_an_error():
    with pytest.raises(ValueError, match="'ny' maps to both 'New York' and 'Newry'"):
        SynonymMapper({"New York": ["NY"], "Newry": ["ny"]})


# -- lookup tables


def test_lookup_is_whole_word_and_case_insensitive():
    extractor = LookupExtractor({"city": ["Berlin", "Rome"]})
    found = extractor.extract("from BERLIN to rome, not to Berliner Platz or Romeo")
    assert [(e.text, e.value, e.extractor) for e in found] == [
        ("BERLIN", "Berlin", "lookup"),
        ("rome", "Rome", "lookup"),
    ]


def test_lookup_longest_match_wins_over_shorter_overlapping_entries():
    extractor = LookupExtractor({"city": ["New York", "York", "New York City"], "state": ["New York"]})
    text = "fly to new  york city tomorrow"
    found = extractor.extract(text)
    assert [(e.type, e.text, e.value) for e in found] == [("city", "new  york city", "New York City")]
    assert text[found[0].start : found[0].end] == "new  york city"


def test_lookup_returns_every_type_of_an_ambiguous_phrase_for_the_merge_to_decide():
    extractor = LookupExtractor({"city": ["New York"], "state": ["New York"]})
    assert [e.type for e in extractor.extract("in New York")] == ["city", "state"]


def test_lookup_with_synonyms_matches_variants_and_gives_the_canonical_value():
    mapper = SynonymMapper({"New York": ["NYC", "big apple"]})
    extractor = LookupExtractor({"city": ["New York", "Paris"]}, synonyms={"city": mapper})
    found = extractor.extract("NYC or the Big Apple or Paris")
    assert [(e.text, e.value) for e in found] == [
        ("NYC", "New York"),
        ("Big Apple", "New York"),
        ("Paris", "Paris"),
    ]


def test_empty_lookup_finds_nothing():
    assert LookupExtractor({}).extract("anything") == []


# -- merge


def test_merge_prefers_the_longer_span_then_the_higher_confidence():
    text = "fly to New York City"
    short = _entity("city", 7, 15, text, confidence=0.99)
    long = _entity("city", 7, 20, text, confidence=0.5)
    assert [e.text for e in merge_entities([short, long])] == ["New York City"]
    weak = _entity("city", 7, 15, text, confidence=0.4)
    strong = _entity("state", 7, 15, text, confidence=0.8)
    assert [e.type for e in merge_entities([weak, strong])] == ["state"]


def test_merge_lets_an_exact_pattern_rule_beat_a_longer_or_surer_model_entity():
    text = "order 12345 please"
    regex = _entity("order_id", 6, 11, text, extractor="regex", confidence=1.0)
    model_longer = _entity("order_id", 0, 11, text, extractor="model", confidence=0.99)
    number = _entity("number", 6, 11, text, extractor="resolver", confidence=0.95)
    year = _entity("date", 6, 11, text, extractor="resolver", confidence=1.0)
    merged = merge_entities([model_longer, number, year, regex])
    assert [(e.type, e.extractor, e.text) for e in merged] == [("order_id", "regex", "12345")]


def test_merge_gives_rule_priority_only_to_the_named_pattern_types():
    text = "order 12345 please"
    regex_zip = _entity("zip", 6, 11, text, extractor="regex", confidence=1.0)
    model = _entity("order_id", 0, 11, text, extractor="model", confidence=0.9)
    assert [e.type for e in merge_entities([regex_zip, model], pattern_types={"order_id"})] == ["order_id"]
    assert [e.type for e in merge_entities([regex_zip, model])] == ["zip"]


def test_merge_keeps_adjacent_and_separate_entities_in_text_order_and_drops_empty_spans():
    text = "3 items for $20 tomorrow"
    a = _entity("number", 0, 1, text, extractor="resolver")
    b = _entity("money", 12, 15, text, extractor="resolver")
    c = _entity("date", 16, 24, text, extractor="resolver")
    d = _entity("noise", 15, 16, text)
    empty = _entity("nothing", 5, 5, text)
    assert [e.type for e in merge_entities([c, b, d, a, empty])] == ["number", "money", "noise", "date"]


def test_merge_is_independent_of_input_order():
    text = "ship to New York"
    one = _entity("city", 8, 16, text, extractor="lookup", confidence=0.9)
    two = _entity("state", 8, 16, text, extractor="model", confidence=0.9)
    assert merge_entities([one, two]) == merge_entities([two, one])
    assert merge_entities([one, two])[0].extractor == "lookup"
