"""The five adversarial inputs of issue 5, as ParseResults the NLU gives for them, in the situations where
they are hard."""

from __future__ import annotations

import pytest
from dialog_testkit import names, parse

from parley.dialog.domain import ContextView


async def test_that_thing_we_discussed_offers_the_recent_flows(conv):
    await conv.say(parse("order_status", text="where is order 12345?", order_id="12345"))
    await conv.say(parse("weather", text="and the weather?"))
    r = await conv.say(parse("", text="I want that thing we discussed", out_of_scope=True))
    (action,) = r.actions
    assert (action.name, action.kind, r.reason) == ("utter_clarify", "clarify", "clarify")
    assert [(o.title, o.payload) for o in action.options] == [
        ("the weather (Berlin)", '/weather{"city": "Berlin"}'),
        ("checking order 12345", '/order_status{"order_id": "12345"}'),
    ]
    # The quick reply comes back as a payload: the NLU gives its intent and entities with confidence 1.
    r = await conv.say(
        parse("order_status", confidence=1.0, text='/order_status{"order_id": "12345"}', order_id="12345")
    )
    assert names(r) == ["utter_order_status"]
    assert r.actions[-1].params["order_id"] == "12345"


async def test_that_thing_we_discussed_picked_by_number(conv):
    await conv.say(parse("order_status", order_id="12345"))
    await conv.say(parse("", text="I want that thing we discussed", out_of_scope=True))
    r = await conv.say(parse("", text="1"))
    assert names(r) == ["utter_order_status"]


async def test_that_thing_we_discussed_offers_a_paused_flow_first(conv):
    await conv.say(parse("book_flight"))
    await conv.say(parse("weather"))  # a digression; resuming the flight is offered
    r = await conv.say(parse("", text="what about the thing we talked about earlier?"))
    assert [o.title for o in r.actions[0].options] == ["booking a flight", "the weather (Berlin)"]
    r = await conv.say(parse("", text="booking a flight"))
    assert (names(r), r.active_flow) == (["utter_ask_origin"], "book_flight")


async def test_that_thing_we_discussed_while_a_question_waits(conv):
    await conv.say(parse("order_status", order_id="12345"))
    await conv.say(parse("book_flight"))
    r = await conv.say(parse("", text="no wait, I want that thing we discussed"))
    assert [o.title for o in r.actions[0].options] == ["checking order 12345"]
    assert "origin" not in r.slots  # the words were not taken as the city


async def test_that_thing_we_discussed_without_history_uses_the_tracked_entities(conv):
    context = ContextView(entities={"order_id": "55555"})
    r = await conv.say(parse("", text="I want that thing we discussed", out_of_scope=True), context=context)
    assert [o.title for o in r.actions[0].options][:1] == ["checking order 55555"]


async def test_that_thing_we_discussed_with_nothing_to_offer_is_a_fallback(conv):
    r = await conv.say(parse("", text="I want that thing we discussed", out_of_scope=True))
    assert (names(r), r.reason) == (["utter_rephrase"], "fallback")


@pytest.mark.parametrize(
    "understanding",
    [
        parse("cancel", text="Actually, forget that. Tell me about the weather", intents=["weather"]),
        # Best first: NLU may rank the weather above the cancel; the cancel still comes first.
        parse("weather", text="Actually, forget that. Tell me about the weather", intents=["cancel"]),
    ],
)
async def test_actually_forget_that_tell_me_about_the_weather(conv, understanding):
    await conv.say(parse("book_flight", text="Book a flight"))
    r = await conv.say(understanding)
    assert [a.name for a in r.actions] == ["utter_flow_cancelled", "get_weather", "utter_weather"]
    assert r.reason == "cancel"
    assert r.actions[0].params["flow"] == "booking a flight"
    assert (r.active_flow, conv.state.stack) == ("", [])
    assert [(h.flow, h.status) for h in conv.state.history] == [
        ("book_flight", "cancelled"),
        ("weather", "completed"),
    ]


async def test_cancel_my_order_and_also_update_my_address(conv, tools):
    r = await conv.say(
        parse("order.cancel", text="Cancel my order and also update my address", intents=["address.update"])
    )
    assert (names(r), r.active_flow) == (["utter_ask_order_id"], "cancel_order")
    assert [q.intent for q in r.state.queue] == ["address.update"]
    r = await conv.say(parse("", text="12345", order_id="12345"))
    assert names(r) == ["utter_confirm_cancel"]
    r = await conv.say(parse("affirm", text="yes"))
    # The order is cancelled, then the address update starts with the order id it already knows.
    assert [a.name for a in r.actions] == [
        "cancel_order",
        "utter_order_cancelled",
        "utter_transition",
        "utter_ask_address",
    ]
    assert (r.active_flow, r.state.queue) == ("update_address", [])
    r = await conv.say(parse("", text="1 Long Road"))
    assert names(r) == ["utter_address_updated"]
    assert tools.calls == [("cancel_order", {"order_id": "12345"})]


async def test_book_a_flight_asks_for_each_missing_detail(conv):
    asked = []
    answers = [
        parse("book_flight", text="Book a flight"),
        parse("", text="Berlin", city="Berlin"),
        parse("", text="Lisbon", city="Lisbon"),
        parse("", text="next Friday", date="2026-12-04"),
        parse("", text="3", number="3"),
    ]
    for answer in answers:
        asked += names(await conv.say(answer))
    assert asked == [
        "utter_ask_origin",
        "utter_ask_destination",
        "utter_ask_date",
        "utter_ask_passengers",
        "utter_confirm_flight",
    ]


@pytest.mark.parametrize(
    ("answer", "kept", "dropped", "next_question"),
    [
        (parse("", text="vegetarian", diet="vegetarian"), "diet", "ingredients", "utter_ask_ingredients"),
        (parse("", text="the bacon", ingredient="bacon"), "ingredients", "diet", "utter_ask_diet"),
        (parse("", text="2"), "ingredients", "diet", "utter_ask_diet"),
    ],
)
async def test_a_vegetarian_meal_with_bacon_asks_which_to_keep(conv, answer, kept, dropped, next_question):
    r = await conv.say(
        parse(
            "meal_preference",
            text="I want a vegetarian meal with bacon",
            diet="vegetarian",
            ingredient="bacon",
        )
    )
    (action,) = r.actions
    assert (action.name, action.kind, r.reason) == ("utter_diet_conflict", "clarify", "conflict")
    assert [(o.title, o.payload) for o in action.options] == [
        ("vegetarian", "vegetarian"),
        ("bacon", "bacon"),
    ]
    assert r.active_flow == "meal"
    r = await conv.say(answer)
    assert kept in r.slots and dropped not in r.slots
    assert names(r) == [next_question]


async def test_a_contradiction_later_in_the_flow_is_caught_too(conv):
    await conv.say(parse("meal_preference", text="a vegan meal", diet="vegan"))
    r = await conv.say(parse("", text="ham and cheese", ingredient=["ham", "cheese"]))
    assert (names(r), r.reason) == (["utter_diet_conflict"], "conflict")
    assert [o.title for o in r.actions[0].options] == ["vegan", "ham, cheese"]
