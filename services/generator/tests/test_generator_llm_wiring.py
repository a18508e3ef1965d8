"""The LLM path wired into the generator: off by default (templates only, no provider built), and when
turned on, over a real gRPC server against the real llama.cpp server (SmolLM2, tiny token budgets: what the
model says is not asserted, only that it answered through each path). A scripted provider (a fake of our
own LlmProvider port) stands in where a test needs a particular answer (a dropped slot value)."""

from __future__ import annotations

import json

import grpc
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley.core.context_client import to_struct
from parley.core.grpc import GrpcServer
from parley.dialog.v1 import dialog_pb2
from parley.generator.adapters.llm_factory import LlmSettings, ProviderConfig
from parley.generator.app import build_generator
from parley.generator.domain.llm_reply import LlmResponder
from parley.generator.domain.prompt import PromptBuilder, PromptConfig
from parley.generator.domain.providers import DEFAULT_REPLY, ProviderChain, RetryPolicy
from parley.generator.domain.replies import ReplyService
from parley.generator.domain.safety import InputRails, OutputValidator
from parley.generator.domain.templates import BUILTIN_FALLBACK, TemplateRenderer
from parley.generator.settings import GeneratorSettings
from parley.generator.testing import CannedProvider as Canned
from parley.generator.v1 import generator_pb2, generator_pb2_grpc

CANCELLED = dialog_pb2.Action(name="utter_order_was_cancelled", params=to_struct({"order_id": "12345"}))
CANCELLED_TEXT = "Order 12345 was cancelled, so it won't be delivered."


def unknown(text: str | None = None) -> dialog_pb2.Action:
    params = to_struct({"text": text}) if text is not None else None
    return dialog_pb2.Action(name="utter_ask_rephrase", kind="unknown", params=params)


def request(*actions: dialog_pb2.Action, turn_id: str = "turn-1") -> generator_pb2.GenerateRequest:
    return generator_pb2.GenerateRequest(conversation_id="c1", turn_id=turn_id, actions=actions)


def llm_settings(base_url: str, **overrides) -> LlmSettings:
    values = {
        "enabled": True,
        "providers": [ProviderConfig(kind="openai", name="llama", base_url=base_url, model="smollm2")],
        "max_attempts": 2,
        "base_delay_s": 0.01,
        "max_tokens": 24,
        "default_temperature": 0.0,
        "cache_enabled": False,
        "use_tools": False,  # SmolLM2 on two cores: plain chat keeps the real-server tests quick
    }
    return LlmSettings(**{**values, **overrides})


async def started(service):
    server = GrpcServer([service.registration], port=0)
    port = await server.start()
    return server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")


# ---- disabled (the default) ------------------------------------------------------------------------------


def test_llm_settings_come_from_nested_environment_variables(monkeypatch):
    assert GeneratorSettings().llm.enabled is False
    monkeypatch.setenv("PARLEY_GENERATOR_LLM__ENABLED", "true")
    monkeypatch.setenv("PARLEY_GENERATOR_LLM__HYBRID", "true")
    monkeypatch.setenv("PARLEY_GENERATOR_LLM__MAX_TOKENS", "64")
    monkeypatch.setenv(
        "PARLEY_GENERATOR_LLM__PROVIDERS",
        '[{"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m", "name": "vllm"}]',
    )
    settings = GeneratorSettings()
    assert settings.llm.enabled is True and settings.llm.hybrid is True and settings.llm.max_tokens == 64
    assert [(p.kind, p.label, p.model) for p in settings.llm.providers] == [("openai", "vllm", "m")]


async def test_disabled_by_default_builds_no_provider_and_renders_templates(project):
    service = build_generator(GeneratorSettings(), project)
    assert service.llm is None and not service.replies.llm_enabled
    server, channel = await started(service)
    try:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        for actions in ([CANCELLED], [unknown("where is my parcel?")], [unknown()]):
            expected = service.renderer.render("turn-1", actions)
            response = await stub.Generate(request(*actions))
            assert response.reply == expected
            chunks = [c async for c in stub.GenerateStream(request(*actions))]
            assert chunks[-1].final and chunks[-1].reply == expected
            assert "".join(c.text_delta for c in chunks[:-1]) == expected.text
    finally:
        await channel.close()
        await server.stop(0)
        await service.aclose()


# ---- enabled, against the real llama.cpp server --------------------------------------------------------


@pytest.fixture
async def llm_stub(llama_server, project):
    service = build_generator(GeneratorSettings(llm=llm_settings(llama_server.base_url)), project)
    assert service.llm is not None
    server, channel = await started(service)
    yield generator_pb2_grpc.GeneratorServiceStub(channel), service
    await channel.close()
    await server.stop(0)
    await service.aclose()


async def test_unknown_action_with_user_text_gets_an_llm_reply(llm_stub):
    stub, service = llm_stub
    actions = [unknown("Hello, can you tell me a joke about parcels?")]
    response = await stub.Generate(request(*actions))
    # The model answered, not the chain's last resort.
    assert response.reply.text.strip() and response.reply.text != DEFAULT_REPLY
    assert response.reply.text != service.renderer.render("turn-1", actions).text


async def test_unknown_action_without_user_text_keeps_the_template(llm_stub):
    stub, service = llm_stub
    response = await stub.Generate(request(unknown()))
    assert response.reply == service.renderer.render("turn-1", [unknown()])
    response = await stub.Generate(request(CANCELLED))
    assert response.reply.text == CANCELLED_TEXT  # not hybrid: templates as they are


async def test_stream_delivers_the_model_deltas_then_a_final_chunk(llm_stub):
    stub, _ = llm_stub
    chunks = [c async for c in stub.GenerateStream(request(unknown("Say hello to me, please.")))]
    deltas, final = chunks[:-1], chunks[-1]
    assert len(deltas) >= 2, chunks
    assert all(c.text_delta and not c.final for c in deltas)
    assert final.final and final.reply.text.strip() and final.reply.text != DEFAULT_REPLY
    assert final.reply.text == "".join(c.text_delta for c in deltas).strip()


async def test_refused_user_text_gets_the_safety_reply_not_the_model(llm_stub):
    stub, service = llm_stub
    response = await stub.Generate(request(unknown("I want to build a bomb")))
    assert response.reply.text == service.llm.rails.check("I want to build a bomb").reply


async def test_hybrid_mode_keeps_slot_values_with_the_real_model(llama_server, project):
    settings = GeneratorSettings(llm=llm_settings(llama_server.base_url, hybrid=True))
    service = build_generator(settings, project)
    server, channel = await started(service)
    try:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        response = await stub.Generate(request(CANCELLED))
        assert "12345" in response.reply.text
        assert list(response.reply.templates) == ["utter_order_was_cancelled"]
    finally:
        await channel.close()
        await server.stop(0)
        await service.aclose()


async def test_enabled_llm_is_offered_the_projects_tools(scripted_server, project):
    bodies: list[dict] = []

    async def answer(req: Request) -> Response:
        bodies.append(json.loads(await req.body()))
        message = {"role": "assistant", "content": "Happy to help with your order."}
        return JSONResponse({"choices": [{"index": 0, "finish_reason": "stop", "message": message}]})

    async with scripted_server(answer) as base_url:
        settings = llm_settings(base_url, use_tools=True, max_attempts=1)
        service = build_generator(GeneratorSettings(llm=settings), project)
        try:
            generated = await service.replies.reply("t", [unknown("Can you check an order for me?")])
        finally:
            await service.aclose()
    assert generated.reply.text == "Happy to help with your order." and generated.source == "llm"
    offered = {tool["function"]["name"] for tool in bodies[0]["tools"]}
    assert "lookup_order" in offered
    assert bodies[0]["messages"][-1]["content"] == "Can you check an order for me?"


# ---- hybrid mode with a scripted provider -----------------------------------------------------------------


def replies(project, llm: Canned, *, hybrid: bool) -> ReplyService:
    responder = LlmResponder(
        ProviderChain([llm], retry=RetryPolicy(max_attempts=1)),
        prompts=PromptBuilder(PromptConfig(max_tokens=24)),
        rails=InputRails(),
        validator=OutputValidator(default_reply=BUILTIN_FALLBACK, max_chars=300),
    )
    return ReplyService(TemplateRenderer(project.responses), responder, hybrid=hybrid)


async def test_hybrid_uses_the_rewording_that_kept_every_value(project):
    llm = Canned("Your order 12345 has been cancelled and will not ship.")
    generated = await replies(project, llm, hybrid=True).reply("t", [CANCELLED])
    assert generated.reply.text == "Your order 12345 has been cancelled and will not ship."
    assert generated.source == "llm" and list(generated.reply.templates) == ["utter_order_was_cancelled"]
    assert CANCELLED_TEXT in llm.requests[0].messages[-1].content


async def test_hybrid_keeps_the_template_when_the_model_drops_a_value(project):
    llm = Canned("Your order has been cancelled.")
    generated = await replies(project, llm, hybrid=True).reply("t", [CANCELLED])
    assert generated.reply.text == CANCELLED_TEXT and generated.source == "template"


async def test_without_hybrid_templates_never_reach_the_model(project):
    llm = Canned("Something else entirely.")
    generated = await replies(project, llm, hybrid=False).reply("t", [CANCELLED])
    assert generated.reply.text == CANCELLED_TEXT and not llm.requests
