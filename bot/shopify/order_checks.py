"""Two order queries of the Admin GraphQL API for alerts: one order's risk, and the orders left unfulfilled.

`fetch_order_risk(gql, gid)` reads `order(id) { … risk { recommendation assessments { riskLevel
facts { description sentiment } } } }` (OrderRiskSummary, current versions; `Order.risks` is
gone) and returns an `OrderRisk`, None for an unknown order. `fetch_unfulfilled(gql, created_from,
created_to)` pages through `orders(query: "fulfillment_status:unfulfilled status:open created_at:…")`.
Both check the answer's shape: a malformed one raises `ShopifyBadAnswer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator

from bot.shopify.graphql import ShopifyGraphQL
from bot.shopify.shapes import bad_answer

__all__ = ["ORDER_RISK_QUERY", "OrderRisk", "UNFULFILLED_QUERY", "fetch_order_risk", "fetch_unfulfilled",
           "unfulfilled_search"]

# OrderRiskRecommendationResult and RiskAssessmentResult, strongest first.
RECOMMENDATIONS = ("CANCEL", "INVESTIGATE", "ACCEPT", "NONE")
RISK_LEVELS = ("HIGH", "MEDIUM", "LOW", "NONE", "PENDING")
FACTS = 20

ORDER_BASICS = "id name createdAt cancelledAt test totalPriceSet { shopMoney { amount currencyCode } }"

ORDER_RISK_QUERY = """\
query OrderRisk($id: ID!) {
  order(id: $id) {
    %s
    risk { recommendation assessments { riskLevel facts { description sentiment } } }
  }
}
""" % ORDER_BASICS

UNFULFILLED_QUERY = """\
query Unfulfilled($first: Int!, $after: String, $query: String!) {
  orders(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    nodes { %s displayFulfillmentStatus }
    pageInfo { hasNextPage endCursor }
  }
}
""" % ORDER_BASICS
UNFULFILLED_NODE_COST = 3


@dataclass(frozen=True)
class OrderRisk:
    order: dict[str, Any]  # the ORDER_BASICS fields
    recommendation: str  # one of RECOMMENDATIONS
    levels: tuple[str, ...]  # each assessment's riskLevel
    facts: tuple[str, ...] = field(default=())  # descriptions of the facts that raise the risk (NEGATIVE)

    @property
    def level(self) -> str:
        """The highest assessed level ("NONE" without assessments)."""
        return next((level for level in RISK_LEVELS if level in self.levels), "NONE")

    @property
    def pending(self) -> bool:
        """No assessment has a result yet (Shopify's own one comes a little after the order)."""
        return bool(self.levels) and all(level == "PENDING" for level in self.levels)


def fetch_order_risk(gql: ShopifyGraphQL, gid: str) -> OrderRisk | None:
    """The order `gid` with its risk summary; None when Shopify does not know the order."""
    data = gql.query(ORDER_RISK_QUERY, {"id": gid})
    order = data.get("order") if isinstance(data, dict) else None
    if order is None:
        return None
    where = "data.order"
    if not isinstance(order, dict) or not isinstance(order.get("id"), str):
        raise bad_answer(gql.shop, where, "not an order")
    risk = order.get("risk")
    if not isinstance(risk, dict):
        raise bad_answer(gql.shop, f"{where}.risk", "not an object")
    recommendation = risk.get("recommendation")
    if recommendation not in RECOMMENDATIONS:
        raise bad_answer(gql.shop, f"{where}.risk.recommendation", f"unknown value {str(recommendation)[:40]!r}")
    assessments = risk.get("assessments")
    if not isinstance(assessments, list):
        raise bad_answer(gql.shop, f"{where}.risk.assessments", "not a list")
    levels, facts = [], []
    for index, assessment in enumerate(assessments):
        level = assessment.get("riskLevel") if isinstance(assessment, dict) else None
        if not isinstance(level, str):
            raise bad_answer(gql.shop, f"{where}.risk.assessments[{index}].riskLevel", "missing")
        levels.append(level)
        for fact in assessment.get("facts") or []:
            if isinstance(fact, dict) and fact.get("sentiment") == "NEGATIVE" and isinstance(fact.get("description"), str):
                facts.append(" ".join(fact["description"].split()))
    basics = {key: value for key, value in order.items() if key != "risk"}
    return OrderRisk(basics, recommendation, tuple(levels), tuple(dict.fromkeys(facts))[:FACTS])


def unfulfilled_search(created_from: datetime, created_to: datetime) -> str:
    """Open, unfulfilled orders created in [created_from, created_to] (Shopify search syntax)."""
    return (f"fulfillment_status:unfulfilled status:open created_at:>='{_iso(created_from)}' "
            f"created_at:<='{_iso(created_to)}'")


def fetch_unfulfilled(gql: ShopifyGraphQL, *, created_from: datetime, created_to: datetime) -> Iterator[dict]:
    """Unfulfilled open orders created in the window, oldest first, each checked for its shape."""
    nodes = gql.nodes(UNFULFILLED_QUERY, {"query": unfulfilled_search(created_from, created_to)}, ["orders"],
                      node_cost=UNFULFILLED_NODE_COST)
    for index, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("id"), str) or not isinstance(node.get("createdAt"), str):
            raise bad_answer(gql.shop, f"data.orders.nodes[{index}]", "not an order with id and createdAt")
        yield node


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is needed")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
