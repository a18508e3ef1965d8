"""The LLM reply path end to end: input rails, cache, prompt, provider chain (and tools), output validation.

:class:`LlmResponder` is what the generator's adapters call for a reply written by a language model:

1. input rails: a refused or oversize message gets its safety reply, no model is asked;
2. the response cache: the same (normalised) question in the same context gets the stored reply;
3. the prompt (:class:`PromptBuilder`) and the provider chain, through the tool loop when tools are
   configured; the chain always answers (a provider, its last good reply to this prompt, or the default);
4. output validation: never empty, no leaked instructions, PII redacted, length capped;
5. a validated answer from a provider is cached, unless tools were called (their data may change).

Hybrid mode (:meth:`LlmResponder.rephrase`) asks the model to reword a rendered template and keeps the
template text unless every slot value survived. Streaming (:meth:`LlmResponder.stream`) passes the model's
text on sentence by sentence, each sentence validated before it goes out.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from parley.core.logging import get_logger
from parley.generator.domain.cache import ResponseCache, context_fingerprint
from parley.generator.domain.function_calling import ToolCallRecord, ToolRegistryPort, run_tool_loop
from parley.generator.domain.llm import ChatRequest, Completion, LlmProvider
from parley.generator.domain.prompt import PromptBuilder, PromptInput, accept_rephrase
from parley.generator.domain.providers import ChainResult, ProviderChain
from parley.generator.domain.safety import (
    InputRails,
    OutputValidator,
    SafetyDecision,
    leaks_secret,
    truncate_text,
)

log = get_logger(__name__)

ReplySource = Literal["llm", "cache", "safety", "fallback", "template"]
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


@dataclass(frozen=True)
class LlmReply:
    """A reply and how it came about (for metrics, logs and the replied event)."""

    text: str
    #: ``llm``: a provider answered; ``cache``: the response cache; ``safety``: an input rail refused;
    #: ``fallback``: the chain's last-resort (its cached or default reply); ``template``: hybrid mode kept
    #: the template text.
    source: ReplySource
    safety: SafetyDecision | None = None
    chain: ChainResult | None = None
    tool_calls: tuple[ToolCallRecord, ...] = ()
    output_issues: tuple[str, ...] = ()
    #: Hybrid mode: the slot values the model dropped.
    missing_values: tuple[str, ...] = ()


def _values(data: Any) -> Iterable[str]:
    """Every scalar in slots / tool results, as text (values the conversation legitimately holds)."""
    if isinstance(data, Mapping):
        for value in data.values():
            yield from _values(value)
    elif isinstance(data, list | tuple):
        for value in data:
            yield from _values(value)
    elif data is not None and not isinstance(data, bool):
        yield str(int(data) if isinstance(data, float) and data.is_integer() else data)


class LlmResponder:
    """Builds LLM replies safely; every collaborator is passed in (see the module docstring)."""

    def __init__(
        self,
        llm: ProviderChain | LlmProvider,
        *,
        prompts: PromptBuilder,
        rails: InputRails,
        validator: OutputValidator,
        cache: ResponseCache | None = None,
        tools: ToolRegistryPort | None = None,
        max_tool_rounds: int = 3,
        cache_params: Mapping[str, Any] | None = None,
    ) -> None:
        self._llm = llm
        self._prompts = prompts
        self._rails = rails
        self._validator = validator
        self._cache = cache
        self._tools = tools
        self._max_tool_rounds = max_tool_rounds
        #: What else shapes the answer (provider names, model ids ...), part of every cache key.
        self._cache_params = dict(cache_params or {})
        if isinstance(llm, ProviderChain):
            self._cache_params.setdefault("providers", list(llm.providers))

    @property
    def cache(self) -> ResponseCache | None:
        return self._cache

    def cache_key(self, inp: PromptInput) -> str:
        context = context_fingerprint(
            inp.intent,
            inp.slots,
            [(t.role, t.text) for t in inp.history[-self._prompts.config.max_turns :]],
            {"tool_results": dict(inp.tool_results)},
        )
        params = {
            **self._cache_params,
            "temperature": self._prompts.temperature(inp.intent),
            "max_tokens": self._prompts.max_tokens(inp),
            "prefers_brief": inp.preferences.prefers_brief,
            "language": inp.preferences.language,
        }
        return ResponseCache.key(inp.message, context, inp.personality.value, params)

    def _allowed(self, inp: PromptInput) -> list[str]:
        return [*_values(inp.slots), *_values(inp.tool_results)]

    async def _ask(
        self, request: ChatRequest, *, use_tools: bool = True
    ) -> tuple[Completion, ChainResult | None, tuple[ToolCallRecord, ...]]:
        if use_tools and self._tools is not None:
            loop = await run_tool_loop(self._llm, request, self._tools, max_rounds=self._max_tool_rounds)
            return loop.completion, None, loop.calls
        if isinstance(self._llm, ProviderChain):
            result = await self._llm.run(request)
            return result.completion, result, ()
        return await self._llm.complete(request), None, ()

    def _screen(self, inp: PromptInput) -> tuple[LlmReply | None, str, SafetyDecision]:
        """Input rails, then the cache: a reply that needs no model (or ``None``), the cache key, the
        safety decision."""
        decision = self._rails.check(inp.message)
        if not decision.allowed:
            log.info("input refused by a safety rail", category=decision.category, rule=decision.rule)
            return LlmReply(decision.reply or "", "safety", safety=decision), "", decision
        key = self.cache_key(inp) if self._cache is not None else ""
        if self._cache is not None and (cached := self._cache.get(key)) is not None:
            return LlmReply(cached, "cache", safety=decision), key, decision
        return None, key, decision

    async def reply(self, inp: PromptInput) -> LlmReply:
        """The reply to ``inp.message``."""
        early, key, decision = self._screen(inp)
        if early is not None:
            return early
        return await self._generate(inp, key, decision)

    async def _generate(self, inp: PromptInput, key: str, decision: SafetyDecision) -> LlmReply:
        completion, chain, calls = await self._ask(self._prompts.build(inp))
        check = self._validator.validate(
            completion.text, secret=self._prompts.instructions(inp), allowed_values=self._allowed(inp)
        )
        degraded = chain is not None and chain.degraded
        source: ReplySource = "fallback" if degraded or completion.provider == "default" else "llm"
        if self._cache is not None and source == "llm" and not calls and not check.replaced:
            self._cache.put(key, check.text)
        return LlmReply(check.text, source, decision, chain, calls, check.issues)

    async def rephrase(self, template_text: str, values: Mapping[str, Any], inp: PromptInput) -> LlmReply:
        """Hybrid mode: ``template_text`` reworded by the model in ``inp.personality``'s voice, or the
        template text itself when the model dropped a slot value, failed, or produced an unsafe answer."""
        if not self._rails.check(inp.message).allowed:
            inp = replace(inp, message="")  # the template is still reworded, without the user's words
        completion, chain, _ = await self._ask(
            self._prompts.build_rephrase(template_text, inp), use_tools=False
        )
        if chain is not None and chain.degraded:
            return LlmReply(template_text, "template", chain=chain)
        check = self._validator.validate(
            completion.text,
            secret=self._prompts.instructions(inp),
            allowed_values=[*self._allowed(inp), *_values(values)],
        )
        if check.replaced or "truncated" in check.issues:
            return LlmReply(template_text, "template", chain=chain, output_issues=check.issues)
        outcome = accept_rephrase(template_text, values, check.text)
        return LlmReply(
            outcome.text,
            "llm" if outcome.rephrased else "template",
            chain=chain,
            output_issues=check.issues,
            missing_values=outcome.missing,
        )

    def stream(self, inp: PromptInput) -> ReplyStream:
        """The reply as validated chunks (sentences); :attr:`ReplyStream.reply` is set at the end."""
        return ReplyStream(self, inp)

    async def _stream(self, inp: PromptInput, sink: ReplyStream) -> AsyncGenerator[str, None]:
        early, key, decision = self._screen(inp)
        if early is not None:
            sink.reply = early
            yield early.text
            return
        if self._tools is not None or not isinstance(self._llm, ProviderChain):
            # Tool rounds are not streamed: the final answer arrives whole and goes out sentence by sentence.
            reply = await self._generate(inp, key, decision)
            sink.reply = reply
            for sentence in _sentences(reply.text):
                yield sentence
            return
        async for chunk in self._stream_chain(inp, key, decision, self._llm, sink):
            yield chunk

    async def _stream_chain(
        self, inp: PromptInput, key: str, decision: SafetyDecision, chain: ProviderChain, sink: ReplyStream
    ) -> AsyncIterator[str]:
        """The chain's deltas regrouped into sentences; each is checked before it goes out: a sentence that
        would leak the instructions, or go past the length limit, ends the stream instead."""
        secret = self._prompts.instructions(inp)
        allowed = self._allowed(inp)
        limit = self._validator.max_chars
        sent: list[str] = []
        issues: list[str] = []
        stopped: str | None = None  # "system_prompt_leak" or "truncated"

        def admit(sentence: str) -> str | None:
            """The text to send for ``sentence`` ("" for nothing), or ``None`` to end the stream."""
            nonlocal stopped
            if leaks_secret(" ".join([*sent[-2:], sentence]), secret):
                stopped = "system_prompt_leak"
                return None
            check = self._validator.clean(sentence, allowed_values=allowed)
            text = check.text
            room = limit - sum(len(s) + 1 for s in sent)
            if len(text) > room:
                stopped = "truncated"
                if sent:
                    return None
                text = truncate_text(text, limit)
            issues.extend(check.issues)
            if text:
                sent.append(text)
            return text

        stream = chain.stream(self._prompts.build(inp))
        pending = ""
        async for delta in stream:
            *complete, pending = _split_sentences(pending + delta)
            for sentence in complete:
                text = admit(sentence)
                if text:
                    yield text + " "
                if stopped:
                    break
            if stopped:
                await stream.aclose()
                break
        if stopped is None and pending.strip() and (text := admit(pending)):
            yield text
        if stopped:
            issues.append(stopped)
        if not sent:
            if stopped is None:
                issues.append("empty")
            default = self._validator.validate("").text
            sent.append(default)
            yield default
        result = stream.result
        text = " ".join(sent)
        # No result means the stream was ended here (leak, length): a provider did answer.
        source: ReplySource = "fallback" if result is not None and result.degraded else "llm"
        clean = stopped is None and result is not None and result.completion.finish_reason != "error"
        if self._cache is not None and source == "llm" and clean and "empty" not in issues:
            self._cache.put(key, text)
        sink.reply = LlmReply(text, source, decision, result, (), tuple(dict.fromkeys(issues)))


def _split_sentences(text: str) -> list[str]:
    """``text`` split after sentence ends; the last piece is the unfinished rest (maybe empty)."""
    return _SENTENCE_END.split(text)


def _sentences(text: str) -> list[str]:
    parts = [p for p in _SENTENCE_END.split(text) if p.strip()]
    return [p + " " for p in parts[:-1]] + parts[-1:]


class ReplyStream:
    """Async iterator of reply chunks; :attr:`reply` holds the whole reply once iteration ended."""

    def __init__(self, responder: LlmResponder, inp: PromptInput) -> None:
        self._iterator = responder._stream(inp, self)
        self.reply: LlmReply | None = None

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> str:
        return await anext(self._iterator)

    async def aclose(self) -> None:
        await self._iterator.aclose()
