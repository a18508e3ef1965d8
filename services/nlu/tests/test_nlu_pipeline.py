"""The whole understanding pipeline on the example project's trained model (the issue's must-show cases)."""

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from parley.core.grpc import GrpcServer, ServiceRegistration
from parley.nlu.adapters.grpc import NluServicer
from parley.nlu.domain.parser import FALLBACK_INTENT, ParseInput
from parley.nlu.v1 import nlu_pb2, nlu_pb2_grpc

WEDNESDAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_two_requests_in_one_message_yield_both_intents(parser):
    result = parser.parse("Cancel my order and also update my address")
    assert {i.name for i in result.intents} == {"order.cancel", "address.update"}
    assert not result.out_of_scope
    assert result.intent.name in {"order.cancel", "address.update"}
    assert {i.parent for i in result.intents} == {"order", "address"}


def test_gibberish_is_out_of_scope(parser):
    result = parser.parse("askdjfkajsdf")
    assert result.out_of_scope
    assert result.intent.name == FALLBACK_INTENT
    assert list(result.intents) == []
    assert result.frame.goal == ""


def test_next_friday_resolves_against_the_reference_time(parser):
    result = parser.parse(ParseInput("can my order arrive next Friday?", WEDNESDAY, "Europe/Berlin"))
    dates = [e for e in result.entities if e.resolved.fields.get("kind") and e.resolved["kind"] == "date"]
    assert len(dates) == 1, result.entities
    values = {dates[0].value, *(a.value for a in dates[0].alternatives)}
    assert values == {"2026-12-04", "2026-11-27"}
    assert result.text[dates[0].start : dates[0].end].lower() == "next friday"


def test_an_order_id_is_never_spell_corrected(parser):
    result = parser.parse("Wher is my ordr 12354?")
    assert "12354" in result.corrected_text
    assert result.corrected_text.startswith("Where is my order")
    assert [(e.type, e.value) for e in result.entities if e.type == "order_id"] == [("order_id", "12354")]
    assert all(c.original not in {"12354"} for c in result.corrections)
    # Offsets still point into what the user typed.
    order = next(e for e in result.entities if e.type == "order_id")
    assert result.text[order.start : order.end].endswith("12354")
    assert result.intent.name == "order_status"


def test_sentiment_language_and_frame_are_filled(parser):
    result = parser.parse("I want to cancel my order, this is URGENT!!!")
    assert result.language.code == "en"
    assert result.sentiment.urgency == "high"
    assert result.frame.goal == "order.cancel"
    assert list(result.frame.missing) == ["order_id"]
    given = parser.parse("please cancel order 12345")
    assert list(given.frame.missing) == []
    assert given.frame.constraints["order_id"] == "12345"


def test_a_batch_equals_singles_with_the_extras(parser):
    texts = ["Cancel my order and also update my address", "hi", "order 12345 please"]
    batch = parser.parse_batch(texts)
    singles = [parser.parse(t) for t in texts]
    for a, b in zip(batch, singles, strict=True):
        assert a.intent.name == b.intent.name
        assert [i.name for i in a.intents] == [i.name for i in b.intents]
        assert [(e.type, e.value) for e in a.entities] == [(e.type, e.value) for e in b.entities]


async def test_grpc_uses_reference_time_and_rejects_a_bad_timezone(parser):
    server = GrpcServer(
        [
            ServiceRegistration(
                nlu_pb2_grpc.add_NluServiceServicer_to_server, NluServicer(parser), "parley.nlu.v1.NluService"
            )
        ],
        port=0,
    )
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = nlu_pb2_grpc.NluServiceStub(channel)
            when = Timestamp()
            when.FromDatetime(WEDNESDAY)
            reply = await stub.Parse(nlu_pb2.ParseRequest(text="deliver it tomorrow", reference_time=when))
            assert [e.value for e in reply.result.entities if e.resolved["kind"] == "date"] == ["2026-11-26"]
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Parse(nlu_pb2.ParseRequest(text="hi", timezone="Mars/Olympus"))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "timezone" in caught.value.details()
    finally:
        await server.stop(0)


def test_the_projects_training_settings_reach_the_trainer(example_project, tmp_path, monkeypatch):
    """``assistant.yml``'s ``nlu.training`` is the trainer's config (the rest of training is covered by the
    trained-model tests; here only the hand-over, stopped before any weights are touched)."""
    import parley.nlu.model.train as train_module  # noqa: PLC0415
    from parley.core.project import NluSettings, NluTraining  # noqa: PLC0415
    from parley.nlu.pipeline import train_joint_model  # noqa: PLC0415

    seen = {}

    class Stop(Exception):
        pass

    def capture(examples, config, **kwargs):
        seen["config"] = config
        raise Stop

    monkeypatch.setattr(train_module, "train_joint", capture)
    training = NluTraining(epochs=2, oos_min_recall=0.75, freeze_embeddings=False)
    assistant = example_project.assistant.model_copy(update={"nlu": NluSettings(training=training)})
    project = example_project.model_copy(update={"assistant": assistant})
    with pytest.raises(Stop):
        train_joint_model(project, tmp_path, num_threads=1, progress=False)
    config = seen["config"]
    assert (config.epochs, config.oos_min_recall, config.freeze_embeddings) == (2, 0.75, False)
    assert config.num_threads == 1 and config.device == "cpu"
