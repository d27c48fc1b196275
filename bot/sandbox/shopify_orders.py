"""Orders of the Shopify stand-in: made-up order data, and the GraphQL and REST shapes of it.

Orders are stored as the GraphQL Order object would show them (camelCase, money bags, ISO
`Z` times, line items as a plain list) plus private `_` keys the stand-in uses itself, such
as `_protected` (protected customer data). `public` is what a query for every field returns,
`rest_order` what an `orders/create` webhook carries.

Nothing here keeps state: ids come from the caller's `next_id`, so they stay unique across
a whole sandbox and never look like small integers.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable
from zoneinfo import ZoneInfo

from bot.sandbox.shopify_graphql import order_number, parse_time

ZERO_DECIMAL = {"KRW", "JPY", "VND"}
PRODUCTS = [  # name, sku, unit price in KRW, unit price in two-decimal currencies
    ("아메리카노 원두 200g", "BEAN-200", 15000, "12.5"),
    ("드립백 10개입", "DRIP-10", 12000, "9.99"),
    ("콜드브루 500ml", "COLD-500", 9000, "7.5"),
    ("머그컵", "MUG-01", 18000, "14.0"),
    ("텀블러", "TUMB-01", 25000, "19.99"),
]
CUSTOMERS = [("김", "민지"), ("이", "서준"), ("박", "하늘"), ("최", "유나"), ("정", "도윤")]

NextId = Callable[[], int]


def new_order(number: int, created: datetime, line_items: int, currency: str, next_id: NextId) -> dict[str, Any]:
    """Order `#number`: paid, unfulfilled, `line_items` products picked by the number."""
    items = []
    for j in range(line_items):
        name, sku, krw, other = PRODUCTS[(number + j) % len(PRODUCTS)]
        unit = Decimal(krw) if currency in ZERO_DECIMAL else Decimal(other)
        items.append(line_item({"name": name, "sku": sku, "quantity": 1 + (number + j) % 2, "price": unit},
                               currency, next_id))
    family, given = CUSTOMERS[number % len(CUSTOMERS)]
    at = iso(created)
    return {
        "id": f"gid://shopify/Order/{next_id()}", "name": f"#{number}",
        "createdAt": at, "updatedAt": at, "processedAt": at, "cancelledAt": None, "cancelReason": None,
        "displayFinancialStatus": "PAID", "displayFulfillmentStatus": "UNFULFILLED",
        "currencyCode": currency, "test": False,
        "totalPriceSet": money_bag(total(items), currency),
        "lineItems": items,
        "customer": {"id": f"gid://shopify/Customer/{next_id()}", "displayName": family + given,
                     "firstName": given, "lastName": family, "email": f"customer{number}@example.com"},
        "refunds": [],
        "_protected": True,
    }


def set_statuses(order: dict[str, Any], i: int, created: datetime, *, cancelled_every: int,
                 refunded_every: int, fulfilled_every: int, pending_every: int) -> None:
    """Statuses of the i-th (from 1) generated order: every n-th one cancelled/refunded/... (0: none)."""
    def nth(every_n: int) -> bool:
        return every_n > 0 and i % every_n == 0

    if nth(cancelled_every):
        order.update(cancelledAt=iso(created + timedelta(hours=1)), cancelReason="CUSTOMER",
                     displayFinancialStatus="REFUNDED")
    elif nth(refunded_every):
        order["displayFinancialStatus"] = "REFUNDED"
    elif nth(pending_every):
        order["displayFinancialStatus"] = "PENDING"
    if nth(fulfilled_every) and not order["cancelledAt"]:
        order["displayFulfillmentStatus"] = "FULFILLED"


def line_item(item: dict[str, Any], currency: str, next_id: NextId) -> dict[str, Any]:
    """A stored line item from the `{name, sku, quantity, price}` shorthand."""
    unit = Decimal(str(item.get("price", 0)))
    return {"id": f"gid://shopify/LineItem/{next_id()}", "name": item["name"],
            "title": item.get("title", item["name"]), "sku": item.get("sku"),
            "quantity": item.get("quantity", 1), "originalUnitPriceSet": money_bag(unit, currency)}


def apply_fields(order: dict[str, Any], fields: dict[str, Any], tz: ZoneInfo, next_id: NextId) -> None:
    """Set GraphQL-named `fields` on `order`, expanding the shorthands `protected_customer`,
    `lineItems` and `total`; consumes the shorthands from `fields`."""
    currency = order["totalPriceSet"]["shopMoney"]["currencyCode"]
    if "protected_customer" in fields:
        order["_protected"] = bool(fields.pop("protected_customer"))
    if "lineItems" in fields:
        order["lineItems"] = [line_item(item, currency, next_id) for item in fields.pop("lineItems")]
        if "total" not in fields and "totalPriceSet" not in fields:
            order["totalPriceSet"] = money_bag(total(order["lineItems"]), currency)
    if "total" in fields:
        order["totalPriceSet"] = money_bag(Decimal(str(fields.pop("total"))), currency)
    for key, value in fields.items():
        order[key] = iso(aware(value, tz)) if isinstance(value, datetime) else value


def aware(value: datetime | str, tz: ZoneInfo) -> datetime:
    """A datetime with a zone; naive values are in the shop's time zone."""
    moment = parse_time(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def iso(moment: datetime) -> str:
    """GraphQL DateTime as Shopify writes it: UTC, seconds, `Z`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def decimal_text(amount: Decimal) -> str:
    """GraphQL Decimal as Shopify writes it: "45000.0", "12.5", "19.99"."""
    text = format(amount.normalize(), "f")
    return text if "." in text else text + ".0"


def money_bag(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"shopMoney": {"amount": decimal_text(amount), "currencyCode": currency},
            "presentmentMoney": {"amount": decimal_text(amount), "currencyCode": currency}}


def total(items: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(i["originalUnitPriceSet"]["shopMoney"]["amount"]) * i["quantity"] for i in items),
               Decimal(0))


def public(order: dict[str, Any]) -> dict[str, Any]:
    """An order as a query for every field would show it (with customer data approval)."""
    out = {k: copy.deepcopy(v) for k, v in order.items() if not k.startswith("_")}
    out["lineItems"] = {"nodes": out["lineItems"]}
    return out


def rest_money(amount: str, currency: str) -> dict[str, Any]:
    text = f"{Decimal(amount):.2f}"
    return {"shop_money": {"amount": text, "currency_code": currency},
            "presentment_money": {"amount": text, "currency_code": currency}}


def rest_order(o: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """REST shape of a stored order: numeric ids, shop-zone timestamps, 2-decimal money strings."""
    def at(value: str | None) -> str | None:
        return parse_time(value).astimezone(tz).isoformat(timespec="seconds") if value else None

    total_money = o["totalPriceSet"]["shopMoney"]
    currency = total_money["currencyCode"]
    number = int(re.sub(r"\D", "", o["name"]) or 0)
    items = [{
        "id": int(li["id"].rsplit("/", 1)[1]), "admin_graphql_api_id": li["id"], "name": li["name"],
        "title": li["title"], "sku": li["sku"], "quantity": li["quantity"],
        "price": f"{Decimal(li['originalUnitPriceSet']['shopMoney']['amount']):.2f}",
        "price_set": rest_money(li["originalUnitPriceSet"]["shopMoney"]["amount"], currency),
    } for li in o["lineItems"]]
    fulfillment = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial"}.get(o["displayFulfillmentStatus"])
    body: dict[str, Any] = {
        "id": order_number(o), "admin_graphql_api_id": o["id"], "name": o["name"],
        "order_number": number, "number": number - 1000,
        "created_at": at(o["createdAt"]), "updated_at": at(o["updatedAt"]), "processed_at": at(o["processedAt"]),
        "cancelled_at": at(o["cancelledAt"]), "cancel_reason": (o["cancelReason"] or "").lower() or None,
        "currency": currency, "presentment_currency": currency,
        "financial_status": o["displayFinancialStatus"].lower(), "fulfillment_status": fulfillment,
        "total_price": f"{Decimal(total_money['amount']):.2f}",
        "subtotal_price": f"{Decimal(total_money['amount']):.2f}",
        "total_tax": "0.00", "total_price_set": rest_money(total_money["amount"], currency),
        "test": o["test"], "line_items": items,
    }
    customer = o.get("customer")
    if customer and not o.get("_protected"):  # redacted without protected-customer-data approval
        body["customer"] = {"id": int(customer["id"].rsplit("/", 1)[1]), "admin_graphql_api_id": customer["id"],
                            "first_name": customer["firstName"], "last_name": customer["lastName"],
                            "email": customer["email"]}
    return body
