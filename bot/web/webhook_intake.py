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

The work before the 200 is kept to that: `WebhookIntake`, a WSGI layer in front of Flask (installed
by `bot.web.server.create_app`), answers these POSTs from the WSGI environ itself — no Flask request
context, routing, hooks or Response object — and stores with one Core INSERT (bot.webhooks.inbox).
Everything else, and a POST without Content-Length, goes on to Flask, whose route runs the same
`answer()`. Each request still gets its one access-log line (bot.web.server.AccessLog).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Callable, Iterable, Mapping

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from bot.app import App
from bot.config.model import ConfigError
from bot.config.secrets import MissingSecret
from bot.shopify.signing import is_valid_shop, verify_webhook
from bot.web.context import bot_app, printable
from bot.webhooks.inbox import parse_time, store_event

log = logging.getLogger(__name__)

blueprint = Blueprint("webhooks", __name__)

TOPIC_MAX = 100
WEBHOOK_ID_MAX = 255
JSON_TYPE = "application/json"
# Flask's default converter: one path segment. Anything else (a trailing slash, …) is Flask's to answer.
ROUTE = re.compile(r"/shopify/([^/]+)/webhooks")
_STATUS_LINES = {200: "200 OK", 400: "400 BAD REQUEST", 401: "401 UNAUTHORIZED", 404: "404 NOT FOUND",
                 413: "413 REQUEST ENTITY TOO LARGE", 500: "500 INTERNAL SERVER ERROR",
                 503: "503 SERVICE UNAVAILABLE"}
_INTERNAL_ERROR = {"error": "internal_error", "message": "internal error (see the server log)"}

Answer = tuple[int, dict]


class WebhookIntake:
    """WSGI middleware: `POST /shopify/<app>/webhooks` with a Content-Length answered here; the rest
    passed to `wsgi_app` (Flask)."""

    def __init__(self, app: App, wsgi_app: Callable, max_body_bytes: int):
        self.app, self.wsgi_app, self.max_body_bytes = app, wsgi_app, max_body_bytes

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        match = ROUTE.fullmatch(environ.get("PATH_INFO", "")) if environ.get("REQUEST_METHOD") == "POST" else None
        length = environ.get("CONTENT_LENGTH") if match else None
        if not length or not length.isdigit():
            return self.wsgi_app(environ, start_response)
        if int(length) > self.max_body_bytes:
            status, body = 413, {"error": "body too large"}
        else:
            try:
                status, body = answer(self.app, match[1], environ["wsgi.input"].read(int(length)), _Headers(environ))
            except Exception:  # noqa: BLE001 - what Flask's error handler would answer (bot.web.server)
                log.exception("POST /shopify/%s/webhooks failed", printable(match[1], 100))
                status, body = 500, _INTERNAL_ERROR
        data = json.dumps(body).encode()
        start_response(_STATUS_LINES[status], [("Content-Type", JSON_TYPE), ("Content-Length", str(len(data)))]
                       + ([("Cache-Control", "no-store")] if status == 500 else []))
        return [data]


class _Headers:
    """The request headers of a WSGI environ, read the way werkzeug's `request.headers.get` reads them."""

    __slots__ = ("environ",)

    def __init__(self, environ: Mapping[str, Any]):
        self.environ = environ

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"), default)


@blueprint.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> Response:
    return Response(json.dumps({"error": "body too large"}), status=413, content_type=JSON_TYPE)


@blueprint.post("/shopify/<app_name>/webhooks")
def receive(app_name: str) -> Response:
    """The same answers through Flask, for what `WebhookIntake` passes on (no Content-Length)."""
    status, body = answer(bot_app(), app_name, request.get_data(cache=False), request.headers)
    return Response(json.dumps(body), status=status, content_type=JSON_TYPE)


def answer(app: App, app_name: str, body: bytes, headers: Any) -> Answer:
    """Verify, validate and store one delivery: (status, JSON body). `headers` has `.get(name, default)`."""
    try:
        shopify_app = app.shopify_app(app_name)
    except ConfigError:
        return 404, {"error": f"no Shopify app named {app_name!r}"}
    except MissingSecret as exc:
        # Without the secret nothing can be verified: a server problem, which Shopify retries.
        log.error("webhook for Shopify app %r cannot be verified: %s", app_name, exc)
        return 503, {"error": "webhook secret not configured"}
    if not verify_webhook(body, headers.get("X-Shopify-Hmac-Sha256"), shopify_app.secrets):
        log.warning("webhook to app %r refused: missing or wrong HMAC (topic %r, shop %r)", app_name,
                    headers.get("X-Shopify-Topic", "")[:TOPIC_MAX], headers.get("X-Shopify-Shop-Domain", "")[:255])
        return 401, {"error": "invalid HMAC"}
    refused, delivery = _validate(body, headers)
    if refused is not None:
        return 400, {"error": refused}
    stored = store_event(app, app=app_name, **delivery)
    if stored:
        app.webhook_wakeup.set()
    return 200, {"status": "accepted" if stored else "duplicate"}


def _validate(body: bytes, headers: Any) -> tuple[str | None, dict[str, Any]]:
    """(why the signed delivery is refused, or None; the fields to store)."""
    topic = headers.get("X-Shopify-Topic", "").strip()
    shop = headers.get("X-Shopify-Shop-Domain", "").strip()
    webhook_id = headers.get("X-Shopify-Webhook-Id", "").strip()
    missing = [name for name, value in (("X-Shopify-Topic", topic), ("X-Shopify-Shop-Domain", shop),
                                        ("X-Shopify-Webhook-Id", webhook_id)) if not value]
    if missing:
        return f"missing header: {', '.join(missing)}", {}
    if len(topic) > TOPIC_MAX or len(webhook_id) > WEBHOOK_ID_MAX:
        return "topic or webhook id too long", {}
    if not is_valid_shop(shop):
        return "X-Shopify-Shop-Domain is not a *.myshopify.com domain", {}
    try:
        text = body.decode("utf-8")
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return "body is not JSON", {}
    except RecursionError:  # signed, yet nested deeper than any order: refused, not a 500
        return "body is nested too deeply", {}
    if not isinstance(payload, dict):
        return "body is not a JSON object", {}
    triggered_header = headers.get("X-Shopify-Triggered-At")
    triggered_at = parse_time(triggered_header)
    if triggered_header and triggered_at is None:
        return "X-Shopify-Triggered-At is not an ISO 8601 time with an offset", {}
    return None, dict(shop=shop.lower(), topic=topic, webhook_id=webhook_id, body=text,
                      event_id=headers.get("X-Shopify-Event-Id", "").strip()[:255] or None,
                      api_version=headers.get("X-Shopify-API-Version", "").strip()[:20] or None,
                      triggered_at=triggered_at)
