"""Conversation test files: parsing with file:line errors, checking turns, reports."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from parley.core.convtest import (
    _CHECKS,
    EXPECTATIONS,
    ConversationResult,
    ConvTestError,
    Observation,
    StepResult,
    check_step,
    format_result,
    junit_xml,
    load_tests,
    parse_tests,
    same_value,
)

EXAMPLE_TESTS = Path(__file__).resolve().parents[3] / "examples" / "order-support" / "tests"

GOOD = """\
conversations:
  - name: order status
    profile: {timezone: Europe/Berlin}
    now: "2026-11-25T10:00:00Z"
    steps:
      - user: "Hello, I need help with my order"
        intent: order_help
        flow: order_status
      - user: "My order number is 12345"
        slots: {order_id: "12345"}
        actions: [lookup_order, utter_order_shipped]
        bot_contains: [shipped, "12345"]
  - name: bye
    steps:
      - user: bye
        ended: true
"""


def test_a_file_parses_into_conversations_with_lines():
    first, second = parse_tests(GOOD, "orders.yml")
    assert (first.name, first.line, first.test_id) == ("order status", 2, "orders.yml::order status")
    assert first.profile == {"timezone": "Europe/Berlin"}
    assert first.now == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert [s.user for s in first.steps] == ["Hello, I need help with my order", "My order number is 12345"]
    assert [s.line for s in first.steps] == [6, 9]
    keys = [(e.key, e.line) for e in first.steps[1].expectations]
    assert keys == [("slots", 10), ("actions", 11), ("bot_contains", 12)]
    assert second.steps[0].expectations[0].value is True


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("conversations: []\n", "t.yml:1: conversations: must be a non-empty list"),
        ("tests: []\n", "t.yml:1: unknown key 'tests'"),
        ("- a\n", "t.yml:1: a conversation test file is a mapping"),
        ("conversations:\n  - steps: [{user: hi}]\n", "t.yml:2: a conversation needs a name"),
        ("conversations:\n  - name: x\n", "t.yml:2: a conversation needs steps"),
        (
            "conversations:\n  - name: x\n    steps:\n      - user: hi\n        bot_contain: hello\n",
            "t.yml:5: unknown key 'bot_contain'",
        ),
        (
            "conversations:\n  - name: x\n    steps:\n      - intent: greet\n",
            "t.yml:4: a step needs a user message",
        ),
        (
            "conversations:\n  - name: x\n    steps:\n      - user: hi\n        bot_matches: '(unclosed'\n",
            "t.yml:5: bot_matches: regular expression does not compile",
        ),
        (
            "conversations:\n  - name: x\n    steps:\n      - user: hi\n        ended: yes please\n",
            "t.yml:5: ended: must be true or false",
        ),
        (
            "conversations:\n  - name: x\n    steps:\n      - user: hi\n        slots: [a]\n",
            "t.yml:5: slots: must be a mapping",
        ),
        (
            "conversations:\n  - name: x\n    now: tomorrow\n    steps: [{user: hi}]\n",
            "t.yml:3: now: ",
        ),
        (
            "conversations:\n  - name: x\n    profile: {tz: UTC}\n    steps: [{user: hi}]\n",
            "t.yml:3: profile: unknown key(s) tz",
        ),
        (
            "conversations:\n  - name: x\n    steps: [{user: hi}]\n  - name: x\n    steps: [{user: ho}]\n",
            "t.yml:4: conversation name 'x' is used twice (also line 2)",
        ),
        ("conversations:\n  - name: x\n    steps: [{user: hi}\n", "t.yml:4: not valid YAML"),
    ],
)
def test_problems_name_the_file_and_line(text, problem):
    with pytest.raises(ConvTestError) as info:
        parse_tests(text, "t.yml")
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_every_problem_of_every_file_is_reported_together(tmp_path):
    (tmp_path / "a.yml").write_text(
        "conversations:\n  - name: x\n    steps:\n      - user: hi\n        bot: 3\n"
    )
    (tmp_path / "b.yml").write_text("conversations:\n  - name: y\n")
    (tmp_path / "notes.txt").write_text("not a test")
    with pytest.raises(ConvTestError) as info:
        load_tests([tmp_path])
    assert [p.split(": ")[0] for p in info.value.problems] == [f"{tmp_path}/a.yml:5", f"{tmp_path}/b.yml:2"]
    with pytest.raises(ConvTestError, match="cannot read"):
        load_tests([tmp_path / "missing.yml"])


def test_every_expectation_has_a_check():
    assert set(_CHECKS) == set(EXPECTATIONS)


SEEN = Observation(
    text="Thanks! Order 12345 has shipped.",
    quick_replies=("Yes", "No"),
    actions=(("lookup_order", "execute_task"), ("utter_order_shipped", "provide_info")),
    intent="inform_order_id",
    intents=("inform_order_id",),
    entities={"order_id": ("12345",)},
    slots={"order_id": "12345", "passengers": 2.0, "ingredients": ["bacon"]},
    flow="",
    step="",
    reason="flow",
)


def _step(expectations: str):
    return parse_tests(f"conversations:\n  - name: x\n    steps:\n      - user: hi\n{expectations}", "t.yml")[
        0
    ].steps[0]


def test_a_turn_that_does_what_was_expected_passes():
    step = _step(
        "        bot: 'Thanks! Order 12345 has shipped.'\n"
        "        bot_contains: [order 12345, SHIPPED]\n"
        "        bot_not_contains: cancelled\n"
        "        bot_matches: 'Order \\d{5}'\n"
        "        actions: [lookup_order, utter_order_shipped]\n"
        "        action_kinds: [execute_task, provide_info]\n"
        "        intent: inform_order_id\n"
        "        entities: {order_id: 12345, diet: null}\n"
        "        slots: {order_id: 12345, passengers: 2, ingredients: [bacon], diet: null}\n"
        "        flow: ''\n"
        "        reason: flow\n"
        "        ended: false\n"
        "        handoff: false\n"
        "        options: ['Yes', 'No']\n"
    )
    assert check_step(step, SEEN) == []


@pytest.mark.parametrize(
    ("expectation", "message"),
    [
        ("bot: 'Hello'", "expected the reply 'Hello'"),
        ("bot_contains: cancelled", "expected the reply to contain 'cancelled'; got 'Thanks! Order 12345"),
        ("bot_not_contains: shipped", "expected the reply not to contain 'shipped'"),
        ("bot_matches: '^Order'", "expected the reply to match /^Order/"),
        ("actions: [utter_order_shipped]", "expected actions ['utter_order_shipped'], got ['lookup_order', "),
        ("action_kinds: [ask]", "expected action kinds ['ask'], got ['execute_task', 'provide_info']"),
        ("intent: order_status", "expected intent 'order_status', got 'inform_order_id'"),
        ("intent: [order.cancel, address.update]", "expected intents ['order.cancel', 'address.update']"),
        ("entities: {order_id: '67890'}", "expected entity order_id='67890', got {'order_id': ['12345']}"),
        ("entities: {order_id: null}", "expected no 'order_id' entity, got ['12345']"),
        ("slots: {order_id: '67890'}", "expected slot order_id='67890', got '12345'"),
        ("slots: {diet: vegan}", "expected slot diet='vegan', got empty"),
        ("slots: {order_id: null}", "expected slot order_id=empty, got '12345'"),
        ("flow: book_flight", "expected active flow 'book_flight', got ''"),
        ("reason: digression", "expected reason 'digression', got 'flow'"),
        ("ended: true", "expected ended=true, got false"),
        ("options: ['Yes']", "expected quick replies ['Yes'], got ['Yes', 'No']"),
    ],
)
def test_each_unmet_expectation_says_what_differs(expectation, message):
    [mismatch] = check_step(_step(f"        {expectation}\n"), SEEN)
    assert mismatch.line == 5
    assert mismatch.message.startswith(message), mismatch.message
    assert str(mismatch).startswith(f"line 5: {mismatch.key}: ")


@pytest.mark.parametrize(
    ("expected", "got", "same"),
    [
        (2, 2.0, True),
        ("12345", 12345.0, True),
        (12345, "12345", True),
        (None, None, True),
        (None, [], True),
        (None, "x", False),
        ("x", None, False),
        (["bacon"], ["bacon"], True),
        (["bacon"], ["bacon", "ham"], False),
        (True, 1, False),
        ("2026-12-01", "2026-12-01", True),
    ],
)
def test_slot_values_compare_by_value(expected, got, same):
    assert same_value(expected, got) is same


def _result(passed: bool) -> ConversationResult:
    conversation = parse_tests(GOOD, Path("tests/orders.yml"))[0]
    result = ConversationResult(conversation, conversation_id="c-1", duration_s=1.25)
    result.steps.append(StepResult(conversation.steps[0], observation=SEEN))
    second = StepResult(conversation.steps[1], observation=SEEN)
    if not passed:
        second.mismatches = check_step(conversation.steps[1], Observation(text="Sorry?"))
    result.steps.append(second)
    return result


def test_a_failure_report_shows_the_transcript_and_each_difference():
    report = format_result(_result(passed=False))
    assert report.startswith("FAIL orders.yml::order status (2/2 steps, 1.2 s)")
    assert (
        "  1. user: Hello, I need help with my order\n     bot:  Thanks! Order 12345 has shipped." in report
    )
    assert "✗ step at tests/orders.yml:9" in report
    assert "line 10: slots: expected slot order_id='12345', got empty" in report
    assert "line 11: actions: expected actions ['lookup_order', 'utter_order_shipped'], got []" in report
    assert format_result(_result(passed=True)) == "PASS orders.yml::order status (2/2 steps, 1.2 s)"


def test_junit_report_has_one_case_per_conversation():
    xml = junit_xml([_result(passed=True), _result(passed=False)])
    root = ET.fromstring(xml)
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    cases = root.findall("testcase")
    assert [c.get("classname") for c in cases] == ["orders", "orders"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("step 2 ('My order number is 12345'): line 10: slots:")


def test_the_example_tests_load():
    conversations = load_tests([EXAMPLE_TESTS])
    assert len(conversations) >= 20
    assert len({c.test_id for c in conversations}) == len(conversations)
