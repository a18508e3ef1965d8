"""Safety rails around the language model: checks on what goes in, validation of what comes out.

Input rails (:class:`InputRails`) run before any model call and turn a message into a
:class:`SafetyDecision`: oversize input gets a length-limit reply; prompt-injection attempts ("ignore
previous instructions", "reveal your system prompt", role-play jailbreaks, chat-template tokens) and
requests for clearly harmful help (weapons, violence against people, self-harm, hard drugs, cybercrime,
sexual content involving minors, hate) get a fixed reply of their category and never reach a model.

These are **heuristics**: regular expressions over a normalised text (Unicode NFKC, case-folded,
zero-width characters removed, spacing collapsed). They catch the common phrasings cheaply and
deterministically, and they will miss paraphrases and produce the odd false positive. They are a first
line, not a guarantee; a hosted provider's own moderation, or a classifier, can be added behind the same
:class:`SafetyDecision`.

Output validation (:class:`OutputValidator`) runs on every model answer before it is shown: chat-template
debris is stripped, an answer that repeats the system prompt's instructions (a shared word n-gram) or is
empty is replaced by the default reply, e-mail addresses, phone numbers and card numbers (Luhn-checked)
are redacted unless they are values the conversation already holds, and an over-long answer is cut at a
sentence or word boundary.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class SafetyCategory(StrEnum):
    LENGTH_LIMIT = "length_limit"
    PROMPT_INJECTION = "prompt_injection"
    WEAPONS = "weapons"
    VIOLENCE = "violence"
    SELF_HARM = "self_harm"
    DRUGS = "drugs"
    CYBERCRIME = "cybercrime"
    SEXUAL_MINORS = "sexual_minors"
    HATE = "hate"


#: The reply for each category (a project may override them).
DEFAULT_SAFETY_REPLIES: Mapping[SafetyCategory, str] = {
    SafetyCategory.LENGTH_LIMIT: "That message is too long for me. Could you say it in a few sentences?",
    SafetyCategory.PROMPT_INJECTION: "I can't do that. I'm here to help with your orders and deliveries.",
    SafetyCategory.SELF_HARM: (
        "I'm really sorry you're feeling this way. You don't have to go through it alone: please reach "
        "out to someone you trust or to a local crisis line or emergency number right now."
    ),
}
GENERIC_SAFETY_REPLY = "Sorry, I can't help with that. I can help with your orders and deliveries."

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_SPACE = re.compile(r"\s+")


def normalise_for_rails(text: str) -> str:
    """NFKC, case-folded, zero-width characters removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).casefold()
    return _SPACE.sub(" ", text).strip()


def _rx(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in patterns)


_PEOPLE = (
    r"(?:someone|somebody|anyone|people|a person|him|her|them|my (?:neighbou?r|boss|wife|husband|partner|"
    r"ex|teacher|family|friend|brother|sister|mother|father|mom|mum|dad|coworkers?|colleagues?)|"
    r"the (?:neighbou?r|boss|courier|delivery (?:guy|driver|person)|driver|president|police))\b"
)

#: (category, patterns); the first match decides.
RULES: tuple[tuple[SafetyCategory, tuple[re.Pattern[str], ...]], ...] = (
    (
        SafetyCategory.PROMPT_INJECTION,
        _rx(
            r"\b(?:ignore|disregard|forget|skip|override)\b.{0,30}\b(?:previous|prior|above|earlier|preceding|"
            r"all|your|the|system)\b.{0,20}\b(?:instructions?|prompts?|rules|guidelines)\b",
            r"\b(?:reveal|show|print|repeat|output|display|leak|dump|tell me|give me|"
            r"what (?:is|are|was|were))\b"
            r".{0,25}\b(?:system|initial|hidden|original|secret|developer)\b.{0,10}\b(?:prompt|instructions?|"
            r"rules)\b",
            r"\b(?:reveal|show|print|repeat|output|display|leak|dump)\b.{0,15}\bsystem message\b",
            r"\byour (?:system )?(?:prompt|instructions) (?:verbatim|word for word)\b",
            r"\b(?:you are|you're) now\b.{0,30}\b(?:dan|unrestricted|unfiltered|jailbroken|free|evil|"
            r"developer mode|no (?:rules|restrictions|limits))\b",
            r"\b(?:developer|dan|god|jailbreak) mode\b|\bdo anything now\b|\bjailbr(?:eak|oken)\b",
            r"\b(?:pretend|imagine|act|role-?play|behave)\b.{0,40}\b(?:no|without(?: any)?) (?:rules|"
            r"restrictions|filters|limits|guidelines|morals|censorship)\b",
            r"\b(?:pretend (?:to be|you are)|act as|role-?play as)\b.{0,30}\b(?:unfiltered|uncensored|evil|"
            r"unrestricted|another ai|an ai without)\b",
            r"<\|im_start\|>|<\|system\|>|\[/?inst\]|<<sys>>|^\s*(?:system|###\s*instruction)\s*:",
            r"\bnew instructions\s*:",
        ),
    ),
    (
        SafetyCategory.SEXUAL_MINORS,
        _rx(
            r"\b(?:child|children|kid|kids|minor|minors|underage|preteen|teen)\b.{0,30}\b(?:sex|sexual|porn|"
            r"nude|naked|erotic)",
            r"\b(?:sex|sexual|porn|nude|naked|erotic)\w*\b.{0,30}\b(?:child|children|kids?|minors?|underage)\b",
        ),
    ),
    (
        SafetyCategory.SELF_HARM,
        _rx(
            r"\b(?:kill|hurt|harm|cut|hang|poison) myself\b",
            r"\b(?:end|take) my (?:own )?life\b|\bsuicid|\bself[- ]harm\b|\bwant to die\b",
        ),
    ),
    (
        SafetyCategory.WEAPONS,
        _rx(
            r"\b(?:make|build|assemble|create|construct|produce|3d[- ]print|get|buy)\b.{0,25}"
            r"(?<!bath )(?<!photo)(?<!photo )\b(?:bombs?|explosives?|pipe ?bombs?|molotov|grenades?|"
            r"detonators?|napalm|nerve (?:gas|agent)|bioweapons?|chemical weapons?|ghost guns?|"
            r"untraceable (?:gun|firearm)s?|silencers?)\b",
            r"\bhow (?:do i|to|can i)\b.{0,20}\b(?:bomb|blow up)\b",
        ),
    ),
    (
        SafetyCategory.VIOLENCE,
        _rx(
            rf"\b(?:kill|murder|hurt|harm|attack|stab|shoot|strangle|poison|kidnap|assault|beat up|torture)\b"
            rf".{{0,10}}{_PEOPLE}",
            r"\bhow (?:do i|to|can i)\b.{0,20}\b(?:kill|murder|poison|kidnap) (?:a|an|my|the|some)\b",
            r"\b(?:hide|dispose of|get rid of) (?:a|the) (?:dead )?body\b",
        ),
    ),
    (
        SafetyCategory.DRUGS,
        _rx(
            r"\b(?:make|cook|synthesi[sz]e|produce|manufacture|grow|buy|sell|smuggle)\b.{0,20}\b(?:meth|"
            r"methamphetamine|cocaine|crack|heroin|fentanyl|lsd|mdma|ecstasy)\b",
        ),
    ),
    (
        SafetyCategory.CYBERCRIME,
        _rx(
            r"\b(?:how (?:do i|to|can i|could i)|i want to|i wanna|help me|teach me|show me how to)\b.{0,15}"
            r"\b(?:hack|crack|steal|phish|break into)\b.{0,30}\b(?:accounts?|passwords?|credit cards?|"
            r"card numbers?|identit(?:y|ies)|credentials|bank details|email|phone|computer|server|"
            r"network|wifi)\b",
            r"\b(?:write|make|create|build|code)\b.{0,20}\b(?:malware|ransomware|keylogger|virus|trojan|"
            r"botnet|phishing (?:page|email|site))\b",
        ),
    ),
    (
        SafetyCategory.HATE,
        _rx(
            r"\b(?:genocide|ethnic cleansing|exterminate)\b.{0,30}"
            r"\b(?:people|race|religion|group|them|all)\b",
            r"\b(?:all|those)\b.{0,20}\b(?:should|must|deserve to)\b.{0,10}"
            r"\b(?:die|be killed|be exterminated)\b",
        ),
    ),
)


@dataclass(frozen=True)
class SafetyDecision:
    """Whether a message may go on; if not, the category, the rule that matched, and the reply to give."""

    allowed: bool
    category: SafetyCategory | None = None
    #: The matching pattern (for logs and tests; never shown to users).
    rule: str | None = None
    reply: str | None = None


ALLOWED = SafetyDecision(allowed=True)


class InputRails:
    """Heuristic input checks; see the module docstring for what they are and are not."""

    def __init__(
        self,
        *,
        max_chars: int = 1000,
        max_word_chars: int = 256,
        replies: Mapping[SafetyCategory, str] | None = None,
    ) -> None:
        if max_chars < 1 or max_word_chars < 1:
            raise ValueError("max_chars and max_word_chars must be >= 1")
        self._max_chars = max_chars
        self._max_word_chars = max_word_chars
        self._replies = {**DEFAULT_SAFETY_REPLIES, **(replies or {})}

    def reply_for(self, category: SafetyCategory) -> str:
        return self._replies.get(category, GENERIC_SAFETY_REPLY)

    def _refuse(self, category: SafetyCategory, rule: str) -> SafetyDecision:
        return SafetyDecision(allowed=False, category=category, rule=rule, reply=self.reply_for(category))

    def check(self, text: str) -> SafetyDecision:
        """The decision for one user message."""
        if len(text) > self._max_chars:
            return self._refuse(SafetyCategory.LENGTH_LIMIT, f"more than {self._max_chars} characters")
        if any(len(word) > self._max_word_chars for word in text.split()):
            return self._refuse(
                SafetyCategory.LENGTH_LIMIT, f"a word of more than {self._max_word_chars} characters"
            )
        normalised = normalise_for_rails(text)
        for category, patterns in RULES:
            for pattern in patterns:
                if pattern.search(normalised):
                    return self._refuse(category, pattern.pattern)
        return ALLOWED


# ---- output validation -------------------------------------------------------------------------------

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
#: 13-19 digits, optionally grouped by single spaces or dashes.
CARD_CANDIDATE = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
#: A run of digits with separators; counted as a phone number when it has 9-15 digits and either starts
#: with + / 00 or is grouped (a bare 5-10 digit run is an order number, not a phone number).
PHONE_CANDIDATE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d ().-]{6,}\d(?![\w-])")
_CHAT_DEBRIS = re.compile(r"<\|(?:im_start|im_end|endoftext|eot_id|end)\|>|</?s>")
_WORD = re.compile(r"\w+")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char)
        if i % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def redact_pii(text: str, allowed_values: Iterable[str] = ()) -> tuple[str, int]:
    """``text`` with e-mails, card numbers (Luhn) and phone numbers replaced by ``[email]``,
    ``[card number]``, ``[phone number]``; values in ``allowed_values`` are kept. Returns the text and
    the number of redactions."""
    allowed = {v.strip().casefold() for v in allowed_values if v and v.strip()}
    allowed_digits = {d for v in allowed if len(d := _digits(v)) >= 5}
    count = 0

    def keep(match: str) -> bool:
        return match.casefold() in allowed or (_digits(match) in allowed_digits and bool(_digits(match)))

    def email(m: re.Match[str]) -> str:
        nonlocal count
        if keep(m.group()):
            return m.group()
        count += 1
        return "[email]"

    def card(m: re.Match[str]) -> str:
        nonlocal count
        if keep(m.group()) or not luhn_valid(_digits(m.group())):
            return m.group()
        count += 1
        return "[card number]"

    def phone(m: re.Match[str]) -> str:
        nonlocal count
        found = m.group()
        digits = _digits(found)
        grouped = bool(re.search(r"[ ().-]", found.strip()))
        international = found.startswith(("+", "00"))
        if keep(found) or not 9 <= len(digits) <= 15 or not (grouped or international):
            return found
        count += 1
        return "[phone number]"

    text = EMAIL.sub(email, text)
    text = CARD_CANDIDATE.sub(card, text)
    text = PHONE_CANDIDATE.sub(phone, text)
    return text, count


def _shingles(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(normalise_for_rails(text))
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def leaks_secret(output: str, secret: str, n: int = 6) -> bool:
    """Whether ``output`` repeats ``n`` consecutive words of ``secret`` (the system prompt's instructions)."""
    if not secret.strip():
        return False
    return not _shingles(output, n).isdisjoint(_shingles(secret, n))


def truncate_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a sentence end if one is late enough, else a word."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    sentence_end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    if sentence_end >= limit // 2:
        return head[: sentence_end + 1]
    space = head.rfind(" ")
    return (head[:space] if space > 0 else head).rstrip(" ,;:") + "…"


@dataclass(frozen=True)
class OutputCheck:
    """The text to show and what validation changed (``issues``: ``empty``, ``system_prompt_leak``,
    ``pii_redacted``, ``truncated``)."""

    text: str
    issues: tuple[str, ...] = ()
    redactions: int = 0

    @property
    def replaced(self) -> bool:
        """Whether the model's text was thrown away for the default reply."""
        return "empty" in self.issues or "system_prompt_leak" in self.issues


class OutputValidator:
    """Validates a model's answer; the result is never empty."""

    def __init__(
        self,
        *,
        default_reply: str,
        max_chars: int = 1200,
        leak_ngram: int = 6,
        redact: bool = True,
    ) -> None:
        if not default_reply.strip():
            raise ValueError("default_reply must not be empty")
        if max_chars < 16 or leak_ngram < 2:
            raise ValueError("max_chars must be >= 16 and leak_ngram >= 2")
        self._default = default_reply.strip()
        self._max_chars = max_chars
        self._leak_ngram = leak_ngram
        self._redact = redact

    @property
    def max_chars(self) -> int:
        return self._max_chars

    def clean(self, text: str, *, allowed_values: Iterable[str] = ()) -> OutputCheck:
        """One streamed piece: chat-template debris stripped, PII redacted; may be empty (the stream as a
        whole is checked for emptiness, leaks and length by the caller)."""
        cleaned = _CHAT_DEBRIS.sub("", text).strip()
        if not self._redact or not cleaned:
            return OutputCheck(cleaned)
        cleaned, redactions = redact_pii(cleaned, allowed_values)
        return OutputCheck(cleaned, ("pii_redacted",) if redactions else (), redactions)

    def validate(
        self, text: str | None, *, secret: str = "", allowed_values: Iterable[str] = ()
    ) -> OutputCheck:
        """``secret``: the instructions that must not be repeated; ``allowed_values``: values the user
        or the system already holds (slots, tool results), which are not redacted."""
        cleaned = _CHAT_DEBRIS.sub("", text or "").strip()
        if not cleaned:
            return OutputCheck(self._default, ("empty",))
        if leaks_secret(cleaned, secret, self._leak_ngram):
            return OutputCheck(self._default, ("system_prompt_leak",))
        issues: list[str] = []
        redactions = 0
        if self._redact:
            cleaned, redactions = redact_pii(cleaned, allowed_values)
            if redactions:
                issues.append("pii_redacted")
        if len(cleaned) > self._max_chars:
            cleaned = truncate_text(cleaned, self._max_chars)
            issues.append("truncated")
        return OutputCheck(cleaned, tuple(issues), redactions)
