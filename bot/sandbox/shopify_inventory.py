"""The Shopify stand-in's inventory and order-risk pieces: what the stock and risk alerts query.

Inventory items (`inventoryItem(id)` with `variant { … product { title } }` and
`inventoryLevels(first) { nodes { location { id name } quantities(names) { name quantity } } }`,
needing `read_inventory`), the `order(id)` root field with the order's `risk` summary
(OrderRiskSummary: `recommendation`, `assessments { riskLevel facts { description sentiment } }`),
and the REST-shaped `inventory_levels/update` webhook body. The root fields join the GraphQL
stand-in's (bot.sandbox.shopify_graphql.ROOTS) when this module is imported (by bot.sandbox.shopify).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from bot.sandbox.shopify_graphql import ROOTS, Context, Field, project

NO_RISK = {"recommendation": "NONE", "assessments": []}


@dataclass
class Inventory:
    """One shop's inventory items by gid, and its locations."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    locations: dict[str, str] = field(default_factory=dict)  # gid → name

    def add_item(self, item_id: int, variant_id: int, *, sku: str, product: str, variant: str = "",
                 levels: dict[int, int] | None = None, tracked: bool = True) -> dict[str, Any]:
        """An item of a variant with `levels` {location id: available} (location 1 "기본 창고" if none given)."""
        gid = f"gid://shopify/InventoryItem/{item_id}"
        display = f"{product} - {variant}" if variant else product
        self.items[gid] = {
            "id": gid, "sku": sku, "tracked": tracked, "levels": {},
            "variant": {"id": f"gid://shopify/ProductVariant/{variant_id}", "displayName": display, "sku": sku,
                        "product": {"title": product}},
        }
        for location, available in (levels or {1: 0}).items():
            self.set_available(item_id, location, available, datetime(2026, 1, 1, tzinfo=timezone.utc))
        return self.items[gid]

    def set_available(self, item_id: int, location_id: int, available: int, at: datetime) -> dict[str, Any]:
        """Change one level; returns the `inventory_levels/update` body Shopify would send."""
        gid = f"gid://shopify/InventoryItem/{item_id}"
        location = f"gid://shopify/Location/{location_id}"
        self.locations.setdefault(location, "기본 창고" if location_id == 1 else f"창고 {location_id}")
        self.items[gid]["levels"][location] = available
        return inventory_level_body(item_id, location_id, available, at)

    def view(self, gid: str) -> dict[str, Any] | None:
        """The item as the GraphQL InventoryItem object."""
        item = self.items.get(gid)
        if item is None:
            return None
        nodes = [{"location": {"id": location, "name": self.locations[location]},
                  "quantities": [{"name": "available", "quantity": available}]}
                 for location, available in item["levels"].items()]
        return {**{k: v for k, v in item.items() if k != "levels"}, "inventoryLevels": nodes}


def inventory_level_body(item_id: int, location_id: int, available: int | None, at: datetime) -> dict[str, Any]:
    """The REST-shaped `inventory_levels/update` body."""
    return {
        "inventory_item_id": item_id, "location_id": location_id, "available": available,
        "updated_at": at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
        "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={item_id}",
    }


def risk_summary(recommendation: str, levels: list[str], facts: list[tuple[str, str]] = ()) -> dict[str, Any]:
    """An OrderRiskSummary: `facts` (description, sentiment) go with the first assessment."""
    assessments = [{"riskLevel": level, "provider": None, "facts": []} for level in levels]
    if assessments:
        assessments[0]["facts"] = [{"description": d, "sentiment": s} for d, s in facts]
    return {"recommendation": recommendation, "assessments": assessments}


def _denied(f: Field, scope: str, errors: list[dict[str, Any]]) -> None:
    errors.append({"message": f"Access denied for {f.name} field. Required access: `{scope}` access scope.",
                   "path": [f.key], "extensions": {"code": "ACCESS_DENIED",
                                                   "requiredAccess": f"`{scope}` access scope."}})


def _inventory_item(f: Field, ctx: Context, errors: list[dict[str, Any]], _search: list[Any]) -> Any:
    if not ctx.scopes & {"read_inventory", "write_inventory"}:
        _denied(f, "read_inventory", errors)
        return None
    inventory: Inventory | None = ctx.extra.get("inventory")
    item = inventory.view(str(f.args.get("id"))) if inventory else None
    return None if item is None else project(f.children or [], item, [f.key], errors, ctx)


def _order(f: Field, ctx: Context, errors: list[dict[str, Any]], _search: list[Any]) -> Any:
    if not ctx.scopes & {"read_orders", "write_orders"}:
        _denied(f, "read_orders", errors)
        return None
    order = next((o for o in ctx.orders if o["id"] == f.args.get("id")), None)
    if order is None:
        return None
    view = {**order, "lineItems": {"nodes": order["lineItems"]}, "risk": order.get("_risk") or NO_RISK}
    return project(f.children or [], view, [f.key], errors, ctx)


INVENTORY_ROOTS: dict[str, Callable[..., Any]] = {"inventoryItem": _inventory_item, "order": _order}
ROOTS["query"].update(INVENTORY_ROOTS)
