"""Short-term memory: which recent messages a turn carries, and the numbers that bound what a turn loads.

Token counts here are an approximation on purpose: the context service runs no tokenizer (it has no model),
and the budget only has to keep the window in the right range for whichever model reads it downstream.
:func:`count_tokens` follows the shape of common subword tokenizers closely enough for that.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from parley.core.errors import InvalidInputError

# Letters (a word), digits, or any single other visible character (punctuation, symbols, emoji).
_PIECE_RE = re.compile(r"[^\W\d_]+|\d+|[^\w\s]|_", re.UNICODE)
#: A word of up to this many characters counts as one token; longer ones as one per started chunk.
WORD_CHARS_PER_TOKEN = 6
#: Digit runs are split in chunks of this many (as GPT-style tokenizers do).
DIGITS_PER_TOKEN = 3


def count_tokens(text: str) -> int:
    """Approximate number of model tokens in ``text``.

    Rules: a run of letters counts one token per started :data:`WORD_CHARS_PER_TOKEN` characters ("order"
    is 1, "unfortunately" is 3), a run of digits one per started :data:`DIGITS_PER_TOKEN` ("12345" is 2),
    every other visible character one ("?" is 1); whitespace is free. For English this lands within about
    20% of BPE tokenizers, leaning high, which is the safe side for a budget.
    """
    total = 0
    for piece in _PIECE_RE.findall(text):
        if piece[0].isdigit():
            total += math.ceil(len(piece) / DIGITS_PER_TOKEN)
        elif piece[0].isalpha():
            total += math.ceil(len(piece) / WORD_CHARS_PER_TOKEN)
        else:
            total += 1
    return total


class HasText(Protocol):
    """Anything with message text: the domain's Message, a protobuf ChatMessage."""

    @property
    def text(self) -> str: ...


T = TypeVar("T", bound=HasText)


def fit_window(messages: Sequence[T], max_messages: int, token_budget: int) -> list[T]:
    """The most recent of ``messages`` (given oldest first) within both limits, oldest first.

    Walks back from the newest message and stops at the first one that would break either limit, so the
    window is always a contiguous tail of the conversation (a long message is never skipped to make room for
    older ones). The newest message is always kept, even when it alone exceeds ``token_budget``: the turn
    is about it. Nothing is truncated; a message is either in the window whole or not at all.
    """
    if max_messages < 1:
        raise InvalidInputError(f"max_messages must be at least 1, got {max_messages}")
    if token_budget < 1:
        raise InvalidInputError(f"token_budget must be at least 1, got {token_budget}")
    if not messages:
        return []
    kept = [messages[-1]]
    used = count_tokens(messages[-1].text)
    for message in reversed(messages[:-1]):
        if len(kept) >= max_messages:
            break
        cost = count_tokens(message.text)
        if used + cost > token_budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    return kept


@dataclass(frozen=True)
class MemoryPolicy:
    """How much of a conversation one turn carries, and when older messages fold into the summary.

    ``window`` messages within ``token_budget`` tokens go downstream verbatim. Messages older than the last
    ``max_context_length`` are folded into the rolling summary (kept within ``summary_token_budget``), once
    ``summary_batch`` of them are waiting and at most ``summary_max_fold`` per turn, so that a turn's work
    stays bounded. The raw messages stay in the store either way (until retention deletes them).
    """

    window: int = 10
    token_budget: int = 1_500
    max_context_length: int = 50
    summary_token_budget: int = 300
    summary_batch: int = 20
    summary_max_fold: int = 500

    def __post_init__(self) -> None:
        for name in (
            "window",
            "token_budget",
            "max_context_length",
            "summary_token_budget",
            "summary_batch",
            "summary_max_fold",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
        if self.window > self.max_context_length:
            raise InvalidInputError(
                f"window ({self.window}) must not exceed max_context_length ({self.max_context_length}): "
                "messages in the window are never summarised away"
            )

    def fit_window(self, messages: Sequence[T]) -> list[T]:
        """:func:`fit_window` with this policy's limits."""
        return fit_window(messages, self.window, self.token_budget)
