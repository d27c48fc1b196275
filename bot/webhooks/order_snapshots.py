"""Order snapshots: what an orders/updated webhook is compared with, and how it is stored.

A snapshot keeps only what a change alert is about — a digest of the shipping address and the
line items' (sku, quantity) multiset — never the address or the customer themselves. It is
stored per (shop, order) with the order's `updated_at` and the event time it came from, so an
older event (Shopify does not deliver in order) neither alerts nor overwrites a newer snapshot.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, false, or_, select, true, update

from bot.app import App
from bot.store.db import insert_for
from bot.store.models import OrderSnapshot

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

# Shipping address fields whose change is worth an alert; the snapshot keeps only their digest.
ADDRESS_FIELDS = ("first_name", "last_name", "name", "company", "address1", "address2", "city", "province",
                  "province_code", "zip", "country", "country_code", "phone")


def order_snapshot(order: dict[str, Any]) -> dict[str, Any]:
    """What a change alert compares: the shipping address's digest and the (sku, quantity) multiset."""
    address = order.get("shipping_address")
    digest = None
    if isinstance(address, dict) and any(address.get(key) not in (None, "") for key in ADDRESS_FIELDS):
        canonical = {key: " ".join(str(address.get(key) or "").split()) for key in ADDRESS_FIELDS}
        digest = hashlib.sha256(json.dumps(canonical, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    items: dict[str, int] = {}
    for item in order.get("line_items") or []:
        if not isinstance(item, dict):
            continue
        quantity = item.get("current_quantity", item.get("quantity"))
        try:
            quantity = int(quantity) if not isinstance(quantity, bool) else 0
        except (TypeError, ValueError):
            quantity = 0
        if quantity <= 0:
            continue  # removed by an order edit
        key = _item_key(item)
        items[key] = items.get(key, 0) + quantity
    return {"v": 1, "address": digest, "items": sorted([key, qty] for key, qty in items.items())}


def snapshot_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The parts that differ: "shipping_address", "line_items" (in that order), or none."""
    changes = []
    if old.get("address") != new.get("address"):
        changes.append("shipping_address")
    if [list(pair) for pair in old.get("items") or []] != [list(pair) for pair in new.get("items") or []]:
        changes.append("line_items")
    return changes


def _item_key(item: dict[str, Any]) -> str:
    sku = item.get("sku")
    if isinstance(sku, str) and sku.strip():
        return f"sku:{sku.strip()}"
    for key in ("variant_id", "product_id"):
        if item.get(key) not in (None, ""):
            return f"{key.split('_')[0]}:{item[key]}"
    return f"name:{' '.join(str(item.get('name') or item.get('title') or '').split())}"


# -- stored snapshots --------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredSnapshot:
    updated_at: datetime | None  # the order's updated_at when the snapshot was taken
    last_event_at: datetime | None  # X-Shopify-Triggered-At of the event it came from
    snapshot: dict[str, Any]


def read_snapshot(app: App, shop: str, gid: str) -> StoredSnapshot | None:
    """The stored snapshot of an order, or None if there is none yet."""
    with app.db.session() as session:
        row = session.execute(select(OrderSnapshot).where(OrderSnapshot.shop == shop,
                                                          OrderSnapshot.order_id == gid)).scalar_one_or_none()
        return StoredSnapshot(row.updated_at, row.last_event_at, json.loads(row.snapshot_json)) if row else None


def write_snapshot(app: App, shop: str, gid: str, snapshot: dict[str, Any], updated_at: datetime | None,
                   event_at: datetime | None) -> bool:
    """Insert, or replace unless the stored one is newer; True if written."""
    values = dict(updated_at=updated_at, last_event_at=event_at,
                  snapshot_json=json.dumps(snapshot, ensure_ascii=False, sort_keys=True))
    with app.db.write_session() as session:
        inserted = session.execute(
            insert_for(session.bind.dialect.name, OrderSnapshot).values(shop=shop, order_id=gid, created_at=app.clock(), **values)
            .on_conflict_do_nothing(index_elements=["shop", "order_id"]).returning(OrderSnapshot.id)
        ).scalar_one_or_none()
        if inserted is not None:
            return True
        return bool(session.execute(
            update(OrderSnapshot)
            .where(OrderSnapshot.shop == shop, OrderSnapshot.order_id == gid, _not_older(updated_at, event_at))
            .values(**values).execution_options(synchronize_session=False)).rowcount)


def is_stale(snap_updated: datetime | None, snap_event: datetime | None, updated: datetime | None,
             event_at: datetime | None) -> bool:
    """True if the event is older than the snapshot: by the order's updated_at, then the event time."""
    if updated is not None and snap_updated is not None and updated != snap_updated:
        return updated < snap_updated
    return event_at is not None and snap_event is not None and event_at < snap_event


def _not_older(updated: datetime | None, event_at: datetime | None) -> "ColumnElement[bool]":
    """SQL: the stored snapshot is not newer than (updated, event_at) — the mirror of `is_stale`."""
    stored = OrderSnapshot
    newer_source = (or_(stored.updated_at.is_(None), stored.updated_at < updated) if updated is not None
                    else false())
    same_source = (or_(stored.updated_at.is_(None), stored.updated_at == updated) if updated is not None
                   else true())
    event_ok = (or_(stored.last_event_at.is_(None), stored.last_event_at <= event_at) if event_at is not None
                else true())
    return or_(newer_source, and_(same_source, event_ok))
