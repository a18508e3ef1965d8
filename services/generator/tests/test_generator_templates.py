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


def action(name: str, **params: Any) -> dialog_pb2.Action:
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


def test_example_responses_render_with_params(renderer):
    reply = renderer.render("t1", [action("utter_order_status", order_id="12345")])
    assert reply.text == "Thanks! I found order 12345: it has shipped and is on its way."
    assert list(reply.templates) == ["utter_order_status"]
    reply = renderer.render("t2", [action("utter_delivery_estimate", order_id="12345")])
    assert reply.text == "Order 12345 should arrive within 2 business days."


def test_struct_numbers_render_as_written(renderer):
    reply = renderer.render("t1", [action("utter_delivery_estimate", order_id=12345)])
    assert reply.text == "Order 12345 should arrive within 2 business days."


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


def test_the_variant_is_stable_per_turn_and_varies_across_turns(renderer):
    texts = {renderer.render(f"turn-{i}", [action("utter_greet")]).text for i in range(40)}
    assert len(texts) == 2  # both variants of utter_greet get used
    for i in range(10):
        first = renderer.render(f"turn-{i}", [action("utter_greet")]).text
        assert all(renderer.render(f"turn-{i}", [action("utter_greet")]).text == first for _ in range(3))
    # A fresh renderer (another replica, or after a restart) picks the same variant.
    other = TemplateRenderer(renderer_project_responses(renderer))
    assert other.render("turn-7", [action("utter_greet")]).text == renderer.render(
        "turn-7", [action("utter_greet")]
    ).text


def renderer_project_responses(renderer):
    from parley.core.project import load_project  # noqa: PLC0415

    from conftest import EXAMPLE  # type: ignore[import-not-found]  # noqa: PLC0415

    return load_project(EXAMPLE).responses
