"""The dialog engine's actions: options as quick replies, built-in wording of its own responses, lists."""

from __future__ import annotations

from typing import Any

import pytest

from parley.core.context_client import to_struct
from parley.core.flows import BUILTIN_RESPONSES
from parley.core.project import ResponsesFile
from parley.dialog.v1 import dialog_pb2
from parley.generator.domain import BUILTIN_FALLBACK, TemplateRenderer
from parley.generator.domain.templates import DEFAULT_RESPONSES, ENGINE_RESPONSES


def action(
    name: str, /, choices: list[tuple[str, str]] = (), kind: str = "", **params: Any
) -> dialog_pb2.Action:
    return dialog_pb2.Action(
        name=name,
        kind=kind,
        params=to_struct(params),
        options=[dialog_pb2.Option(title=t, payload=p) for t, p in choices],
    )


def renderer(**named: list[str | dict]) -> TemplateRenderer:
    return TemplateRenderer(
        ResponsesFile.model_validate(
            {
                "responses": {
                    name: [v if isinstance(v, dict) else {"text": v} for v in variants]
                    for name, variants in named.items()
                }
            }
        )
    )


def replies(reply) -> list[tuple[str, str]]:
    return [(q.title, q.payload) for q in reply.quick_replies]


def test_options_become_quick_replies_after_the_templates_own():
    r = renderer(
        utter_confirm=[{"text": "Sure?", "quick_replies": [{"title": "Help", "payload": "/help"}]}],
    )
    reply = r.render("t", [action("utter_confirm", choices=[("Yes", "/affirm"), ("No", "/deny")])])
    assert reply.text == "Sure?"
    assert replies(reply) == [("Help", "/help"), ("Yes", "/affirm"), ("No", "/deny")]


def test_an_option_without_payload_sends_its_title_and_repeats_are_dropped():
    r = renderer(
        utter_pick=[{"text": "Pick one.", "quick_replies": [{"title": "Yes", "payload": "/affirm"}]}]
    )
    reply = r.render("t", [action("utter_pick", choices=[("Yes", "/affirm"), ("Berlin", "")])])
    assert replies(reply) == [("Yes", "/affirm"), ("Berlin", "Berlin")]


def test_options_fill_the_options_placeholder_when_the_engine_passes_none():
    r = renderer(utter_clarify=["Which one: {options}?"])
    two = r.render(
        "t", [action("utter_clarify", choices=[("a flight", "/book"), ("the weather", "/weather")])]
    )
    assert two.text == "Which one: a flight or the weather?"
    three = r.render("t", [action("utter_clarify", choices=[("a", "/a"), ("b", "/b"), ("c", "/c")])])
    assert three.text == "Which one: a, b or c?"
    given = r.render("t", [action("utter_clarify", choices=[("a", "/a")], options_text="x")])
    assert given.text == "Which one: a?"
    passed = r.render("t", [action("utter_clarify", choices=[("a", "/a"), ("b", "/b")], options="A or B")])
    assert passed.text == "Which one: A or B?"


def test_a_tool_call_action_is_not_said_but_its_options_still_show():
    r = renderer(utter_done=["Done."])
    reply = r.render(
        "t",
        [
            action("lookup_order", kind="execute_task", tool={"name": "lookup_order", "ok": True}),
            action("utter_done", choices=[("Thanks", "/goodbye")]),
        ],
    )
    assert reply.text == "Done."
    assert list(reply.templates) == ["utter_done"]
    assert replies(reply) == [("Thanks", "/goodbye")]


def test_every_engine_response_has_builtin_wording():
    assert set(BUILTIN_RESPONSES) <= set(DEFAULT_RESPONSES)
    assert {"utter_error", "utter_transition", "utter_slot_updated"} <= set(ENGINE_RESPONSES)
    r = renderer(utter_fallback=["fallback"])
    for name in DEFAULT_RESPONSES:
        reply = r.render("t", [action(name)])  # no values at all: a variant without placeholders is said
        assert reply.text and reply.text != "fallback", name
        assert "{" not in reply.text, name
        assert list(reply.templates) == [name]


def test_builtin_wording_uses_the_values_it_gets_and_the_projects_own_wins():
    r = renderer(utter_fallback=["fallback"])
    assert r.render("t", [action("utter_resume", flow="booking a flight")]).text == (
        "Shall we get back to booking a flight?"
    )
    assert r.render("t", [action("utter_resume")]).text == "Shall we get back to what we were doing?"
    clarify = r.render("t", [action("utter_clarify", choices=[("a flight", "/f"), ("the weather", "/w")])])
    assert clarify.text == "Did you mean a flight or the weather?"
    assert r.render("t", [action("utter_clarify")]).text == BUILTIN_RESPONSES["utter_clarify"]
    own = renderer(utter_resume=["Back to {flow}?"], utter_fallback=["fallback"])
    assert own.render("t", [action("utter_resume", flow="the flight")]).text == "Back to the flight?"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("utter_ask_new_address", "What is the new address?"),
        ("utter_ask_passengers", "What is the passengers?"),
        ("utter_ask_order_id", "What is the order id?"),
    ],
)
def test_asking_for_a_slot_without_a_response_has_a_default_question(name, text):
    assert renderer(utter_fallback=["fallback"]).render("t", [action(name)]).text == text


def test_a_project_question_wins_over_the_default_and_unknown_names_still_fall_back():
    r = renderer(utter_ask_city=["Which city?"])
    assert r.render("t", [action("utter_ask_city")]).text == "Which city?"
    assert r.render("t", [action("utter_ask_")]).text == BUILTIN_FALLBACK
    assert r.render("t", [action("utter_unknown")]).text == BUILTIN_FALLBACK


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (["bacon"], "No bacon."),
        (["bacon", "cheese"], "No bacon and cheese."),
        (["ham", "eggs", "cheese"], "No ham, eggs and cheese."),
        ([2, 3.0], "No 2 and 3."),
    ],
)
def test_lists_read_as_words(value, text):
    r = renderer(utter_no=["No {items}."], utter_fallback=["nothing"])
    assert r.render("t", [action("utter_no", items=value)]).text == text


def test_an_empty_list_is_not_a_value():
    r = renderer(utter_no=["No {items}."], utter_fallback=["nothing"])
    assert r.render("t", [action("utter_no", items=[])]).text == "nothing"
