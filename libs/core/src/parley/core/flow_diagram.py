"""Flows as diagrams: Mermaid ``flowchart`` text, and Markdown or HTML pages that embed it.

Mermaid text renders in GitHub/GitLab Markdown, many editors and documentation tools; nothing here fetches
anything (the HTML page embeds the source in ``<pre class="mermaid">`` and says where to render it).
One node per step, labelled with its type and the response, slot, tool or flow it names (plus the
response's first wording when a project is given); edges for ``next``, fall-through, ``on_*``, ``expect``
intents and branch cases; ``end`` and ``handoff`` as terminal nodes; ``call``/``link`` as subroutines.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from parley.core.flows import (
    ActionStep,
    BranchStep,
    CallStep,
    CollectStep,
    ConfirmStep,
    EndStep,
    FlowSpec,
    HandoffStep,
    LinkStep,
    QuestionStep,
    RespondStep,
    Step,
    ValidateStep,
    step_kind,
    transitions,
)

if TYPE_CHECKING:
    from parley.core.project import Project

_NOT_ID = re.compile(r"\W")
_TEXT_PREVIEW = 60
_EDGE_LABEL = 40
#: Node shapes per step type: (opening, closing) around the quoted label.
_SHAPES: dict[str, tuple[str, str]] = {
    "respond": ("[", "]"),
    "question": ("(", ")"),
    "collect": ("[/", "/]"),
    "validate": ("{", "}"),
    "confirm": ("{", "}"),
    "branch": ("{", "}"),
    "action": ("{{", "}}"),
    "call": ("[[", "]]"),
    "link": ("[[", "]]"),
    "handoff": ("([", "])"),
    "end": ("([", "])"),
}
_CLASSES = (
    "    classDef parleyTerminal fill:#f4f4f4,stroke:#888",
    "    classDef parleyStart fill:#e6f4ea,stroke:#34a853",
)


def _escape(text: str) -> str:
    """Text safe inside a quoted Mermaid label (entity codes for the characters Mermaid would parse)."""
    text = text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    return " ".join(text.split())


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _label(*lines: str) -> str:
    return "<br/>".join(_escape(line) for line in lines if line)


def _preview(response: str | None, project: Project | None) -> str:
    if project is None or response is None:
        return ""
    variants = project.responses.responses.get(response)
    return f'"{_short(variants[0].text, _TEXT_PREVIEW)}"' if variants else ""


def _step_lines(step: Step, project: Project | None) -> list[str]:
    """What a step's node says: its type and what it names, then details."""
    kind = step_kind(step)
    lines: list[str]
    if isinstance(step, RespondStep):
        lines = [f"respond: {step.respond}", _preview(step.respond, project)]
    elif isinstance(step, QuestionStep):
        lines = [f"question: {step.question}", _preview(step.question, project)]
    elif isinstance(step, CollectStep):
        entity = None
        if project is not None and step.collect in project.flows.slots:
            entity = project.flows.slots[step.collect].entity
        lines = [f"collect: {step.collect}", f"from entity {entity}" if entity else ""]
        if step.validate_:
            lines.append(f"validate: {_short(step.validate_, _EDGE_LABEL)}")
    elif isinstance(step, ValidateStep):
        lines = [f"validate: {', '.join(step.validate_)}"]
        if step.condition:
            lines.append(_short(step.condition, _EDGE_LABEL))
    elif isinstance(step, ConfirmStep):
        lines = [f"confirm: {step.confirm}", _preview(step.confirm, project)]
    elif isinstance(step, BranchStep):
        lines = ["branch"]
    elif isinstance(step, ActionStep):
        lines = [f"action: {step.action}", f"results.{step.save_as}" if step.save_as else ""]
    elif isinstance(step, CallStep):
        lines = [f"call flow: {step.call}"]
    elif isinstance(step, LinkStep):
        lines = [f"link to flow: {step.link}"]
    elif isinstance(step, HandoffStep):
        response = step.handoff if isinstance(step.handoff, str) else None
        lines = [f"handoff{f': {response}' if response else ''}", f"queue {step.queue}" if step.queue else ""]
    elif isinstance(step, EndStep):
        scope = "conversation" if step.end == "conversation" else "flow"
        lines = [f"end {scope}", f"respond: {step.respond}" if step.respond else ""]
    else:
        lines = [kind]
    step_id = step.id
    return [*lines, f"id: {step_id}" if step_id else ""]


def _node_id(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def _flow_lines(
    flow_name: str, flow: FlowSpec, project: Project | None, prefix: str, starts: Mapping[str, str] | None
) -> list[str]:
    """The nodes and edges of one flow (ids prefixed); ``starts`` maps flow names to their start node ids
    when several flows share a chart, so ``call``/``link`` steps point at the other flow."""
    out: list[str] = []
    start = _node_id(prefix, "start")
    trigger = ""
    if flow.trigger is not None:
        trigger = "intents: " + ", ".join(flow.trigger.intents)
        if flow.trigger.condition:
            trigger += f" if {_short(flow.trigger.condition, _EDGE_LABEL)}"
    out.append(f'    {start}(["{_label(f"flow {flow_name}", trigger)}"]):::parleyStart')
    for i, step in enumerate(flow.steps):
        opening, closing = _SHAPES[step_kind(step)]
        out.append(
            f'    {_node_id(prefix, f"s{i}")}{opening}"{_label(*_step_lines(step, project))}"{closing}'
        )
        if isinstance(step, HandoffStep | EndStep):
            out[-1] += ":::parleyTerminal"
    out.append(f"    {start} --> {_node_id(prefix, 's0')}")
    terminals: dict[str, str] = {}
    for i, edges in enumerate(transitions(flow)):
        source = _node_id(prefix, f"s{i}")
        for edge in edges:
            if isinstance(edge.target, int):
                target = _node_id(prefix, f"s{edge.target}")
            else:
                target = _node_id(prefix, "t_" + _NOT_ID.sub("_", edge.target))
                terminals.setdefault(target, edge.target)
            label = f'|"{_escape(_short(edge.label, _EDGE_LABEL))}"|' if edge.label else ""
            out.append(f"    {source} -->{label} {target}")
    for node, name in terminals.items():
        out.append(f'    {node}(["{_escape(name)}"]):::parleyTerminal')
    if starts:
        for i, step in enumerate(flow.steps):
            other = (
                step.call if isinstance(step, CallStep) else step.link if isinstance(step, LinkStep) else None
            )
            if other in starts:
                out.append(f'    {_node_id(prefix, f"s{i}")} -.->|"{step_kind(step)}"| {starts[other]}')
    return out


def to_mermaid(flow_name: str, flow: FlowSpec, project: Project | None = None) -> str:
    """One flow as a Mermaid ``flowchart TD`` (``project`` adds response texts and slot entities)."""
    return "\n".join(["flowchart TD", *_flow_lines(flow_name, flow, project, "", None), *_CLASSES]) + "\n"


def flows_to_mermaid(flows: Mapping[str, FlowSpec], project: Project | None = None) -> str:
    """Several flows in one chart, one subgraph each, with ``call``/``link`` edges between them."""
    prefixes = {name: f"f{k}_" for k, name in enumerate(flows)}
    starts = {name: _node_id(prefix, "start") for name, prefix in prefixes.items()}
    lines = ["flowchart TD"]
    for name, flow in flows.items():
        lines.append(f'  subgraph {prefixes[name]}flow["{_escape(name)}"]')
        lines += _flow_lines(name, flow, project, prefixes[name], starts)
        lines.append("  end")
    return "\n".join([*lines, *_CLASSES]) + "\n"


def to_markdown(flows: Mapping[str, FlowSpec], project: Project | None = None, title: str = "Flows") -> str:
    """A Markdown page with one ```` ```mermaid ```` block per flow (renders on GitHub and GitLab)."""
    parts = [f"# {title}\n"]
    for name, flow in flows.items():
        parts.append(f"## {name}\n")
        if flow.description:
            parts.append(f"{flow.description.strip()}\n")
        parts.append(f"```mermaid\n{to_mermaid(name, flow, project)}```\n")
    return "\n".join(parts)


def to_html(flows: Mapping[str, FlowSpec], project: Project | None = None, title: str = "Flows") -> str:
    """A self-contained HTML page holding each flow's Mermaid source in ``<pre class="mermaid">``.

    No script is loaded (nothing may be fetched at run time), so the page shows the source; a page that
    already includes Mermaid renders the blocks, and the same text renders in any Mermaid viewer.
    """
    sections = []
    for name, flow in flows.items():
        description = f"<p>{html.escape(flow.description.strip())}</p>" if flow.description else ""
        sections.append(
            f'<section id="{html.escape(name, quote=True)}"><h2>{html.escape(name)}</h2>{description}\n'
            f'<pre class="mermaid">\n{html.escape(to_mermaid(name, flow, project))}</pre></section>'
        )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }}
pre.mermaid {{ background: #f6f8fa; padding: 1rem; overflow-x: auto; }}
.note {{ color: #555; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="note">Each block below is a Mermaid flowchart. This page loads no scripts, so it shows the source:
paste a block into any Mermaid viewer (GitHub or GitLab Markdown, an editor's Mermaid preview), or run
<code>parley flows show --format markdown</code> for a Markdown file that renders on GitHub and GitLab.</p>
{"".join(sections)}
</body>
</html>
"""
