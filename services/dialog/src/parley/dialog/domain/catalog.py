"""A project's ``flows.yml`` (version 2) indexed for the engine: steps by id, flows by trigger intent, slots
by entity type, titles for options. Built once per project; read-only afterwards."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from parley.core.conditions import compile_condition
from parley.core.errors import ConfigurationError
from parley.core.flows import (
    SPECIAL_TARGETS,
    BranchStep,
    CollectStep,
    ConstraintSpec,
    FlowsFileV2,
    FlowSpec,
    SlotSpec,
    Step,
    ValidateStep,
    jump_targets,
    step_kind,
)

_FORMATTER = string.Formatter()


def _conditions(flows: FlowsFileV2) -> list[str]:
    texts = [text for c in flows.constraints for text in (c.when, c.forbid)]
    for flow in flows.flows.values():
        if flow.trigger and flow.trigger.condition:
            texts.append(flow.trigger.condition)
        for step in flow.steps:
            if isinstance(step, BranchStep):
                texts += [case.if_ for case in step.branch if case.if_]
            elif isinstance(step, ValidateStep) and step.condition:
                texts.append(step.condition)
            elif isinstance(step, CollectStep) and step.validate_:
                texts.append(step.validate_)
    return texts


def format_title(text: str, values: Mapping[str, Any]) -> str:
    """``text`` with ``{name}`` placeholders filled from ``values``; unknown placeholders are dropped."""
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError:
        return text
    out: list[str] = []
    for literal, name, _, _ in parsed:
        out.append(literal)
        if name and values.get(name) not in (None, ""):
            value = values[name]
            out.append(", ".join(map(str, value)) if isinstance(value, list) else str(value))
    return " ".join("".join(out).split())


class Catalog:
    """The flows of a project, checked for what the engine relies on and indexed."""

    def __init__(self, flows: FlowsFileV2, min_confidence: float = 0.5) -> None:
        self.spec = flows
        self.settings = flows.settings
        self.slots: Mapping[str, SlotSpec] = flows.slots
        self.constraints: Sequence[ConstraintSpec] = flows.constraints
        #: Below this confidence an intent means nothing to the engine.
        self.threshold = (
            flows.settings.min_confidence if flows.settings.min_confidence is not None else min_confidence
        )
        self._ids: dict[str, dict[str, int]] = {}
        problems: list[str] = []
        for name, flow in flows.flows.items():
            ids = {step.id: i for i, step in enumerate(flow.steps) if step.id}
            self._ids[name] = ids
            for i, step in enumerate(flow.steps):
                for target in (jump.target for jump in jump_targets(step)):
                    if target not in ids and target not in SPECIAL_TARGETS:
                        problems.append(f"flows.{name}.steps[{i}]: no step {target!r} in flow {name!r}")
                flow_ref = getattr(step, "call", None) or getattr(step, "link", None)
                if flow_ref is not None and flow_ref not in flows.flows:
                    problems.append(f"flows.{name}.steps[{i}]: no flow {flow_ref!r}")
        for text in _conditions(flows):
            try:
                compile_condition(text)
            except ValueError as exc:
                problems.append(f"condition {text!r}: {exc}")
        if problems:
            raise ConfigurationError("flows.yml cannot run:\n  " + "\n  ".join(problems))
        self._by_intent: dict[str, list[str]] = {}
        for name, flow in flows.flows.items():
            for intent in flow.trigger.intents if flow.trigger else []:
                self._by_intent.setdefault(intent, []).append(name)
        meta = flows.settings
        self.meta_intents = frozenset(
            {
                meta.affirm_intent,
                meta.deny_intent,
                meta.cancel_intent,
                meta.correct_intent,
                meta.handoff_intent,
                meta.goodbye_intent,
                meta.greet_intent,
            }
        )

    # -- flows and steps

    def has_flow(self, name: str) -> bool:
        return name in self.spec.flows

    def flow(self, name: str) -> FlowSpec:
        return self.spec.flows[name]

    def step(self, flow: str, index: int) -> Step | None:
        """Step ``index`` of ``flow``; ``None`` past the last step (the flow is done)."""
        steps = self.spec.flows[flow].steps
        return steps[index] if 0 <= index < len(steps) else None

    def index_of(self, flow: str, step_id: str) -> int | None:
        return self._ids.get(flow, {}).get(step_id)

    def length(self, flow: str) -> int:
        return len(self.spec.flows[flow].steps)

    def step_name(self, flow: str, index: int) -> str:
        """The step's id, or ``<type>:<argument>`` (``collect:order_id``) for a step without one."""
        step = self.step(flow, index)
        if step is None:
            return "end"
        if step.id:
            return step.id
        kind = step_kind(step)
        arg = getattr(step, kind)
        return f"{kind}:{arg}" if isinstance(arg, str) else kind

    # -- slots

    def slot_spec(self, name: str) -> SlotSpec:
        """The slot's spec (an undeclared slot, e.g. a tool result's ``save_as``, is free text)."""
        return self.slots.get(name) or SlotSpec(type="any")

    def collected_slots(self, flow: str) -> list[str]:
        """Slots the flow's collect steps fill, in step order."""
        return list(
            dict.fromkeys(s.collect for s in self.spec.flows[flow].steps if isinstance(s, CollectStep))
        )

    def key_slots(self, flow: str) -> list[str]:
        """The slots that identify what a flow was about (remembered in the history)."""
        spec = self.spec.flows[flow]
        names = self.collected_slots(flow)
        for entity in spec.trigger.entities if spec.trigger else []:
            names += [n for n, s in self.slots.items() if s.entity == entity]
        for step in spec.steps:
            if isinstance(step, ValidateStep):
                names += step.validate_
        return list(dict.fromkeys(names))

    def slots_for_entity(self, entity: str) -> list[str]:
        return [name for name, spec in self.slots.items() if spec.entity == entity]

    def reset_slots(self, flow: str) -> list[str]:
        """Slots cleared when ``flow`` ends."""
        spec = self.spec.flows[flow]
        if spec.reset_slots is not None:
            return list(spec.reset_slots)
        return [name for name in self.collected_slots(flow) if not self.slot_spec(name).persist]

    # -- triggers and titles

    def flows_for(self, intent: str) -> list[str]:
        """Flows triggered by ``intent`` (or by a parent of a hierarchical intent), the most specific
        first: exact intent before parent, more required entities first, then file order."""
        found: list[tuple[int, int, int, str]] = []
        parts = intent.split(".")
        for depth in range(len(parts), 0, -1):
            name = ".".join(parts[:depth])
            for order, flow in enumerate(self._by_intent.get(name, [])):
                trigger = self.spec.flows[flow].trigger
                entities = len(trigger.entities) if trigger else 0
                found.append((len(parts) - depth, -entities, order, flow))
        return list(dict.fromkeys(flow for *_, flow in sorted(found)))

    def trigger_intent(self, flow: str) -> str | None:
        trigger = self.spec.flows[flow].trigger
        return trigger.intents[0] if trigger else None

    def trigger_threshold(self, flow: str) -> float:
        trigger = self.spec.flows[flow].trigger
        if trigger is not None and trigger.min_confidence is not None:
            return trigger.min_confidence
        return self.threshold

    def triggered_flows(self) -> list[str]:
        """Flows a user can start (those with a trigger), in file order."""
        return [name for name, flow in self.spec.flows.items() if flow.trigger is not None]

    def title(self, flow: str, values: Mapping[str, Any] | None = None) -> str:
        """What the user sees for ``flow``: its description (placeholders filled from ``values``), or its
        name in words."""
        spec = self.spec.flows.get(flow)
        text = spec.description.strip() if spec is not None else ""
        if not text:
            return flow.replace("_", " ").replace(".", " ")
        return format_title(text, values or {})

    def history_title(self, flow: str, slots: Mapping[str, Any]) -> str:
        """A finished flow as an option: its description with its slot values ("checking order 12345")."""
        spec = self.spec.flows.get(flow)
        description = spec.description if spec is not None else ""
        if "{" in description:
            return self.title(flow, slots)
        values = [
            ", ".join(map(str, v)) if isinstance(v, list) else str(v)
            for name in (self.key_slots(flow) if spec is not None else [])
            if (v := slots.get(name)) not in (None, "", [])
        ]
        title = self.title(flow)
        return f"{title} ({', '.join(values)})" if values else title
