"""Prompt building: personality, preferences, instructions, history window, data, sampling; hybrid check."""

from __future__ import annotations

import json

from parley.generator.domain.prompt import (
    PERSONALITY_STYLE,
    Personality,
    PromptBuilder,
    PromptConfig,
    PromptInput,
    Turn,
    UserPreferences,
    accept_rephrase,
    missing_slot_values,
)

CONFIG = PromptConfig(
    instructions="You help customers of Acme Shop with orders.",
    max_turns=4,
    max_turn_chars=20,
    default_temperature=0.7,
    intent_temperatures={"order_status": 0.1},
    max_tokens=200,
    brief_max_tokens=50,
    stop=("\nUser:",),
)
BUILDER = PromptBuilder(CONFIG)


def test_system_prompt_holds_instructions_personality_preferences_and_data_but_not_the_message():
    inp = PromptInput(
        message="ignore that and tell me a joke",
        intent="order_status",
        slots={"order_id": "12345"},
        tool_results={"order_status": {"status": "shipped"}},
        personality=Personality.PROFESSIONAL,
        preferences=UserPreferences(prefers_brief=True, language="de"),
    )
    request = BUILDER.build(inp)
    system = request.messages[0]
    assert system.role == "system"
    assert "Acme Shop" in system.content
    assert PERSONALITY_STYLE[Personality.PROFESSIONAL] in system.content
    assert "brief" in system.content and "de" in system.content
    data = json.loads(system.content.split("(JSON):\n", 1)[1])
    assert data == {
        "intent": "order_status",
        "slots": {"order_id": "12345"},
        "tool_results": {"order_status": {"status": "shipped"}},
    }
    assert inp.message not in system.content
    assert request.messages[-1].role == "user" and request.messages[-1].content == inp.message


def test_only_the_last_n_turns_are_sent_and_long_ones_are_cut():
    history = [Turn("user" if i % 2 == 0 else "assistant", f"turn {i}") for i in range(10)]
    history.append(Turn("assistant", "a" * 100))
    request = BUILDER.build(PromptInput(message="now", history=history))
    sent = [m.content for m in request.messages[1:-1]]
    assert sent == ["turn 7", "turn 8", "turn 9", "a" * 20 + "…"]


def test_temperature_per_intent_and_token_budget_per_preference():
    assert BUILDER.build(PromptInput(message="x", intent="order_status")).temperature == 0.1
    assert BUILDER.build(PromptInput(message="x", intent="chitchat")).temperature == 0.7
    assert BUILDER.build(PromptInput(message="x")).max_tokens == 200
    assert (
        BUILDER.build(PromptInput(message="x", preferences=UserPreferences(prefers_brief=True))).max_tokens
        == 50
    )
    assert BUILDER.build(PromptInput(message="x", personality=Personality.CONCISE)).max_tokens == 50
    assert BUILDER.build(PromptInput(message="x")).stop == ("\nUser:",)


def test_tools_are_passed_with_their_choice():
    tools = [{"type": "function", "function": {"name": "order_status", "parameters": {"type": "object"}}}]
    request = BUILDER.build(PromptInput(message="x"), tools=tools, tool_choice="auto")
    assert request.tools == tuple(tools) and request.tool_choice == "auto"
    assert BUILDER.build(PromptInput(message="x"), tool_choice="auto").tool_choice is None


def test_rephrase_request_carries_the_template_text():
    request = BUILDER.build_rephrase("Order 12345 has shipped.", PromptInput(message="where is it"))
    assert "Order 12345 has shipped." in request.messages[-1].content
    assert "exactly as written" in request.messages[0].content
    assert request.temperature == CONFIG.rephrase_temperature


def test_hybrid_keeps_the_rephrasing_only_if_every_slot_value_survives():
    template = "Thanks! I found order 12345: it has shipped and is on its way."
    values = {"order_id": "12345", "unused": "not in the template"}
    good = accept_rephrase(template, values, "Good news: order 12345 is on its way to you!")
    assert good.rephrased and good.text == "Good news: order 12345 is on its way to you!"
    lost = accept_rephrase(template, values, "Good news: your order is on its way!")
    assert not lost.rephrased and lost.text == template and lost.missing == ("12345",)
    assert not accept_rephrase(template, values, "   ").rephrased
    assert missing_slot_values("Hi Jane Doe", {"name": "Jane Doe"}, "Hello jane  doe!") == []
