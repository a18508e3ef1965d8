"""The flight-booking tool of the example assistant: a pretend booking with a stable reference."""

from __future__ import annotations

import hashlib
from typing import Any


def book_flight(origin: str, destination: str, date: str, passengers: int) -> dict[str, Any]:
    """Book (pretend) a flight; the same request always gets the same booking reference."""
    key = f"{origin.casefold()}|{destination.casefold()}|{date}|{passengers}"
    reference = "PA" + hashlib.sha256(key.encode()).hexdigest()[:6].upper()
    return {"reference": reference, "seats": passengers}
