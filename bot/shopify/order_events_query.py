"""Cancellations and refunds the Admin GraphQL API can list: orders updated in a window.

A cancellation or a refund updates its order, so `orders(query: "updated_at:>='…'")` with
`cancelledAt` and `refunds { id createdAt totalRefundedSet }` finds every one that happened since
a moment (the reconciliation's cursor; bot.webhooks.reconcile). Nodes that are not objects with an
order gid are skipped with a warning rather than stopping the others.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Iterator

from bot.shopify.cost import CONNECTION_COST
from bot.shopify.graphql import ShopifyGraphQL

log = logging.getLogger(__name__)

LINE_ITEMS = 5
REFUNDS_PER_ORDER = 10  # an order rarely has more; more are not listed (their webhook is the path)
ORDER_EVENTS_QUERY = """\
query OrderEvents($first: Int!, $after: String, $query: String!, $lineItems: Int!, $refunds: Int!) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    nodes {
      id name createdAt updatedAt cancelledAt cancelReason test
      totalPriceSet { shopMoney { amount currencyCode } }
      lineItems(first: $lineItems) { nodes { name sku quantity } }
      refunds(first: $refunds) { id createdAt totalRefundedSet { shopMoney { amount currencyCode } } }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def order_events_cost() -> int:
    """order 1 + totalPriceSet 2 + lineItems (2 + N) + refunds N × (1 + totalRefundedSet 2)."""
    return 3 + CONNECTION_COST + LINE_ITEMS + REFUNDS_PER_ORDER * 3


def fetch_order_events(gql: ShopifyGraphQL, *, updated_from: datetime) -> Iterator[dict]:
    """Orders updated since `updated_from` (aware), oldest change first, with cancellation and refunds."""
    if updated_from.tzinfo is None:
        raise ValueError("updated_from must carry a time zone")
    search = f"updated_at:>='{updated_from.isoformat(timespec='seconds')}'"
    nodes = gql.nodes(ORDER_EVENTS_QUERY, {"query": search, "lineItems": LINE_ITEMS, "refunds": REFUNDS_PER_ORDER},
                      ["orders"], node_cost=order_events_cost())
    for index, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            log.warning("%s: data.orders.nodes[%d] is not an order: skipped", gql.shop, index)
            continue
        refunds = node.get("refunds")
        node["refunds"] = [refund for refund in refunds if isinstance(refund, dict)] if isinstance(refunds, list) else []
        yield node
