"""The shapes of Shopify Admin GraphQL answers, checked at the client before anything is made of them.

An answer that is not what the schema promises — `{"data":{"orders":{"nodes":"x"}}}`, a node
without its fields, a total without an amount — is a fault (a proxy in between, a change at
Shopify, a version that fell forward), never "no orders": taken at face value it becomes a
digest saying "새 주문이 없습니다" or a revenue left blank. Such an answer raises
`ShopifyBadAnswer`, naming where in the answer it went wrong; the job fails and sends nothing.

Fields the schema makes nullable (`cancelledAt`, `displayFinancialStatus`, a line item's `sku`,
`customer` and its `displayName`, which protected customer data leaves null) may be null;
every selected field must be present.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Sequence

from bot.shopify.errors import ShopifyError
from bot.shopify.orders import ORDER_GID
from bot.util.times import parse_instant

__all__ = ["ConnectionPage", "ShopifyBadAnswer", "check_order", "connection_page"]

_CURRENCY = re.compile(r"[A-Z]{3}")


class ShopifyBadAnswer(ShopifyError):
    """A GraphQL answer whose shape is not the schema's; asking again rarely helps."""


class ConnectionPage:
    """One page of a connection: its nodes and where the next page starts (None: the last page)."""

    def __init__(self, nodes: list[dict], next_cursor: str | None, has_next: bool):
        self.nodes, self.next_cursor, self.has_next = nodes, next_cursor, has_next


def bad_answer(shop: str, where: str, what: str) -> ShopifyBadAnswer:
    return ShopifyBadAnswer(
        f"{shop}: Shopify's answer does not match the Admin API schema ({where} {what}), so none of it was used: "
        "check that [shopify].api_version is a supported version and run again; report it if it persists",
        shop=shop)


def connection_page(data: dict, path: Sequence[str], shop: str) -> ConnectionPage:
    """The connection at `path` in `data`, checked: `nodes` a list of objects, `pageInfo` with a
    boolean `hasNextPage` and, when it is true, an `endCursor`."""
    where, value = "data", data
    for key in path:
        value = _field(value, key, where, shop)
        where = f"{where}.{key}"
    connection = _object(value, where, shop)
    nodes = _field(connection, "nodes", where, shop)
    if not isinstance(nodes, list):
        raise bad_answer(shop, f"{where}.nodes", f"is {_kind(nodes)}, not a list")
    for index, node in enumerate(nodes):
        _object(node, f"{where}.nodes[{index}]", shop)
    info = _object(_field(connection, "pageInfo", where, shop), f"{where}.pageInfo", shop)
    has_next = _field(info, "hasNextPage", f"{where}.pageInfo", shop)
    if not isinstance(has_next, bool):
        raise bad_answer(shop, f"{where}.pageInfo.hasNextPage", f"is {_kind(has_next)}, not true or false")
    cursor = info.get("endCursor")
    if has_next and (not isinstance(cursor, str) or not cursor):
        raise bad_answer(shop, f"{where}.pageInfo.endCursor", f"is {_kind(cursor)} while hasNextPage is true")
    return ConnectionPage(nodes, cursor if has_next else None, has_next)


def check_order(node: dict, where: str, shop: str, *, with_customer: bool = False) -> dict:
    """An order node as `bot.shopify.orders_query.ORDER_FIELDS` selects it, checked; returned as is."""
    order_id = _field(node, "id", where, shop)
    if not isinstance(order_id, str) or not order_id.startswith(ORDER_GID):
        raise bad_answer(shop, f"{where}.id", f"is {_kind(order_id)}, not an order id ({ORDER_GID}…)")
    _text(node, "name", where, shop)
    _instant(node, "createdAt", where, shop, nullable=False)
    _instant(node, "cancelledAt", where, shop, nullable=True)
    _text(node, "displayFinancialStatus", where, shop, nullable=True)
    _text(node, "displayFulfillmentStatus", where, shop)
    price = _object(_field(node, "totalPriceSet", where, shop), f"{where}.totalPriceSet", shop)
    money_at = f"{where}.totalPriceSet.shopMoney"
    money = _object(_field(price, "shopMoney", f"{where}.totalPriceSet", shop), money_at, shop)
    _amount(money, money_at, shop)
    currency = _field(money, "currencyCode", money_at, shop)
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise bad_answer(shop, f"{money_at}.currencyCode", f"is {_kind(currency)}, not a currency code")
    _line_items(node, where, shop)
    if with_customer:
        customer = _field(node, "customer", where, shop)
        if customer is not None:
            _text(_object(customer, f"{where}.customer", shop), "displayName", f"{where}.customer", shop,
                  nullable=True)
    return node


def _line_items(node: dict, where: str, shop: str) -> None:
    at = f"{where}.lineItems"
    items = _field(_object(_field(node, "lineItems", where, shop), at, shop), "nodes", at, shop)
    if not isinstance(items, list):
        raise bad_answer(shop, f"{at}.nodes", f"is {_kind(items)}, not a list")
    for index, item in enumerate(items):
        item_at = f"{at}.nodes[{index}]"
        _object(item, item_at, shop)
        _text(item, "name", item_at, shop)
        _text(item, "sku", item_at, shop, nullable=True)
        quantity = _field(item, "quantity", item_at, shop)
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise bad_answer(shop, f"{item_at}.quantity", f"is {_kind(quantity)}, not an integer")


def _amount(money: dict, where: str, shop: str) -> None:
    amount = _field(money, "amount", where, shop)
    try:
        # The Decimal scalar travels as a string; a number is read too, a boolean never.
        value = Decimal(amount) if isinstance(amount, str) else (
            Decimal(str(amount)) if isinstance(amount, (int, float)) and not isinstance(amount, bool) else None)
    except (InvalidOperation, ValueError):
        value = None
    if value is None or not value.is_finite():
        raise bad_answer(shop, f"{where}.amount", f"is {_kind(amount)}, not an amount of money")


def _field(value: Any, key: str, where: str, shop: str) -> Any:
    if not isinstance(value, dict):
        raise bad_answer(shop, where, f"is {_kind(value)}, not an object")
    if key not in value:
        raise bad_answer(shop, f"{where}.{key}", "is missing")
    return value[key]


def _object(value: Any, where: str, shop: str) -> dict:
    if not isinstance(value, dict):
        raise bad_answer(shop, where, f"is {_kind(value)}, not an object")
    return value


def _text(node: dict, key: str, where: str, shop: str, *, nullable: bool = False) -> None:
    value = _field(node, key, where, shop)
    if not isinstance(value, str) and not (nullable and value is None):
        raise bad_answer(shop, f"{where}.{key}", f"is {_kind(value)}, not a string")


def _instant(node: dict, key: str, where: str, shop: str, *, nullable: bool) -> None:
    value = _field(node, key, where, shop)
    if (value is None and not nullable) or (value is not None and parse_instant(value) is None):
        raise bad_answer(shop, f"{where}.{key}", f"is {_kind(value)}, not a date-time with a zone")


def _kind(value: Any) -> str:
    """What a value is, for a message: its JSON kind (and a number's value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    if isinstance(value, str):
        return "a string"  # never its text: it may be anybody's personal data
    return f"the number {value!r}" if isinstance(value, (int, float)) else f"a {type(value).__name__}"
