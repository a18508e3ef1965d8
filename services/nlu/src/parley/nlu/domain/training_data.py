"""Training data of a project: annotated examples as plain text, intents and entity spans.

``nlu.yml`` examples may carry inline entity annotations (``My order is [12345](order_id)``) and several
intents (``{text: ..., intents: [a, b]}``). The annotation grammar lives in :mod:`parley.core.project`,
because loading a project must reject malformed annotations with ``file:line``; it is re-exported here so
NLU code has one place to import training data from.
"""

from __future__ import annotations

from dataclasses import dataclass

from parley.core.project import (
    AnnotationError,
    EntitySpan,
    NluFile,
    Project,
    format_annotations,
    intent_ancestors,
    parent_intent,
    parse_annotations,
)

__all__ = [
    "AnnotationError",
    "EntitySpan",
    "TrainingData",
    "TrainingExample",
    "format_annotations",
    "intent_ancestors",
    "parent_intent",
    "parse_annotations",
    "training_examples",
]


@dataclass(frozen=True)
class TrainingExample:
    """One utterance to learn from.

    ``intents`` starts with the intent the example is listed under (further ones for a multi-intent
    message); it is empty for an out-of-scope example. Entity values are canonical: an annotation's explicit
    value, mapped through the entity's synonyms.
    """

    text: str
    intents: tuple[str, ...]
    entities: tuple[EntitySpan, ...] = ()


def _example(written: str, intents: tuple[str, ...], nlu: NluFile) -> TrainingExample:
    text, spans = parse_annotations(written)
    canonical = tuple(
        EntitySpan(s.start, s.end, s.type, nlu.entities[s.type].canonical(s.value), s.role)
        if s.type in nlu.entities
        else s
        for s in spans
    )
    return TrainingExample(text=text, intents=intents, entities=canonical)


def training_examples(
    source: Project | NluFile, *, include_out_of_scope: bool = False
) -> list[TrainingExample]:
    """Every example of every intent in file order; then, if asked, the out-of-scope ones (no intents)."""
    nlu = source.nlu if isinstance(source, Project) else source
    out: list[TrainingExample] = []
    for name, spec in nlu.intents.items():
        for example in spec.examples:
            if isinstance(example, str):
                out.append(_example(example, (name,), nlu))
            else:
                others = tuple(i for i in example.intents if i != name)
                out.append(_example(example.text, (name, *others), nlu))
    if include_out_of_scope:
        out.extend(_example(text, (), nlu) for text in nlu.out_of_scope)
    return out


@dataclass(frozen=True)
class TrainingData:
    """Example texts with integer labels indexing ``intents`` (sorted, so the order is stable).

    ``labels`` holds the intent each example is listed under (one per example, for single-label heads);
    ``label_sets`` every intent of each example (multi-intent examples have several); ``out_of_scope`` the
    negative examples.
    """

    intents: tuple[str, ...]
    texts: tuple[str, ...]
    labels: tuple[int, ...]
    label_sets: tuple[tuple[int, ...], ...] = ()
    out_of_scope: tuple[str, ...] = ()

    @classmethod
    def from_project(cls, project: Project) -> TrainingData:
        """Every example of every intent in ``project.nlu.intents``, annotations stripped to plain text."""
        intents = tuple(sorted(project.nlu.intents))
        index = {name: i for i, name in enumerate(intents)}
        examples = training_examples(project)
        order = sorted(range(len(examples)), key=lambda i: index[examples[i].intents[0]])
        rows = [examples[i] for i in order]
        return cls(
            intents=intents,
            texts=tuple(ex.text for ex in rows),
            labels=tuple(index[ex.intents[0]] for ex in rows),
            label_sets=tuple(tuple(index[i] for i in ex.intents) for ex in rows),
            out_of_scope=tuple(parse_annotations(text)[0] for text in project.nlu.out_of_scope),
        )
