"""The orders query of the Admin GraphQL API: a creation window, oldest first, every node checked.

`fetch_orders` pages through `orders(query: "created_at:>='…' AND created_at:<'…'")` with
`bot.shopify.graphql.ShopifyGraphQL.nodes` and hands out each node only after
`bot.shopify.shapes.check_order` found it shaped as ORDER_FIELDS selects: a malformed answer
raises `ShopifyBadAnswer` while iterating, before the caller has made anything of it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Iterable, Iterator

from bot.shopify.cost import CONNECTION_COST, MAX_PAGE_SIZE
from bot.shopify.graphql import ShopifyGraphQL
from bot.shopify.shapes import check_order

log = logging.getLogger(__name__)

__all__ = ["ORDER_FIELDS", "ORDERS_QUERY", "fetch_orders", "order_node_cost", "orders_search"]

ORDERS_VISIBLE_DAYS = 60  # `read_orders` sees the last 60 days only

ORDER_FIELDS = ("id name createdAt cancelledAt displayFinancialStatus displayFulfillmentStatus "
                "totalPriceSet { shopMoney { amount currencyCode } } "
                "lineItems(first: $lineItems) { nodes { name sku quantity } }")
CUSTOMER_FIELDS = "customer { displayName }"

ORDERS_QUERY = """\
query Orders($first: Int!, $after: String, $query: String!, $lineItems: Int!) {
  orders(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    nodes { %s }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def order_node_cost(line_items: int, with_customer: bool) -> int:
    """order 1 + totalPriceSet 1 + shopMoney 1 + lineItems (2 + N) [+ customer 1]."""
    return 3 + CONNECTION_COST + line_items + (1 if with_customer else 0)


def fetch_orders(gql: ShopifyGraphQL, *, created_from: datetime, created_to: datetime | None = None,
                 line_items: int = 10, with_customer: bool = False) -> Iterator[dict]:
    """Orders created in [created_from, created_to), oldest first, each as ORDER_FIELDS selects."""
    if not 1 <= line_items <= MAX_PAGE_SIZE:
        raise ValueError(f"line_items must be 1..{MAX_PAGE_SIZE}, got {line_items}")
    created_from = _visible_from(_aware(created_from, "created_from"))
    search = orders_search(created_from, _aware(created_to, "created_to") if created_to else None)
    fields = ORDER_FIELDS + (" " + CUSTOMER_FIELDS if with_customer else "")
    nodes = gql.nodes(ORDERS_QUERY % fields, {"query": search, "lineItems": line_items}, ["orders"],
                      node_cost=order_node_cost(line_items, with_customer))
    return _checked(nodes, gql.shop, with_customer)


def _checked(nodes: Iterable[dict], shop: str, with_customer: bool) -> Iterator[dict]:
    for index, node in enumerate(nodes):  # counted across pages
        yield check_order(node, f"data.orders.nodes[{index}]", shop, with_customer=with_customer)


def orders_search(created_from: datetime, created_to: datetime | None = None) -> str:
    """Shopify search syntax for a creation window: `created_at:>='…' AND created_at:<'…'`."""
    search = f"created_at:>='{_iso(created_from)}'"
    return search + (f" AND created_at:<'{_iso(created_to)}'" if created_to else "")


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must carry a time zone, got {moment.isoformat()}")
    return moment


def _visible_from(created_from: datetime, now: datetime | None = None) -> datetime:
    """`read_orders` sees the last 60 days: an older start is clamped (and logged)."""
    oldest = (now or datetime.now(timezone.utc)) - timedelta(days=ORDERS_VISIBLE_DAYS)
    if created_from >= oldest:
        return created_from
    clamped = oldest.astimezone(created_from.tzinfo)
    log.warning("orders before %s are beyond read_orders' %d days; fetching from %s instead",
                _iso(created_from), ORDERS_VISIBLE_DAYS, _iso(clamped))
    return clamped


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
