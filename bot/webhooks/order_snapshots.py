"""Order snapshots: what an orders/updated webhook is compared with, and how it is stored.

A snapshot keeps only what a change alert is about — a digest of the shipping address and the
line items' (sku, quantity) multiset — never the address or the customer themselves. It is
stored per (shop, order) with the order's `updated_at` and the event time it came from, so an
older event (Shopify does not deliver in order) neither alerts nor overwrites a newer snapshot.
The worker reads and writes the snapshots of a whole batch of events at once (`read_snapshots`: one
statement; `upsert_snapshots`: one statement run for each row, in one round trip; on the caller's connection).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Iterable

from sqlalchemy import Connection, and_, or_, select

from bot.app import App
from bot.store.db import insert_for
from bot.store.models import OrderSnapshot

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


@dataclass(frozen=True)
class SnapshotWrite:
    """One snapshot to store for (shop, order gid), from an event with these times."""

    shop: str
    gid: str
    snapshot: dict[str, Any]
    updated_at: datetime | None
    event_at: datetime | None


def read_snapshots(connection: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredSnapshot]:
    """The stored snapshots of these (shop, order gid) pairs, in one statement; absent ones are missing."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    table = OrderSnapshot.__table__
    # Two IN lists rather than (shop, order_id) IN (pairs): PostgreSQL plans a list of 100 pairs for
    # longer than it runs it. A pair not asked for (another shop's order of the same id) is dropped.
    rows = connection.execute(
        select(table.c.shop, table.c.order_id, table.c.updated_at, table.c.last_event_at, table.c.snapshot_json)
        .where(table.c.shop.in_(sorted({shop for shop, _ in wanted})),
               table.c.order_id.in_(sorted({gid for _, gid in wanted}))))
    asked = set(wanted)
    return {(row.shop, row.order_id): StoredSnapshot(row.updated_at, row.last_event_at, json.loads(row.snapshot_json))
            for row in rows if (row.shop, row.order_id) in asked}


def upsert_snapshots(connection: Connection, writes: list[SnapshotWrite], now: datetime) -> None:
    """Insert each snapshot, or replace the stored one unless it is newer (`is_stale`'s rule, in SQL):
    one statement, whether the row exists or not, so two writers never lose either's newer state.
    Written in (shop, gid) order, so two workers writing the same orders lock them in the same order
    (no deadlock)."""
    if not writes:
        return
    rows = [dict(shop=w.shop, order_id=w.gid, created_at=now, updated_at=w.updated_at, last_event_at=w.event_at,
                 snapshot_json=json.dumps(w.snapshot, ensure_ascii=False, sort_keys=True))
            for w in sorted(writes, key=lambda write: (write.shop, write.gid))]
    # An executemany of the statement compiled once: psycopg pipelines it (one round trip). A multi-row
    # INSERT built per batch cost more to compile than to run.
    connection.execute(_upsert_statement(connection.dialect.name), rows)


def write_snapshot(app: App, shop: str, gid: str, snapshot: dict[str, Any], updated_at: datetime | None,
                   event_at: datetime | None) -> None:
    """Store one snapshot (see `upsert_snapshots`) in a transaction of its own."""
    with app.db.write_session() as session:
        upsert_snapshots(session.connection(), [SnapshotWrite(shop, gid, snapshot, updated_at, event_at)], app.clock())


def is_stale(snap_updated: datetime | None, snap_event: datetime | None, updated: datetime | None,
             event_at: datetime | None) -> bool:
    """True if the event is older than the snapshot: by the order's updated_at, then the event time."""
    if updated is not None and snap_updated is not None and updated != snap_updated:
        return updated < snap_updated
    return event_at is not None and snap_event is not None and event_at < snap_event


@lru_cache(maxsize=None)
def _upsert_statement(dialect_name: str):  # noqa: ANN202 — built once per dialect: the worker's hot path
    statement = insert_for(dialect_name, OrderSnapshot.__table__)
    new, stored = statement.excluded, OrderSnapshot.__table__.c
    # The mirror of `is_stale`: the stored snapshot is replaced only if it is not newer than the new one.
    newer_source = and_(new.updated_at.is_not(None),
                        or_(stored.updated_at.is_(None), stored.updated_at < new.updated_at))
    same_source = or_(new.updated_at.is_(None), stored.updated_at.is_(None), stored.updated_at == new.updated_at)
    event_ok = or_(new.last_event_at.is_(None), stored.last_event_at.is_(None),
                   stored.last_event_at <= new.last_event_at)
    return statement.on_conflict_do_update(
        index_elements=["shop", "order_id"], where=or_(newer_source, and_(same_source, event_ok)),
        set_={"updated_at": new.updated_at, "last_event_at": new.last_event_at, "snapshot_json": new.snapshot_json})
