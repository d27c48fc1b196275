"""The embedded app's JSON API: what the app's page inside the Shopify admin calls.

    GET /shopify/<app>/api/shop    the shop's connection to this app; installs it by token
                                   exchange when it has no usable offline token

Every route authenticates with App Bridge's session token (`Authorization: Bearer …`, verified in
bot.connect.shopify_embedded) and serves only the shop that token names: no route takes a shop from
the path, the query or the body, so a merchant can never reach another shop's data. A missing,
expired or forged token is a 401 carrying `X-Shopify-Retry-Invalid-Session-Request: 1`, the header
on which App Bridge fetches a fresh token and sends the request again. Answers are never cached.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request

from bot.connect.shopify_embedded import SessionRefused, authenticate, ensure_installed
from bot.connect.shopify_install import InstallRefused
from bot.web.context import bot_app, error_response

blueprint = Blueprint("embedded_api", __name__)

RETRY_HEADER = "X-Shopify-Retry-Invalid-Session-Request"


@blueprint.errorhandler(InstallRefused)
def _refused(exc: InstallRefused) -> Response:
    response = error_response(exc.status, exc.code, exc.message)
    if isinstance(exc, SessionRefused):
        response.headers[RETRY_HEADER] = "1"
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


@blueprint.get("/shopify/<app_name>/api/shop")
def shop(app_name: str) -> Response:
    app = bot_app()
    session = authenticate(app, app_name, request.headers.get("Authorization"))
    connection = ensure_installed(app, session)
    status, installed = connection.status, connection.installed_now
    body: dict[str, Any] = {
        "shop": session.shop,
        "app": app_name,
        "install": {"status": status.status, "mode": status.mode, "scopes": list(status.scopes),
                    "installed_at": _iso(status.installed_at), "access_expires_at": _iso(status.access_expires_at)},
        "installed_now": installed is not None,
    }
    if installed is not None:
        body["webhooks"] = {"uri": installed.webhook_uri, "created": list(installed.webhooks_created),
                            "error": installed.webhook_error}
        body["missing_job_scopes"] = installed.missing_job_scopes
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
