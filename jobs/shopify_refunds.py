"""Reading a refund in either shape: the REST `refunds/create` webhook body or a GraphQL `Refund` node.

REST (money as strings): `id`, `admin_graphql_api_id`, `order_id`, `created_at`,
`transactions[{kind, status, amount, currency}]`, `refund_line_items[{quantity, line_item{name, sku},
subtotal_set{shop_money}, total_tax_set{shop_money}}]`. GraphQL: `id` (gid), `createdAt`,
`totalRefundedSet { shopMoney { amount currencyCode } }`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from jobs.shopify_money import currency_code, money_amount

REFUND_GID = re.compile(r"^gid://shopify/Refund/\d+$")


def refund_gid(refund: dict[str, Any]) -> str | None:
    """`gid://shopify/Refund/<id>` of a refund in either shape; None when it has no usable id."""
    for value in (refund.get("admin_graphql_api_id"), refund.get("id")):
        if isinstance(value, str) and REFUND_GID.match(value):
            return value
    number = refund.get("id")
    if isinstance(number, bool):
        return None
    if isinstance(number, int) and number > 0:
        return f"gid://shopify/Refund/{number}"
    if isinstance(number, str) and number.isdigit():
        return f"gid://shopify/Refund/{int(number)}"
    return None


def refund_amount(refund: dict[str, Any]) -> tuple[Decimal | None, str | None]:
    """(amount, currency) refunded; (None, None) when the body says nothing usable."""
    gql = refund.get("totalRefundedSet")
    if isinstance(gql, dict) and isinstance(gql.get("shopMoney"), dict):
        money = gql["shopMoney"]
        return money_amount(money.get("amount")), currency_code(money.get("currencyCode"))
    lines_total = _line_items_total(refund)
    transactions = [t for t in refund.get("transactions") or [] if isinstance(t, dict)
                    and t.get("kind") == "refund" and t.get("status") in ("success", None)]
    amounts = [(money_amount(t.get("amount")), currency_code(t.get("currency"))) for t in transactions]
    if amounts and all(amount is not None for amount, _ in amounts) and len({c for _, c in amounts}) == 1:
        paid = sum((amount for amount, _ in amounts), Decimal(0)), amounts[0][1]  # type: ignore[misc]
        # Transactions are in the customer's (presentment) currency: the shop's money wins when they differ.
        if lines_total[1] is None or lines_total[1] == paid[1]:
            return paid
    return lines_total


def _line_items_total(refund: dict[str, Any]) -> tuple[Decimal | None, str | None]:
    """The refund line items' subtotal + tax in shop money; (None, None) if absent or mixed."""
    total, currency = Decimal(0), None
    lines = [line for line in refund.get("refund_line_items") or [] if isinstance(line, dict)]
    for line in lines:
        for key in ("subtotal_set", "total_tax_set"):
            money = (line.get(key) or {}).get("shop_money") if isinstance(line.get(key), dict) else None
            if not isinstance(money, dict):
                continue
            amount, code = money_amount(money.get("amount")), currency_code(money.get("currency_code"))
            if amount is None or code is None or (currency is not None and code != currency):
                return None, None
            total, currency = total + amount, code
    return (total, currency) if currency is not None else (None, None)


def refund_items(refund: dict[str, Any]) -> list[dict[str, Any]]:
    """[{name, sku, quantity}] of the refunded line items (REST body only)."""
    items = []
    for line in refund.get("refund_line_items") or []:
        if not isinstance(line, dict):
            continue
        item = line.get("line_item") if isinstance(line.get("line_item"), dict) else {}
        quantity = line.get("quantity")
        quantity = quantity if isinstance(quantity, int) and not isinstance(quantity, bool) and quantity > 0 else 0
        name = item.get("name") or item.get("title") or item.get("sku") or "(이름 없음)"
        items.append({"name": " ".join(str(name).split()), "sku": item.get("sku") or "", "quantity": quantity})
    return items
