"""`parley validate` and `parley flows show` on projects with version 2 flows."""

from pathlib import Path

import pytest

from parley.cli.main import main

NLU = """\
intents:
  greet: {examples: [hi, hello]}
  order.cancel: {examples: [cancel my order, "cancel order [12345](order_id)"]}
  affirm: {examples: ["yes", sure]}
  deny: {examples: ["no", nope]}
entities:
  order_id: {regex: '(\\d{5})'}
"""

RESPONSES = """\
responses:
  utter_confirm_cancel: [{text: "Cancel order {order_id}?"}]
  utter_cancelled: [{text: Cancelled.}]
"""

FLOWS = """\
version: "2"
slots:
  order_id: {entity: order_id}
flows:
  cancel:
    trigger: {intents: [order.cancel]}
    steps:
      - collect: order_id
      - confirm: utter_confirm_cancel
        on_confirm: done
        on_deny: end
      - id: done
        respond: utter_cancelled
  greet:
    trigger: {intents: [greet]}
    steps:
      - respond: utter_greet
"""


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "assistant"
    root.mkdir()
    (root / "assistant.yml").write_text("name: cli-flows\n")
    (root / "nlu.yml").write_text(NLU)
    (root / "responses.yml").write_text(RESPONSES)
    (root / "flows.yml").write_text(FLOWS)
    return root


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_validate_accepts_a_valid_project_and_prints_warnings(project, capsys):
    text = FLOWS.replace(
        "      - respond: utter_greet\n", "      - end: true\n      - respond: utter_greet\n"
    )
    (project / "flows.yml").write_text(text)
    assert main(["validate", "--project", str(project)]) == 0
    out = capsys.readouterr()
    assert "cli-flows: 4 intents, 2 flows, 1 slots, 2 responses, 0 tools — valid (1 warnings)" in out.out
    line = _line(text, "respond: utter_greet")
    assert f"warning: {project / 'flows.yml'}:{line}: flows.greet.steps[1]: no path" in out.err


def test_validate_fails_with_file_and_line_on_a_broken_flow(project, capsys):
    text = FLOWS.replace("on_confirm: done", "on_confirm: finish").replace("utter_cancelled", "utter_gone")
    (project / "flows.yml").write_text(text)
    assert main(["validate", "--project", str(project)]) == 1
    err = capsys.readouterr().err.splitlines()
    flows = project / "flows.yml"
    assert err == [
        f"{flows}:{_line(text, 'on_confirm')}: flows.cancel.steps[1].on_confirm: "
        "'finish' is not a step id of flow 'cancel' (nor one of end, handoff, repeat)",
        f"{flows}:{_line(text, 'respond: utter_gone')}: flows.cancel.steps[2].respond: "
        "response 'utter_gone' is not defined in responses.yml",
        "2 problem(s) found",
    ]


def test_validate_explains_that_version_1_flows_changed(project, capsys):
    (project / "flows.yml").write_text(
        'version: "1"\nrules:\n  - intent: greet\n    actions: [utter_greet]\n'
    )
    assert main(["validate", "--project", str(project)]) == 1
    err = capsys.readouterr().err
    assert f"{project / 'flows.yml'}:1: this is a version 1 flows.yml" in err
    assert "docs/dialog.md" in err


def test_flows_show_prints_mermaid_for_all_flows_or_one(project, capsys):
    assert main(["flows", "show", str(project)]) == 0
    both = capsys.readouterr().out
    assert both.startswith("flowchart TD\n") and 'subgraph f0_flow["cancel"]' in both and "f1_flow" in both
    assert main(["flows", "show", str(project), "--flow", "cancel"]) == 0
    one = capsys.readouterr().out
    assert one.startswith("flowchart TD\n") and "subgraph" not in one
    assert 's1{"confirm: utter_confirm_cancel<br/>#quot;Cancel order {order_id}?#quot;"}' in one
    assert 's1 -->|"on_confirm"| s2' in one


def test_flows_show_writes_markdown_and_html_files(project, tmp_path, capsys):
    md, page = tmp_path / "out" / "flows.md", tmp_path / "out" / "flows.html"
    assert main(["flows", "show", str(project), "--format", "markdown", "--out", str(md)]) == 0
    assert (
        main(["flows", "show", str(project), "--format", "html", "--out", str(page), "--flow", "greet"]) == 0
    )
    assert f"wrote {md} (2 flows, markdown)" in capsys.readouterr().out
    assert md.read_text().count("```mermaid\n") == 2
    html = page.read_text()
    assert html.count('<pre class="mermaid">') == 1 and "<script" not in html


def test_flows_show_refuses_an_unknown_flow_and_a_broken_project(project, capsys):
    assert main(["flows", "show", str(project), "--flow", "nope"]) == 1
    assert "no flow 'nope'" in capsys.readouterr().err
    (project / "flows.yml").write_text(FLOWS.replace("collect: order_id", "collect: order"))
    assert main(["flows", "show", str(project)]) == 1
    assert "slot 'order' is not declared under slots" in capsys.readouterr().err
