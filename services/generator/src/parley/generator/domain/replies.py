"""The reply for a decision: templates as always, a language model where one is configured and helps.

Without a responder this is exactly the template renderer. With one:

* an action the templates cannot answer -- kind ``unknown`` (nothing understood) or a name with no
  template -- is answered by the model, from the user's words when the dialog passed them as the ``text``
  param (the request itself carries no user text); without them the templates' fallback stays;
* in hybrid mode the rendered template text is reworded by the model, which keeps the template text
  unless every slot value survived (:meth:`LlmResponder.rephrase`).

The responder applies the input rails to the user's words and validates what the model says. A responder
that fails unexpectedly costs the LLM part only: the template reply goes out instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.json_format import MessageToDict

from parley.core.logging import get_logger
from parley.dialog.v1 import dialog_pb2
from parley.generator.domain.llm_reply import LlmResponder, ReplySource
from parley.generator.domain.prompt import Personality, PromptInput, UserPreferences
from parley.generator.domain.templates import Audience, TemplateRenderer, split_words
from parley.generator.v1 import generator_pb2

log = get_logger(__name__)

#: The action kind the dialog uses when it understood nothing.
UNKNOWN_KIND = "unknown"
#: The action param holding the user's own words, when the dialog passes them.
USER_TEXT_PARAM = "text"


@dataclass(frozen=True)
class GeneratedReply:
    """A reply and where its text came from (``template`` or a :data:`ReplySource` of the LLM path)."""

    reply: generator_pb2.Reply
    source: ReplySource = "template"


@dataclass(frozen=True)
class ReplyPiece:
    """One piece of a streamed reply: a text delta, or (last) the whole reply."""

    text_delta: str = ""
    final: GeneratedReply | None = None


@dataclass(frozen=True)
class Recipient:
    """Who the reply is for, beyond the turn: conversation, user and what their profile prefers."""

    conversation_id: str = ""
    user_id: str = ""
    prefers_brief: bool = False


@dataclass(frozen=True)
class _Plan:
    """Which actions the templates render and, when the model answers the rest, from which words."""

    templated: list[dialog_pb2.Action]
    answered: list[dialog_pb2.Action]
    user_text: str
    slots: dict[str, Any]


def _params(action: dialog_pb2.Action) -> dict[str, Any]:
    return MessageToDict(action.params)


def _flat_values(params: Mapping[str, Any], options: Iterable[dialog_pb2.Option]) -> dict[str, Any]:
    """Every scalar value an action shows (list items one by one, option titles), for hybrid checks."""
    values: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, list):
            values.update({f"{key}[{i}]": item for i, item in enumerate(value) if not isinstance(item, dict)})
        elif not isinstance(value, dict | bool) and value is not None:
            values[key] = int(value) if isinstance(value, float) and value.is_integer() else value
    values.update({f"option[{i}]": o.title for i, o in enumerate(options) if o.title})
    return values


class ReplyService:
    """Renders replies for the gRPC servicer and the stage (see the module docstring)."""

    def __init__(
        self,
        renderer: TemplateRenderer,
        responder: LlmResponder | None = None,
        *,
        hybrid: bool = False,
        personality: Personality = Personality.FRIENDLY,
    ) -> None:
        self._renderer = renderer
        self._responder = responder
        self._hybrid = hybrid
        self._personality = personality

    @property
    def renderer(self) -> TemplateRenderer:
        return self._renderer

    @property
    def llm_enabled(self) -> bool:
        return self._responder is not None

    def _needs_llm(self, action: dialog_pb2.Action) -> bool:
        return action.kind == UNKNOWN_KIND or not self._renderer.knows(action.name)

    def _plan(self, actions: Sequence[dialog_pb2.Action]) -> _Plan | None:
        """The split when the model should answer part of the decision, else ``None``."""
        if self._responder is None:
            return None
        answered = [a for a in actions if self._needs_llm(a)]
        user_text = ""
        slots: dict[str, Any] = {}
        for action in answered:
            params = _params(action)
            text = params.pop(USER_TEXT_PARAM, None)
            if not user_text and isinstance(text, str) and text.strip():
                user_text = text.strip()
            slots.update(params)
        if not user_text:
            return None
        templated = [a for a in actions if not self._needs_llm(a)]
        return _Plan(templated, answered, user_text, slots)

    def _prompt(
        self, message: str, slots: Mapping[str, Any], language: str | None, who: Recipient
    ) -> PromptInput:
        return PromptInput(
            message=message,
            slots=dict(slots),
            personality=self._personality,
            preferences=UserPreferences(prefers_brief=who.prefers_brief, language=language or None),
        )

    def _audience(self, language: str | None, who: Recipient) -> Audience:
        return Audience(
            conversation_id=who.conversation_id,
            user_id=who.user_id,
            language=language or None,
            style=self._personality.value,
            brief=who.prefers_brief,
        )

    def _templated_part(self, turn_id: str, plan: _Plan, audience: Audience) -> generator_pb2.Reply:
        """The templates' share of a mixed reply (empty when no other action is a response), plus the
        quick replies of the actions the model answers."""
        reply = generator_pb2.Reply()
        if any(self._renderer.knows(a.name) for a in plan.templated):
            reply.CopyFrom(self._renderer.render(turn_id, plan.templated, audience))
        seen = {(q.title.casefold(), q.payload) for q in reply.quick_replies}
        for action in plan.answered:
            for option in action.options:
                quick = generator_pb2.QuickReply(title=option.title, payload=option.payload or option.title)
                if (quick.title.casefold(), quick.payload) not in seen:
                    seen.add((quick.title.casefold(), quick.payload))
                    reply.quick_replies.append(quick)
        return reply

    async def reply(
        self,
        turn_id: str,
        actions: Sequence[dialog_pb2.Action],
        *,
        language: str | None = None,
        recipient: Recipient | None = None,
    ) -> GeneratedReply:
        """The whole reply for ``actions``."""
        who = recipient or Recipient()
        audience = self._audience(language, who)
        rendered = self._renderer.render(turn_id, actions, audience)
        if self._responder is None:
            return GeneratedReply(rendered)
        try:
            plan = self._plan(actions)
            if plan is not None:
                base = self._templated_part(turn_id, plan, audience)
                answer = await self._responder.reply(self._prompt(plan.user_text, plan.slots, language, who))
                base.text = " ".join(t for t in (base.text, answer.text.strip()) if t)
                return GeneratedReply(base, answer.source)
            if self._hybrid:
                return await self._rephrase(rendered, actions, language, who)
        except Exception:  # the templates always answer; the LLM part is best effort
            log.exception("LLM reply failed, using the template reply", turn_id=turn_id)
        return GeneratedReply(rendered)

    async def _rephrase(
        self,
        rendered: generator_pb2.Reply,
        actions: Sequence[dialog_pb2.Action],
        language: str | None,
        who: Recipient,
    ) -> GeneratedReply:
        assert self._responder is not None
        values: dict[str, Any] = {}
        message = ""
        for action in actions:
            params = _params(action)
            text = params.pop(USER_TEXT_PARAM, None)
            if not message and isinstance(text, str):
                message = text.strip()
            values.update(_flat_values(params, action.options))
        slots = {k: v for k, v in values.items() if not k.startswith("option[")}
        answer = await self._responder.rephrase(
            rendered.text, values, self._prompt(message, slots, language, who)
        )
        out = generator_pb2.Reply()
        out.CopyFrom(rendered)
        out.text = answer.text.strip() or rendered.text
        return GeneratedReply(out, answer.source)

    def streams(self, actions: Sequence[dialog_pb2.Action]) -> bool:
        """Whether a model writes (part of) this reply, so that streaming it shows text sooner."""
        return self._plan(actions) is not None

    async def stream(
        self,
        turn_id: str,
        actions: Sequence[dialog_pb2.Action],
        *,
        language: str | None = None,
        recipient: Recipient | None = None,
    ) -> AsyncIterator[ReplyPiece]:
        """The reply in pieces, then a final piece with the whole reply. A model's answer goes out as it
        is written (validated sentence by sentence, sent word by word); anything else word by word."""
        who = recipient or Recipient()
        plan = self._plan(actions)
        if plan is None or self._responder is None:
            whole = await self.reply(turn_id, actions, language=language, recipient=who)
            for piece in split_words(whole.reply.text):
                yield ReplyPiece(text_delta=piece)
            yield ReplyPiece(final=whole)
            return
        base = self._templated_part(turn_id, plan, self._audience(language, who))
        sent: list[str] = []
        if base.text:
            sent.append(base.text + " ")
            for piece in split_words(base.text + " "):
                yield ReplyPiece(text_delta=piece)
        stream = self._responder.stream(self._prompt(plan.user_text, plan.slots, language, who))
        answered = False
        try:
            async for chunk in stream:
                answered = True
                sent.append(chunk)
                for piece in split_words(chunk):
                    yield ReplyPiece(text_delta=piece)
        except Exception:
            if answered:
                raise  # part of the model's answer is out: the caller sees the stream fail
            log.exception("LLM stream failed, using the template reply", turn_id=turn_id)
            fallback = self._renderer.render(turn_id, plan.answered, self._audience(language, who))
            sent.append(fallback.text)
            for piece in split_words(fallback.text):
                yield ReplyPiece(text_delta=piece)
        finally:
            await stream.aclose()
        base.text = "".join(sent).strip()
        source: ReplySource = stream.reply.source if stream.reply is not None else "template"
        yield ReplyPiece(final=GeneratedReply(base, source))
