"""Reference resolution: pronouns, ellipsis, relative dates and topic shifts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parley.context.domain.embedding import HashedEmbedder
from parley.context.domain.models import EntityValue, Message, Role
from parley.context.domain.references import (
    ELLIPSIS,
    PRONOUN,
    TEMPORAL,
    ReferenceResolver,
    Resolution,
    entity_category,
)
from parley.core.errors import InvalidInputError

# Wednesday 2026-11-25, 10:00 UTC (11:00 in Berlin).
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _entity(entity_type: str, value: str, minutes_ago: int = 1, **attributes: object) -> EntityValue:
    return EntityValue("c", entity_type, value, dict(attributes), "t1", NOW - timedelta(minutes=minutes_ago))


def _message(seq: int, role: str, text: str) -> Message:
    return Message(
        f"m{seq}", "c", f"t{seq}", Role(role), text, f"e{seq}", seq, NOW - timedelta(minutes=10 - seq)
    )


ORDER = [_entity("order_id", "12345")]
HISTORY = [
    _message(1, "user", "Where is my order 12345?"),
    _message(2, "bot", "Order 12345 was shipped yesterday."),
]


@pytest.fixture(scope="module")
def resolver() -> ReferenceResolver:
    return ReferenceResolver()


def _resolve(
    resolver: ReferenceResolver,
    text: str,
    entities: list[EntityValue] | None = None,
    recent: list[Message] | None = None,
    *,
    previous: str | None = None,
    reference_time: datetime = NOW,
    timezone: str = "Europe/Berlin",
    language: str = "en",
) -> Resolution:
    return resolver.resolve(
        text,
        recent=HISTORY if recent is None else recent,
        entities=ORDER if entities is None else entities,
        reference_time=reference_time,
        timezone=timezone,
        previous_user_text=previous,
        language=language,
    )


def _of(resolution: Resolution, kind: str) -> list:
    return [r for r in resolution.references if r.kind == kind]


# ---------------------------------------------------------------------------------------------- pronouns


def test_when_will_it_arrive(resolver: ReferenceResolver) -> None:
    """The issue's case: "it" is the order in focus."""
    result = _resolve(resolver, "When will it arrive?")
    assert result.resolved_text == "When will order 12345 arrive?"
    (ref,) = result.references
    assert (ref.kind, ref.text, ref.start, ref.end) == (PRONOUN, "it", 10, 12)
    assert (ref.resolved_text, ref.entity_type, ref.entity_value) == ("order 12345", "order_id", "12345")
    assert ref.resolved == {"entity_type": "order_id", "value": "12345"}
    assert 0.5 < ref.confidence <= 1.0
    assert result.topic_shift is False


@pytest.mark.parametrize(
    ("text", "expected", "words"),
    [
        ("Can you cancel it?", "Can you cancel order 12345?", ["it"]),
        ("Where is it?", "Where is order 12345?", ["it"]),
        ("Did it ship or is it here?", "Did order 12345 ship or is order 12345 here?", ["it", "it"]),
        ("It still hasn't arrived", "Order 12345 still hasn't arrived", ["It"]),
        ("it is late", "order 12345 is late", ["it"]),
        ("It's been shipped?", "Order 12345 has been shipped?", ["It's"]),
        ("it's damaged", "order 12345 is damaged", ["it's"]),
        ("It\u2019ll be late, won't it?", "Order 12345 will be late, won't it?", ["It\u2019ll"]),
        ("What is its status?", "What is order 12345's status?", ["its"]),
        ("When will the order arrive?", "When will order 12345 arrive?", ["the order"]),
        ("Has this order shipped?", "Has order 12345 shipped?", ["this order"]),
        ("That order is wrong", "Order 12345 is wrong", ["That order"]),
        ("where is my order", "where is order 12345", ["my order"]),
        ("I want that one", "I want order 12345", ["that one"]),
        ("please cancel that", "please cancel order 12345", ["that"]),
        ("Can you track this for me?", "Can you track order 12345 for me?", ["this"]),
        ("Can you return them?", "Can you return order 12345?", ["them"]),
    ],
)
def test_thing_pronouns(resolver: ReferenceResolver, text: str, expected: str, words: list[str]) -> None:
    result = _resolve(resolver, text)
    assert result.resolved_text == expected
    refs = _of(result, PRONOUN)
    assert [r.text for r in refs] == words
    for ref in refs:
        assert text[ref.start : ref.end] == ref.text  # offsets point into the original text
        assert ref.entity_value == "12345"


@pytest.mark.parametrize(
    "text",
    [
        "It is raining",
        "it's snowing in Berlin",
        "Is it raining tomorrow?",
        "It's so cold today",
        "It's fine",
        "it's ok, thanks",
        "That's all",
        "that's great",
        "Is it possible to change the address?",
        "It is important that the parcel arrives on time",
        "It seems that the parcel is lost",
        "It looks like the parcel is lost",
        "it's 5 pm already",
        "It's been two weeks since I ordered",
        "It depends on the courier",
        "Got it.",
        "Forget it",
        "Never mind that",
        "That's it",
        "How's it going?",
        "This is my first message",
        "That sounds good",
        "That question was answered",
        "Is that it?",
    ],
)
def test_pleonastic_and_discourse_uses_are_not_resolved(resolver: ReferenceResolver, text: str) -> None:
    result = _resolve(resolver, text)
    assert _of(result, PRONOUN) == []
    assert result.resolved_text == text


def test_nothing_in_focus_means_no_reference(resolver: ReferenceResolver) -> None:
    result = _resolve(resolver, "When will it arrive?", entities=[])
    assert result.references == []
    assert result.resolved_text == "When will it arrive?"


@pytest.mark.parametrize(
    "entities",
    [
        [_entity("number", "3")],
        [_entity("quantity", "2")],
        [_entity("date", "2026-11-26")],
        [_entity("price", "20 EUR")],
        [_entity("custom", "4", kind="number")],
        [_entity("city", "Berlin")],
        [_entity("person", "Anna")],
    ],
)
def test_numbers_dates_places_and_people_are_not_antecedents_of_it(
    resolver: ReferenceResolver, entities: list[EntityValue]
) -> None:
    result = _resolve(resolver, "When will it arrive?", entities=entities)
    assert _of(result, PRONOUN) == []
    assert result.resolved_text == "When will it arrive?"


def test_the_most_recent_compatible_entity_is_in_focus(resolver: ReferenceResolver) -> None:
    entities = [
        _entity("quantity", "2", minutes_ago=1),
        _entity("order_id", "67890", minutes_ago=2),
        _entity("order_id", "12345", minutes_ago=30),
    ]
    (ref,) = _of(_resolve(resolver, "Cancel it", entities=entities), PRONOUN)
    assert ref.entity_value == "67890"


def test_competing_candidates_lower_the_confidence(resolver: ReferenceResolver) -> None:
    alone = _of(_resolve(resolver, "Cancel it"), PRONOUN)[0]
    contested = _of(
        _resolve(
            resolver, "Cancel it", entities=[_entity("order_id", "12345"), _entity("product", "blue shirt")]
        ),
        PRONOUN,
    )[0]
    assert contested.entity_value == "12345"
    assert contested.confidence < alone.confidence


def test_noun_phrases_pick_the_entity_they_name(resolver: ReferenceResolver) -> None:
    entities = [_entity("ticket_id", "T-1"), _entity("order_id", "12345", minutes_ago=5)]
    result = _resolve(resolver, "Is the order delayed?", entities=entities)
    assert result.resolved_text == "Is order 12345 delayed?"


@pytest.mark.parametrize(
    "text",
    [
        "Order 67890, when will it arrive?",  # the antecedent is in the message itself
        "When will it arrive? It is #67890",
        "Is 12345 late? When will it arrive?",
        "the order number is 67890",  # a compound, not a reference
        "What is the order 67890 status?",
    ],
)
def test_an_explicit_value_in_the_text_wins(resolver: ReferenceResolver, text: str) -> None:
    result = _resolve(resolver, text)
    assert _of(result, PRONOUN) == []
    assert result.resolved_text == text


@pytest.mark.parametrize(
    ("text", "entities", "expected"),
    [
        (
            "Can you ship it there?",
            [*ORDER, _entity("city", "Berlin")],
            "Can you ship order 12345 to Berlin?",
        ),
        ("What is the weather there?", [_entity("city", "Berlin")], "What is the weather in Berlin?"),
        (
            "How far is it from there?",
            [_entity("city", "Berlin"), *ORDER],
            "How far is order 12345 from Berlin?",
        ),
        ("There is a problem", [_entity("city", "Berlin")], "There is a problem"),
        ("hi there", [_entity("city", "Berlin")], "hi there"),
        ("Is there a store?", [_entity("city", "Berlin")], "Is there a store?"),
        ("Can you call her?", [_entity("person", "Anna")], "Can you call Anna?"),
        ("What is her address?", [_entity("person", "Anna")], "What is Anna's address?"),
        ("He said it was delivered", [_entity("courier", "Bob")], "Bob said it was delivered"),
        ("Did he call?", [_entity("recipient", "Bob")], "Did Bob call?"),
        ("Tell him to wait", [_entity("name", "Bob")], "Tell Bob to wait"),
        (
            "Can you deliver it then?",
            [_entity("delivery_date", "2026-11-27"), *ORDER],
            "Can you deliver order 12345 on 2026-11-27?",
        ),
        (
            "Will it be here by then?",
            [*ORDER, _entity("date", "2026-11-27")],
            "Will order 12345 be here by 2026-11-27?",
        ),
        ("ok then", [_entity("date", "2026-11-27")], "ok then"),
        ("Then I will wait", [_entity("date", "2026-11-27")], "Then I will wait"),
        ("If it rains then we wait", [_entity("date", "2026-11-27")], "If it rains then we wait"),
    ],
)
def test_places_people_and_times(
    resolver: ReferenceResolver, text: str, entities: list[EntityValue], expected: str
) -> None:
    assert _resolve(resolver, text, entities=entities).resolved_text == expected


def test_labels_aliases_and_categories_are_configurable() -> None:
    resolver = ReferenceResolver(
        labels={"order_id": "order #{value}"},
        aliases={"order_id": ["parcel", "package"]},
        categories={"sku": "quantity"},
    )
    entities = [_entity("sku", "A-100"), _entity("order_id", "12345")]
    result = _resolve(resolver, "When will the parcel arrive? Is it late?", entities=entities)
    assert result.resolved_text == "When will order #12345 arrive? Is order #12345 late?"


@pytest.mark.parametrize(
    ("entity_type", "attributes", "category"),
    [
        ("order_id", {}, "thing"),
        ("tracking_number", {}, "thing"),
        ("product", {}, "thing"),
        ("number", {}, "quantity"),
        ("quantity", {}, "quantity"),
        ("amount", {}, "quantity"),
        ("date", {}, "time"),
        ("delivery_time", {}, "time"),
        ("city", {}, "place"),
        ("shipping_address", {}, "place"),
        ("person", {}, "person"),
        ("recipient", {}, "person"),
        ("whatever", {"kind": "date"}, "time"),
        ("whatever", {"kind": "money"}, "quantity"),
    ],
)
def test_entity_category(entity_type: str, attributes: dict[str, str], category: str) -> None:
    assert entity_category(entity_type, attributes) == category


def test_other_languages_get_no_pronoun_rules(resolver: ReferenceResolver) -> None:
    result = _resolve(resolver, "Wann kommt es an?", language="de")
    assert _of(result, PRONOUN) == []
    assert result.resolved_text == "Wann kommt es an?"


# ---------------------------------------------------------------------------------------------- ellipsis


def test_what_about_67890(resolver: ReferenceResolver) -> None:
    """The issue's case: the previous question, asked about another order."""
    result = _resolve(resolver, "What about 67890?", previous="When will it arrive?")
    assert result.resolved_text == "When will order 67890 arrive?"
    (ref,) = result.references
    assert (ref.kind, ref.text, ref.start, ref.end) == (ELLIPSIS, "67890", 11, 16)
    assert (ref.entity_type, ref.entity_value) == ("order_id", "67890")
    assert ref.resolved["replaced"] == "12345"
    assert ref.confidence >= 0.8


@pytest.mark.parametrize(
    ("text", "previous", "entities", "expected", "confidence"),
    [
        ("what about #67890?", "Where is order #12345?", ORDER, "Where is order #67890?", 0.8),
        ("And for 67890?", "Is order 12345 refundable?", ORDER, "Is order 67890 refundable?", 0.8),
        ("same for 67890", "Cancel order 12345 please", ORDER, "Cancel order 67890 please", 0.8),
        ("and tomorrow?", "Can you deliver it today?", ORDER, "Can you deliver order 12345 tomorrow?", 0.8),
        ("What about next week?", "Is the store open on Friday?", [], "Is the store open next week?", 0.8),
        ("and tomorrow?", "Is the store open?", [], "Is the store open tomorrow?", 0.5),
        (
            "how about Berlin?",
            "What's the weather in Hamburg?",
            [_entity("city", "Hamburg")],
            "What's the weather in Berlin?",
            0.7,
        ),
        (
            "Berlin instead?",
            "Ship it to Hamburg",
            [*ORDER, _entity("city", "Hamburg")],
            "Ship order 12345 to Berlin",
            0.7,
        ),
        ("what about Paris?", "Is there a store in London?", [], "Is there a store in Paris?", 0.4),
    ],
)
def test_elliptical_fragments_are_rebuilt(
    resolver: ReferenceResolver,
    text: str,
    previous: str,
    entities: list[EntityValue],
    expected: str,
    confidence: float,
) -> None:
    result = _resolve(resolver, text, entities=entities, previous=previous)
    assert result.resolved_text == expected
    (ref,) = _of(result, ELLIPSIS)
    assert ref.resolved_text == expected
    assert text[ref.start : ref.end] == ref.text
    assert ref.confidence == pytest.approx(confidence, abs=0.06)
    assert result.topic_shift is False


@pytest.mark.parametrize(
    ("text", "previous"),
    [
        ("What about my refund?", "When will it arrive?"),  # nothing of its kind to replace
        ("And what is your return policy?", "When will it arrive?"),  # a question of its own
        ("What about 67890?", "Hello"),  # nothing to rebuild
        ("67890", "What is your order number?"),  # an answer, not a fragment
        ("tomorrow", "When can you deliver?"),
        ("I want a refund instead", "Can you replace it?"),
    ],
)
def test_non_elliptical_text_is_not_rewritten(resolver: ReferenceResolver, text: str, previous: str) -> None:
    result = _resolve(resolver, text, previous=previous)
    assert _of(result, ELLIPSIS) == []
    assert result.resolved_text == text


def test_ellipsis_needs_a_previous_user_message(resolver: ReferenceResolver) -> None:
    result = _resolve(resolver, "What about 67890?", recent=[])
    assert result.references == []
    assert result.resolved_text == "What about 67890?"


def test_previous_user_message_defaults_to_the_last_one_in_recent(resolver: ReferenceResolver) -> None:
    recent = [
        _message(1, "user", "When will it arrive?"),
        _message(2, "bot", "Order 12345 arrives on Friday."),
        _message(3, "user", "What about 67890?"),  # the current message, already stored
    ]
    result = _resolve(resolver, "What about 67890?", recent=recent)
    assert result.resolved_text == "When will order 67890 arrive?"


# ---------------------------------------------------------------------------------------------- temporal


@pytest.mark.parametrize(
    ("text", "reference_time", "timezone", "value", "resolved"),
    [
        # 23:30 UTC is already Thursday in Berlin: tomorrow is Friday.
        (
            "Can it come tomorrow?",
            datetime(2026, 11, 25, 23, 30, tzinfo=UTC),
            "Europe/Berlin",
            "2026-11-27",
            {"kind": "date", "date": "2026-11-27", "grain": "day"},
        ),
        # 03:00 UTC is still Tuesday evening in New York: tomorrow is Wednesday.
        (
            "Can it come tomorrow?",
            datetime(2026, 11, 25, 3, 0, tzinfo=UTC),
            "America/New_York",
            "2026-11-25",
            {"kind": "date", "date": "2026-11-25", "grain": "day"},
        ),
        (
            "Can it come tomorrow?",
            datetime(2026, 11, 25, 3, 0, tzinfo=UTC),
            "",
            "2026-11-26",
            {"kind": "date", "date": "2026-11-26", "grain": "day"},
        ),
        (
            "Can it come next week?",
            NOW,
            "Asia/Tokyo",
            "2026-11-30/2026-12-06",
            {"kind": "interval", "start": "2026-11-30", "end": "2026-12-06", "grain": "week"},
        ),
    ],
)
def test_relative_dates_in_the_users_timezone(
    resolver: ReferenceResolver,
    text: str,
    reference_time: datetime,
    timezone: str,
    value: str,
    resolved: dict[str, str],
) -> None:
    result = _resolve(resolver, text, reference_time=reference_time, timezone=timezone)
    (temporal,) = _of(result, TEMPORAL)
    assert text[temporal.start : temporal.end] == temporal.text
    assert temporal.resolved_text == value
    assert {k: temporal.resolved[k] for k in resolved} == resolved
    assert temporal.resolved["value"] == value
    assert temporal.confidence >= 0.9
    # The words stay (NLU resolves dates itself); the pronoun is still resolved.
    assert result.resolved_text == text.replace("it", "order 12345")


def test_ambiguous_dates_carry_their_alternatives(resolver: ReferenceResolver) -> None:
    (temporal,) = _of(_resolve(resolver, "Can it come next Friday?"), TEMPORAL)
    assert temporal.resolved_text == "2026-12-04"
    assert [a["value"] for a in temporal.resolved["alternatives"]] == ["2026-11-27"]
    assert temporal.confidence < 0.9


def test_order_ids_are_not_read_as_dates(resolver: ReferenceResolver) -> None:
    result = _resolve(resolver, "Order 20261126 should come on Friday")
    assert [r.text for r in _of(result, TEMPORAL)] == ["on Friday"] or [
        r.text for r in _of(result, TEMPORAL)
    ] == ["Friday"]


def test_a_naive_reference_time_is_utc(resolver: ReferenceResolver) -> None:
    naive = _resolve(resolver, "tomorrow", reference_time=datetime(2026, 11, 25, 23, 30), timezone="")
    assert _of(naive, TEMPORAL)[0].resolved_text == "2026-11-26"


def test_elliptical_dates_are_reported_too(resolver: ReferenceResolver) -> None:
    result = _resolve(resolver, "and tomorrow?", previous="Can you deliver it today?")
    assert [r.kind for r in result.references] == [ELLIPSIS, TEMPORAL]
    assert _of(result, TEMPORAL)[0].resolved_text == "2026-11-26"


# ------------------------------------------------------------------------------------------- topic shift


@pytest.mark.parametrize(
    "text",
    [
        "Actually, forget that. Tell me about the weather",
        "By the way, do you sell gift cards?",
        "btw do you sell gift cards",
        "Never mind. What are your opening hours?",
        "Something else: do you ship abroad?",
        "I have another question about gift cards",
        "Different topic, can I buy vouchers?",
        "Anyway, what are your opening hours?",
    ],
)
def test_explicit_cues_shift_the_topic(resolver: ReferenceResolver, text: str) -> None:
    result = _resolve(resolver, text)
    assert result.topic_shift is True
    assert result.topic_score >= 0.9


def test_a_cue_with_a_reference_to_the_focus_is_not_a_shift(resolver: ReferenceResolver) -> None:
    result = _resolve(resolver, "By the way, when will it arrive?")
    assert result.resolved_text == "By the way, when will order 12345 arrive?"
    assert result.topic_shift is False


@pytest.mark.parametrize(
    "text",
    ["yes", "ok", "OK thanks", "12345", "67890", "tomorrow please", "no", "the blue one", "sure, go ahead"],
)
def test_short_follow_ups_are_never_shifts(resolver: ReferenceResolver, text: str) -> None:
    result = _resolve(resolver, text)
    assert result.topic_shift is False
    assert result.topic_score == 0.0


@pytest.mark.parametrize("embedder", [None, HashedEmbedder(), HashedEmbedder(dimensions=64)])
def test_an_unrelated_message_is_a_shift(embedder: HashedEmbedder | None) -> None:
    """Whatever embedder is passed in: topic similarity uses its features, not its (noisy) hashed vectors."""
    result = _resolve(ReferenceResolver(embedder=embedder), "Tell me a joke about penguins and cats")
    assert result.topic_shift is True
    assert result.topic_score >= 0.9


@pytest.mark.parametrize(
    "text",
    [
        "Why was order 12345 shipped so late?",  # names the tracked value
        "When will it arrive at my door?",  # resolves a reference
        "Is it possible to change the delivery address?",  # leans on the conversation ("it")
        "Has the parcel been delivered to my house?",  # definite noun phrase while an order is in focus
        "And could you also send an invoice?",  # a continuation
        "Why has my order been shipped so late yesterday?",  # shares words with the recent turns
    ],
)
def test_follow_ups_are_not_shifts(resolver: ReferenceResolver, text: str) -> None:
    assert _resolve(resolver, text).topic_shift is False


def test_without_history_there_is_no_shift(resolver: ReferenceResolver) -> None:
    result = _resolve(resolver, "Tell me a joke about penguins and cats", recent=[], entities=[])
    assert result.topic_shift is False
    assert result.topic_score == 0.0


def test_similar_messages_score_low(resolver: ReferenceResolver) -> None:
    related = _resolve(resolver, "Why was my order shipped so late yesterday?").topic_score
    unrelated = _resolve(resolver, "Recommend a good movie for tonight").topic_score
    assert related < unrelated


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"shift_threshold": 1.5}, "shift_threshold"), ({"history_size": 0}, "history_size")],
)
def test_bad_settings_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ReferenceResolver(**kwargs)  # type: ignore[arg-type]


def test_a_timezone_that_is_not_iana_is_invalid_input(resolver: ReferenceResolver) -> None:
    with pytest.raises(InvalidInputError):
        _resolve(resolver, "Can it come tomorrow?", timezone="Mars/Olympus_Mons")
