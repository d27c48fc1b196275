"""Order helpers: an order's GraphQL id, whichever shape (webhook body, GraphQL node) it came in."""

from __future__ import annotations

from typing import Any

ORDER_GID = "gid://shopify/Order/"


def order_gid(order: dict[str, Any]) -> str | None:
    """The order's GraphQL id, from a webhook body (`admin_graphql_api_id` / numeric `id`) or a node."""
    gid = order.get("admin_graphql_api_id")
    if isinstance(gid, str) and gid.startswith(ORDER_GID):
        return gid
    raw = order.get("id")
    if isinstance(raw, str) and raw.startswith(ORDER_GID):
        return raw
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()):
        return f"{ORDER_GID}{raw}"
    return None
