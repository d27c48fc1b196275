"""Refunds and cancellations at the Shopify stand-in, in Shopify's two shapes.

A refund is stored on its order as the GraphQL `Refund` (`id`, `createdAt`, `totalRefundedSet`)
and handed back as the REST-shaped `refunds/create` webhook body: numeric ids, `order_id`,
`refund_line_items[{quantity, line_item, subtotal_set, total_tax_set}]` and `transactions[{kind:
"refund", status: "success", amount, currency}]` with money as strings.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Callable
from zoneinfo import ZoneInfo

from bot.sandbox.shopify_orders import aware, iso, money_bag, rest_money


def add_refund(order: dict[str, Any], now: datetime, tz: ZoneInfo, next_id: Callable[[], int], *,
               amount: Decimal | str | int | None = None, quantity: int = 1,
               created: datetime | str | None = None) -> dict[str, Any]:
    """Refund `quantity` of the order's first line item (or `amount`); returns the REST webhook body."""
    currency = order["totalPriceSet"]["shopMoney"]["currencyCode"]
    item = order["lineItems"][0]
    unit = Decimal(item["originalUnitPriceSet"]["shopMoney"]["amount"])
    value = Decimal(str(amount)) if amount is not None else unit * quantity
    at = aware(created, tz) if created is not None else now
    refund_id, transaction_id, line_id = next_id(), next_id(), next_id()
    order.setdefault("refunds", []).append({"id": f"gid://shopify/Refund/{refund_id}", "createdAt": iso(at),
                                            "totalRefundedSet": money_bag(value, currency)})
    order["updatedAt"] = iso(max(now, at))
    refunded = sum(Decimal(r["totalRefundedSet"]["shopMoney"]["amount"]) for r in order["refunds"])
    order["displayFinancialStatus"] = ("REFUNDED" if refunded >= Decimal(order["totalPriceSet"]["shopMoney"]["amount"])
                                       else "PARTIALLY_REFUNDED")
    order_id = int(order["id"].rsplit("/", 1)[1])
    text = f"{value:.2f}"
    return {
        "id": refund_id, "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}", "order_id": order_id,
        "created_at": at.astimezone(tz).isoformat(timespec="seconds"), "note": None, "restock": False,
        "processed_at": at.astimezone(tz).isoformat(timespec="seconds"), "duties": [], "order_adjustments": [],
        "refund_line_items": [{
            "id": line_id, "line_item_id": int(item["id"].rsplit("/", 1)[1]), "quantity": quantity,
            "restock_type": "no_restock", "subtotal": float(unit * quantity),
            "subtotal_set": rest_money(str(unit * quantity), currency), "total_tax": 0.0,
            "total_tax_set": rest_money("0", currency),
            "line_item": {"id": int(item["id"].rsplit("/", 1)[1]), "name": item["name"], "title": item["title"],
                          "sku": item["sku"], "quantity": item["quantity"]},
        }],
        "transactions": [{
            "id": transaction_id, "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{transaction_id}",
            "order_id": order_id, "kind": "refund", "gateway": "bogus", "status": "success",
            "amount": text, "currency": currency, "created_at": at.astimezone(tz).isoformat(timespec="seconds"),
            "test": False,
        }],
    }
