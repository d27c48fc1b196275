"""The HTTP server of `run`: a Flask app, served by waitress, importable for gunicorn.

`create_app(app)` builds one Flask app per bot App; routes reach the bot through
`bot_app()` (the App stored on this Flask app), never through module globals.

What every route gets from here:
- errors as JSON: `{"error": "<short code>", "message": "<text>"}` for every 4xx/5xx that is
  raised (abort(), werkzeug's HTTPExceptions, 404/405/413, unhandled exceptions → 500);
- a body limit: MAX_BODY_BYTES, checked before the view runs (Content-Length) and while reading;
- one access-log line per request on the `bot.access` logger: method, path, status, duration.
  The query string is never logged (OAuth redirects carry code, state and hmac there).

Routes: `GET /kakao/callback` (bot.web.kakao_callback), `GET /healthz` (bot.web.health), the Shopify app
(bot.web.shopify_routes) and webhook intake (bot.web.webhook_intake), whose POSTs are answered by a
WSGI layer in front of Flask (same answers, same access-log line, none of Flask's per-request work).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Callable, Iterable
from urllib.parse import quote

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from bot.app import App
from bot.config.model import ConfigError
from bot.config.secrets import MissingSecret
from bot.web.context import error_response, printable
from bot.web.embedded_api import blueprint as embedded_api_blueprint
from bot.web.health import blueprint as health_blueprint
from bot.web.kakao_callback import blueprint as kakao_callback_blueprint
from bot.web.shopify_routes import blueprint as shopify_blueprint
from bot.web.webhook_intake import WebhookIntake
from bot.web.webhook_intake import blueprint as webhooks_blueprint
from tokens.vault import VaultError

MAX_BODY_BYTES = 1024 * 1024  # webhooks and OAuth redirects are far smaller

log = logging.getLogger("bot.server")
access_log = logging.getLogger("bot.access")


def create_app(app: App) -> Flask:
    flask_app = Flask("kakao-shopify-bot")
    flask_app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    flask_app.json.ensure_ascii = False  # Korean messages stay readable in a browser
    flask_app.extensions["bot"] = app

    flask_app.register_blueprint(kakao_callback_blueprint)
    flask_app.register_blueprint(health_blueprint)
    flask_app.register_blueprint(shopify_blueprint)
    flask_app.register_blueprint(embedded_api_blueprint)
    flask_app.register_blueprint(webhooks_blueprint)
    flask_app.before_request(_refuse_big_bodies)
    flask_app.register_error_handler(HTTPException, _http_error)
    flask_app.register_error_handler(Exception, _unexpected_error)
    # Webhooks are answered in front of Flask (bot.web.webhook_intake): the least work before the 200.
    flask_app.wsgi_app = AccessLog(WebhookIntake(app, flask_app.wsgi_app, MAX_BODY_BYTES))  # type: ignore[method-assign]
    return flask_app


# -- errors, limits, access log ---------------------------------------------------------------------

_ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 408: "request_timeout", 409: "conflict", 410: "gone",
                411: "length_required", 413: "body_too_large", 415: "unsupported_media_type",
                422: "unprocessable", 429: "too_many_requests", 500: "internal_error", 501: "not_implemented",
                502: "bad_gateway", 503: "unavailable", 504: "gateway_timeout"}


def _refuse_big_bodies() -> None:
    # Flask's MAX_CONTENT_LENGTH only bites when a view reads the body; refuse before any view runs.
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()


def _http_error(exc: HTTPException) -> Any:
    if exc.code is None or exc.code < 400:
        return exc  # routing redirects (e.g. a missing trailing slash) stay what they are
    code = exc.code
    if code == 413:
        message = f"the request body is larger than {MAX_BODY_BYTES} bytes"
    else:
        message = exc.description or exc.name
    response = exc.get_response()  # keeps headers such as Allow (405) and Retry-After
    body = error_response(code, _ERROR_CODES.get(code, re.sub(r"\W+", "_", exc.name.lower()).strip("_")), message)
    response.set_data(body.get_data())
    response.content_type = "application/json"
    response.headers["Cache-Control"] = "no-store"
    return response


def _unexpected_error(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if isinstance(exc, (MissingSecret, VaultError, ConfigError)):
        # Configuration, not input: say what is missing (names only, never a value).
        log.error("%s %s: server misconfigured: %s", request.method, request.path, exc)
        return error_response(500, "server_misconfigured", str(exc))
    log.exception("%s %s failed", request.method, request.path)
    return error_response(500, "internal_error", "internal error (see the server log)")


_PATH_SAFE_CHARS = "/:@!$&'()*+,;=-._~%"


class AccessLog:
    """WSGI middleware: one line per request on `bot.access` — method, path, status, milliseconds.

    Only the path is logged, never the query string, and the path is percent-encoded so that
    nothing in it can forge log lines.
    """

    def __init__(self, wsgi_app: Callable):
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.monotonic()
        status: list[str] = []

        def recording_start_response(status_line: str, headers: list, exc_info: Any = None) -> Callable:
            status.append(status_line)
            return start_response(status_line, headers, exc_info)

        try:
            return self.wsgi_app(environ, recording_start_response)
        finally:
            code = status[-1].split(" ", 1)[0] if status else "500"
            access_log.info("%s %s %s %.1fms", printable(environ.get("REQUEST_METHOD", "-"), 16),
                            _log_path(environ), code, (time.monotonic() - started) * 1000)


def _log_path(environ: dict) -> str:
    path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"
    # WSGI strings are latin-1 decoded bytes: re-encode, then percent-encode anything unusual.
    return printable(quote(path.encode("latin-1", "replace"), safe=_PATH_SAFE_CHARS), 300)
