"""The inventory query of the Admin GraphQL API: one inventory item, its variant and its stock.

`fetch_inventory_item(gql, gid)` asks for

    inventoryItem(id) { id sku tracked
      variant { id displayName sku product { title } }
      inventoryLevels(first: N) { nodes { location { id name } quantities(names: ["available"]) { name quantity } } } }

(`InventoryLevel.available` is gone from current versions: quantities are read by name) and
returns an `InventoryItem` with the `available` quantity summed over the item's locations.
An answer that is not shaped so raises `ShopifyBadAnswer`; an unknown item is None. Needs the
`read_inventory` scope (and `read_products` for the variant's names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.shopify.graphql import ShopifyGraphQL
from bot.shopify.shapes import bad_answer

__all__ = ["INVENTORY_ITEM_GID", "INVENTORY_ITEM_QUERY", "InventoryItem", "fetch_inventory_item",
           "inventory_item_gid"]

INVENTORY_ITEM_GID = "gid://shopify/InventoryItem/"
LOCATIONS = 50  # locations read per item (a shop rarely has more; Shopify's own cap is far above)

INVENTORY_ITEM_QUERY = """\
query InventoryItem($id: ID!, $locations: Int!) {
  inventoryItem(id: $id) {
    id sku tracked
    variant { id displayName sku product { title } }
    inventoryLevels(first: $locations) {
      nodes { location { id name } quantities(names: ["available"]) { name quantity } }
    }
  }
}
"""


@dataclass(frozen=True)
class InventoryItem:
    gid: str
    sku: str
    variant_gid: str | None
    variant_name: str  # "티셔츠 - 블랙 / M" (Shopify's displayName: product title and variant title)
    product_title: str
    tracked: bool
    available: int  # summed over `locations`
    locations: int


def inventory_item_gid(value: Any) -> str | None:
    """`gid://shopify/InventoryItem/123` from a webhook's numeric `inventory_item_id` (or a gid)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return f"{INVENTORY_ITEM_GID}{value}"
    if isinstance(value, str):
        if value.isdigit() and int(value) > 0:
            return f"{INVENTORY_ITEM_GID}{value}"
        if value.startswith(INVENTORY_ITEM_GID) and value[len(INVENTORY_ITEM_GID):].isdigit():
            return value
    return None


def fetch_inventory_item(gql: ShopifyGraphQL, gid: str) -> InventoryItem | None:
    """The item `gid` with its stock over all its locations; None when Shopify does not know it."""
    data = gql.query(INVENTORY_ITEM_QUERY, {"id": gid, "locations": LOCATIONS})
    item = data.get("inventoryItem") if isinstance(data, dict) else None
    if item is None:
        return None
    where = "data.inventoryItem"
    if not isinstance(item, dict):
        raise bad_answer(gql.shop, where, "not an object")
    variant = item.get("variant") if isinstance(item.get("variant"), dict) else {}
    product = variant.get("product") if isinstance(variant.get("product"), dict) else {}
    levels = item.get("inventoryLevels")
    nodes = levels.get("nodes") if isinstance(levels, dict) else None
    if not isinstance(nodes, list):
        raise bad_answer(gql.shop, f"{where}.inventoryLevels.nodes", "not a list")
    total = 0
    for index, level in enumerate(nodes):
        quantities = level.get("quantities") if isinstance(level, dict) else None
        if not isinstance(quantities, list):
            raise bad_answer(gql.shop, f"{where}.inventoryLevels.nodes[{index}].quantities", "not a list")
        for quantity in quantities:
            value = quantity.get("quantity") if isinstance(quantity, dict) else None
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad_answer(gql.shop, f"{where}.inventoryLevels.nodes[{index}].quantities", "not a number")
            if quantity.get("name") == "available":
                total += value
    sku = _text(variant.get("sku")) or _text(item.get("sku"))
    title = _text(product.get("title"))
    return InventoryItem(gid=_text(item.get("id")) or gid, sku=sku, variant_gid=_text(variant.get("id")) or None,
                         variant_name=_text(variant.get("displayName")) or title or sku,
                         product_title=title, tracked=item.get("tracked") is not False,
                         available=total, locations=len(nodes))


def _text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""
