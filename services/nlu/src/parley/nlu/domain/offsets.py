"""Mapping character offsets of the spell-corrected text back to the text the user wrote."""

from __future__ import annotations

from collections.abc import Sequence

from parley.nlu.v1 import nlu_pb2


class OffsetMap:
    """Positions in the corrected text → positions in the original, given the word corrections applied.

    A position inside a replaced word maps to that word's start (span starts) or end (span ends), so an
    entity tagged on a corrected word covers the word as written.
    """

    def __init__(self, corrections: Sequence[nlu_pb2.Correction]) -> None:
        self._pieces: list[tuple[int, int, int, int]] = []  # corrected start/end, original start/end
        shift = 0
        for c in sorted(corrections, key=lambda c: c.start):
            start = c.start + shift
            self._pieces.append((start, start + len(c.corrected), c.start, c.end))
            shift += len(c.corrected) - (c.end - c.start)

    def to_original(self, position: int, *, is_end: bool = False) -> int:
        shift = 0
        for c_start, c_end, o_start, o_end in self._pieces:
            if position < c_start or (position == c_start and not is_end):
                break
            if position < c_end or (position == c_end and is_end):
                return o_end if is_end else o_start
            shift = o_end - c_end
        return position + shift
