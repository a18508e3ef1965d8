"""Template rendering: example responses, variant choice, missing values, injection attempts."""

from __future__ import annotations

from typing import Any

import pytest

from parley.core.context_client import to_struct
from parley.core.errors import ConfigurationError
from parley.core.project import ResponsesFile
from parley.dialog.v1 import dialog_pb2
from parley.generator.domain import (
    BUILTIN_FALLBACK,
    TemplateError,
    TemplateRenderer,
    parse_template,
    split_words,
)


def action(name: str, /, **params: Any) -> dialog_pb2.Action:
    return dialog_pb2.Action(name=name, params=to_struct(params))


def responses(**named: list[str | dict]) -> ResponsesFile:
    return ResponsesFile.model_validate(
        {
            "responses": {
                name: [v if isinstance(v, dict) else {"text": v} for v in variants]
                for name, variants in named.items()
            }
        }
    )


@pytest.fixture(scope="module")
def renderer(project) -> TemplateRenderer:
    return TemplateRenderer(project.responses)


SHIPPED = {"order_id": "12345", "items": "headphones", "carrier": "DHL", "eta": "Friday, 27 November"}


def test_example_responses_render_with_params(renderer):
    reply = renderer.render("t1", [action("utter_order_shipped", **SHIPPED)])
    assert (
        reply.text
        == "Thanks! Order 12345 (headphones) has shipped with DHL and should arrive on Friday, 27 November."
    )
    assert list(reply.templates) == ["utter_order_shipped"]
    reply = renderer.render("t2", [action("utter_delivery_estimate", order_id="12345", eta="Friday")])
    assert reply.text == "Order 12345 should arrive on Friday."


def test_struct_numbers_render_as_written(renderer):
    reply = renderer.render("t1", [action("utter_order_was_cancelled", order_id=12345)])
    assert reply.text == "Order 12345 was cancelled, so it won't be delivered."


def test_several_actions_are_joined_and_unknown_actions_skipped(renderer):
    reply = renderer.render(
        "t1", [action("utter_goodbye"), action("action_check_stock"), action("utter_ask_order_id")]
    )
    assert reply.text == "Goodbye! Have a nice day. I can help with your order. What's your order number?"
    assert list(reply.templates) == ["utter_goodbye", "utter_ask_order_id"]


def test_quick_replies_are_collected():
    r = TemplateRenderer(
        responses(
            utter_menu=[{"text": "Pick one.", "quick_replies": [{"title": "Status", "payload": "/status"}]}],
            utter_fallback=["?"],
        )
    )
    reply = r.render("t", [action("utter_menu")])
    assert [(q.title, q.payload) for q in reply.quick_replies] == [("Status", "/status")]


def test_the_variant_is_stable_per_turn_and_varies_across_turns(renderer, project):
    texts = {renderer.render(f"turn-{i}", [action("utter_greet")]).text for i in range(40)}
    assert len(texts) == 2  # both variants of utter_greet get used
    # A fresh renderer (another replica, or after a restart) picks the same variant for each turn.
    other = TemplateRenderer(project.responses)
    for i in range(10):
        first = renderer.render(f"turn-{i}", [action("utter_greet")]).text
        assert other.render(f"turn-{i}", [action("utter_greet")]).text == first


def test_a_variant_missing_a_value_gives_way_to_one_that_fits():
    r = TemplateRenderer(
        responses(
            utter_status=["Order {order_id} ships {date}.", "Order {order_id} is on its way."],
            utter_fallback=["Sorry?"],
        )
    )
    for i in range(20):
        assert r.render(f"t{i}", [action("utter_status", order_id="1")]).text == "Order 1 is on its way."
    texts = {r.render(f"t{i}", [action("utter_status", order_id="1", date="today")]).text for i in range(20)}
    assert texts == {"Order 1 ships today.", "Order 1 is on its way."}


def test_no_fitting_variant_uses_the_fallback_response_never_an_error(renderer):
    for params in ({}, {"order_id": ""}, {"order_id": None}, {"other": "x"}, {**SHIPPED, "eta": ""}):
        reply = renderer.render("t1", [action("utter_order_shipped", **params)])
        assert (
            reply.text
            == "Sorry, I didn't quite get that. I can help with orders, flights, meals and the weather."
        )
        assert list(reply.templates) == ["utter_fallback"]


def test_the_fallback_appears_once_next_to_what_did_render(renderer):
    reply = renderer.render(
        "t1", [action("utter_greet"), action("utter_order_shipped"), action("utter_delivery_estimate")]
    )
    assert reply.text.count("Sorry, I didn't quite get that.") == 1
    assert list(reply.templates) == ["utter_greet", "utter_fallback"]


def test_without_any_renderable_response_the_builtin_sentence_is_used():
    r = TemplateRenderer(responses(utter_status=["Order {order_id}."], utter_fallback=["Sorry {name}."]))
    assert r.render("t", [action("utter_status")]).text == BUILTIN_FALLBACK
    r = TemplateRenderer(responses(utter_status=["Order {order_id}."]))
    assert r.render("t", [action("utter_status")]).text == BUILTIN_FALLBACK
    assert r.render("t", [action("not_a_response")]).text == BUILTIN_FALLBACK
    assert r.render("t", []).text == BUILTIN_FALLBACK


@pytest.mark.parametrize(
    "value",
    ["{__class__}", "{0.__globals__}", "{order_id.__class__.__mro__}", "{{x}}", "{", "}", "%s", "{order_id}"],
)
def test_injection_attempts_in_values_are_printed_literally(renderer, value):
    reply = renderer.render("t1", [action("utter_order_was_cancelled", order_id=value)])
    assert reply.text == f"Order {value} was cancelled, so it won't be delivered."


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("Order {order_id.__class__}", "not a plain name"),
        ("Order {order_id[0]}", "not a plain name"),
        ("Order {0.__globals__}", "not a plain name"),
        ("Order {}", "not a plain name"),
        ("Order {0}", "not a plain name"),
        ("Order {order_id!r}", "conversion"),
        ("Order {order_id:>{width}}", "format spec"),
        ("Order {order_id", "malformed braces"),
        ("Order }", "malformed braces"),
    ],
)
def test_unsafe_placeholders_are_rejected_when_loading(template, why):
    with pytest.raises(ValueError, match=why):
        parse_template(template)
    with pytest.raises(TemplateError, match=r"responses\.utter_bad\[1\]") as info:
        TemplateRenderer(responses(utter_bad=["fine", template], utter_fallback=["?"]))
    assert isinstance(info.value, ConfigurationError)
    assert why in str(info.value)


def test_escaped_braces_stay_literal():
    r = TemplateRenderer(responses(utter_x=["Use {{braces}} for {name}."]))
    assert r.render("t", [action("utter_x", name="{me}")]).text == "Use {braces} for {me}."


@pytest.mark.parametrize("text", ["Hello there!  How are you?", "  leading", "one", "a b\nc "])
def test_split_words_concatenates_back(text):
    pieces = split_words(text)
    assert "".join(pieces) == text
    assert all(p.strip() or i == 0 for i, p in enumerate(pieces))
