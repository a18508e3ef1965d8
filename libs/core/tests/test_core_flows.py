"""flows.yml version 2: the schema, every cross-check with its exact file:line message, and conditions."""

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from parley.core.conditions import ConditionError, compile_condition, render_template, template_names
from parley.core.flows import (
    BUILTIN_RESPONSES,
    STEP_KEYS,
    CollectStep,
    EndStep,
    FlowsFileV2,
    FlowSpec,
    RespondStep,
    ValidateStep,
    is_builtin_response,
    reachable_steps,
    step_kind,
    transitions,
)
from parley.core.project import ProjectError, load_project

ASSISTANT = "name: flows-test\n"

NLU = """\
version: "1"
intents:
  greet:
    examples: [hi, hello there]
  goodbye:
    examples: [bye, see you later]
  affirm:
    examples: ["yes please", sure]
  deny:
    examples: ["no thanks", nope]
  order_status:
    examples: ["where is order [12345](order_id)", track my package]
  order.cancel:
    examples: [cancel my order, "cancel order [12345](order_id)"]
  meal:
    examples: [I want a vegan meal, meal preference]
entities:
  order_id:
    type: id
    regex: '(\\d{5})'
"""

RESPONSES = """\
responses:
  utter_bad_order_id:
    - text: "{value} is not an order number."
  utter_shipped:
    - text: "Order {order_id} has shipped."
  utter_pending:
    - text: "Order {order_id} is being prepared."
  utter_anything_else:
    - text: Anything else?
  utter_confirm_cancel:
    - text: "Cancel order {order_id}?"
  utter_cancelled:
    - text: Done, it's cancelled.
  utter_which_to_keep:
    - text: Which one should I keep?
"""

TOOLS = """\
version: "1"
tools:
  order_lookup:
    description: Look up an order.
    parameters:
      type: object
      properties: {order_id: {type: string}}
      required: [order_id]
    python: orders:lookup
"""

FLOWS = """\
version: "2"
settings:
  fallback:
    handoff_after: 2
slots:
  order_id:
    entity: order_id
  diet:
    type: categorical
    values: [vegan, vegetarian, none]
  ingredients:
    type: list
  passengers:
    type: integer
    min: 1
    max: 9
constraints:
  - name: veggie_bacon
    when: "slots.diet in ['vegan', 'vegetarian']"
    forbid: "'bacon' in slots.ingredients"
    slots: [diet, ingredients]
    ask: utter_which_to_keep
flows:
  order_status:
    trigger:
      intents: [order_status]
    steps:
      - collect: order_id
        validate: "len(value) == 5"
        invalid_response: utter_bad_order_id
      - action: order_lookup
        args: {order_id: "{order_id}"}
        save_as: order
        on_error: failed
      - branch:
          - if: "results.order.status == 'shipped'"
            then: shipped
          - else: pending
      - id: shipped
        respond: utter_shipped
        next: more
      - id: pending
        respond: utter_pending
      - id: more
        question: utter_anything_else
        expect: {affirm: end, deny: bye}
        timeout_s: 60
        on_timeout: bye
      - id: bye
        end: conversation
        respond: utter_goodbye
      - id: failed
        handoff: utter_handoff
        queue: orders
  cancel:
    trigger:
      intents: [order.cancel]
    steps:
      - call: identify
      - validate: [order_id]
        on_missing: ask_again
      - confirm: utter_confirm_cancel
        on_confirm: done
        on_deny: end
      - id: done
        respond: utter_cancelled
        next: end
      - id: ask_again
        link: order_status
  identify:
    steps:
      - collect: order_id
        ask: utter_ask_order_id
  meal:
    trigger: {intents: [meal]}
    reset_slots: [diet, ingredients]
    steps:
      - collect: diet
      - collect: ingredients
      - end: true
"""


def _project(
    tmp_path: Path, flows: str = FLOWS, *, responses: str = RESPONSES, tools: str | None = TOOLS
) -> Path:
    root = tmp_path / "project"
    root.mkdir(parents=True, exist_ok=True)
    (root / "assistant.yml").write_text(ASSISTANT)
    (root / "nlu.yml").write_text(NLU)
    (root / "responses.yml").write_text(responses)
    (root / "flows.yml").write_text(flows)
    if tools is not None:
        (root / "tools.yml").write_text(tools)
        (root / "tools").mkdir(exist_ok=True)
        (root / "tools" / "orders.py").write_text("def lookup(order_id):\n    return {'status': 'shipped'}\n")
    return root


def _line(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the ``nth`` line containing ``needle`` (-1: the last one)."""
    lines = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert lines, needle
    return lines[nth]


def _problems(root: Path) -> list[str]:
    with pytest.raises(ProjectError) as info:
        load_project(root)
    return info.value.problems


# --- the valid project ------------------------------------------------------------------------------------


def test_a_project_using_every_step_type_loads_without_warnings(tmp_path):
    project = load_project(_project(tmp_path))
    assert set(project.flows.flows) == {"order_status", "cancel", "identify", "meal"}
    kinds = {step_kind(s) for flow in project.flows.flows.values() for s in flow.steps}
    assert kinds == set(STEP_KEYS)
    assert project.warnings == ()
    assert list(project.tools.tools) == ["order_lookup"]
    assert project.tools.tools["order_lookup"].timeout_s == 5
    collect = project.flows.flows["order_status"].steps[0]
    assert isinstance(collect, CollectStep) and collect.validate_ == "len(value) == 5"


def test_a_project_without_tools_yml_has_no_tools(tmp_path):
    flows = FLOWS.replace(
        '      - action: order_lookup\n        args: {order_id: "{order_id}"}\n        save_as: order\n'
        "        on_error: failed\n",
        "",
    ).replace("results.order.status", "slots.order_id")
    project = load_project(_project(tmp_path, flows, tools=None))
    assert project.tools.tools == {}


def test_importing_the_schema_raises_no_pydantic_warning():
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import parley.core.flows, parley.core.project"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# --- the step union ---------------------------------------------------------------------------------------


def _flow(*steps: dict) -> FlowSpec:
    return FlowSpec.model_validate({"steps": list(steps)})


def test_a_step_type_is_chosen_by_its_key_even_when_another_types_key_is_a_field():
    flow = _flow(
        {"collect": "x", "validate": "value > 1"},
        {"end": True, "respond": "utter_bye"},
        {"validate": ["x"], "on_missing": "end"},
    )
    assert [step_kind(s) for s in flow.steps] == ["collect", "end", "validate"]
    assert isinstance(flow.steps[1], EndStep) and flow.steps[1].respond == "utter_bye"
    assert isinstance(flow.steps[2], ValidateStep) and flow.steps[2].validate_ == ["x"]


def test_validate_is_the_yaml_key_and_validate_underscore_the_attribute():
    step = CollectStep(collect="x", validate_="value > 1")
    assert step.model_dump(by_alias=True)["validate"] == "value > 1"
    assert CollectStep.model_validate({"collect": "x", "validate": "value > 1"}) == step
    assert FlowSpec(steps=[step, RespondStep(respond="utter_x")]).steps[0] is step


@pytest.mark.parametrize(
    ("step", "loc", "message"),
    [
        ({"respond": "a", "question": "b"}, (), "has 'respond' and 'question'"),
        ({"next": "x"}, (), "a step needs one of the keys respond, question, collect"),
        ("utter_hi", (), "a step is a mapping"),
        ({"confirm": "c", "on_maybe": "x"}, ("<confirm step>", "on_maybe"), "Extra inputs"),
        ({"question": "q", "expect": {}}, ("<question step>", "expect"), "at least 1 item"),
    ],
)
def test_a_bad_step_gives_one_error_about_its_own_type(step, loc, message):
    with pytest.raises(ValidationError) as info:
        _flow(step)
    errors = info.value.errors()
    assert len(errors) == 1, errors  # not one per union branch
    assert errors[0]["loc"] == ("steps", 0, *loc)
    assert message in errors[0]["msg"]


def test_builtin_responses_cover_the_engines_defaults():
    assert {"utter_rephrase", "utter_handoff", "utter_resume", "utter_greet"} <= set(BUILTIN_RESPONSES)
    assert is_builtin_response("utter_ask_order_id", ["order_id"])
    assert not is_builtin_response("utter_ask_email", ["order_id"])
    assert not is_builtin_response("utter_shipped")


def test_transitions_and_reachability_follow_next_branches_and_fall_through():
    flow = _flow(
        {"collect": "x", "on_fail": "help"},
        {"branch": [{"if": "slots.x > 1", "then": "big"}, {"else": "end"}]},
        {"respond": "utter_never"},
        {"id": "big", "confirm": "utter_ok", "on_deny": "repeat"},
        {"id": "help", "handoff": True},
    )
    edges = transitions(flow)
    assert [(t.label, t.target) for t in edges[0]] == [("on_fail", 4), ("", 1)]
    assert [(t.label, t.target) for t in edges[1]] == [("if slots.x > 1", 3), ("else", "end")]
    assert [(t.label, t.target) for t in edges[3]] == [("on_deny", 3), ("", 4)]
    assert edges[4] == []
    assert reachable_steps(flow) == {0, 1, 3, 4}


# --- cross-checks, each with its exact file:line message ----------------------------------------------------

CASES = [
    (
        "on_confirm: done",
        "on_confirm: finished",
        "on_confirm: finished",
        "flows.cancel.steps[2].on_confirm: 'finished' is not a step id of flow 'cancel' "
        "(nor one of end, handoff, repeat)",
    ),
    (
        "deny: bye}",
        "deny: byebye}",
        "deny: byebye",
        "flows.order_status.steps[5].expect.deny: 'byebye' is not a step id of flow 'order_status' "
        "(nor one of end, handoff, repeat)",
    ),
    (
        "then: shipped",
        "then: shiped",
        "then: shiped",
        "flows.order_status.steps[2].branch[0].then: 'shiped' is not a step id of flow 'order_status' "
        "(nor one of end, handoff, repeat)",
    ),
    (
        "on_timeout: bye",
        "on_timeout: later",
        "on_timeout: later",
        "flows.order_status.steps[5].on_timeout: 'later' is not a step id of flow 'order_status' "
        "(nor one of end, handoff, repeat)",
    ),
    (
        "      - id: ask_again\n        link: order_status\n",
        "      - id: ask_again\n        link: order_status\n"
        "      - id: done\n        respond: utter_cancelled\n",
        "id: done",
        "flows.cancel.steps[5].id: step id 'done' is used twice in flow 'cancel' (also steps[3])",
    ),
    (
        "id: failed",
        "id: handoff",
        "id: handoff",
        "flows.order_status.steps[7].id: 'handoff' is reserved as a jump target; choose another step id",
    ),
    (
        "collect: diet",
        "collect: diets",
        "collect: diets",
        "flows.meal.steps[0].collect: slot 'diets' is not declared under slots",
    ),
    (
        "validate: [order_id]",
        "validate: [order]",
        "validate: [order]",
        "flows.cancel.steps[1].validate[0]: slot 'order' is not declared under slots",
    ),
    (
        "reset_slots: [diet, ingredients]",
        "reset_slots: [diet, extras]",
        "reset_slots:",
        "flows.meal.reset_slots[1]: slot 'extras' is not declared under slots",
    ),
    (
        "slots: [diet, ingredients]",
        "slots: [diet, toppings]",
        "slots: [diet, toppings]",
        "constraints[0].slots[1]: slot 'toppings' is not declared under slots",
    ),
    (
        "respond: utter_shipped",
        "respond: utter_shiped",
        "respond: utter_shiped",
        "flows.order_status.steps[3].respond: response 'utter_shiped' is not defined in responses.yml",
    ),
    (
        "ask: utter_ask_order_id",
        "ask: utter_ask_email",
        "ask: utter_ask_email",
        "flows.identify.steps[0].ask: response 'utter_ask_email' is not defined in responses.yml",
    ),
    (
        "question: utter_anything_else",
        "question: utter_more",
        "question: utter_more",
        "flows.order_status.steps[5].question: response 'utter_more' is not defined in responses.yml",
    ),
    (
        "confirm: utter_confirm_cancel",
        "confirm: utter_sure",
        "confirm: utter_sure",
        "flows.cancel.steps[2].confirm: response 'utter_sure' is not defined in responses.yml",
    ),
    (
        "invalid_response: utter_bad_order_id",
        "invalid_response: utter_bad",
        "invalid_response: utter_bad",
        "flows.order_status.steps[0].invalid_response: response 'utter_bad' is not defined in responses.yml",
    ),
    (
        "handoff: utter_handoff",
        "handoff: utter_transfer",
        "handoff: utter_transfer",
        "flows.order_status.steps[7].handoff: response 'utter_transfer' is not defined in responses.yml",
    ),
    (
        "respond: utter_goodbye",
        "respond: utter_farewell",
        "respond: utter_farewell",
        "flows.order_status.steps[6].respond: response 'utter_farewell' is not defined in responses.yml",
    ),
    (
        "ask: utter_which_to_keep",
        "ask: utter_which",
        "ask: utter_which",
        "constraints[0].ask: response 'utter_which' is not defined in responses.yml",
    ),
    (
        "    handoff_after: 2",
        "    handoff_after: 2\n    rephrase: utter_what",
        "rephrase: utter_what",
        "settings.fallback.rephrase: response 'utter_what' is not defined in responses.yml",
    ),
    (
        "settings:\n",
        "settings:\n  greet_response: utter_hello\n",
        "greet_response",
        "settings.greet_response: response 'utter_hello' is not defined in responses.yml",
    ),
    (
        "intents: [meal]",
        "intents: [food]",
        "intents: [food]",
        "flows.meal.trigger.intents[0]: intent 'food' is not defined in nlu.yml",
    ),
    (
        "{affirm: end, deny: bye}",
        "{agree: end, deny: bye}",
        "agree: end",
        "flows.order_status.steps[5].expect.agree: intent 'agree' is not defined in nlu.yml",
    ),
    (
        "    entity: order_id",
        "    entity: order_number",
        "entity: order_number",
        "slots.order_id.entity: entity 'order_number' is not defined in nlu.yml",
    ),
    (
        "call: identify",
        "call: identification",
        "call: identification",
        "flows.cancel.steps[0].call: flow 'identification' is not defined under flows",
    ),
    (
        "link: order_status",
        "link: status",
        "link: status",
        "flows.cancel.steps[4].link: flow 'status' is not defined under flows",
    ),
    (
        "        ask: utter_ask_order_id\n",
        "        ask: utter_ask_order_id\n      - call: cancel\n",
        "call: cancel",
        "flows.identify.steps[1].call: call cycle cancel -> identify -> cancel: a flow cannot call itself, "
        "directly or through other flows (use link to continue in a flow for good)",
    ),
    (
        "action: order_lookup",
        "action: order_find",
        "action: order_find",
        "flows.order_status.steps[1].action: tool 'order_find' is not defined in tools.yml (order_lookup)",
    ),
    (
        'args: {order_id: "{order_id}"}',
        'args: {order_id: "#{order}"}',
        "args:",
        "flows.order_status.steps[1].args.order_id: {order} names no slot: "
        "only declared slots can be filled in",
    ),
    (
        "when: \"slots.diet in ['vegan', 'vegetarian']\"",
        "when: \"slots.diett in ['vegan', 'vegetarian']\"",
        "when:",
        "constraints[0].when: the condition reads slot 'diett', which is not declared under slots",
    ),
    (
        "if: \"results.order.status == 'shipped'\"",
        "if: \"__import__('os').system('ls')\"",
        "if:",
        "flows.order_status.steps[2].branch[0].if: condition does not compile: only the functions len, "
        "lower, int, float, str can be called in a condition (column 1 of \"__import__('os').system('ls')\")",
    ),
    (
        'validate: "len(value) == 5"',
        'validate: "value.__class__ == 5"',
        'validate: "value.__class__',
        "flows.order_status.steps[0].validate: condition does not compile: '__class__': names starting "
        "with '_' are not allowed in a condition (column 7 of 'value.__class__ == 5')",
    ),
    (
        "      - call: identify\n",
        "      - call: identify\n        respond: utter_cancelled\n",
        "call: identify",
        "flows.cancel.steps[0]: a step has one type, but this one has 'respond' and 'call': "
        "split it into steps",
    ),
    (
        "      - collect: diet\n",
        "      - collect_slot: diet\n",
        "collect_slot: diet",
        "flows.meal.steps[0]: a step needs one of the keys respond, question, collect, validate, confirm, "
        "branch, action, call, link, handoff, end (it has 'collect_slot')",
    ),
    (
        "        on_deny: end\n",
        "        on_deny: end\n        on_maybe: end\n",
        "on_maybe",
        "flows.cancel.steps[2].on_maybe: confirm step: unknown field (a confirm step has id, next, confirm, "
        "on_confirm, on_deny, max_attempts)",
    ),
    (
        "timeout_s: 60",
        "timeout_s: soon",
        "timeout_s: soon",
        "flows.order_status.steps[5].timeout_s: question step: Input should be a valid number, "
        "unable to parse string as a number",
    ),
    (
        "          - else: pending",
        "          - else: pending\n            then: more",
        "else: pending",
        "flows.order_status.steps[2].branch[1]: branch step: a branch case is either {if: <condition>, "
        "then: <target>} or {else: <target>}",
    ),
]


@pytest.mark.parametrize(("old", "new", "needle", "expected"), CASES, ids=[c[3].split(":")[0] for c in CASES])
def test_each_broken_reference_is_reported_with_file_line_and_path(tmp_path, old, new, needle, expected):
    assert old in FLOWS
    text = FLOWS.replace(old, new, 1)
    root = _project(tmp_path, text)
    problems = _problems(root)
    wanted = f"{root / 'flows.yml'}:{_line(text, needle, -1 if 'used twice' in expected else 0)}: {expected}"
    assert wanted in problems, "\n".join(problems)


def test_a_condition_with_bad_syntax_names_the_column(tmp_path):
    text = FLOWS.replace("if: \"results.order.status == 'shipped'\"", 'if: "results.order.status =="')
    root = _project(tmp_path, text)
    prefix = f"{root / 'flows.yml'}:{_line(text, 'if:')}: flows.order_status.steps[2].branch[0].if: "
    matching = [p for p in _problems(root) if p.startswith(prefix)]
    assert matching and "condition does not compile: invalid syntax" in matching[0], matching


def test_an_action_without_tools_yml_says_there_are_none(tmp_path):
    root = _project(tmp_path, tools=None)
    expected = (
        f"{root / 'flows.yml'}:{_line(FLOWS, 'action: order_lookup')}: flows.order_status.steps[1].action: "
        "tool 'order_lookup' is not defined in tools.yml (none: the project has no tools.yml or it is empty)"
    )
    assert expected in _problems(root)


def test_a_version_1_flows_file_is_refused_with_a_pointer_to_the_docs(tmp_path):
    v1 = '# old rules\nversion: "1"\nslots:\n  order_id:\n    from_entity: order_id\n'
    v1 += "rules:\n  - intent: greet\n"
    root = _project(tmp_path, v1)
    problems = _problems(root)
    assert len(problems) == 1
    assert problems[0].startswith(f"{root / 'flows.yml'}:2: this is a version 1 flows.yml")
    assert "docs/dialog.md" in problems[0]


def test_every_problem_is_reported_at_once(tmp_path):
    text = FLOWS.replace("collect: diet", "collect: diets").replace("intents: [meal]", "intents: [food]")
    text = text.replace("respond: utter_shipped", "respond: utter_shiped")
    assert len(_problems(_project(tmp_path, text))) == 3


def test_references_into_a_broken_nlu_file_are_not_reported_twice(tmp_path):
    root = _project(tmp_path)
    (root / "nlu.yml").write_text("intents: {greet: {examples: [hi]}}\n")
    problems = _problems(root)
    assert all("nlu.yml" in p.split(":")[0] for p in problems), problems


# --- tools.yml problems ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "needle", "expected"),
    [
        (
            "python: orders:lookup",
            "python: orderz:lookup",
            "python:",
            "tools.order_lookup.python: module 'orderz' not found: expected tools/orderz.py or "
            "tools/orderz/__init__.py",
        ),
        (
            "python: orders:lookup",
            "python: orders.lookup",
            "python:",
            "tools.order_lookup.python: 'orders.lookup'",
        ),
        (
            "      type: object\n",
            "      type: objekt\n",
            "parameters:",
            "tools.order_lookup.parameters: not a valid JSON schema at type: 'objekt' is not valid",
        ),
        (
            "      type: object\n",
            "      type: string\n",
            "parameters:",
            "tools.order_lookup.parameters: must be an object schema",
        ),
        (
            "    python: orders:lookup\n",
            "    python: orders:lookup\n    retries: 3\n",
            "retries",
            "tools.order_lookup.retries: Extra inputs are not permitted",
        ),
    ],
)
def test_tools_yml_problems_have_file_and_line(tmp_path, old, new, needle, expected):
    assert old in TOOLS
    root = _project(tmp_path)
    text = TOOLS.replace(old, new)
    (root / "tools.yml").write_text(text)
    problems = _problems(root)
    prefix = f"{root / 'tools.yml'}:{_line(text, needle)}: {expected}"
    assert any(p.startswith(prefix) for p in problems), (prefix, problems)


# --- warnings ---------------------------------------------------------------------------------------------


def test_unreachable_steps_and_flows_that_never_start_are_warnings(tmp_path):
    text = FLOWS.replace(
        "      - end: true\n", "      - end: true\n      - respond: utter_cancelled\n"
    ).replace("call: identify", "respond: utter_cancelled")
    text = text.replace("settings:\n", "settings:\n  correct_intent: change_it\n")
    root = _project(tmp_path, text)
    project = load_project(root)
    path = root / "flows.yml"
    assert set(project.warnings) == {
        f"{path}:{_line(text, 'respond: utter_cancelled', -1)}: flows.meal.steps[3]: "
        "no path from the first step reaches this step",
        f"{path}:{_line(text, '  identify:')}: flows.identify: flow 'identify' never starts: "
        "it has no trigger and no flow calls or links it",
        f"{path}:{_line(text, 'correct_intent')}: settings.correct_intent: "
        "intent 'change_it' is not defined in nlu.yml",
    }


# --- conditions -------------------------------------------------------------------------------------------

NAMESPACE = {
    "slots": {
        "diet": "vegan",
        "passengers": 5,
        "ingredients": ["bacon", "egg"],
        "values": 3,
        "order_id": None,
    },
    "entities": {"order_id": "12345"},
    "intent": "Order.Cancel",
    "results": {"weather": {"temp": 21, "city": "Oslo"}},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("slots.diet == 'vegan'", True),
        ("slots.passengers > 4 and slots.diet in ['vegan', 'vegetarian']", True),
        ("'bacon' in slots.ingredients and not 'ham' in slots.ingredients", True),
        ("slots.missing == None and slots.order_id is None", True),
        ("slots.missing > 3 or slots.missing < 3", False),  # an empty slot is neither above nor below
        ("'x' in slots.missing", False),
        ("'x' not in slots.missing", True),
        ("results.weather.temp >= 20 and results.weather.city == 'Oslo'", True),
        ("results.flight.price.total == None", True),  # missing keys all the way down
        ("len(slots.ingredients) == 2 and len(slots.missing) == 0", True),
        ("lower(intent) == 'order.cancel'", True),
        ("int(entities.order_id) == 12345 and str(slots.passengers) == '5'", True),
        ("float('2.5') * 2 == 5", True),
        ("slots.values == 3", True),  # a slot named like a dict method reads the slot
        (
            "slots['diet'] == 'vegan' and slots.ingredients[0] == 'bacon' and slots.ingredients[7] == None",
            True,
        ),
        ("slots.passengers + 1 if slots.diet else 0", True),
        ("value", False),
    ],
)
def test_conditions_evaluate_over_slots_entities_intent_and_results(text, expected):
    assert compile_condition(text).evaluate(NAMESPACE) is expected


def test_value_is_the_candidate_of_a_collect_step():
    condition = compile_condition("value in ['vegan', 'vegetarian'] and len(value) > 3")
    assert condition.evaluate({"value": "vegan"})
    assert not condition.evaluate({"value": "meat"})
    assert not condition.evaluate({})


@pytest.mark.parametrize(
    "text",
    [
        "int('twelve') == 12",
        "slots.diet > 3",  # str > int
        "'a' * 10000000 == ''",  # simpleeval refuses huge strings
        "slots.ingredients * 10000000 == []",
        "len(slots.passengers) == 1",
    ],
)
def test_a_failing_condition_is_false_and_never_raises(text):
    assert compile_condition(text).evaluate(NAMESPACE) is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "__import__('os').system('rm -rf /')",
            "only the functions len, lower, int, float, str can be called",
        ),
        ("slots.__class__", "names starting with '_' are not allowed"),
        ("slots.diet.__class__.__mro__[1].__subclasses__()", "only the functions"),
        ("slots.diet.__class__.__mro__", "names starting with '_'"),
        ("slots['__class__'] == 1 or ().__class__", "names starting with '_'"),
        ("open('/etc/passwd')", "only the functions"),
        ("slots.diet.upper()", "only the functions"),
        ("lower(slots.diet, 'x')", "lower() takes exactly one argument"),
        ("(lambda: 1)()", "only the functions"),
        ("lambda: 1", "lambda is not allowed"),
        ("[x for x in slots.ingredients]", "a comprehension is not allowed"),
        ("f'{slots}'", "an f-string is not allowed"),
        ("2 ** 1000000", "'**' is not allowed"),
        ("os.system('x')", "only the functions"),
        ("os.environ", "unknown name 'os'"),
        ("exec", "unknown name 'exec'"),
        ("len", "call it with parentheses"),
        ("slots.diet =", "invalid syntax"),
        ("slots.diet; import os", "invalid syntax"),
        ("(x := 1)", "':=' is not allowed"),
        ("slots[0:2]", "slices are not allowed"),
        ("   ", "cannot be empty"),
    ],
)
def test_unsafe_or_malformed_conditions_fail_when_compiled(text, message):
    with pytest.raises(ConditionError, match=None) as info:
        compile_condition(text)
    assert message in str(info.value)


def test_a_condition_knows_the_slots_it_reads():
    condition = compile_condition("slots.diet == 'vegan' and slots['passengers'] > 1 and results.x.diet")
    assert condition.slots == {"diet", "passengers"}


def test_templates_fill_slots_and_nothing_else():
    slots = {"order_id": 12345, "city": "Oslo", "none": None}
    assert render_template("{order_id}", slots) == 12345  # a whole placeholder keeps the type
    assert render_template("order {order_id} to {city}{none}", slots) == "order 12345 to Oslo"
    assert render_template("{missing}", slots) is None
    assert render_template({"a": ["{city}", 3], "b": True}, slots) == {"a": ["Oslo", 3], "b": True}
    # Anything but {name} stays literal text: no attribute access, indexing, conversions or format specs.
    for literal in ("{city.__class__}", "{city[0]}", "{city!r}", "{0}", "{city:>10}", "{ city }"):
        assert render_template(literal, slots) == literal
    assert template_names({"a": "{x} {y}", "b": ["{z}"], "c": 1}) == {"x", "y", "z"}


def test_flows_file_refuses_v1_data_directly():
    with pytest.raises(ValidationError, match=r"version 1 flows\.yml"):
        FlowsFileV2.model_validate({"version": "1", "rules": []})
    assert (
        FlowsFileV2.model_validate({"version": 2, "flows": {"a": {"steps": [{"end": True}]}}}).version == "2"
    )
