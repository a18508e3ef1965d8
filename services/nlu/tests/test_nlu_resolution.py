"""Entity resolution: dates and times against a reference time and timezone, numbers, money, ids, synonyms."""

from datetime import UTC, datetime

import pytest

from parley.core.errors import InvalidInputError
from parley.nlu.domain.extractors import RegexExtractor, SynonymMapper
from parley.nlu.domain.resolution import EntityResolver, find_temporal, parse_number, words_to_number
from parley.nlu.v1 import nlu_pb2

WEDNESDAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # Wednesday, 11:00 in Berlin
LATE_WEDNESDAY = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)  # already Thursday 00:30 in Berlin
ORDER_ID = r"(?<![\d])#?(\d{5,10})(?![\d])"


@pytest.fixture(scope="module")
def resolver():
    return EntityResolver(use_dateparser=False)


def _one(entities):
    assert len(entities) == 1, [(e.type, e.text) for e in entities]
    return entities[0]


def _alternatives(entity):
    return [(a.value, pytest.approx(a.confidence)) for a in entity.alternatives]


# -- dates and times


def test_next_friday_on_a_wednesday_is_next_weeks_with_this_weeks_as_alternative(resolver):
    text = "Can you deliver it next Friday?"
    entity = _one(resolver.find_temporal(text, WEDNESDAY, "Europe/Berlin"))
    assert (entity.type, entity.text, entity.extractor) == ("date", "next Friday", "resolver")
    assert text[entity.start : entity.end] == "next Friday"
    assert entity.value == "2026-12-04"
    assert dict(entity.resolved) == {"kind": "date", "date": "2026-12-04", "grain": "day", "confidence": 0.6}
    assert _alternatives(entity) == [("2026-11-27", 0.4)]


def test_next_friday_said_on_a_saturday_is_not_ambiguous(resolver):
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    entity = _one(resolver.find_temporal("next Friday", saturday, "UTC"))
    assert entity.value == "2026-12-04"
    assert list(entity.alternatives) == []


def test_this_friday_and_friday_next_week_are_not_ambiguous(resolver):
    assert _one(resolver.find_temporal("this Friday", WEDNESDAY, "UTC")).value == "2026-11-27"
    assert _one(resolver.find_temporal("Friday next week", WEDNESDAY, "UTC")).value == "2026-12-04"
    assert _one(resolver.find_temporal("last Friday", WEDNESDAY, "UTC")).value == "2026-11-20"


def test_the_module_level_find_temporal_resolves_next_friday():
    assert _one(find_temporal("next Friday", WEDNESDAY, "Europe/Berlin")).value == "2026-12-04"


@pytest.mark.parametrize(
    ("timezone", "expected"),
    [
        ("UTC", "2026-11-26T17:00:00+00:00"),  # still Wednesday 23:30: tomorrow is the 26th
        ("Europe/Berlin", "2026-11-27T17:00:00+01:00"),  # already Thursday 00:30: tomorrow is the 27th
        ("America/New_York", "2026-11-26T17:00:00-05:00"),
    ],
)
def test_tomorrow_at_5pm_depends_on_the_users_timezone_across_midnight(resolver, timezone, expected):
    entity = _one(resolver.find_temporal("tomorrow at 5pm", LATE_WEDNESDAY, timezone))
    assert (entity.type, entity.text, entity.value) == ("datetime", "tomorrow at 5pm", expected)
    assert entity.resolved["kind"] == "datetime"
    assert entity.resolved["time"] == "17:00"
    assert entity.resolved["timezone"] == timezone


@pytest.mark.parametrize(("timezone", "expected"), [("UTC", "2026-12-09"), ("Europe/Berlin", "2026-12-10")])
def test_in_two_weeks_counts_from_the_users_today(resolver, timezone, expected):
    entity = _one(resolver.find_temporal("I need it in two weeks", LATE_WEDNESDAY, timezone))
    assert (entity.text, entity.value) == ("in two weeks", expected)


@pytest.mark.parametrize(
    ("text", "span", "value"),
    [
        ("deliver on 3 March please", "on 3 March", "2027-03-03"),  # already past this year
        ("on March 3rd, 2026", "on March 3rd, 2026", "2026-03-03"),
        ("the day after tomorrow", "the day after tomorrow", "2026-11-27"),
        ("2 days ago", "2 days ago", "2026-11-23"),
        ("is it arriving this weekend?", "this weekend", "2026-11-28/2026-11-29"),
        ("next month", "next month", "2026-12-01/2026-12-31"),
        ("within 3 days", "within 3 days", "2026-11-25/2026-11-28"),
        ("on the 4th", "on the 4th", "2026-12-04"),
        ("2026-12-24", "2026-12-24", "2026-12-24"),
        ("Thursday, 3 December at 9am", "Thursday, 3 December at 9am", "2026-12-03T09:00:00+01:00"),
        ("at 5pm", "at 5pm", "2026-11-25T17:00:00+01:00"),
        ("tomorrow morning", "tomorrow morning", "2026-11-26T09:00:00+01:00"),
        ("in 3 hours", "in 3 hours", "2026-11-25T14:00:00+01:00"),
    ],
)
def test_common_expressions(resolver, text, span, value):
    entity = _one(resolver.find_temporal(text, WEDNESDAY, "Europe/Berlin"))
    assert (entity.text, entity.value) == (span, value)
    assert text[entity.start : entity.end] == span


def test_a_time_without_date_is_its_next_occurrence_and_kind_time(resolver):
    evening = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    entity = _one(resolver.find_temporal("call me at 5pm", evening, "UTC"))
    assert entity.value == "2026-11-26T17:00:00+00:00"
    assert (entity.type, entity.resolved["kind"], entity.resolved["time"]) == ("time", "time", "17:00")


def test_an_hour_without_am_or_pm_offers_both_halves_of_the_day(resolver):
    entity = _one(resolver.find_temporal("Friday at 5", WEDNESDAY, "UTC"))
    assert entity.value == "2026-11-27T17:00:00+00:00"
    assert _alternatives(entity) == [("2026-11-27T05:00:00+00:00", 0.4)]


def test_slash_dates_are_day_first_except_in_the_americas(resolver):
    berlin = _one(resolver.find_temporal("on 04/12/2026", WEDNESDAY, "Europe/Berlin"))
    new_york = _one(resolver.find_temporal("on 04/12/2026", WEDNESDAY, "America/New_York"))
    assert (berlin.value, _alternatives(berlin)) == ("2026-12-04", [("2026-04-12", 0.4)])
    assert (new_york.value, _alternatives(new_york)) == ("2026-04-12", [("2026-12-04", 0.4)])


def test_greetings_verbs_and_decimals_are_not_dates(resolver):
    for text in ["good morning", "may I ask something", "I paid 2.5 times more", "order 12345", "3 items"]:
        assert resolver.find_temporal(text, WEDNESDAY, "UTC") == [], text


def test_excluded_spans_such_as_order_ids_are_never_dates_or_numbers(resolver):
    text = "order 12345 arrives on 3 March"
    ids = RegexExtractor({"order_id": ORDER_ID}).extract(text)
    found = resolver.find_all(text, WEDNESDAY, "UTC", exclude=ids)
    assert [(e.type, e.text) for e in found] == [("date", "on 3 March")]


def test_unknown_timezone_is_invalid_input(resolver):
    with pytest.raises(InvalidInputError, match="Mars/Olympus"):
        resolver.find_temporal("tomorrow", WEDNESDAY, "Mars/Olympus")


def test_naive_reference_time_is_taken_as_utc(resolver):
    naive = datetime(2026, 11, 25, 23, 30)
    assert _one(resolver.find_temporal("tomorrow", naive, "Europe/Berlin")).value == "2026-11-27"


def test_dateparser_covers_other_languages():
    resolver = EntityResolver()
    entity = _one(
        resolver.find_temporal("Lieferung am 3. März bitte", WEDNESDAY, "Europe/Berlin", language="de")
    )
    assert (entity.text, entity.value, entity.extractor) == ("am 3. März", "2027-03-03", "resolver")
    assert entity.confidence < 0.9  # the fallback is less sure than the grammar


# -- numbers and money


def test_number_words_and_digits():
    assert words_to_number("twenty-five") == 25
    assert words_to_number("one hundred and five") == 105
    assert words_to_number("a dozen") == 12
    assert words_to_number("two thousand three hundred") == 2300
    assert words_to_number("banana") is None
    assert parse_number("2.5") == 2.5
    assert parse_number("1,000") == 1000
    assert parse_number("15,50") == 15.5


def test_find_numbers(resolver):
    text = "I want three boxes, 2.5 kg each, and 1,000 stickers; the blue one"
    found = resolver.find_numbers(text)
    assert [(e.text, e.value, e.resolved["number"]) for e in found] == [
        ("three", "3", 3.0),
        ("2.5", "2.5", 2.5),
        ("1,000", "1000", 1000.0),
    ]
    assert all(e.resolved["kind"] == "number" for e in found)


def test_digits_inside_ids_are_not_numbers(resolver):
    assert resolver.find_numbers("my code is A12B45 and v2.5") == []


@pytest.mark.parametrize(
    ("text", "span", "amount", "currency"),
    [
        ("it cost $20", "$20", 20.0, "USD"),
        ("refund 20 euros", "20 euros", 20.0, "EUR"),
        ("EUR 15.50 please", "EUR 15.50", 15.5, "EUR"),
        ("15,50 € fee", "15,50 €", 15.5, "EUR"),
        ("twenty dollars", "twenty dollars", 20.0, "USD"),
        ("£1,299.99", "£1,299.99", 1299.99, "GBP"),
    ],
)
def test_find_money(resolver, text, span, amount, currency):
    entity = _one(resolver.find_money(text))
    assert (entity.type, entity.text) == ("money", span)
    assert (entity.resolved["kind"], entity.resolved["amount"], entity.resolved["currency"]) == (
        "money",
        pytest.approx(amount),
        currency,
    )
    assert entity.value == f"{amount:.2f} {currency}"


def test_find_all_does_not_count_money_or_dates_twice_as_numbers(resolver):
    found = resolver.find_all("3 items for $20 in two weeks", WEDNESDAY, "UTC")
    assert [(e.type, e.text) for e in found] == [("number", "3"), ("money", "$20"), ("date", "in two weeks")]


# -- resolve()


def test_resolve_a_tagged_weekday_uses_its_context(resolver):
    text = "deliver it next Friday"
    tagged = nlu_pb2.Entity(
        type="delivery_date", text="Friday", start=16, end=22, confidence=0.8, extractor="model"
    )
    resolved = resolver.resolve(tagged, text, WEDNESDAY, "Europe/Berlin")
    assert (resolved.value, resolved.text, resolved.confidence, resolved.extractor) == (
        "2026-12-04",
        "Friday",
        pytest.approx(0.8),
        "model",
    )
    assert [a.value for a in resolved.alternatives] == ["2026-11-27"]
    assert tagged.value == ""  # the input is not modified


def test_resolve_numbers_money_ids_and_synonyms():
    resolver = EntityResolver(SynonymMapper({"New York": ["NYC"]}), use_dateparser=False)
    text = "ship three boxes for 20 euros to NYC, order #88231"
    quantity = nlu_pb2.Entity(type="quantity", text="three", start=5, end=10)
    price = nlu_pb2.Entity(type="price", text="20", start=21, end=23)
    city = nlu_pb2.Entity(type="city", text="NYC", start=33, end=36)
    order = nlu_pb2.Entity(type="order_id", text="#88231", start=44, end=50, extractor="model")
    assert resolver.resolve(quantity, text, WEDNESDAY, "UTC").resolved["number"] == 3.0
    money = resolver.resolve(price, text, WEDNESDAY, "UTC")
    assert (money.value, money.resolved["currency"]) == ("20.00 EUR", "EUR")
    assert resolver.resolve(city, text, WEDNESDAY, "UTC").value == "New York"
    resolved_order = resolver.resolve(order, text, WEDNESDAY, "UTC")
    assert resolved_order.value == "88231"
    assert (resolved_order.resolved["kind"], resolved_order.resolved["id"]) == ("order_id", "88231")


def test_declared_kinds_override_name_guessing():
    resolver = EntityResolver(kinds={"ref": "id", "when": "date"}, use_dateparser=False)
    assert resolver.kind_of("ref") == "id"
    assert resolver.kind_of("when") == "temporal"
    assert resolver.kind_of("delivery_date") == "temporal"
    assert resolver.kind_of("colour") == "text"
    with pytest.raises(ValueError, match="unknown entity kind"):
        EntityResolver(kinds={"x": "colour"})


def test_an_unresolvable_date_keeps_its_value():
    resolver = EntityResolver(use_dateparser=False)
    entity = nlu_pb2.Entity(type="date", text="someday", value="someday", start=0, end=7)
    resolved = resolver.resolve(entity, "someday", WEDNESDAY, "UTC")
    assert resolved.value == "someday"
    assert not resolved.HasField("resolved")
