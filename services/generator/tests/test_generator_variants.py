"""Variant choice: language, personality, brief users, random / rotating / sticky selection, links; and the
stage's reply chunks and per-user preferences."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from parley.core.context_client import to_struct
from parley.core.events import Topic, derive_event, new_event
from parley.core.project import ProjectError, ResponsesFile, load_project
from parley.dialog.v1 import dialog_pb2
from parley.generator.adapters.stage import CachedPreferences, GeneratorStage
from parley.generator.domain.llm_reply import LlmResponder
from parley.generator.domain.prompt import PromptBuilder, PromptConfig
from parley.generator.domain.providers import ProviderChain, RetryPolicy
from parley.generator.domain.replies import Recipient, ReplyService
from parley.generator.domain.safety import InputRails, OutputValidator
from parley.generator.domain.templates import Audience, TemplateRenderer
from parley.generator.testing import CannedProvider
from parley.turn.v1 import turn_event_pb2 as pb


def responder(text: str) -> LlmResponder:
    return LlmResponder(
        ProviderChain([CannedProvider(text)], retry=RetryPolicy(max_attempts=1)),
        prompts=PromptBuilder(PromptConfig(max_tokens=64)),
        rails=InputRails(),
        validator=OutputValidator(default_reply="Sorry.", max_chars=300),
    )


EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "order-support"


def renderer(responses: dict, **top) -> TemplateRenderer:
    return TemplateRenderer(
        ResponsesFile.model_validate({"responses": responses, **top}), default_language="en"
    )


def say(r: TemplateRenderer, name: str, turn: str = "t1", audience: Audience | None = None, **params) -> str:
    action = dialog_pb2.Action(name=name, params=to_struct(params))
    return r.render(turn, [action], audience).text


GREETINGS = [{"text": "Hello!"}, {"text": "Hi there, how can I help?"}, {"text": "Good day to you."}]


def test_random_selection_is_reproducible_per_turn_and_varies_across_turns():
    r = renderer({"utter_greet": GREETINGS})
    assert say(r, "utter_greet", "turn-a") == say(r, "utter_greet", "turn-a")
    assert len({say(r, "utter_greet", f"turn-{i}") for i in range(30)}) == 3


def test_rotating_selection_says_each_variant_in_turn_within_a_conversation():
    r = renderer({"utter_greet": GREETINGS}, selection="rotating")
    first = Audience(conversation_id="c1")
    said = [say(r, "utter_greet", f"t{i}", first) for i in range(6)]
    assert said[:3] == [g["text"] for g in GREETINGS] and said[3:] == said[:3]
    assert say(r, "utter_greet", "t5", first) == said[5]  # the same turn again: the same variant
    assert say(r, "utter_greet", "x0", Audience(conversation_id="c2")) == said[0]  # its own rotation


def test_sticky_selection_keeps_one_wording_per_user():
    r = renderer({"utter_greet": GREETINGS}, selection_by_response={"utter_greet": "sticky"})
    per_user = {
        user: {say(r, "utter_greet", f"{user}-{i}", Audience(user_id=user)) for i in range(8)}
        for user in (f"user-{n}" for n in range(12))
    }
    assert all(len(texts) == 1 for texts in per_user.values())
    assert len({next(iter(texts)) for texts in per_user.values()}) > 1  # different users, different words


def test_the_turns_language_picks_its_variants_and_falls_back_to_the_assistants():
    r = renderer(
        {
            "utter_bye": [
                {"text": "Goodbye!"},
                {"text": "Auf Wiedersehen!", "language": "de"},
                {"text": "Tschüss!", "language": "de-AT"},
            ]
        }
    )
    german = {say(r, "utter_bye", f"t{i}", Audience(language="de-DE")) for i in range(20)}
    assert german == {"Auf Wiedersehen!", "Tschüss!"}
    assert {say(r, "utter_bye", f"t{i}", Audience(language="fr")) for i in range(10)} == {"Goodbye!"}
    assert {say(r, "utter_bye", f"t{i}") for i in range(10)} == {"Goodbye!"}


def test_personality_and_brief_users_choose_among_the_fitting_variants():
    r = renderer(
        {
            "utter_shipped": [
                {"text": "Great news: order {order_id} is on its way to you!", "style": "friendly"},
                {"text": "Order {order_id} has been dispatched.", "style": "professional"},
                {"text": "Order {order_id} shipped.", "style": "concise"},
                {"text": "Your order {order_id} left our warehouse today and should arrive soon."},
            ]
        }
    )
    for style, expected in (("friendly", "Great news"), ("professional", "has been dispatched")):
        texts = {say(r, "utter_shipped", f"t{i}", Audience(style=style), order_id="1") for i in range(10)}
        assert len(texts) == 1 and expected in texts.pop()
    brief = {say(r, "utter_shipped", f"t{i}", Audience(brief=True), order_id="1") for i in range(10)}
    assert brief == {"Order 1 shipped."}
    # a style nobody wrote for: unstyled and other variants stay possible, never nothing
    assert say(r, "utter_shipped", "t", Audience(style="pirate"), order_id="1")


def test_links_come_with_the_reply():
    r = renderer(
        {
            "utter_track": [
                {"text": "Track it here.", "links": [{"title": "Tracking", "url": "https://example.org/t"}]}
            ]
        }
    )
    reply = r.render("t", [dialog_pb2.Action(name="utter_track")])
    assert [(link.title, link.url) for link in reply.links] == [("Tracking", "https://example.org/t")]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"selection_by_response": {"utter_nope": "rotating"}}, "unknown response 'utter_nope'"),
        ({"selection": "shuffled"}, "selection"),
        (
            {
                "responses": {
                    "utter_greet": [{"text": "Hi", "links": [{"title": "x", "url": "javascript:alert(1)"}]}]
                }
            },
            "url",
        ),
    ],
)
def test_bad_response_settings_are_reported_with_file_and_line(tmp_path, patch, expected):
    root = tmp_path / "proj"
    shutil.copytree(EXAMPLE, root)
    data = yaml.safe_load((root / "responses.yml").read_text())
    for key, value in patch.items():
        if key == "responses":
            data["responses"].update(value)
        else:
            data[key] = value
    (root / "responses.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ProjectError) as info:
        load_project(root)
    assert any("responses.yml:" in p and expected in p for p in info.value.problems), info.value.problems


# --- the stage: chunks and preferences ----------------------------------------------------------------------


def decided(actions: list[dialog_pb2.Action], user: str = "u1") -> pb.TurnEvent:
    cause = new_event(
        conversation_id="c1", tenant_id="t", user_id=user, user_message=pb.UserMessage(text="x")
    )
    return derive_event(
        cause, "dialog", decided=pb.DecidedTurn(decision=dialog_pb2.Decision(actions=actions))
    )


class Profiles:
    def __init__(self, prefs: dict) -> None:
        self.prefs = prefs
        self.calls = Counter()

    async def preferences(self, tenant_id: str, user_id: str) -> dict:
        self.calls[user_id] += 1
        return self.prefs.get(user_id, {})


async def test_a_model_written_reply_goes_out_in_chunks_before_the_authoritative_reply():
    published: list[tuple[str, pb.TurnEvent]] = []

    async def publish(topic: str, event: pb.TurnEvent) -> None:
        published.append((topic, event))

    words = "Paris is the capital of France."
    replies = ReplyService(renderer({"utter_fallback": [{"text": "Sorry?"}]}), responder(words))
    stage = GeneratorStage(replies, publish=publish)
    unknown = dialog_pb2.Action(
        name="unknown", kind="unknown", params=to_struct({"text": "capital of France?"})
    )
    cause = decided([unknown])
    (out,) = await stage.handle(cause)
    assert out.topic == Topic.REPLIED and out.event.replied.reply.text == words
    assert len(published) > 3 and {topic for topic, _ in published} == {Topic.REPLY_CHUNK}
    chunks = [e.reply_chunk for _, e in published]
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert "".join(c.text for c in chunks).strip() == words
    assert len({e.event_id for _, e in published}) == len(published)  # distinct, and stable on redelivery
    assert all(e.turn_id == cause.turn_id and e.conversation_id == "c1" for _, e in published)


async def test_template_replies_publish_no_chunks():
    published = []

    async def publish(topic, event):
        published.append(event)

    stage = GeneratorStage(ReplyService(renderer({"utter_greet": GREETINGS})), publish=publish)
    (out,) = await stage.handle(decided([dialog_pb2.Action(name="utter_greet")]))
    assert out.event.replied.reply.text and published == []


async def test_a_users_brief_preference_picks_the_shortest_wording_and_is_cached():
    r = renderer({"utter_greet": GREETINGS})
    profiles = Profiles({"brief-user": {"prefers_brief": True}})
    now = [0.0]
    stage = GeneratorStage(
        ReplyService(r), preferences=CachedPreferences(profiles, ttl_s=30, clock=lambda: now[0])
    )
    for _ in range(3):
        (out,) = await stage.handle(decided([dialog_pb2.Action(name="utter_greet")], user="brief-user"))
        assert out.event.replied.reply.text == "Hello!"
    assert profiles.calls["brief-user"] == 1  # cached
    now[0] = 31.0
    await stage.handle(decided([dialog_pb2.Action(name="utter_greet")], user="brief-user"))
    assert profiles.calls["brief-user"] == 2  # read again after the TTL


async def test_unavailable_preferences_cost_nothing_but_the_preferences():
    class Down:
        async def preferences(self, tenant_id, user_id):
            raise ConnectionError("context is down")

    stage = GeneratorStage(
        ReplyService(renderer({"utter_greet": GREETINGS})), preferences=CachedPreferences(Down())
    )
    (out,) = await stage.handle(decided([dialog_pb2.Action(name="utter_greet")]))
    assert out.event.replied.reply.text in {g["text"] for g in GREETINGS}


async def test_personality_applies_to_template_replies():
    from parley.generator.domain.prompt import Personality  # noqa: PLC0415

    r = renderer(
        {
            "utter_ok": [
                {"text": "Sure thing, happy to help!", "style": "friendly"},
                {"text": "Done.", "style": "concise"},
            ]
        }
    )
    concise = ReplyService(r, personality=Personality.CONCISE)
    friendly = ReplyService(r, personality=Personality.FRIENDLY)
    action = [dialog_pb2.Action(name="utter_ok")]
    assert (await concise.reply("t", action, recipient=Recipient())).reply.text == "Done."
    assert (await friendly.reply("t", action)).reply.text == "Sure thing, happy to help!"
