"""Slot values: coercion to the slot's type and validation."""

from __future__ import annotations

import pytest

from parley.core.flows import SlotSpec
from parley.dialog.domain.slots import coerce, entity_value
from parley.nlu.v1 import nlu_pb2


@pytest.mark.parametrize(
    ("spec", "raw", "ok", "value"),
    [
        (SlotSpec(type="text"), "  Paris ", True, "Paris"),
        (SlotSpec(type="text"), "   ", False, None),
        (SlotSpec(type="text", regex=r"\d{5}"), "12345", True, "12345"),
        (SlotSpec(type="text", regex=r"\d{5}"), "1234", False, None),
        (SlotSpec(type="integer"), "3 people", True, 3),
        (SlotSpec(type="integer"), 2.0, True, 2),
        (SlotSpec(type="integer"), "2.5", False, None),
        (SlotSpec(type="integer", min=1, max=9), "12", False, None),
        (SlotSpec(type="integer", min=1, max=9), "9", True, 9),
        (SlotSpec(type="float"), "2,5", True, 2.5),
        (SlotSpec(type="float"), "none", False, None),
        (SlotSpec(type="bool"), "yes", True, True),
        (SlotSpec(type="bool"), "Nope", True, False),
        (SlotSpec(type="bool"), "maybe", False, None),
        (SlotSpec(type="date"), "2026-11-27", True, "2026-11-27"),
        (SlotSpec(type="date"), "on 2026-02-30", False, None),
        (SlotSpec(type="date"), "tomorrow", False, None),
        (SlotSpec(type="categorical", values=["Vegan", "vegetarian"]), "vegan", True, "Vegan"),
        (
            SlotSpec(type="categorical", values=["vegan", "vegetarian"]),
            "I'd like it vegan please",
            True,
            "vegan",
        ),
        (SlotSpec(type="categorical", values=["vegan", "vegetarian"]), "paleo", False, None),
        (SlotSpec(type="list"), "bacon", True, ["bacon"]),
        (SlotSpec(type="list"), ["ham", "cheese", "ham"], True, ["ham", "cheese"]),
        (SlotSpec(type="list", max=1), ["ham", "cheese"], False, None),
        (SlotSpec(type="list", values=["Ham", "cheese"]), ["ham"], True, ["Ham"]),
        (SlotSpec(type="list", values=["ham"]), ["tofu"], False, None),
        (SlotSpec(type="any"), {"a": 1}, True, {"a": 1}),
    ],
)
def test_coercion_and_validation(spec, raw, ok, value):
    result = coerce(spec, raw)
    assert result.ok is ok
    assert result.value == value
    if not ok:
        assert result.reason and result.raw == raw


def test_an_entity_value_prefers_its_structured_resolution():
    entity = nlu_pb2.Entity(type="date", text="tomorrow", value="tomorrow")
    entity.resolved.update({"kind": "date", "date": "2026-11-27", "grain": "day"})
    assert entity_value(entity) == "2026-11-27"
    assert entity_value(nlu_pb2.Entity(type="city", text="paris", value="Paris")) == "Paris"
    assert entity_value(nlu_pb2.Entity(type="city", text="paris")) == "paris"
