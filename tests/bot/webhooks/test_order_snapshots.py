"""Writing a batch's order snapshots: in key order (two workers never lock the same orders in opposite
orders), and an older snapshot never replaces a newer one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from sqlalchemy import event, select

from bot.app import App
from bot.store.models import OrderSnapshot
from bot.webhooks.order_snapshots import SnapshotWrite, upsert_snapshots

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def app(request: pytest.FixtureRequest, make_app: Callable[..., App]) -> App:
    if request.param == "sqlite":
        return make_app()
    return make_app(db_url=request.getfixturevalue("postgres_url"))


def _write(shop: str, number: int, minutes: int, sku: str) -> SnapshotWrite:
    return SnapshotWrite(shop, f"gid://shopify/Order/{number}", {"v": 1, "address": None, "items": [[sku, 1]]},
                         T0 + timedelta(minutes=minutes), T0 + timedelta(minutes=minutes))


def _stored(app: App) -> dict[str, Any]:
    with app.db.engine.connect() as connection:
        return {f"{row.shop} {row.order_id}": row.snapshot_json
                for row in connection.execute(select(OrderSnapshot.shop, OrderSnapshot.order_id,
                                                     OrderSnapshot.snapshot_json))}


def test_a_batch_is_written_in_shop_and_order_order(app: App) -> None:
    written: list[tuple[str, str]] = []

    def record(_conn, _cursor, statement: str, parameters: Any, _context, executemany: bool) -> None:  # noqa: ANN001
        if statement.startswith("INSERT INTO order_snapshots"):
            rows = parameters if executemany else [parameters]
            written.extend((row[0], row[1]) if isinstance(row, (tuple, list)) else (row["shop"], row["order_id"])
                           for row in rows)

    event.listen(app.db.engine, "before_cursor_execute", record)
    writes = [_write("b.myshopify.com", 1, 0, "x"), _write("a.myshopify.com", 2, 0, "x"),
              _write("a.myshopify.com", 1, 0, "x")]
    with app.db.write_transaction() as connection:
        upsert_snapshots(connection, writes, T0)

    assert written == [("a.myshopify.com", "gid://shopify/Order/1"), ("a.myshopify.com", "gid://shopify/Order/2"),
                       ("b.myshopify.com", "gid://shopify/Order/1")]
    assert len(_stored(app)) == 3


def test_an_older_snapshot_does_not_replace_a_newer_one(app: App) -> None:
    with app.db.write_transaction() as connection:
        upsert_snapshots(connection, [_write("a.myshopify.com", 1, 10, "newer"), _write("a.myshopify.com", 2, 0, "old")],
                         T0)
    with app.db.write_transaction() as connection:
        upsert_snapshots(connection, [_write("a.myshopify.com", 1, 5, "older"), _write("a.myshopify.com", 2, 5, "new")],
                         T0)

    stored = _stored(app)
    assert '"newer"' in stored["a.myshopify.com gid://shopify/Order/1"]
    assert '"new"' in stored["a.myshopify.com gid://shopify/Order/2"]
