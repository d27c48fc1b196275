"""Shopify GraphQL query cost: the cost bucket as last reported, and page sizes under the 1,000-point limit.

Used by `bot.shopify.graphql.ShopifyGraphQL`: `ThrottleState` says how long to wait before a query
of a given cost; `Pager` sizes the pages of a connection from what each answer says it cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CONNECTION_COST", "FIRST_PAGE_GUESS", "MAX_PAGE_SIZE", "MAX_QUERY_COST", "Pager", "ThrottleState"]

MAX_QUERY_COST = 1000  # Shopify's limit on one query's requested cost
MAX_PAGE_SIZE = 250  # Shopify's limit on `first`
CONNECTION_COST = 2  # a connection costs 2 + first × node cost
FIRST_PAGE_GUESS = 50  # page size while a connection's node cost is still unknown


@dataclass(frozen=True)
class ThrottleState:
    """The cost bucket as last reported, and the `clock()` time it was seen."""

    maximum: float
    available: float
    restore_rate: float
    at: float

    def projected(self, now: float) -> float:
        """What the bucket holds at `now`, had nobody else spent from it."""
        return min(self.maximum, self.available + self.restore_rate * max(0.0, now - self.at))

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until the bucket holds `cost` (at most its maximum); 0 if it already does."""
        deficit = min(cost, self.maximum) - self.projected(now)
        if deficit <= 0 or self.restore_rate <= 0:
            return 0.0
        return deficit / self.restore_rate


class Pager:
    """Chooses page sizes from a connection's node cost."""

    def __init__(self, *, cap: int, node_cost: float | None, guess: int):
        self.cap, self.node_cost = max(1, cap), node_cost
        self.guess = max(1, min(self.cap, guess))  # the first page's size while the node cost is unknown

    def size(self, limit: float) -> int:
        if not self.node_cost or self.node_cost <= 0:
            return self.guess
        return max(1, min(self.cap, math.floor((limit - CONNECTION_COST) / self.node_cost)))

    def expected_cost(self, first: int) -> float | None:
        return CONNECTION_COST + first * self.node_cost if self.node_cost else None

    def learn(self, first: int, requested: float | None) -> None:
        if requested is not None and first > 0 and requested > CONNECTION_COST:
            self.node_cost = (requested - CONNECTION_COST) / first

    def too_expensive(self, first: int, cost: float | None) -> None:
        """MAX_COST_EXCEEDED: halve the page size (and learn the node cost when Shopify told it)."""
        self.cap = self.guess = max(1, first // 2)
        self.learn(first, cost)
