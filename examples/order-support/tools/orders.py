"""Order tools of the example assistant: pure functions over ``orders.json`` (offline example data).

Nothing is ever written: ``cancel_order`` and ``update_address`` say what *would* happen, so the example
behaves the same on every run (and in the conversation tests).
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

#: Orders that have not left the warehouse can still be cancelled or sent elsewhere.
CHANGEABLE = "processing"


@cache
def _orders() -> dict[str, dict[str, Any]]:
    data = json.loads((Path(__file__).parent / "orders.json").read_text(encoding="utf-8"))
    return {key: value for key, value in data.items() if not key.startswith("_")}


def _day(iso: str) -> str:
    """``2026-11-27`` -> ``Friday, 27 November``; empty for no date."""
    if not iso:
        return ""
    day = date.fromisoformat(iso)
    return f"{day:%A}, {day.day} {day:%B}"


def lookup_order(order_id: str) -> dict[str, Any]:
    """The order's status, carrier and expected delivery day; ``found`` is false for an unknown number."""
    order = _orders().get(order_id.lstrip("#"))
    if order is None:
        return {"found": False, "order_id": order_id}
    return {
        "found": True,
        "order_id": order_id,
        "status": order["status"],
        "items": ", ".join(order["items"]),
        "carrier": order.get("carrier", ""),
        "eta": _day(order.get("eta", "")),
        "delivered_on": _day(order.get("delivered_on", "")),
        "total": order["total"],
        "current_address": order["address"],
    }


def cancel_order(order_id: str) -> dict[str, Any]:
    """Cancel an order that has not shipped; ``cancelled`` says whether it could be, ``reason`` why not."""
    order = _orders().get(order_id.lstrip("#"))
    if order is None:
        return {"cancelled": False, "reason": f"there is no order {order_id}"}
    if order["status"] != CHANGEABLE:
        return {"cancelled": False, "reason": f"order {order_id} is already {order['status']}"}
    return {"cancelled": True, "refund": order["total"]}


def update_address(order_id: str, address: str) -> dict[str, Any]:
    """Send an order that has not shipped yet to ``address``; ``updated`` says whether that was possible."""
    order = _orders().get(order_id.lstrip("#"))
    if order is None:
        return {"updated": False, "reason": f"there is no order {order_id}"}
    if order["status"] != CHANGEABLE:
        return {"updated": False, "reason": f"order {order_id} is already {order['status']}"}
    return {"updated": True, "old_address": order["address"], "delivery_address": " ".join(address.split())}
