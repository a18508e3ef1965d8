"""The weather tool of the example assistant: a made-up forecast from ``weather.json``, no network."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

#: Said with every forecast, so nobody mistakes the example data for a real forecast.
SOURCE = "offline example data"


@cache
def _forecasts() -> dict[str, dict[str, Any]]:
    data = json.loads((Path(__file__).parent / "weather.json").read_text(encoding="utf-8"))
    return {key.casefold(): {"city": key, **value} for key, value in data.items() if not key.startswith("_")}


def get_weather(city: str) -> dict[str, Any]:
    """Today's (example) forecast for ``city``; ``known`` is false for a city without data."""
    forecast = _forecasts().get(" ".join(city.split()).casefold())
    if forecast is None:
        return {"known": False, "city": city, "source": SOURCE}
    return {
        "known": True,
        "city": forecast["city"],
        "conditions": forecast["conditions"],
        "temperature": f"{forecast['temperature_c']}°C",
        "rain_chance": f"{forecast['rain_chance']}%",
        "source": SOURCE,
    }
