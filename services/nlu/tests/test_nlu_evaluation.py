"""Evaluation: metrics on hand-computed cases, the runner on a fake predict, the report, the loaders."""

import os
from pathlib import Path

import pytest

from bench.datasets import (
    datasets_dir,
    load_banking77,
    load_clinc150,
    load_nlupp,
    load_snips,
)
from parley.core.errors import InvalidInputError
from parley.core.project import IntentSpec, ProjectError
from parley.nlu.evaluation import metrics
from parley.nlu.evaluation.examples import (
    Example,
    Span,
    bio_tags,
    examples_from_nlu,
    load_examples,
    spans_from_bio,
)
from parley.nlu.evaluation.report import write_report
from parley.nlu.evaluation.runner import cross_validate, eval_command, evaluate, fold_assignment
from parley.nlu.settings import NluSettings
from parley.nlu.v1 import nlu_pb2

# --- metrics ---------------------------------------------------------------------------------------


def test_accuracy_and_macro_f1_by_hand():
    gold, pred = ["a", "a", "b", "b"], ["a", "b", "b", "b"]
    assert metrics.accuracy(gold, pred) == 0.75
    # a: P 1, R 1/2 -> F1 2/3; b: P 2/3, R 1 -> F1 4/5
    assert metrics.macro_f1(gold, pred) == pytest.approx((2 / 3 + 4 / 5) / 2)
    scores = metrics.per_label_scores(gold, pred)
    assert scores["a"] == metrics.PRF(1.0, 0.5, pytest.approx(2 / 3), 2)
    with pytest.raises(ValueError, match="3 gold labels but 2 predictions"):
        metrics.accuracy(["a", "b", "c"], ["a", "b"])


def test_out_of_scope_scores_by_hand():
    gold, pred = ["oos", "oos", "a", "b"], ["oos", "a", "oos", "b"]
    assert metrics.oos_scores(gold, pred, "oos") == metrics.PRF(0.5, 0.5, 0.5, 2)
    assert metrics.in_scope_accuracy(gold, pred, "oos") == 0.5
    assert metrics.oos_scores(["a"], ["a"], "oos") == metrics.PRF(0.0, 0.0, 0.0, 0)


def test_multilabel_scores_by_hand():
    gold = [{"a", "b"}, {"c"}, set()]
    pred = [{"a"}, {"c", "d"}, set()]
    scores = metrics.multilabel_scores(gold, pred)
    # TP a, c; FP d; FN b -> micro P = R = F1 = 2/3; per label F1 a 1, b 0, c 1, d 0
    assert scores.micro_f1 == pytest.approx(2 / 3)
    assert scores.macro_f1 == pytest.approx(0.5)
    assert scores.exact_match == pytest.approx(1 / 3)
    assert scores.per_label["b"].support == 1 and scores.per_label["b"].f1 == 0


def test_slot_scores_with_seqeval():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-LOC"]]
    scores = metrics.slot_scores(gold, pred)
    # gold spans PER, LOC, LOC; predicted PER, ORG, LOC -> 2 of 3 right either way
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(2 / 3)
    assert scores.f1 == pytest.approx(2 / 3)
    assert scores.per_type["PER"].f1 == 1.0
    assert scores.per_type["LOC"] == metrics.PRF(1.0, 0.5, pytest.approx(2 / 3), 2)
    with pytest.raises(ValueError, match="sequence 0"):
        metrics.slot_scores([["O"]], [["O", "O"]])


def test_ece_is_zero_when_each_bin_is_calibrated():
    confidences = [0.8] * 10 + [0.3] * 10
    correct = [True] * 8 + [False] * 2 + [True] * 3 + [False] * 7
    assert metrics.expected_calibration_error(confidences, correct) == pytest.approx(0.0)
    bins = metrics.reliability_bins(confidences, correct)
    assert len(bins) == 15 and sum(b.count for b in bins) == 20
    used = [b for b in bins if b.count]
    assert [(b.count, b.accuracy) for b in used] == [(10, pytest.approx(0.3)), (10, pytest.approx(0.8))]


def test_ece_weights_the_gap_of_each_bin():
    # half the examples are calibrated at 0.8, the other half say 0.9 and are all wrong
    confidences = [0.8] * 10 + [0.9] * 10
    correct = [True] * 8 + [False] * 2 + [False] * 10
    assert metrics.expected_calibration_error(confidences, correct) == pytest.approx(0.45)
    assert metrics.expected_calibration_error([1.0] * 4, [True, False, True, False]) == pytest.approx(0.5)
    assert metrics.expected_calibration_error([], []) == 0.0


def test_confusion_and_most_confused_pairs():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "a", "b", "b"]
    matrix = metrics.confusion(gold, pred)
    assert matrix.labels == ("a", "b", "c")
    assert matrix.matrix.tolist() == [[1, 2, 0], [1, 1, 0], [0, 1, 0]]
    assert metrics.top_confused_pairs(matrix, 2) == [
        metrics.ConfusedPair("a", "b", 2),
        metrics.ConfusedPair("b", "a", 1),
    ]


# --- examples and BIO -----------------------------------------------------------------------------


def test_bio_tags_over_whitespace_tokens():
    text = "order #123, please ship to New York"
    spans = [Span(6, 10, "order_id"), Span(27, 35, "city")]
    assert bio_tags(text, spans) == ["O", "B-order_id", "O", "O", "O", "B-city", "I-city"]
    # overlapping predictions give one entity, the longer one, not a broken sequence
    assert bio_tags("in New York", [Span(3, 6, "a"), Span(3, 11, "city")]) == ["O", "B-city", "I-city"]


def test_spans_from_bio_round_trip():
    words = ["play", "the", "beatles", "on", "spotify"]
    text, spans = spans_from_bio(words, ["O", "B-artist", "I-artist", "O", "B-service"])
    assert text == "play the beatles on spotify"
    assert [text[s.start : s.end] for s in spans] == ["the beatles", "spotify"]
    assert bio_tags(text, spans) == ["O", "B-artist", "I-artist", "O", "B-service"]


def test_load_examples_reads_annotations_multi_intent_and_out_of_scope(tmp_path):
    good = tmp_path / "test.yml"
    good.write_text(
        "intents:\n"
        "  order_status:\n    examples:\n      - where is order [123](order_id)\n"
        "      - text: where is it and when does it come\n        intents: [order_status, delivery]\n"
        "  delivery:\n    examples:\n      - when does it come\n"
        "entities:\n  order_id: {}\n"
        "out_of_scope:\n  - tell me a joke\n"
    )
    assert load_examples(good) == [
        Example("where is order 123", ("order_status",), (Span(15, 18, "order_id"),)),
        Example("where is it and when does it come", ("order_status", "delivery")),
        Example("when does it come", ("delivery",)),
        Example("tell me a joke", ()),
    ]


def test_load_examples_names_the_file_and_line_of_problems(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("intents:\n  greet:\n    examples: []\n  bye:\n    examples: [bye]\n")
    with pytest.raises(ProjectError, match=r"bad\.yml:3"):
        load_examples(bad)
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_examples(tmp_path / "missing.yml")


# --- the runner -----------------------------------------------------------------------------------


def _result(
    intent: str, confidence: float, entities=(), intents=None, oos=False, ranked=None
) -> nlu_pb2.ParseResult:
    top = nlu_pb2.Intent(name=intent, confidence=confidence)
    return nlu_pb2.ParseResult(
        intent=top,
        ranking=[nlu_pb2.Intent(name=ranked or intent, confidence=confidence)],
        intents=[nlu_pb2.Intent(name=i) for i in intents or ()],
        out_of_scope=oos,
        entities=[nlu_pb2.Entity(type=t, start=s, end=e) for s, e, t in entities],
    )


class FakeParser:
    """A batch predict answering from a table, recording the batch sizes it was called with."""

    def __init__(self, answers):
        self.answers = answers
        self.batches = []

    def __call__(self, texts):
        self.batches.append(len(texts))
        return [self.answers[t] for t in texts]


def test_evaluate_scores_a_fake_predict_with_oos_and_slots():
    examples = [
        Example("where is order 123", ("order_status",), (Span(15, 18, "order_id"),)),
        Example("hi", ("greet",)),
        Example("hello there", ("greet",)),
        Example("bye now", ("goodbye",)),
        Example("what is the weather", ("oos",)),
        Example("sing a song", ("oos",)),
    ]
    predict = FakeParser(
        {
            "where is order 123": _result("order_status", 0.9, [(15, 18, "order_id")]),
            "hi": _result("greet", 0.8),
            "hello there": _result("order_status", 0.6),
            # right at the top of the ranking, but below the threshold: a fallback
            "bye now": _result("nlu_fallback", 0.3, oos=True, ranked="goodbye"),
            "what is the weather": _result("nlu_fallback", 0.2, oos=True, ranked="greet"),
            "sing a song": _result("greet", 0.7),
        }
    )
    res = evaluate(predict, examples, oos_label="oos", batch_size=4, progress=False)
    assert predict.batches == [4, 2]
    assert res.examples == 6
    assert res.accuracy == pytest.approx(3 / 6)
    assert res.in_scope_accuracy == pytest.approx(2 / 4)
    assert res.in_scope_top1 == pytest.approx(3 / 4)
    assert res.oos == metrics.PRF(0.5, 0.5, 0.5, 2)
    assert res.slots is not None and res.slots.f1 == 1.0
    assert res.multilabel is None
    assert metrics.ConfusedPair("greet", "order_status", 1) in res.confused_pairs
    assert metrics.ConfusedPair("goodbye", "oos", 1) in res.confused_pairs
    # fallbacks are not committed predictions: 4 left, 2 right (0.9, 0.8), 2 wrong (0.6, 0.7)
    assert sum(b.count for b in res.reliability) == 4
    assert res.ece == pytest.approx((0.1 + 0.2 + 0.6 + 0.7) / 4)
    assert {"predict_s", "examples_per_s"} <= set(res.timings)
    assert evaluate(predict, examples, progress=False).in_scope_top1 is None  # no OOS label, no OOS


def test_evaluate_multi_label_uses_the_intents_list():
    examples = [
        Example("cancel and change address", ("cancel", "change_address")),
        Example("cancel it", ("cancel",)),
        Example("today", ()),
    ]
    predict = FakeParser(
        {
            "cancel and change address": _result("cancel", 0.9, intents=["cancel", "change_address"]),
            "cancel it": _result("cancel", 0.8, intents=["cancel", "refund"]),
            "today": _result("nlu_fallback", 0.1, oos=True),
        }
    )
    res = evaluate(predict, examples, progress=False)
    assert res.multilabel is not None
    # TP 3, FP 1 (refund), FN 0 -> micro F1 = 6/7
    assert res.multilabel.micro_f1 == pytest.approx(6 / 7)
    assert res.multilabel.exact_match == pytest.approx(2 / 3)  # first and third
    # the top intent is one of the gold ones, and falling back on "today" (no intent) is right
    assert res.accuracy == 1.0
    assert res.per_intent["(no intent)"].f1 == 1.0


def test_evaluate_rejects_a_predict_that_drops_results():
    with pytest.raises(ValueError, match="1 results for 2 texts"):
        evaluate(
            lambda texts: [_result("a", 1.0)], [Example("x", ("a",)), Example("y", ("a",))], progress=False
        )


def test_fold_assignment_is_stratified_and_keeps_single_examples_for_training(example_project):
    intents = {**example_project.nlu.intents, "lonely": IntentSpec(examples=["just me"])}
    project = example_project.model_copy(
        update={"nlu": example_project.nlu.model_copy(update={"intents": intents})}
    )
    plan = fold_assignment(project, 3)
    assert plan.intents["lonely"] == [-1]
    assert list(plan.intents) == list(project.nlu.intents)  # nlu.yml order, for zipping with examples
    for name, assigned in plan.intents.items():
        if name == "lonely":
            continue
        counts = [assigned.count(f) for f in range(3)]
        assert max(counts) - min(counts) <= 1, name
    assert len(plan.out_of_scope) == len(project.nlu.out_of_scope)
    assert fold_assignment(project, 3) == plan  # seeded
    with pytest.raises(InvalidInputError, match="at least 2 folds"):
        fold_assignment(project, 1)


def test_cross_validate_the_example_project(example_project, encoder):
    res = cross_validate(example_project, encoder, folds=3, progress=False)
    assert res.examples == len(examples_from_nlu(example_project))  # every intent has 2+ examples
    assert res.accuracy > 0.6  # held-out examples of a small, clearly separated project
    assert res.timings["folds"] == 3


def test_eval_command_on_a_held_out_file(example_project, tmp_path):
    test_file = tmp_path / "test.yml"
    test_file.write_text(
        "intents:\n"
        "  order_status:\n    examples:\n      - where is my parcel\n      - track order 4455\n"
        "  greet:\n    examples:\n      - hey hello\n"
        "out_of_scope:\n  - askdjfkajsdf\n"
    )
    report = eval_command(
        example_project.root,
        test_file,
        tmp_path / "report",
        settings=NluSettings(model_dir=tmp_path / "models"),
        progress=False,
    )
    assert report == tmp_path / "report" / "report.md"
    text = report.read_text()
    assert "OOS recall" in text and "test.yml" in text
    assert (tmp_path / "report" / "report.html").is_file()


# --- the report -----------------------------------------------------------------------------------


def test_write_report_has_tables_plots_and_numbers(tmp_path):
    examples = [Example(f"text {i}", (intent,)) for i, intent in enumerate(["a", "a", "a", "b", "b", "c"])]
    predicted = ["a", "b", "b", "a", "b", "b"]
    answers = {
        e.text: _result(p, 0.5 + 0.05 * i) for i, (e, p) in enumerate(zip(examples, predicted, strict=True))
    }
    first = evaluate(FakeParser(answers), examples, progress=False)
    second = evaluate(
        FakeParser({e.text: _result(e.intents[0], 0.9) for e in examples}), examples, progress=False
    )
    path = write_report({"baseline": first, "parley": second}, tmp_path / "out", "Tiny test set")
    assert path == tmp_path / "out" / "report.md"
    md = path.read_text()
    html = (tmp_path / "out" / "report.html").read_text()
    assert "# Tiny test set" in md and "<h1>Tiny test set</h1>" in html
    assert "| accuracy | 33.33 | 100.00 |" in md  # 2 of 6 right vs all right
    assert "| a | b | 2 |" in md  # the most confused pair
    for png in ("reliability.png", "confusion-baseline.png", "per-intent-f1-baseline.png"):
        data = (tmp_path / "out" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, png
        assert f"]({png})" in md and f'src="{png}"' in html
    assert not (tmp_path / "out" / "confusion-parley.png").exists()  # no mistakes, no heat map
    assert (tmp_path / "out" / "results.json").is_file()


# --- the benchmark data sets ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def datasets_root() -> Path:
    root = datasets_dir()
    if not root.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{root} is missing; CI has the shared datasets beside the checkout")
        pytest.skip(f"{root} not present (set PARLEY_DATASETS_DIR)")
    return root


def test_clinc150_splits(datasets_root):
    ds = load_clinc150(datasets_root)
    sizes = [(len(s), sum(e.intents == ("oos",) for e in s)) for s in (ds.train, ds.val, ds.test)]
    assert sizes == [(15_100, 100), (3_100, 100), (5_500, 1_000)]
    assert len(ds.intents) == 150 and ds.oos_label == "oos"


def test_banking77_splits(datasets_root):
    ds = load_banking77(datasets_root)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (9_000, 1_003, 3_080)
    assert len(ds.intents) == 77 and {e.intents[0] for e in ds.val} == set(ds.intents)
    assert load_banking77(datasets_root).val == ds.val  # seeded


def test_snips_splits_and_slots(datasets_root):
    ds = load_snips(datasets_root)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (13_084, 700, 700)
    assert len(ds.intents) == 7
    example = ds.train[1]
    assert example.text == "add step to me to the 50 clásicos playlist"
    assert [(example.text[s.start : s.end], s.type) for s in example.entities] == [
        ("step to me", "entity_name"),
        ("50 clásicos", "playlist"),
    ]


def test_nlupp_splits(datasets_root):
    banking, hotels = load_nlupp("banking", datasets_root), load_nlupp("hotels", datasets_root)
    assert (len(banking.train), len(banking.val), len(banking.test)) == (1_862, 0, 209)
    assert (len(hotels.train), len(hotels.test)) == (914, 95)
    assert banking.multi_label and banking.has_slots
    for e in banking.test:
        assert all(0 <= s.start < s.end <= len(e.text) for s in e.entities)
    with pytest.raises(ValueError, match="banking, hotels or all"):
        load_nlupp("restaurants", datasets_root)
