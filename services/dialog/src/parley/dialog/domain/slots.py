"""Slot values: from NLU entities (or the raw answer to a question) to typed, validated values.

A value is coerced to the slot's ``type`` and then checked against ``values``/``regex``/``min``/``max``;
the result says whether it was accepted and, when not, why (the engine answers with the slot's
``invalid_response`` or asks again). Dates are stored as ISO ``YYYY-MM-DD`` text, lists as JSON lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict

from parley.core.flows import SlotSpec
from parley.nlu.v1 import nlu_pb2

_TRUE = frozenset({"true", "yes", "y", "yeah", "yep", "sure", "ok", "okay", "1"})
_FALSE = frozenset({"false", "no", "n", "nope", "nah", "0"})
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Coerced:
    """A candidate slot value after coercion and validation."""

    ok: bool
    value: Any = None
    #: The value as the user gave it (for ``{value}`` in an invalid response).
    raw: Any = None
    reason: str = ""


def entity_value(entity: nlu_pb2.Entity) -> Any:
    """The most useful value of an entity: its structured resolution (a date, a number) when there is one,
    else its canonical value, else its text."""
    if entity.HasField("resolved"):
        resolved = MessageToDict(entity.resolved)
        for key in ("date", "number", "amount", "value"):
            if resolved.get(key) not in (None, ""):
                return resolved[key]
    return entity.value or entity.text


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _NUMBER.search(value)
        if match:
            return float(match.group().replace(",", "."))
    return None


def _to_date(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        match = _ISO_DATE.search(value)
        if match:
            try:
                return date.fromisoformat(match.group()).isoformat()
            except ValueError:
                return None
    return None


def _categorical(value: Any, allowed: Sequence[str]) -> str | None:
    text = str(value).strip().casefold()
    for candidate in allowed:
        if candidate.casefold() == text:
            return candidate
    # An answer such as "I'd like it vegan please": exactly one allowed value mentioned as a word.
    mentioned = [c for c in allowed if re.search(rf"\b{re.escape(c.casefold())}\b", text)]
    return mentioned[0] if len(mentioned) == 1 else None


def _coerce_one(spec: SlotSpec, value: Any) -> tuple[Any, str]:
    """(value, "") or (None, why not)."""
    kind = spec.type
    if kind in ("text", "any"):
        if kind == "text":
            value = str(value).strip() if value is not None else ""
            if not value:
                return None, "empty"
        return value, ""
    if kind in ("integer", "float"):
        number = _number(value)
        if number is None:
            return None, "not a number"
        if kind == "integer":
            if not number.is_integer():
                return None, "not a whole number"
            return int(number), ""
        return number, ""
    if kind == "bool":
        if isinstance(value, bool):
            return value, ""
        text = str(value).strip().casefold()
        if text in _TRUE:
            return True, ""
        if text in _FALSE:
            return False, ""
        return None, "not yes or no"
    if kind == "date":
        iso = _to_date(value)
        return (iso, "") if iso else (None, "not a date")
    if kind == "categorical":
        if not spec.values:
            return str(value), ""
        found = _categorical(value, spec.values)
        return (found, "") if found else (None, f"not one of {', '.join(spec.values)}")
    return value, ""


def _check(spec: SlotSpec, value: Any) -> str:
    """Why ``value`` (already coerced) breaks the spec's bounds, or ""."""
    if spec.type == "list":
        size = len(value)
        if spec.min is not None and size < spec.min:
            return f"fewer than {spec.min:g} items"
        if spec.max is not None and size > spec.max:
            return f"more than {spec.max:g} items"
        if spec.values:
            allowed = {v.casefold() for v in spec.values}
            bad = [v for v in value if str(v).casefold() not in allowed]
            if bad:
                return f"{', '.join(map(str, bad))} not one of {', '.join(spec.values)}"
        return ""
    if spec.type in ("integer", "float"):
        if spec.min is not None and value < spec.min:
            return f"less than {spec.min:g}"
        if spec.max is not None and value > spec.max:
            return f"more than {spec.max:g}"
    if spec.regex is not None and isinstance(value, str) and not re.fullmatch(spec.regex, value):
        return "does not match the expected format"
    return ""


def coerce(spec: SlotSpec, value: Any) -> Coerced:
    """``value`` (one value, or several for a list slot) as the slot's type, validated."""
    raw = value
    if spec.type == "list":
        items = list(value) if isinstance(value, list | tuple) else [value]
        items = [str(v).strip() for v in items if v is not None and str(v).strip()]
        if spec.values:
            items = [_categorical(v, spec.values) or v for v in items]
        coerced: Any = list(dict.fromkeys(items))
        if not coerced:
            return Coerced(False, raw=raw, reason="empty")
    else:
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        if value is None:
            return Coerced(False, raw=raw, reason="empty")
        coerced, why = _coerce_one(spec, value)
        if why:
            return Coerced(False, raw=raw, reason=why)
    why = _check(spec, coerced)
    if why:
        return Coerced(False, raw=raw, reason=why)
    return Coerced(True, value=coerced, raw=raw)


def normalise(spec: SlotSpec | None, value: Any) -> Any:
    """A stored value re-typed after its trip through JSON (whole floats of an integer slot back to int)."""
    if spec is not None and spec.type == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def entities_by_type(entities: Sequence[nlu_pb2.Entity]) -> dict[str, list[Any]]:
    """Entity type -> values in text order."""
    found: dict[str, list[Any]] = {}
    for entity in sorted(entities, key=lambda e: (e.start, e.end)):
        value = entity_value(entity)
        if entity.type and value not in (None, ""):
            found.setdefault(entity.type, []).append(value)
    return found


def first_values(entities: Mapping[str, list[Any]]) -> dict[str, Any]:
    """Entity type -> its first value (what templates and conditions see as ``entities``)."""
    return {kind: values[0] for kind, values in entities.items() if values}
