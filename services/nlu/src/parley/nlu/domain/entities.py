"""Entities found by the regular expressions of ``nlu.yml``."""

from __future__ import annotations

import re
from collections.abc import Mapping

from parley.core.project import Project
from parley.nlu.v1 import nlu_pb2

EXTRACTOR = "regex"


class RegexEntityExtractor:
    """One pattern per entity type; the value is group 1 when the pattern has a group, else the match.

    The span (``start``, ``end``, ``text``) is the whole match, so a leading ``#`` the pattern allows
    stays visible in ``text`` while ``value`` is the canonical number.
    """

    def __init__(self, patterns: Mapping[str, str]) -> None:
        self._patterns = {name: re.compile(regex) for name, regex in sorted(patterns.items())}

    @classmethod
    def from_project(cls, project: Project) -> RegexEntityExtractor:
        """The extractor for every entity of ``project`` that declares a ``regex``."""
        return cls({name: spec.regex for name, spec in project.nlu.entities.items() if spec.regex})

    @property
    def entity_types(self) -> tuple[str, ...]:
        """The entity types this extractor can find."""
        return tuple(self._patterns)

    def extract(self, text: str) -> list[nlu_pb2.Entity]:
        """Every non-empty match of every pattern, in text order."""
        found: list[nlu_pb2.Entity] = []
        for name, pattern in self._patterns.items():
            for match in pattern.finditer(text):
                if match.end() == match.start():
                    continue
                value = match.group(1) if pattern.groups else match.group(0)
                found.append(
                    nlu_pb2.Entity(
                        type=name,
                        text=match.group(0),
                        value=value if value is not None else match.group(0),
                        start=match.start(),
                        end=match.end(),
                        confidence=1.0,
                        extractor=EXTRACTOR,
                    )
                )
        found.sort(key=lambda e: (e.start, e.end, e.type))
        return found
