"""`parley test`: arguments, what stops a run before it starts, and a real run's reports."""

from __future__ import annotations

import io
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from parley.cli.convtest import run_tests, select
from parley.cli.main import build_parser, main
from parley.core.convtest import junit_xml, load_tests, parse_tests

REPO = Path(__file__).resolve().parents[3]
PROJECT = REPO / "examples" / "order-support"

ONE_GOOD_ONE_BAD = """\
conversations:
  - name: greeting
    steps:
      - user: "hi"
        intent: greet
        options: ["Where is my order?", "Book a flight", "Weather"]
  - name: wrong on purpose
    steps:
      - user: "Book a flight"
        flow: book_flight
      - user: "Berlin"
        slots: {origin: Paris}
        bot_contains: "flying to"
      - user: "never reached"
"""


def test_the_arguments_of_parley_test():
    args = build_parser().parse_args(["test"])
    assert (args.project, args.files, args.junit, args.k) == (Path("examples/order-support"), [], None, None)
    args = build_parser().parse_args(
        ["test", "proj", "a.yml", "b/", "--junit", "r.xml", "-k", "flight", "-v"]
    )
    assert (args.project, args.files, args.junit) == (
        Path("proj"),
        [Path("a.yml"), Path("b/")],
        Path("r.xml"),
    )
    assert (args.k, args.verbose, args.timeout) == ("flight", True, 90.0)


def test_an_invalid_test_file_stops_the_run_with_its_lines(tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text("conversations:\n  - name: x\n    steps:\n      - user: hi\n        bot_contain: hello\n")
    assert main(["test", str(PROJECT), str(bad)]) == 2
    assert f"{bad}:5: unknown key 'bot_contain'" in capsys.readouterr().err


def test_an_invalid_project_stops_the_run(tmp_path, capsys):
    assert main(["test", str(tmp_path / "nowhere")]) == 2
    assert "no such assistant project folder" in capsys.readouterr().err


def test_nothing_selected_stops_the_run(capsys):
    assert main(["test", str(PROJECT), "-k", "no conversation has this name"]) == 2
    assert "no conversations to run" in capsys.readouterr().err


def test_select_matches_file_and_name():
    conversations = load_tests([PROJECT / "tests"])
    assert select(conversations, None) == conversations
    flights = select(conversations, "FLIGHTS.yml::")
    assert flights and all(c.file.name == "flights.yml" for c in flights)
    assert [c.name for c in select(conversations, "make it tuesday")] == [
        'correct a slot while confirming ("no, make it Tuesday")'
    ]


@pytest.mark.integration
@pytest.mark.timeout(1800)  # trains the NLU model first when nlu.yml changed since the last run
async def test_a_run_reports_passes_and_failures_with_the_transcript(postgres_dsn, tmp_path):
    conversations = parse_tests(ONE_GOOD_ONE_BAD, tmp_path / "mixed.yml")
    out = io.StringIO()
    results = await run_tests(
        PROJECT, conversations, out=out, data_dir=REPO / ".local" / "embedded", database_url=postgres_dsn
    )
    good, bad = results
    assert good.passed and not bad.passed
    assert len(bad.steps) == 2  # stopped at the failing step: the third never ran
    assert bad.conversation_id and bad.conversation_id != good.conversation_id
    report = out.getvalue()
    assert "PASS mixed.yml::greeting" in report
    assert "FAIL mixed.yml::wrong on purpose (2/3 steps" in report
    assert "  2. user: Berlin\n     bot:  And where are you flying to?" in report
    assert f"✗ step at {tmp_path / 'mixed.yml'}:11" in report
    assert "line 12: slots: expected slot origin='Paris', got 'Berlin'" in report
    assert "bot_contains" not in report  # the expectation that held is not reported
    assert "decided: intent=inform flow=book_flight step=collect:destination" in report
    case = ET.fromstring(junit_xml(results)).findall("testcase")[1]
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == (
        "step 2 ('Berlin'): line 12: slots: expected slot origin='Paris', got 'Berlin'"
    )
