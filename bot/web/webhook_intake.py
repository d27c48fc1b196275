"""The webhook intake route: Shopify webhooks verified, stored first, answered at once, processed after.

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

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from bot.config.model import ConfigError
from bot.config.secrets import MissingSecret
from bot.shopify.signing import is_valid_shop, verify_webhook
from bot.web.context import bot_app
from bot.webhooks.inbox import parse_time, store_event

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
        app.webhook_wakeup.set()
    return _answer(200, {"status": "accepted" if stored else "duplicate"})
