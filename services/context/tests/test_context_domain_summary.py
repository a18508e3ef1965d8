"""The rolling extractive summary and when it is updated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parley.context.domain.memory import MemoryPolicy, count_tokens
from parley.context.domain.models import EntityValue, Message, Role
from parley.context.domain.summary import ExtractiveSummariser, Summariser, fold_count, needs_summary
from parley.core.errors import InvalidInputError

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _message(seq: int, role: Role | str, text: str) -> Message:
    return Message(
        f"m{seq}", "c", f"t{seq}", Role(role), text, f"e{seq}", seq, START + timedelta(minutes=seq)
    )


def _conversation(*pairs: tuple[str, str]) -> list[Message]:
    return [_message(i, role, text) for i, (role, text) in enumerate(pairs, start=1)]


def _entity(entity_type: str, value: str) -> EntityValue:
    return EntityValue("c", entity_type, value, {}, "t1", START)


# ------------------------------------------------------------------------------------------- scheduling


@pytest.mark.parametrize(
    ("total", "covered", "max_length", "batch", "expected"),
    [
        (0, 0, 50, 20, False),
        (50, 0, 50, 20, False),  # everything fits verbatim
        (69, 0, 50, 20, False),  # 19 waiting: not yet
        (70, 0, 50, 20, True),  # 20 waiting
        (71, 20, 50, 20, False),  # just folded
        (90, 20, 50, 20, True),
        (5_000, 0, 50, 20, True),  # an import catches up
        (60, 0, 50, 1, True),  # batch 1 folds on every turn beyond the limit
    ],
)
def test_needs_summary(total: int, covered: int, max_length: int, batch: int, expected: bool) -> None:
    assert needs_summary(total, covered, max_length, batch) is expected


@pytest.mark.parametrize(
    ("total", "covered", "max_length", "max_fold", "expected"),
    [
        (70, 0, 50, None, 20),
        (70, 20, 50, None, 0),
        (40, 0, 50, None, 0),
        (5_000, 0, 50, 500, 500),
        (5_000, 4_500, 50, 500, 450),
    ],
)
def test_fold_count(total: int, covered: int, max_length: int, max_fold: int | None, expected: int) -> None:
    assert fold_count(total, covered, max_length, max_fold) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 0, 50, 20), "negative"),
        ((10, -1, 50, 20), "negative"),
        ((10, 0, 0, 20), "max_context_length"),
        ((10, 0, 50, 0), "batch"),
    ],
)
def test_needs_summary_rejects_bad_numbers(args: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        needs_summary(*args)


def test_fold_count_rejects_a_zero_cap() -> None:
    with pytest.raises(InvalidInputError, match="max_fold"):
        fold_count(100, 0, 50, 0)


# ------------------------------------------------------------------------------------------- summarising


def test_keeps_requests_confirmations_and_facts_drops_filler() -> None:
    messages = _conversation(
        ("user", "Hi!"),
        ("bot", "Hello! How can I help you today?"),
        ("user", "Hello, my order 12345 has not arrived and I need it for a birthday."),
        ("bot", "Could you confirm your e-mail address?"),
        ("user", "Sure, it is ann@example.com"),
        ("bot", "Thanks. I have opened a claim for order 12345."),
        ("user", "Thank you so much"),
        ("user", "ok"),
        ("bot", "You're welcome! Is there anything else I can help you with?"),
        ("user", "Bye"),
    )
    summary = ExtractiveSummariser(200).update(None, messages, [])
    assert summary.splitlines() == [
        "Facts: id=12345 | email=ann@example.com",  # newest mention first
        "- user: My order 12345 has not arrived and I need it for a birthday.",
        "- user: It is ann@example.com",
        "- bot: I have opened a claim for order 12345.",
    ]


@pytest.mark.parametrize(
    "filler",
    [
        "hello there",
        "Good morning!",
        "thanks a lot",
        "Thank you very much!",
        "ok thanks",
        "Great.",
        "That's great",
        "that's all",
        "Have a nice day!",
        "How can I help you today?",
        "Let me check that for you.",
        "One moment please",
        "I'm sorry to hear that.",
        "yes",
        "nope",
        "👍",
    ],
)
def test_filler_leaves_no_trace(filler: str) -> None:
    summariser = ExtractiveSummariser(100)
    assert summariser.update(None, [_message(1, "user", filler), _message(2, "bot", filler)], []) == ""


def test_bot_questions_and_small_talk_are_dropped_but_actions_kept() -> None:
    messages = _conversation(
        ("bot", "Would you like me to cancel it?"),
        ("bot", "I understand how frustrating this must be for you."),
        ("bot", "Your refund of 20 EUR has been issued."),
    )
    assert ExtractiveSummariser(100).update(None, messages, []) == (
        "- bot: Your refund of 20 EUR has been issued."
    )


def test_entity_values_become_facts_current_first_and_typed_beats_generic() -> None:
    summariser = ExtractiveSummariser(200)
    first = summariser.update(None, _conversation(("user", "Where is my order 12345?")), [])
    assert first.splitlines()[0] == "Facts: id=12345"
    second = summariser.update(
        first,
        [_message(3, "user", "Please send it to Berlin instead.")],
        [_entity("city", "Berlin"), _entity("order_id", "12345")],
    )
    assert second.splitlines()[0] == "Facts: city=Berlin | order_id=12345"
    assert "- user: Where is my order 12345?" in second.splitlines()


def test_relative_times_are_dated() -> None:
    summary = ExtractiveSummariser(100).update(
        None, [_message(1, "user", "Can it be delivered tomorrow afternoon?")], []
    )
    assert summary == "- user (2026-11-25): Can it be delivered tomorrow afternoon?"


def test_a_repeated_request_is_kept_once_at_its_latest_place() -> None:
    messages = _conversation(
        ("user", "Where is my parcel?"),
        ("bot", "It was shipped on Monday."),
        ("user", "Where is my parcel?"),
    )
    assert ExtractiveSummariser(100).update(None, messages, []).splitlines() == [
        "- bot (2026-11-25): It was shipped on Monday.",
        "- user: Where is my parcel?",
    ]


def test_a_long_message_is_clipped_to_the_line_limit() -> None:
    text = "I need " + "really " * 100 + "urgent help with the delivery."
    summary = ExtractiveSummariser(300, line_token_limit=20).update(None, [_message(1, "user", text)], [])
    assert summary.startswith("- user: I need really")
    assert summary.endswith("…")
    assert count_tokens(summary) <= 25  # the line limit plus the "- user:" prefix


def test_oldest_lines_drop_first_and_facts_outlive_them() -> None:
    summariser = ExtractiveSummariser(40)
    summary = summariser.update(None, [_message(1, "user", "My order 12345 has not arrived yet.")], [])
    for seq in range(2, 12):
        summary = summariser.update(
            summary, [_message(seq, "user", f"Question number {seq} about shipping")], []
        )
        assert count_tokens(summary) <= 40
    lines = summary.splitlines()
    assert lines[0] == "Facts: id=12345"
    assert lines[-1] == "- user: Question number 11 about shipping"
    assert not any("has not arrived" in line for line in lines)  # the oldest line went first


def test_text_from_another_summariser_is_kept_as_the_oldest_part() -> None:
    previous = "The customer reported a damaged parcel and asked for a replacement."
    summariser = ExtractiveSummariser(60)
    summary = summariser.update(previous, [_message(5, "bot", "I have sent a replacement.")], [])
    assert summary.splitlines() == [previous, "- bot: I have sent a replacement."]
    many = [_message(10 + i, "bot", f"I have updated ticket number {i}.") for i in range(8)]
    assert previous not in summariser.update(summary, many, [])


@pytest.mark.parametrize("budget", [16, 30, 60, 120, 300])
def test_never_over_budget_whatever_comes_in(budget: int) -> None:
    summariser = ExtractiveSummariser(budget)
    entities = [_entity(f"field_{i}", f"value number {i}") for i in range(30)]
    messages = [
        _message(
            i, "user" if i % 2 else "bot", f"I confirmed order {10_000 + i} and sent a refund to x{i}@y.com."
        )
        for i in range(60)
    ]
    summary = summariser.update("Facts: a=b | c=d\n- user: something old", messages, entities)
    assert 0 < count_tokens(summary) <= budget


def test_deterministic() -> None:
    messages = _conversation(("user", "My order 12345 is late."), ("bot", "I have escalated order 12345."))
    entities = [_entity("order_id", "12345")]
    assert ExtractiveSummariser(80).update(None, messages, entities) == ExtractiveSummariser(80).update(
        None, messages, entities
    )


def test_it_is_a_summariser() -> None:
    summariser: Summariser = ExtractiveSummariser(80)  # type-checked against the protocol
    messages = _conversation(("user", "My order 12345 is late."))
    assert summariser.update(None, messages, []) == "Facts: id=12345\n- user: My order 12345 is late."


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token_budget": 0}, "token_budget"),
        ({"line_token_limit": 2}, "line_token_limit"),
        ({"facts_share": 0}, "facts_share"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ExtractiveSummariser(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- long conversations

_USER_CHATTER = (
    "Can you check the delivery status again?",
    "The parcel still has not arrived at my house.",
    "Thanks",
    "I would like to speak to someone about the delay.",
    "ok",
    "Why is it taking so long?",
    "Could you send me the tracking link?",
)
_BOT_CHATTER = (
    "Let me check that for you.",
    "Your parcel is on its way to the local depot.",
    "I have escalated the delay to our courier team.",
    "Is there anything else I can help you with?",
    "Sorry for the wait.",
)


def _long_conversation(n: int) -> list[Message]:
    messages = [_message(1, "user", "Hi, my order number is 12345 and I need help with the delivery.")]
    for seq in range(2, n + 1):
        pool = _USER_CHATTER if seq % 2 else _BOT_CHATTER
        text = pool[(seq // 2) % len(pool)]
        if seq % 3 == 0:
            text += f" This is message {seq}."  # no two alike, so old lines must make room
        messages.append(_message(seq, Role.USER if seq % 2 else Role.BOT, text))
    return messages


@pytest.mark.parametrize("entities", [[], [_entity("order_id", "12345")]], ids=["from-text", "from-entities"])
def test_order_id_of_message_1_survives_5000_messages_within_budget(entities: list[EntityValue]) -> None:
    policy = MemoryPolicy(window=10, max_context_length=50, summary_token_budget=120, summary_batch=20)
    summariser = ExtractiveSummariser(policy.summary_token_budget)
    messages = _long_conversation(5_000)
    summary: str | None = None
    covered = folds = 0
    for total in range(1, len(messages) + 1):
        if not needs_summary(total, covered, policy.max_context_length, policy.summary_batch):
            continue
        count = fold_count(total, covered, policy.max_context_length, policy.summary_max_fold)
        summary = summariser.update(summary, messages[covered : covered + count], entities)
        covered += count
        folds += 1
        assert count_tokens(summary) <= policy.summary_token_budget
    assert summary is not None
    assert covered == 5_000 - 50 - (5_000 - 50) % 20  # everything but the verbatim tail and a partial batch
    assert folds == (5_000 - 50) // 20  # once per batch, not once per turn
    lines = summary.splitlines()
    assert "12345" in lines[0]  # the fact outlives the line that said it...
    assert not any("order number is 12345" in line for line in lines)  # ...which dropped long ago
    assert any("message 49" in line for line in lines[1:])  # recent lines are what is kept


def test_an_import_folds_in_capped_steps_within_budget() -> None:
    summariser = ExtractiveSummariser(100)
    messages = _long_conversation(5_000)
    count = fold_count(len(messages), 0, 50, 500)
    summary = summariser.update(None, messages[:count], [])
    assert count == 500
    assert count_tokens(summary) <= 100
    assert "12345" in summary
