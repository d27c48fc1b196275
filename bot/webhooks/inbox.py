"""Shopify webhooks: verified, stored first, answered at once, processed after.

`POST /shopify/<app>/webhooks` is the one endpoint of every topic (routed later by
X-Shopify-Topic). In order:

  unknown app                                    → 404
  X-Shopify-Hmac-Sha256 missing or not the base64
  HMAC-SHA256 of the raw body with the app's
  secret (or its previous one, during rotation)  → 401, nothing stored
  X-Shopify-Topic / -Shop-Domain / -Webhook-Id
  missing, a shop that is not *.myshopify.com,
  a body that is not a JSON object (or is nested
  deeper than Python's parser goes), an
  X-Shopify-Triggered-At that is not an instant  → 400, nothing stored
  body over the server's limit                   → 413
  otherwise: INSERT … ON CONFLICT (app, webhook_id) DO NOTHING, committed, then
                                                 → 200 {"status": "accepted" | "duplicate"}

The signature is checked before anything else is looked at, so an unsigned request learns
nothing. The answer never waits for processing: the row is committed (the "nothing lost"
point: from here a crash loses nothing), the worker (`bot.webhooks.worker`) is woken and the
200 goes out. A redelivery — Shopify keeps the webhook id on retries — finds the row and is
answered 200 without being stored or processed again.
"""

from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from functools import lru_cache
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from bot.config.model import ConfigError
from bot.store.db import insert_for
from bot.store.models import WebhookEvent
from bot.util.times import parse_instant
from bot.config.secrets import MissingSecret
from bot.shopify.signing import is_valid_shop, verify_webhook

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.app import App
    from bot.store.db import Database

log = logging.getLogger(__name__)

blueprint = Blueprint("webhooks", __name__)

TOPIC_MAX = 100
WEBHOOK_ID_MAX = 255
JSON_TYPE = "application/json"


def _answer(status: int, body: dict) -> Response:
    return Response(json.dumps(body), status=status, content_type=JSON_TYPE)


@blueprint.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> Response:
    return _answer(413, {"error": "body too large"})


@blueprint.post("/shopify/<app_name>/webhooks")
def receive(app_name: str) -> Response:
    from bot.web.server import bot_app  # late: bot.web.server imports this module

    app = bot_app()
    try:
        shopify_app = app.shopify_app(app_name)
    except ConfigError:
        return _answer(404, {"error": f"no Shopify app named {app_name!r}"})
    except MissingSecret as exc:
        # Without the secret nothing can be verified: a server problem, which Shopify retries.
        log.error("webhook for Shopify app %r cannot be verified: %s", app_name, exc)
        return _answer(503, {"error": "webhook secret not configured"})

    body = request.get_data(cache=False)  # the raw bytes the signature covers (413 past the limit)
    headers = request.headers
    if not verify_webhook(body, headers.get("X-Shopify-Hmac-Sha256"), shopify_app.secrets):
        log.warning("webhook to app %r refused: missing or wrong HMAC (topic %r, shop %r)", app_name,
                    headers.get("X-Shopify-Topic", "")[:TOPIC_MAX], headers.get("X-Shopify-Shop-Domain", "")[:255])
        return _answer(401, {"error": "invalid HMAC"})

    topic = headers.get("X-Shopify-Topic", "").strip()
    shop = headers.get("X-Shopify-Shop-Domain", "").strip()
    webhook_id = headers.get("X-Shopify-Webhook-Id", "").strip()
    missing = [name for name, value in (("X-Shopify-Topic", topic), ("X-Shopify-Shop-Domain", shop),
                                        ("X-Shopify-Webhook-Id", webhook_id)) if not value]
    if missing:
        return _answer(400, {"error": f"missing header: {', '.join(missing)}"})
    if len(topic) > TOPIC_MAX or len(webhook_id) > WEBHOOK_ID_MAX:
        return _answer(400, {"error": "topic or webhook id too long"})
    if not is_valid_shop(shop):
        return _answer(400, {"error": "X-Shopify-Shop-Domain is not a *.myshopify.com domain"})
    try:
        text = body.decode("utf-8")
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return _answer(400, {"error": "body is not JSON"})
    except RecursionError:  # signed, yet nested deeper than any order: refused, not a 500
        return _answer(400, {"error": "body is nested too deeply"})
    if not isinstance(payload, dict):
        return _answer(400, {"error": "body is not a JSON object"})

    event_id = headers.get("X-Shopify-Event-Id", "").strip()[:255] or None
    api_version = headers.get("X-Shopify-API-Version", "").strip()[:20] or None
    triggered_header = headers.get("X-Shopify-Triggered-At")
    triggered_at = parse_time(triggered_header)
    if triggered_header and triggered_at is None:
        return _answer(400, {"error": "X-Shopify-Triggered-At is not an ISO 8601 time with an offset"})
    stored = store_event(app, app=app_name, shop=shop.lower(), topic=topic, webhook_id=webhook_id,
                         event_id=event_id, api_version=api_version, triggered_at=triggered_at, body=text)
    if stored:
        wake(app)
    return _answer(200, {"status": "accepted" if stored else "duplicate"})


def store_event(bot: "App", *, app: str, shop: str, topic: str, webhook_id: str, body: str,
                event_id: str | None = None, api_version: str | None = None,
                triggered_at: datetime | None = None) -> bool:
    """Commit one delivery; False if (app, webhook_id) was stored already (a redelivery)."""
    values = dict(app=app, shop=shop, topic=topic, webhook_id=webhook_id, event_id=event_id,
                  triggered_at=triggered_at, api_version=api_version, body=body, received_at=bot.clock(),
                  status="pending", attempts=0)
    with write_session(bot.db) as session:
        inserted = session.connection().execute(_insert_statement(session.bind.dialect.name),
                                                values).scalar_one_or_none()
    return inserted is not None


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


# -- short writes ------------------------------------------------------------------------------

_write_locks_guard = threading.Lock()


@contextmanager
def write_session(db: "Database") -> Iterator["Session"]:
    """A unit of work for one short write (committed on exit, like `Database.session`).

    SQLite has one writer at a time, and a writer that finds the file locked sleeps in steps of
    up to 100 ms before trying again: under load that turns into long answer times. The request
    threads and the worker of this process therefore queue on a lock of their own instead (a
    hand-over takes microseconds); writers elsewhere still meet SQLite's busy timeout. PostgreSQL
    locks rows, not the database: no lock there.
    """
    if not db.is_sqlite:
        with db.session() as session:
            yield session
        return
    with _write_locks_guard:
        lock = vars(db).get("_webhook_write_lock")
        if lock is None:
            lock = vars(db)["_webhook_write_lock"] = threading.Lock()
    with lock, db.session() as session:
        yield session


# -- waking the worker -------------------------------------------------------------------------

_wakeups_guard = threading.Lock()


def wakeup_event(app: "App") -> threading.Event:
    """The event that tells the workers of this App that an event was stored (one per App)."""
    with _wakeups_guard:
        event = vars(app).get("_webhook_wakeup")
        if event is None:
            event = threading.Event()
            vars(app)["_webhook_wakeup"] = event
        return event


def wake(app: "App") -> None:
    wakeup_event(app).set()


def start_background(app: "App") -> list:
    """Start the webhook worker (it has .stop(timeout)); it first drains what an earlier process left
    (stored and answered, but not processed). The order reconciliation is a scheduler job
    (bot.webhooks.reconcile.register_reconciliation)."""
    from bot.webhooks.worker import WebhookWorker

    return [WebhookWorker(app).start()]
