"""Short-term window and the memory policy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from parley.common.v1 import common_pb2
from parley.context.domain.memory import MemoryPolicy, count_tokens, fit_window
from parley.context.domain.models import Message, Role
from parley.core.errors import InvalidInputError

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _messages(*texts: str) -> list[Message]:
    return [
        Message(f"m{i}", "c", f"t{i}", Role.USER if i % 2 else Role.BOT, text, f"e{i}", i, NOW)
        for i, text in enumerate(texts, start=1)
    ]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("   \n\t", 0),
        ("order", 1),
        ("orders", 1),
        ("unfortunately", 3),  # 13 letters: three started chunks of 6
        ("12345", 2),  # digits in chunks of 3
        ("123", 1),
        ("?", 1),
        ("Where is order 12345?", 6),
        ("hello, world!", 4),
        ("don't", 3),  # don ' t
        ("👍👍", 2),
        ("a_b", 3),
    ],
)
def test_count_tokens(text: str, tokens: int) -> None:
    assert count_tokens(text) == tokens


def test_count_tokens_grows_with_text() -> None:
    sentence = "Could you please tell me when my parcel will be delivered? "
    assert count_tokens(sentence * 10) == 10 * count_tokens(sentence)


def test_window_is_limited_by_message_count() -> None:
    messages = _messages("one", "two", "three", "four", "five")
    assert [m.text for m in fit_window(messages, 3, 1_000)] == ["three", "four", "five"]


def test_window_is_limited_by_tokens_oldest_drop_first() -> None:
    messages = _messages("alpha beta", "gamma delta", "iota zeta", "eta theta")  # 2 tokens each
    assert [m.text for m in fit_window(messages, 10, 5)] == ["iota zeta", "eta theta"]
    assert [m.text for m in fit_window(messages, 10, 6)] == ["gamma delta", "iota zeta", "eta theta"]


def test_window_is_a_contiguous_tail() -> None:
    """A long message that does not fit stops the walk: no older short message is taken past it."""
    messages = _messages("short", "word " * 50, "newest")
    assert [m.text for m in fit_window(messages, 10, 10)] == ["newest"]


def test_newest_message_is_kept_even_over_budget() -> None:
    long_text = "word " * 500
    window = fit_window(_messages("hi", long_text), 10, 20)
    assert [m.text for m in window] == [long_text]  # whole: nothing is truncated
    assert count_tokens(window[0].text) > 20


def test_empty_history_gives_empty_window() -> None:
    assert fit_window([], 5, 100) == []


def test_window_works_on_protobuf_chat_messages() -> None:
    messages = [common_pb2.ChatMessage(text=t) for t in ("a", "b", "c")]
    assert [m.text for m in fit_window(messages, 2, 100)] == ["b", "c"]


@pytest.mark.parametrize(
    ("max_messages", "budget", "field"), [(0, 10, "max_messages"), (3, 0, "token_budget")]
)
def test_window_limits_must_be_positive(max_messages: int, budget: int, field: str) -> None:
    with pytest.raises(InvalidInputError, match=field):
        fit_window(_messages("a"), max_messages, budget)


def test_policy_defaults_match_the_settings_defaults() -> None:
    policy = MemoryPolicy()
    assert (policy.window, policy.token_budget, policy.max_context_length) == (10, 1_500, 50)
    assert (policy.summary_token_budget, policy.summary_batch, policy.summary_max_fold) == (300, 20, 500)


def test_policy_fits_windows() -> None:
    policy = MemoryPolicy(window=2, token_budget=100, max_context_length=5)
    assert [m.text for m in policy.fit_window(_messages("a", "b", "c"))] == ["b", "c"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "window"),
        ({"token_budget": -1}, "token_budget"),
        ({"max_context_length": 0}, "max_context_length"),
        ({"summary_token_budget": 0}, "summary_token_budget"),
        ({"summary_batch": 0}, "summary_batch"),
        ({"summary_max_fold": 0}, "summary_max_fold"),
        ({"window": True}, "window"),
        ({"window": 2.5}, "window"),
        ({"window": 20, "max_context_length": 10}, "must not exceed max_context_length"),
    ],
)
def test_policy_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        MemoryPolicy(**kwargs)  # type: ignore[arg-type]
