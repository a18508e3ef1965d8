"""Flows rendered as Mermaid flowcharts, and the Markdown and HTML pages around them."""

import re

import pytest

from parley.core.flow_diagram import flows_to_mermaid, to_html, to_markdown, to_mermaid
from parley.core.flows import FlowSpec
from parley.core.project import load_project

FLOWS = """\
version: "2"
slots:
  order_id: {entity: order_id}
  size: {type: integer}
flows:
  cancel:
    description: Cancel an order, after confirming.
    trigger: {intents: [order.cancel], condition: "slots.size > 1"}
    steps:
      - collect: order_id
        validate: "len(value) == 5"
      - call: lookup
      - validate: [order_id]
        on_missing: repeat
      - branch:
          - if: "slots.size > 3 and intent != \\"x\\""
            then: big
          - else: ask
      - id: big
        handoff: true
        queue: vip
      - id: ask
        confirm: utter_confirm
        on_confirm: done
        on_deny: end
      - id: done
        respond: utter_done
      - question: utter_more
        expect: {affirm: again, deny: bye}
        timeout_s: 30
        on_timeout: bye
      - id: again
        link: lookup
      - id: bye
        end: conversation
        respond: utter_done
  lookup:
    steps:
      - action: find_order
        args: {order_id: "{order_id}"}
        save_as: order
        on_error: handoff
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("diagram")
    (root / "assistant.yml").write_text("name: diagrams\n")
    (root / "nlu.yml").write_text(
        'intents:\n  order.cancel: {examples: [cancel it]}\n  affirm: {examples: ["yes"]}\n'
        '  deny: {examples: ["no"]}\nentities:\n  order_id: {}\n'
    )
    (root / "responses.yml").write_text(
        "responses:\n  utter_confirm: [{text: 'Cancel order {order_id}? Say \"yes\" <or> no'}]\n"
        "  utter_done: [{text: Done.}]\n  utter_more: [{text: 'Anything else?'}]\n"
    )
    (root / "tools.yml").write_text("tools:\n  find_order: {python: 'orders:find'}\n")
    (root / "tools").mkdir()
    (root / "tools" / "orders.py").write_text("def find(order_id):\n    return {}\n")
    (root / "flows.yml").write_text(FLOWS)
    return load_project(root)


def _nodes_and_edges(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    nodes = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\s+(\w+)(\W{1,2}\".*\"\W{1,2})(?::::\w+)?$", text, re.M)
    }
    edges = [
        (m.group(1), m.group(3) or "", m.group(4))
        for m in re.finditer(r'^\s+(\w+) (-->|-\.->)(?:\|"([^"]*)"\|)? (\w+)$', text, re.M)
    ]
    return nodes, edges


def test_one_node_per_step_with_type_and_what_it_names(project):
    text = to_mermaid("cancel", project.flows.flows["cancel"], project)
    assert text.startswith("flowchart TD\n")
    nodes, _ = _nodes_and_edges(text)
    assert nodes["start"] == '(["flow cancel<br/>intents: order.cancel if slots.size #gt; 1"])'
    assert nodes["s0"] == '[/"collect: order_id<br/>from entity order_id<br/>validate: len(value) == 5"/]'
    assert nodes["s1"] == '[["call flow: lookup"]]'  # a subroutine
    assert nodes["s2"] == '{"validate: order_id"}'
    assert nodes["s3"] == '{"branch"}'
    assert nodes["s4"] == '(["handoff<br/>queue vip<br/>id: big"])'
    # The response's first wording, with Mermaid's entity codes for quotes and angle brackets.
    assert nodes["s5"] == (
        '{"confirm: utter_confirm<br/>#quot;Cancel order {order_id}? Say #quot;yes#quot; #lt;or#gt; no#quot;'
        '<br/>id: ask"}'
    )
    assert nodes["s6"].startswith('["respond: utter_done<br/>#quot;Done.#quot;')
    assert nodes["s7"] == '("question: utter_more<br/>#quot;Anything else?#quot;")'
    assert nodes["s8"] == '[["link to flow: lookup<br/>id: again"]]'
    assert nodes["s9"] == '(["end conversation<br/>respond: utter_done<br/>id: bye"])'
    assert set(nodes) == {"start", *(f"s{i}" for i in range(10)), "t_end", "t_handoff"}
    assert 't_end(["end"]):::parleyTerminal' in text


def test_edges_follow_next_on_and_branches_and_expect(project):
    _, edges = _nodes_and_edges(to_mermaid("cancel", project.flows.flows["cancel"], project))
    assert set(edges) == {
        ("start", "", "s0"),
        ("s0", "on_fail", "t_handoff"),
        ("s0", "", "s1"),
        ("s1", "", "s2"),
        ("s2", "on_missing", "s2"),  # repeat
        ("s2", "", "s3"),
        ("s3", "if slots.size #gt; 3 and intent != #quot;x#quot;", "s4"),
        ("s3", "else", "s5"),
        ("s5", "on_confirm", "s6"),
        ("s5", "on_deny", "t_end"),
        ("s6", "", "s7"),
        ("s7", "affirm", "s8"),
        ("s7", "deny", "s9"),
        ("s7", "on_timeout", "s9"),
        ("s7", "on_fail", "t_handoff"),
    }


def test_every_edge_joins_declared_nodes(project):
    for name, flow in project.flows.flows.items():
        text = to_mermaid(name, flow, project)
        nodes, edges = _nodes_and_edges(text)
        declared = set(nodes) | set(re.findall(r"^\s+(t_\w+)\(", text, re.M))
        assert edges and all(a in declared and b in declared for a, _, b in edges), text


def test_without_a_project_labels_name_the_responses_only():
    flow = FlowSpec.model_validate({"steps": [{"respond": "utter_hi"}, {"end": True}]})
    text = to_mermaid("hello", flow)
    assert 's0["respond: utter_hi"]' in text
    assert 's1(["end flow"]):::parleyTerminal' in text
    assert "s0 --> s1" in text and "s1 -->" not in text  # end is terminal


def test_all_flows_share_one_chart_with_subgraphs_and_call_edges(project):
    text = flows_to_mermaid(project.flows.flows, project)
    assert text.count("flowchart TD") == 1
    assert '  subgraph f0_flow["cancel"]' in text and '  subgraph f1_flow["lookup"]' in text
    assert text.count("\n  end\n") == 2
    assert 'f0_s1 -.->|"call"| f1_start' in text
    assert 'f0_s8 -.->|"link"| f1_start' in text
    assert 'f1_s0{{"action: find_order<br/>results.order"}}' in text


def test_markdown_has_one_mermaid_block_per_flow(project):
    text = to_markdown(project.flows.flows, project, title="diagrams: flows")
    assert text.startswith("# diagrams: flows\n")
    assert text.count("```mermaid\nflowchart TD\n") == 2
    assert "## cancel\n\nCancel an order, after confirming.\n" in text


def test_html_is_self_contained_and_escapes_the_source(project):
    page = to_html(project.flows.flows, project, title="A <b>title</b>")
    assert page.startswith("<!doctype html>")
    assert "<script" not in page and "http" not in page  # nothing is fetched
    assert page.count('<pre class="mermaid">') == 2
    assert "<title>A &lt;b&gt;title&lt;/b&gt;</title>" in page
    assert "s0[/&quot;collect: order_id" in page  # the Mermaid text, HTML-escaped
    assert "Mermaid viewer" in page
