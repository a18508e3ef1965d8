"""The shared temporal grammar: dates and times resolved against the user's clock, as plain dataclasses."""

import itertools
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from parley.core.errors import InvalidInputError
from parley.core.temporal import Reading, TemporalFinder, TemporalMention, find_temporal

WEDNESDAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # Wednesday, 11:00 in Berlin


@pytest.fixture(scope="module")
def grammar_only() -> TemporalFinder:
    return TemporalFinder(use_dateparser=False)


def _one(mentions: list[TemporalMention]) -> TemporalMention:
    assert len(mentions) == 1, [m.text for m in mentions]
    return mentions[0]


def test_next_friday_on_a_wednesday_is_next_weeks_with_this_weeks_as_alternative():
    mention = _one(find_temporal("Can you deliver it next Friday?", WEDNESDAY, "Europe/Berlin"))
    assert (mention.text, mention.source, mention.confidence) == ("next Friday", "grammar", 0.95)
    assert mention.best == Reading("2026-12-04", {"kind": "date", "date": "2026-12-04", "grain": "day"}, 0.6)
    assert [(r.value, r.confidence) for r in mention.alternatives] == [("2026-11-27", 0.4)]
    assert mention.alternatives[0].resolved["date"] == "2026-11-27"
    assert mention.readings == (mention.best, *mention.alternatives)


@pytest.mark.parametrize(
    ("reference", "timezone", "expected"),
    [
        (datetime(2026, 11, 25, 23, 30, tzinfo=UTC), "UTC", "2026-11-26"),
        (datetime(2026, 11, 25, 23, 30, tzinfo=UTC), "Europe/Berlin", "2026-11-27"),  # Thursday 00:30 there
        (datetime(2026, 11, 26, 3, 0, tzinfo=UTC), "America/Los_Angeles", "2026-11-26"),  # Wednesday 19:00
        (datetime(2026, 11, 25, 23, 30), "Europe/Berlin", "2026-11-27"),  # naive reference time is UTC
    ],
)
def test_tomorrow_is_the_day_after_the_users_local_date(grammar_only, reference, timezone, expected):
    mention = _one(grammar_only.find("see you tomorrow", reference, timezone))
    assert (mention.text, mention.best.value) == ("tomorrow", expected)


def test_a_datetime_is_on_the_users_wall_clock_with_its_timezone(grammar_only):
    mention = _one(grammar_only.find("tomorrow at 5pm", WEDNESDAY, "America/New_York"))
    assert mention.best.value == "2026-11-26T17:00:00-05:00"
    assert mention.best.resolved == {
        "kind": "datetime",
        "datetime": "2026-11-26T17:00:00-05:00",
        "date": "2026-11-26",
        "time": "17:00",
        "grain": "minute",
        "timezone": "America/New_York",
    }


def test_offsets_and_text_match_the_input_in_text_order(grammar_only):
    text = "Café ☕ — order 4411: tomorrow at 5pm, or on 3 March; not this weekend."
    mentions = grammar_only.find(text, WEDNESDAY, "Europe/Berlin")
    assert [m.text for m in mentions] == ["tomorrow at 5pm", "on 3 March", "this weekend"]
    for mention in mentions:
        assert text[mention.start : mention.end] == mention.text
    assert [m.best.value for m in mentions] == [
        "2026-11-26T17:00:00+01:00",
        "2027-03-03",
        "2026-11-28/2026-11-29",
    ]
    assert mentions[2].best.resolved["kind"] == "interval"
    assert all(a.end <= b.start for a, b in itertools.pairwise(mentions))


def test_excluded_spans_are_never_mentions(grammar_only):
    text = "order 12345 arrives next Friday or on 3 March"
    friday = text.index("next Friday")
    found = grammar_only.find(text, WEDNESDAY, "UTC", exclude=[(friday + 5, friday + 8)])
    assert [m.text for m in found] == ["on 3 March"]  # a partial overlap excludes the whole expression
    assert grammar_only.find(text, WEDNESDAY, "UTC", exclude=[(0, len(text))]) == []


def test_numbers_greetings_and_verbs_are_not_dates(grammar_only):
    for text in ["good morning", "may I ask something", "I paid 2.5 times more", "order 12345", "3 items"]:
        assert grammar_only.find(text, WEDNESDAY, "UTC") == [], text


def test_unknown_timezone_is_invalid_input(grammar_only):
    with pytest.raises(InvalidInputError, match="Mars/Olympus"):
        grammar_only.find("tomorrow", WEDNESDAY, "Mars/Olympus")


def test_dateparser_reads_other_languages_and_honours_exclusions():
    finder = TemporalFinder()
    text = "Lieferung am 3. März bitte"
    mention = _one(finder.find(text, WEDNESDAY, "Europe/Berlin", language="de"))
    assert (mention.text, mention.best.value, mention.source) == ("am 3. März", "2027-03-03", "dateparser")
    assert text[mention.start : mention.end] == mention.text
    assert mention.confidence < 0.9  # the fallback is less sure than the grammar
    assert finder.find(text, WEDNESDAY, "Europe/Berlin", exclude=[(13, 15)], language="de") == []
    assert finder.parse("3. März", WEDNESDAY, "Europe/Berlin", language="de") == mention.best


def test_without_dateparser_what_the_grammar_does_not_know_is_not_found(grammar_only):
    assert grammar_only.find("Lieferung am 3. März", WEDNESDAY, "Europe/Berlin", language="de") == []
    assert grammar_only.parse("3. März", WEDNESDAY, "Europe/Berlin", language="de") is None


def test_importing_the_module_is_cheap_and_independent_of_the_services():
    code = (
        "import sys, parley.core.temporal; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dateparser' "
        "or m.startswith(('parley.nlu', 'parley.core.project'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
