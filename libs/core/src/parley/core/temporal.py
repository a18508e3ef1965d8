"""Dates and times in text, resolved against when and where the user spoke (shared by NLU and context).

Finding and resolving temporal expressions is done by a small English grammar first and by ``dateparser``
second. The grammar exists because dateparser, measured on the phrases customers type, gets several of them
wrong or not at all: "this weekend" and "within 3 days" are not found, "the day after tomorrow" is found as
tomorrow, "$20" is found as the 20th, "may I ask" as the 25th of May, "on the 4th" as the 25th of April,
"morgen um 17 Uhr" loses its time, and "next Friday" has no notion of the ambiguity below. dateparser still
handles what the grammar does not know (other phrasings and other languages), behind filters that keep bare
numbers, money and ids out. dateparser takes about a second to import: it is only imported the first time
the grammar falls short (or on :meth:`TemporalFinder.warm`), never by importing this module.

Rules worth knowing (all relative to ``reference_time`` seen in the user's ``timezone``; weeks start on
Monday):

* "next Friday" is the Friday of next week. When the nearest coming Friday is still in this week (said on
  Monday to Thursday) it is a plausible reading too and comes back as an alternative with lower confidence:
  on Wednesday 2026-11-25, "next Friday" is 2026-12-04 (0.6), alternative 2026-11-27 (0.4). Said on
  Saturday or Sunday both readings coincide. "last Friday" mirrors this. "this Friday", "coming Friday" and
  "Friday next week" are not ambiguous. A bare "Friday" is the nearest coming one; said on a Friday it is a
  week later, with today as the alternative.
* A date without a year is the next such date (today included): "3 March" said in November is next year's.
* A time without a date is its next occurrence: "at 5pm" said at 18:00 is tomorrow 17:00. "at 5" without
  am/pm is read 17:00 (hours 1 to 7 are taken as afternoon, 8 to 11 as morning), the other half of the day
  is the alternative. "midnight" ends the day it is attached to.
* Numeric dates with slashes where both parts could be the month ("04/12") are read day-first, except for
  timezones in the Americas, with the other reading as the alternative; dotted dates ("04.12.2026") are
  always day-first.
* "this weekend" is the coming (or current) Saturday and Sunday; "next weekend" follows the "next Friday"
  rule. Weeks, weekends, months and years resolve to intervals ``start/end``.

A :class:`TemporalMention` carries the extraction confidence (0.95 for the grammar, 0.75 for dateparser) and
its readings, best first, each with its own confidence. ``Reading.resolved`` is the structured form:
``{"kind": "date", "date", "grain"}``, ``{"kind": "interval", "start", "end", "grain"}`` or
``{"kind": "datetime" | "time", "datetime", "date", "time", "grain", "timezone"}``.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from parley.core.errors import InvalidInputError

GRAMMAR = "grammar"
DATEPARSER = "dateparser"
GRAMMAR_CONFIDENCE = 0.95
DATEPARSER_CONFIDENCE = 0.75

Span = tuple[int, int]

# ---------------------------------------------------------------------------------------------- numbers

# Counts in the grammar ("in three days"); the NLU's number and money finders build on the same pieces.
_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES, "dozen"], key=len, reverse=True))
# "twenty-five", "one hundred and five", "a dozen", "a thousand".
NUMBER_WORDS = (
    rf"(?:an?\s+(?=(?:hundred|thousand|million|billion|dozen)\b))?"
    rf"(?:{_NUMBER_WORD})(?:(?:\s+and\s+|[\s-]+)(?:{_NUMBER_WORD}))*"
)


def words_to_number(words: str) -> float | None:
    """The value of an English number phrase ("twenty-five", "one hundred and five", "a dozen")."""
    total = current = 0
    seen = False
    for token in re.split(r"[\s-]+", words.lower().strip()):
        if token in {"and", ""}:
            continue
        if token in {"a", "an"}:
            current += 1
        elif token in _UNITS:
            current += _UNITS[token]
        elif token in _TENS:
            current += _TENS[token]
        elif token == "dozen":
            current = max(current, 1) * 12
        elif token == "hundred":
            current = max(current, 1) * 100
        elif token in _SCALES:
            total += max(current, 1) * _SCALES[token]
            current = 0
        else:
            return None
        seen = True
    return float(total + current) if seen else None


def parse_number(text: str) -> float | None:
    """The value of "3", "2.5", "1,000", "15,50" (decimal comma) or a number phrase; None otherwise."""
    stripped = text.strip()
    if re.fullmatch(r"[\d.,]*\d[\d.,]*", stripped):
        return parse_digits(stripped)
    return words_to_number(stripped)


def parse_digits(text: str) -> float | None:
    """Digits with thousands separators or a decimal point or comma, whichever the shape says."""
    if "," in text and "." in text:
        decimal = "," if text.rfind(",") > text.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        text = text.replace(thousands, "").replace(decimal, ".")
    elif "," in text or "." in text:
        sep = "," if "," in text else "."
        parts = text.split(sep)
        thousands = len(parts) > 2 or len(parts[1]) == 3
        text = text.replace(sep, "" if thousands else ".")
    try:
        return float(text)
    except ValueError:
        return None


# -------------------------------------------------------------------------------------------- temporal

_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4, "may": 5,
    "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sept": 9, "sep": 9,
    "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
_WD = rf"(?P<wd>{'|'.join(_WEEKDAYS)})"
_MON = rf"(?P<mon>{'|'.join(sorted(_MONTHS, key=len, reverse=True))})\.?"
_DAY = r"(?P<day>3[01]|[12]\d|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>\d{4})"
_NOT_TIME_AFTER = r"(?![\d:]|\s*(?:a\.?m\b|p\.?m\b|o'?clock|h\b|hrs?\b|uhr\b))"
_UNIT = r"(?P<unit>min(?:ute)?|hour|hr|day|week|fortnight|month|year)s?"
_COUNT = rf"(?P<n>\d+(?:\.\d+)?|an?|a\s+couple\s+of|couple\s+of|{NUMBER_WORDS})"
_PARTS_OF_DAY = {"morning": time(9), "afternoon": time(15), "evening": time(19), "night": time(21)}
_TIME_PREP = r"(?:(?:at|around|by|from|@)\s*)?"

# In English dateparser is only asked about, and only believed on, what the grammar left over that names a
# weekday, or a month next to a number, or has a date shape. Measured on 5,000 tweets, anything looser
# brought durations ("42 hours", "2 days" became dates), verbs ("sat on the" became Saturday) and "may".
_MONTH_NAMES = (
    r"(?:january|february|march|april|june|july|august|september|october|november|december"
    r"|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)\.?"
)
_DATEPARSER_ANCHOR_EN = re.compile(
    r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b"
    rf"|\b{_MONTH_NAMES}\s*\d|\d(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_NAMES}(?!\w)"
    r"|\b\d{1,4}[-./]\d{1,2}[-./]\d{1,4}\b",
    re.IGNORECASE,
)
_TIME_HINT = re.compile(r"\d:\d\d|\b(?:noon|midnight|o'?clock|uhr|heures?)\b|\d\s*h\b", re.I)
_TIME_HINT_EN = re.compile(r"\b\d{1,2}\s*(?:am|pm|a\.m\.|p\.m\.)", re.I)  # "am" is "on" in German


@dataclass(frozen=True)
class _Dates:
    """Candidate calendar days, best first, with their confidence."""

    options: tuple[tuple[date, float], ...]
    from_weekday: bool = False  # "Friday" rather than an explicit date


@dataclass(frozen=True)
class _Times:
    """Candidate times of day, best first; ``day_offset`` 1 means the end of the day (midnight)."""

    options: tuple[tuple[time, float], ...]
    grain: str
    day_offset: int = 0
    anchored_only: bool = False  # a bare "morning" only counts right after a date


@dataclass(frozen=True)
class _Instant:
    """One exact moment ("in 3 hours", "this evening")."""

    at: datetime
    grain: str


@dataclass(frozen=True)
class _Interval:
    """A stretch of days or moments ("this weekend", "next month", "within 3 days"), best first."""

    options: tuple[tuple[str, str, float], ...]
    grain: str


@dataclass(frozen=True)
class _Combined:
    """Candidate datetimes (a date joined with a time), best first."""

    options: tuple[tuple[datetime, float], ...]
    grain: str


_Part = _Dates | _Times | _Instant | _Interval | _Combined


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    part: _Part


@dataclass(frozen=True)
class Reading:
    """One interpretation of an expression: canonical value, structured resolution and its confidence."""

    value: str
    resolved: dict[str, Any]
    confidence: float


@dataclass(frozen=True)
class TemporalMention:
    """A date/time/interval expression found in a text: where, best reading, and the other readings."""

    start: int
    end: int
    text: str
    best: Reading
    #: Extraction confidence (0.95 grammar, 0.75 dateparser, lower for doubtful shapes).
    confidence: float
    alternatives: tuple[Reading, ...] = field(default_factory=tuple)
    #: "grammar" or "dateparser".
    source: str = "grammar"

    @property
    def readings(self) -> tuple[Reading, ...]:
        """The best reading, then the alternatives."""
        return (self.best, *self.alternatives)


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInputError(
            f"unknown timezone {name!r}: use an IANA name such as 'Europe/Berlin'"
        ) from exc


def _local_now(reference_time: datetime, timezone: str) -> datetime:
    """The reference time on the user's wall clock (a naive reference time is taken as UTC)."""
    if reference_time.tzinfo is None:
        reference_time = reference_time.replace(tzinfo=UTC)
    return reference_time.astimezone(_zone(timezone))


def _add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _next_date(today: date, month: int, day: int) -> date | None:
    """The next ``day`` of ``month``, today included (29 February waits for a leap year)."""
    for year in range(today.year, today.year + 9):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate >= today:
            return candidate
    return None


def _hour_readings(hour: int, minute: int) -> tuple[tuple[time, float], ...]:
    """A clock time without am/pm: 1-7 read as afternoon, 8-11 as morning, 12 as noon; both offered."""
    if hour == 0 or hour >= 13:
        return ((time(hour % 24, minute), 1.0),)
    if hour == 12:
        return ((time(12, minute), 0.8), (time(0, minute), 0.2))
    if hour <= 7:
        return ((time(hour + 12, minute), 0.6), (time(hour, minute), 0.4))
    return ((time(hour, minute), 0.6), (time(hour + 12, minute), 0.4))


def _count(text: str) -> float | None:
    text = text.lower().strip()
    if text in {"a", "an"}:
        return 1.0
    if "couple" in text:
        return 2.0
    return parse_number(text)


class _Grammar:
    """The English temporal grammar: patterns with handlers that turn a match into candidate values."""

    def __init__(self) -> None:
        flags = re.IGNORECASE
        rules: list[tuple[str, Callable[[re.Match[str], datetime, str], _Part | None]]] = [
            (r"(?:the\s+)?day\s+after\s+tomorrow", lambda m, now, tz: self._days(now, 2)),
            (r"(?:the\s+)?day\s+before\s+yesterday", lambda m, now, tz: self._days(now, -2)),
            (r"today|tomorrow|tmrw|tmr|yesterday", self._relative_day),
            (r"tonight", lambda m, now, tz: self._at(now.date(), _PARTS_OF_DAY["night"], now)),
            (
                r"this\s+(?P<pod>morning|afternoon|evening)",
                lambda m, now, tz: self._at(now.date(), _PARTS_OF_DAY[m["pod"].lower()], now),
            ),
            (
                rf"(?:on\s+)?(?:(?P<mod>this\s+coming|this|next|last|past|previous|coming)\s+)?{_WD}"
                r"(?:\s+(?P<wk>this|next|last)\s+week)?",
                self._weekday,
            ),
            (rf"(?:on\s+)?(?:the\s+)?{_DAY}(?:\s+of)?\s+{_MON}(?:,?\s+{_YEAR})?{_NOT_TIME_AFTER}", self._dmy),
            (rf"(?:on\s+)?{_MON}\s+(?:the\s+)?{_DAY}(?:,?\s+{_YEAR})?{_NOT_TIME_AFTER}", self._dmy),
            (r"on\s+the\s+(?P<day>3[01]|[12]\d|0?[1-9])(?:st|nd|rd|th)", self._day_of_month),
            (r"(?:on\s+)?(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})(?![\w-])", self._iso),
            (
                r"(?:on\s+)?(?<![\w./-])(?P<a>\d{1,2})(?P<sep>[./])(?P<b>\d{1,2})"
                r"(?:(?P=sep)(?P<y>\d{4}|\d{2}))?(?![\w/-]|\.\d)",
                self._numeric,
            ),
            (r"(?:in\s+)?half\s+an\s+hour(?:\s+from\s+now)?", self._half_hour),
            (rf"(?P<dir>in|within)\s+(?:the\s+next\s+)?{_COUNT}\s+{_UNIT}", self._relative),
            (
                rf"{_COUNT}\s+{_UNIT}\s+(?P<dir>from\s+now|from\s+today|from\s+tomorrow|after\s+tomorrow"
                r"|later|ago)",
                self._relative,
            ),
            (
                r"(?:(?P<mod>this|next|last|past|previous|coming)\s+(?P<period>weekend|week|month|year))"
                r"|(?:on\s+|at\s+|over\s+)?the\s+(?P<weekend>weekend)",
                self._period,
            ),
            (
                rf"(?:(?P<mod>in|this|next|last|during|early|mid|late)[\s-]+)+{_MON}(?:,?\s+{_YEAR})?",
                self._in_month,
            ),
            (rf"{_MON},?\s+{_YEAR}", self._in_month),
            (
                rf"{_TIME_PREP}(?P<h>1[0-2]|0?[1-9])(?::(?P<m>[0-5]\d))?\s*(?P<ap>a\.?m\b\.?|p\.?m\b\.?)",
                self._ampm,
            ),
            (
                rf"{_TIME_PREP}(?<![\d:.])(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?!:?\d)(?P<h24>\s*(?:h|hrs|uhr)\b)?",
                self._clock,
            ),
            (r"(?:at|around|by|@)\s*(?P<h>1[0-2]|0?[1-9])(?:\s*o'?clock)?(?![\d:.,%]|\s*%)", self._bare_hour),
            (r"(?P<h>1[0-2]|0?[1-9])\s*o'?clock", self._bare_hour),
            (r"(?:(?:at|around|by)\s+)?(?P<word>noon|midday|midnight)", self._noon),
            (r"(?:in\s+the|at)\s+(?P<pod>morning|afternoon|evening|night)", self._part_of_day),
            (r"(?P<pod>morning|afternoon|evening|night)", self._part_of_day),
        ]
        self._rules = [(re.compile(rf"(?<!\w)(?:{rx})(?!\w)", flags), handler) for rx, handler in rules]

    def hits(self, text: str, now: datetime, timezone: str) -> list[_Hit]:
        """Non-overlapping temporal expressions (longest first), dates joined with their times."""
        candidates: list[_Hit] = []
        for pattern, handler in self._rules:
            for match in pattern.finditer(text):
                part = handler(match, now, timezone)
                if part is not None:
                    candidates.append(_Hit(match.start(), match.end(), part))
        candidates.sort(key=lambda h: (h.start - h.end, h.start))
        chosen: list[_Hit] = []
        for hit in candidates:
            if not any(hit.start < c.end and c.start < hit.end for c in chosen):
                chosen.append(hit)
        chosen.sort(key=lambda h: h.start)
        return self._join(text, chosen, now)

    @staticmethod
    def _join(text: str, hits: list[_Hit], now: datetime) -> list[_Hit]:
        """Adjacent parts become one: "tomorrow at 5pm", "5pm on Friday", "Thursday, 3 December at 9am"."""
        joined: list[_Hit] = []
        for hit in hits:
            if joined and re.fullmatch(r"[\s,]*", text[joined[-1].end : hit.start]):
                merged = _merge(joined[-1].part, hit.part, now.tzinfo)
                if merged is not None:
                    joined[-1] = _Hit(joined[-1].start, hit.end, merged)
                    continue
            joined.append(hit)
        # A bare "morning" only means a time right next to a date ("Friday morning", not "good morning").
        return [h for h in joined if not (isinstance(h.part, _Times) and h.part.anchored_only)]

    # -- handlers: dates

    @staticmethod
    def _days(now: datetime, days: int) -> _Dates:
        return _Dates(((now.date() + timedelta(days=days), 1.0),))

    def _relative_day(self, m: re.Match[str], now: datetime, tz: str) -> _Dates:
        word = m.group(0).lower()
        return self._days(now, {"today": 0, "yesterday": -1}.get(word, 1))

    @staticmethod
    def _at(day: date, at: time, now: datetime) -> _Instant:
        return _Instant(datetime.combine(day, at, tzinfo=now.tzinfo), "part_of_day")

    @staticmethod
    def _weekday(m: re.Match[str], now: datetime, tz: str) -> _Dates:
        today = now.date()
        wd = _WEEKDAYS.index(m["wd"].lower())
        monday = today - timedelta(days=today.weekday())
        mod = " ".join((m["mod"] or "").lower().split())
        upcoming = today + timedelta(days=(wd - today.weekday()) % 7 or 7)  # strictly after today
        if m["wk"]:
            weeks = {"this": 0, "next": 1, "last": -1}[m["wk"].lower()]
            return _Dates(from_weekday=True, options=((monday + timedelta(weeks=weeks, days=wd), 1.0),))
        if mod == "next":
            next_week = monday + timedelta(weeks=1, days=wd)
            if upcoming != next_week:
                return _Dates(from_weekday=True, options=((next_week, 0.6), (upcoming, 0.4)))
            return _Dates(from_weekday=True, options=((next_week, 1.0),))
        if mod in {"last", "past", "previous"}:
            recent = today - timedelta(days=(today.weekday() - wd) % 7 or 7)  # strictly before today
            last_week = monday - timedelta(weeks=1) + timedelta(days=wd)
            if recent != last_week:
                return _Dates(from_weekday=True, options=((last_week, 0.6), (recent, 0.4)))
            return _Dates(from_weekday=True, options=((last_week, 1.0),))
        if mod == "this":
            this_week = monday + timedelta(days=wd)
            if this_week >= today:
                return _Dates(from_weekday=True, options=((this_week, 1.0),))
            return _Dates(from_weekday=True, options=((upcoming, 0.7), (this_week, 0.3)))
        if mod in {"coming", "this coming"}:
            return _Dates(from_weekday=True, options=((upcoming, 1.0),))
        if wd == today.weekday():
            return _Dates(from_weekday=True, options=((upcoming, 0.6), (today, 0.4)))
        return _Dates(from_weekday=True, options=((upcoming, 1.0),))

    @staticmethod
    def _dmy(m: re.Match[str], now: datetime, tz: str) -> _Dates | None:
        month, day = _MONTHS[m["mon"].lower()], int(m["day"])
        if m["year"]:
            try:
                return _Dates(((date(int(m["year"]), month, day), 1.0),))
            except ValueError:
                return None
        found = _next_date(now.date(), month, day)
        return _Dates(((found, 1.0),)) if found else None

    @staticmethod
    def _day_of_month(m: re.Match[str], now: datetime, tz: str) -> _Dates | None:
        today, day = now.date(), int(m["day"])
        for months in range(3):
            first = _add_months(today.replace(day=1), months)
            if day <= calendar.monthrange(first.year, first.month)[1]:
                candidate = first.replace(day=day)
                if candidate >= today:
                    return _Dates(((candidate, 1.0),))
        return None

    @staticmethod
    def _iso(m: re.Match[str], now: datetime, tz: str) -> _Dates | None:
        try:
            return _Dates(((date(int(m["y"]), int(m["m"]), int(m["d"])), 1.0),))
        except ValueError:
            return None

    @staticmethod
    def _numeric(m: re.Match[str], now: datetime, tz: str) -> _Dates | None:
        a, b, sep = int(m["a"]), int(m["b"]), m["sep"]
        if sep == "." and not m["y"]:
            return None  # "2.5" is a number, not the 2nd of May
        year = None
        if m["y"]:
            year = int(m["y"]) + (2000 if len(m["y"]) == 2 else 0)
        month_first = sep == "/" and tz.startswith(("America/", "US/", "Canada/"))
        readings = [(b, a), (a, b)] if month_first else [(a, b), (b, a)]  # (day, month)
        if sep == ".":
            readings = [(a, b)]
        options: list[tuple[date, float]] = []
        for day, month in readings:
            if not 1 <= month <= 12:
                continue
            if year is not None:
                try:
                    found: date | None = date(year, month, day)
                except ValueError:
                    found = None
            else:
                found = _next_date(now.date(), month, day)
            if found is not None and found not in [o[0] for o in options]:
                options.append((found, 1.0))
        if not options:
            return None
        if len(options) == 2:
            return _Dates(((options[0][0], 0.6), (options[1][0], 0.4)))
        return _Dates(tuple(options))

    @staticmethod
    def _half_hour(m: re.Match[str], now: datetime, tz: str) -> _Instant:
        return _Instant(now + timedelta(minutes=30), "minute")

    @staticmethod
    def _relative(m: re.Match[str], now: datetime, tz: str) -> _Part | None:
        n = _count(m["n"])
        if n is None:
            return None
        direction = " ".join(m["dir"].lower().split())
        sign = -1 if direction == "ago" else 1
        unit = m["unit"].lower()
        today = now.date()
        if direction.endswith("tomorrow"):
            today += timedelta(days=1)
        if unit in {"min", "minute", "hour", "hr"}:
            delta = timedelta(minutes=n) if unit.startswith("min") else timedelta(hours=n)
            end = now + sign * delta
            grain = "minute" if unit.startswith("min") else "hour"
            if direction == "within":
                return _Interval(((now.isoformat(), end.isoformat(), 1.0),), grain)
            return _Instant(end, grain)
        if unit in {"day", "week", "fortnight"}:
            days = n * {"day": 1, "week": 7, "fortnight": 14}[unit]
            if not days.is_integer():
                return None
            target = today + timedelta(days=sign * int(days))
        else:
            if not n.is_integer():
                return None
            target = _add_months(today, sign * int(n) * (12 if unit == "year" else 1))
        if direction == "within":
            return _Interval(((today.isoformat(), target.isoformat(), 1.0),), "day")
        return _Dates(((target, 1.0),))

    @staticmethod
    def _period(m: re.Match[str], now: datetime, tz: str) -> _Interval:
        today = now.date()
        mod = (m["mod"] or "this").lower()
        mod = {"coming": "this", "past": "last", "previous": "last"}.get(mod, mod)
        shift = {"this": 0, "next": 1, "last": -1}[mod]
        period = (m["period"] or m["weekend"]).lower()
        monday = today - timedelta(days=today.weekday())
        if period in {"week", "weekend"}:
            first = 5 if period == "weekend" else 0

            def week(offset: int) -> tuple[str, str]:
                start = monday + timedelta(weeks=offset, days=first)
                return start.isoformat(), (monday + timedelta(weeks=offset, days=6)).isoformat()

            primary = week(shift)
            if period == "weekend" and mod == "next" and today.weekday() < 5:
                return _Interval(((*primary, 0.6), (*week(0), 0.4)), "weekend")
            return _Interval(((*primary, 1.0),), period)
        if period == "month":
            first_day = _add_months(today.replace(day=1), shift)
            last_day = first_day.replace(day=calendar.monthrange(first_day.year, first_day.month)[1])
            return _Interval(((first_day.isoformat(), last_day.isoformat(), 1.0),), "month")
        year = today.year + shift
        return _Interval(((f"{year}-01-01", f"{year}-12-31", 1.0),), "year")

    @staticmethod
    def _in_month(m: re.Match[str], now: datetime, tz: str) -> _Interval | None:
        mods = {w.lower() for w in re.findall(r"in|this|next|last|during|early|mid|late", m.group(0), re.I)}
        month = _MONTHS[m["mon"].lower()]
        if month == 5 and mods <= {"in"} and not m["year"] and not m.group(0)[-3:].istitle():
            return None  # "in may" is too often the verb
        today = now.date()
        if m["year"]:
            year = int(m["year"])
        elif "last" in mods:
            year = today.year if month < today.month else today.year - 1
        elif "next" in mods:
            year = today.year if month > today.month else today.year + 1
        else:
            year = today.year if month >= today.month else today.year + 1
        last = calendar.monthrange(year, month)[1]
        return _Interval(
            ((date(year, month, 1).isoformat(), date(year, month, last).isoformat(), 1.0),), "month"
        )

    # -- handlers: times

    @staticmethod
    def _ampm(m: re.Match[str], now: datetime, tz: str) -> _Times:
        hour, minute = int(m["h"]) % 12, int(m["m"] or 0)
        if m["ap"].lower().startswith("p"):
            hour += 12
        return _Times(((time(hour, minute), 1.0),), "minute")

    @staticmethod
    def _clock(m: re.Match[str], now: datetime, tz: str) -> _Times:
        hour, minute = int(m["h"]), int(m["m"])
        if m["h24"] or m["h"].startswith("0"):
            return _Times(((time(hour, minute), 1.0),), "minute")
        return _Times(_hour_readings(hour, minute), "minute")

    @staticmethod
    def _bare_hour(m: re.Match[str], now: datetime, tz: str) -> _Times:
        return _Times(_hour_readings(int(m["h"]), 0), "hour")

    @staticmethod
    def _noon(m: re.Match[str], now: datetime, tz: str) -> _Times:
        if m["word"].lower() == "midnight":
            return _Times(((time(0), 1.0),), "minute", day_offset=1)
        return _Times(((time(12), 1.0),), "minute")

    @staticmethod
    def _part_of_day(m: re.Match[str], now: datetime, tz: str) -> _Times:
        bare = m.group(0).lower() == m["pod"].lower()
        return _Times(((_PARTS_OF_DAY[m["pod"].lower()], 1.0),), "part_of_day", anchored_only=bare)


def _merge(first: _Part, second: _Part, zone: tzinfo | None) -> _Part | None:
    """The part two adjacent parts make together, or None when they stay apart."""
    if isinstance(first, _Dates) and isinstance(second, _Dates):
        # "Friday, 4 December": the explicit date decides over the weekday.
        return first if second.from_weekday and not first.from_weekday else second
    if isinstance(first, _Dates) and isinstance(second, _Times):
        return _combine(first, second, zone)
    if isinstance(first, _Times) and isinstance(second, _Dates):
        return _combine(second, first, zone)
    return None


def _combine(dates: _Dates, times: _Times, zone: tzinfo | None) -> _Combined:
    """Every date with every time, best first."""
    options = sorted(
        (
            (datetime.combine(day + timedelta(days=times.day_offset), at, tzinfo=zone), dc * tc)
            for day, dc in dates.options
            for at, tc in times.options
        ),
        key=lambda o: -o[1],
    )
    return _Combined(tuple(options), times.grain)


def _datetime_fields(at: datetime, grain: str, timezone: str) -> dict[str, Any]:
    return {
        "kind": "datetime",
        "datetime": at.isoformat(),
        "date": at.date().isoformat(),
        "time": at.strftime("%H:%M"),
        "grain": grain,
        "timezone": timezone or "UTC",
    }


def _readings(part: _Part, now: datetime, timezone: str) -> list[Reading]:
    """The part as readings, best first."""
    if isinstance(part, _Dates):
        return [
            Reading(d.isoformat(), {"kind": "date", "date": d.isoformat(), "grain": "day"}, c)
            for d, c in part.options
        ]
    if isinstance(part, _Interval):
        return [
            Reading(f"{s}/{e}", {"kind": "interval", "start": s, "end": e, "grain": part.grain}, c)
            for s, e, c in part.options
        ]
    if isinstance(part, _Instant):
        return [Reading(part.at.isoformat(), _datetime_fields(part.at, part.grain, timezone), 1.0)]
    if isinstance(part, _Combined):
        return [
            Reading(at.isoformat(), _datetime_fields(at, part.grain, timezone), c) for at, c in part.options
        ]
    out: list[Reading] = []
    for at, c in part.options:
        moment = datetime.combine(now.date(), at, tzinfo=now.tzinfo)
        if moment <= now or part.day_offset:
            moment += timedelta(days=1)
        fields = _datetime_fields(moment, part.grain, timezone)
        fields["kind"] = "time"
        out.append(Reading(moment.isoformat(), fields, c))
    return out


# ------------------------------------------------------------------------------------------------ finder


def _overlaps(start: int, end: int, spans: Iterable[Span]) -> bool:
    return any(start < s_end and s_start < end for s_start, s_end in spans)


def _mention(
    text: str, start: int, end: int, readings: Sequence[Reading], confidence: float, source: str
) -> TemporalMention:
    best, *others = readings
    return TemporalMention(
        start=start,
        end=end,
        text=text[start:end],
        best=best,
        confidence=confidence,
        alternatives=tuple(others),
        source=source,
    )


class TemporalFinder:
    """Finds and resolves temporal expressions: the grammar first, then (optionally) dateparser.

    Construction is cheap (no dateparser): dateparser is imported the first time the grammar cannot handle
    an expression; call :meth:`warm` at start-up to pay that (about a second) early. An instance holds no
    per-call state and can be shared between threads.
    """

    def __init__(self, *, use_dateparser: bool = True) -> None:
        self._use_dateparser = use_dateparser
        self._grammar = _Grammar()

    def warm(self) -> None:
        """Import dateparser and load its English data now rather than on the first expression needing it."""
        if self._use_dateparser:
            self._dateparser_parse("tomorrow", datetime.now(UTC), "UTC", "en")

    def find(
        self,
        text: str,
        reference_time: datetime,
        timezone: str,
        *,
        exclude: Sequence[Span] = (),
        language: str = "en",
    ) -> list[TemporalMention]:
        """Temporal expressions in ``text``, in text order, none overlapping an ``exclude`` span.

        Raises :class:`~parley.core.errors.InvalidInputError` for a timezone that is not an IANA name.
        """
        now = _local_now(reference_time, timezone)
        excluded = [(start, end) for start, end in exclude]
        found: list[TemporalMention] = []
        if language.lower().startswith("en"):
            for hit in self._grammar.hits(text, now, timezone):
                if _overlaps(hit.start, hit.end, excluded):
                    continue
                readings = _readings(hit.part, now, timezone)
                found.append(_mention(text, hit.start, hit.end, readings, GRAMMAR_CONFIDENCE, GRAMMAR))
        if self._use_dateparser:
            taken = [*excluded, *((m.start, m.end) for m in found)]
            found.extend(self._dateparser_search(text, now, timezone, language, taken))
        return sorted(found, key=lambda m: m.start)

    def parse(
        self, text: str, reference_time: datetime, timezone: str, *, language: str = "en"
    ) -> Reading | None:
        """dateparser's reading of the whole of ``text`` (say, a tagged entity the grammar does not know).

        None when dateparser is off or cannot read it. Unlike :meth:`find`, no plausibility filter applies:
        the caller already knows ``text`` is meant as a date or time.
        """
        if not self._use_dateparser:
            return None
        now = _local_now(reference_time, timezone)
        parsed = self._dateparser_parse(text, now, timezone, language)
        if parsed is None:
            return None
        return _dateparser_reading(text, parsed, now, timezone, language.lower().startswith("en"))

    # -- dateparser

    def _dateparser_settings(self, now: datetime, timezone: str) -> dict[str, Any]:
        return {
            # dateparser reads a naive base as wall-clock time in TIMEZONE.
            "RELATIVE_BASE": now.replace(tzinfo=None),
            "TIMEZONE": timezone or "UTC",
            "RETURN_AS_TIMEZONE_AWARE": True,
            "PREFER_DATES_FROM": "future",
        }

    def _dateparser_parse(self, text: str, now: datetime, timezone: str, language: str) -> datetime | None:
        import dateparser  # noqa: PLC0415 - a second to import: only when the grammar falls short

        return dateparser.parse(
            text,
            languages=[_base_language(language)],
            settings=self._dateparser_settings(now, timezone),
        )

    def _dateparser_search(
        self, text: str, now: datetime, timezone: str, language: str, taken: list[Span]
    ) -> list[TemporalMention]:
        english = language.lower().startswith("en")
        if english and not _DATEPARSER_ANCHOR_EN.search(_blank(text, taken)):
            return []
        from dateparser.search import search_dates  # noqa: PLC0415 - see _dateparser_parse

        try:
            results = search_dates(
                text,
                languages=[_base_language(language)],
                settings=self._dateparser_settings(now, timezone),
            )
        except (ValueError, KeyError, OverflowError):  # unsupported language or a date it cannot build
            return []
        found: list[TemporalMention] = []
        cursor = 0
        for surface, parsed in results or []:
            start = text.find(surface, cursor)
            if start < 0:
                continue
            end = cursor = start + len(surface)
            if _overlaps(start, end, taken) or not _plausible_date_text(surface, english):
                continue
            if not now.year - 30 <= parsed.year <= now.year + 10:
                continue  # "10/14-20" read as 2120: a misreading, not a plan
            reading = _dateparser_reading(surface, parsed, now, timezone, english)
            found.append(_mention(text, start, end, [reading], DATEPARSER_CONFIDENCE, DATEPARSER))
        return found


def _base_language(language: str) -> str:
    """ "en" for "en-GB": dateparser knows languages, not regions."""
    return language.split("-", maxsplit=1)[0].lower()


def _blank(text: str, spans: list[Span]) -> str:
    """``text`` with the given spans replaced by spaces (so hints inside them do not count)."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _plausible_date_text(surface: str, english: bool) -> bool:
    """Whether dateparser's find looks like a date: not a bare number, not money, anchored in English."""
    if re.search(r"[$€£¥₹]", surface):
        return False
    if not re.search(r"[^\W\d_]", surface):
        # Only digits and punctuation: accept real date shapes, never a lone number (an id, a quantity).
        return bool(re.fullmatch(r"\s*\d{1,4}[-./]\d{1,2}[-./]\d{1,4}\s*|\s*\d{1,2}:\d{2}\s*", surface))
    return not (english and not _DATEPARSER_ANCHOR_EN.search(surface))


def _dateparser_reading(
    surface: str, parsed: datetime, now: datetime, timezone: str, english: bool
) -> Reading:
    """dateparser's result as a date, or as a datetime when the text names a time dateparser honoured.

    dateparser fills in the reference time of day when it found no time, and sometimes drops a time it was
    given ("morgen um 17 Uhr"): a result at exactly the reference time of day is taken as a date.
    """
    local = parsed.astimezone(now.tzinfo) if parsed.tzinfo else parsed.replace(tzinfo=now.tzinfo)
    named = _TIME_HINT.search(surface) or (english and _TIME_HINT_EN.search(surface))
    has_time = bool(named) and local.time().replace(second=0, microsecond=0) != (
        now.time().replace(second=0, microsecond=0)
    )
    if has_time:
        return Reading(local.isoformat(), _datetime_fields(local, "minute", timezone), 1.0)
    day = local.date().isoformat()
    return Reading(day, {"kind": "date", "date": day, "grain": "day"}, 1.0)


def find_temporal(
    text: str,
    reference_time: datetime,
    timezone: str,
    *,
    exclude: Sequence[tuple[int, int]] = (),
    language: str = "en",
) -> list[TemporalMention]:
    """Temporal expressions in ``text``, in text order, none overlapping an ``exclude`` span.

    A one-off :class:`TemporalFinder` with dateparser on; callers resolving many texts keep their own.
    """
    return TemporalFinder().find(text, reference_time, timezone, exclude=exclude, language=language)
