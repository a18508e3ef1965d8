"""Training data of a project, in the shape the intent head learns from."""

from __future__ import annotations

from dataclasses import dataclass

from parley.core.project import Project


@dataclass(frozen=True)
class TrainingData:
    """Example texts with integer labels indexing ``intents`` (sorted, so the order is stable)."""

    intents: tuple[str, ...]
    texts: tuple[str, ...]
    labels: tuple[int, ...]

    @classmethod
    def from_project(cls, project: Project) -> TrainingData:
        """Every example of every intent in ``project.nlu.intents``."""
        intents = tuple(sorted(project.nlu.intents))
        texts: list[str] = []
        labels: list[int] = []
        for label, name in enumerate(intents):
            for example in project.nlu.intents[name].examples:
                texts.append(example)
                labels.append(label)
        return cls(intents=intents, texts=tuple(texts), labels=tuple(labels))
