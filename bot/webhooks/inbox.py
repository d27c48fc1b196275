"""The webhook inbox: each verified delivery stored once, as a `pending` row, before the 200.

The route that verifies and answers is `bot.web.webhook_intake`; the worker that processes the
rows is `bot.webhooks.worker`. A redelivery — Shopify keeps the webhook id on retries — finds
the row (`store_event` answers False) and is not stored or processed again.

One statement in a short Core transaction (no ORM Session; retried once on a connection found dead
before the commit): `INSERT … ON CONFLICT (app, webhook_id) DO NOTHING RETURNING id`, built once per
dialect. On SQLite the inserts of concurrent requests share one transaction (`Database.group_commit`):
one wait for the disk for all of them, each answered only once its row is committed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection

from bot.app import App
from bot.store.db import insert_for
from bot.store.models import WebhookEvent
from bot.util.times import parse_instant


def store_event(bot: App, *, app: str, shop: str, topic: str, webhook_id: str, body: str,
                event_id: str | None = None, api_version: str | None = None,
                triggered_at: datetime | None = None) -> bool:
    """Commit one delivery; False if (app, webhook_id) was stored already (a redelivery)."""
    values = dict(app=app, shop=shop, topic=topic, webhook_id=webhook_id, event_id=event_id,
                  triggered_at=triggered_at, api_version=api_version, body=body, received_at=bot.clock(),
                  status="pending", attempts=0)
    return bot.db.group_commit("webhook_events.insert", _insert)(values) is not None


def _insert(connection: Connection, values: dict[str, Any]) -> int | None:
    """The new row's id, or None if (app, webhook_id) is there already."""
    return connection.execute(_insert_statement(connection.dialect.name), values).scalar_one_or_none()


@lru_cache(maxsize=None)
def _insert_statement(dialect_name: str):  # noqa: ANN202 — built once: this is the hot path
    table = WebhookEvent.__table__
    return (insert_for(dialect_name, table).on_conflict_do_nothing(index_elements=["app", "webhook_id"])
            .returning(table.c.id))


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time (Shopify's X-Shopify-Triggered-At, `updated_at`), aware UTC; None if unreadable
    or out of range (0001-01-01T00:00:00+23:59 has no UTC instant: OverflowError)."""
    if not value or not isinstance(value, str):
        return None
    moment = parse_instant(value.strip())
    try:
        return moment.astimezone(timezone.utc) if moment else None
    except OverflowError:
        return None
